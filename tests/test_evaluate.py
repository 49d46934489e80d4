"""`digitrec evaluate` end to end on the real MNIST test set, with a tiny ONNX model built here in a second."""

import base64
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import run_main
from predict_helpers import write_linear_onnx

from digitrec.cli import cli

pytestmark = pytest.mark.mnist

HISTORY = [  # the rows `digitrec train` writes to metrics.jsonl, one per epoch
    {"epoch": 1, "train_loss": 0.9, "train_accuracy": 0.70, "val_loss": 0.60, "val_accuracy": 0.80, "lr": 0.01},
    {"epoch": 2, "train_loss": 0.5, "train_accuracy": 0.82, "val_loss": 0.45, "val_accuracy": 0.84, "lr": 0.005},
    {"epoch": 3, "train_loss": 0.4, "train_accuracy": 0.85, "val_loss": 0.41, "val_accuracy": 0.86, "lr": 0.001},
]


def linear_model(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression onto one-hot labels: W (784, 10), b (10,). About 85% on MNIST, in milliseconds."""
    x = images.reshape(len(images), -1).astype(np.float64) / 255.0
    x1 = np.hstack([x, np.ones((len(x), 1))])
    target = np.eye(10)[labels] * 8.0  # scaled so the softmax is confident, as a trained net's is
    w = np.linalg.solve(x1.T @ x1 + 10.0 * np.eye(785), x1.T @ target)
    return w[:-1].astype(np.float32), w[-1].astype(np.float32)


def write_onnx(path: Path, weight: np.ndarray, bias: np.ndarray, card: dict | None) -> Path:
    """The model contract: input float32 (N, 1, 28, 28) in [0, 1] -> logits (N, classes)."""
    return write_linear_onnx(path, weight, bias, card)


@pytest.fixture(scope="module")
def linear(mnist):
    images, labels = mnist["train"]
    return linear_model(images[:3000], labels[:3000])


@pytest.fixture(scope="module")
def models(linear, tmp_path_factory):
    """Two copies of the same linear model: one with a card holding a history, one bare."""
    folder = tmp_path_factory.mktemp("models")
    weight, bias = linear
    card = {
        "name": "linear-test",
        "architecture": "ridge regression",
        "params": int(weight.size + bias.size),
        "test_accuracy": 0.85,
        "history": HISTORY,
    }
    return {
        "carded": write_onnx(folder / "carded.onnx", weight, bias, card),
        "bare": write_onnx(folder / "bare.onnx", weight, bias, None),
    }


def test_evaluate_writes_every_artefact_on_the_full_test_set(real_data, models, linear, tmp_path, artifacts_dir):
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["evaluate", str(models["carded"]), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])

    # The numbers agree with the same linear model computed here in numpy.
    images, labels = real_data["test"]
    weight, bias = linear
    logits = images.reshape(len(images), -1).astype(np.float32) / 255.0 @ weight + bias
    predicted = logits.argmax(axis=1)
    assert summary["n"] == 10_000
    assert summary["errors"] == int((predicted != labels).sum())
    assert summary["accuracy"] == pytest.approx((predicted == labels).mean())
    assert 0.80 < summary["accuracy"] < 0.95  # what a ridge regression on 3,000 images gets
    assert 0 < summary["loss"] < 2 and 0 <= summary["ece"] < 0.5
    assert [c["support"] for c in summary["per_class"]] == np.bincount(labels, minlength=10).tolist()
    for c in summary["per_class"]:
        assert set(c) >= {"precision", "recall", "f1", "support"} and 0.5 < c["f1"] <= 1
    assert summary["model"]["path"] == str(models["carded"]) and summary["model"]["name"] == "linear-test"
    assert summary["out"] == str(out)

    # predictions.csv: one row per image, probabilities that sum to 1
    with open(out / "predictions.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["index", "label", "predicted", "confidence"] + [f"p{d}" for d in range(10)]
    assert len(rows) == 10_001
    table = np.array(rows[1:], dtype=np.float64)
    assert table[:, 0].tolist() == list(range(10_000))
    assert (table[:, 1] == labels).all() and (table[:, 2] == predicted).all()
    assert np.allclose(table[:, 4:].sum(axis=1), 1, atol=1e-4)
    assert np.allclose(table[:, 3], table[:, 4:].max(axis=1))

    # confusion.csv: rows true, columns predicted, everything counted once
    with open(out / "confusion.csv") as f:
        confusion = np.array([row[1:] for row in list(csv.reader(f))[1:]], dtype=np.int64)
    assert confusion.shape == (10, 10) and confusion.sum() == 10_000
    assert np.trace(confusion) == 10_000 - summary["errors"]
    assert confusion.tolist() == summary["confusion"]

    # PNGs: real pictures with something drawn on them
    import cv2

    for name in ("confusion.png", "mistakes.png", "reliability.png", "risk_coverage.png", "training_curves.png"):
        image = cv2.imread(str(out / name))
        assert image is not None and min(image.shape[:2]) > 200 and image.std() > 10, name

    # report.html: self-contained, every figure embedded, the card shown
    page = (out / "report.html").read_text()
    embedded = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == 5
    assert all(base64.b64decode(e)[:8] == b"\x89PNG\r\n\x1a\n" for e in embedded)
    assert not re.search(r'(src|href)="(https?:)?//', page), "report.html must not load anything from outside"
    assert "<link" not in page and "<script" not in page
    for text in (
        "linear-test",
        "ridge regression",
        f"{summary['accuracy']:.2%}",
        "Worst mistakes",
        "Confusion matrix",
        "Calibration",
        "Doubt: answering only when sure",
        "What was flagged, and why",
        "Training curves",
        "model card",
    ):
        assert text in page, text
    assert json.loads((out / "summary.json").read_text())["accuracy"] == summary["accuracy"]
    (artifacts_dir / "evaluate_report.html").write_text(page)

    # Doubt: the default threshold's effect, the risk-coverage table and the flagged per reason.
    confidence, right = table[:, 3], predicted == labels  # as predictions.csv wrote them
    answered = confidence >= 0.93
    doubt = summary["doubt"]
    assert doubt["at_threshold"] == {
        "min_confidence": 0.93,
        "coverage": answered.mean(),
        "answered": int(answered.sum()),
        "accuracy": pytest.approx(right[answered].mean()),
        "flagged": int((~answered).sum()),
        "flagged_right": int((~answered & right).sum()),
        "flagged_wrong": int((~answered & ~right).sum()),
    }
    assert 0.2 < doubt["at_threshold"]["coverage"] < 0.95 and doubt["at_threshold"]["accuracy"] > summary["accuracy"]
    from digitrec.reject import Rejector

    rejected = np.array([r is not None for r in Rejector().reasons(images)])
    flagged = doubt["flagged"]
    assert set(flagged) == {"not a digit", "several digits", "low confidence", "no ink"} and flagged["no ink"] == 0
    assert flagged["not a digit"] + flagged["several digits"] == rejected.sum()  # MNIST digits: a few at most
    assert rejected.sum() < 0.01 * len(labels)
    assert flagged["low confidence"] == int((~answered & ~rejected).sum())
    order = np.argsort(-confidence, kind="stable")
    by_coverage = {r["coverage"]: r for r in doubt["risk_coverage"]}
    assert list(by_coverage) == [0.5, 0.8, 0.9, 0.95, 0.99, 1.0]
    assert by_coverage[0.5]["answered"] == 5000
    assert by_coverage[0.5]["accuracy"] == pytest.approx(right[order[:5000]].mean())
    assert by_coverage[1.0]["accuracy"] == pytest.approx(summary["accuracy"])
    assert f"{doubt['at_threshold']['coverage']:.2%}</b> of the images are answered" in page
    # The table adds up to more than the threshold's flagged: the report says so, with the total.
    total = sum(flagged.values())
    assert total == int((~answered | rejected).sum()) >= doubt["at_threshold"]["flagged"]
    assert f"The {doubt['at_threshold']['flagged']:,} flagged above are the threshold's alone" in page
    assert f"{total:,} flagged in all, as this table counts them" in page


def test_history_from_metrics_jsonl_beside_the_model(real_data, models, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    model = run / "model.onnx"
    model.write_bytes(models["bare"].read_bytes())
    lines = [json.dumps(row) for row in HISTORY] + ['{"epoch": 4, "train_lo']  # a run killed mid-write
    (run / "metrics.jsonl").write_text("\n".join(lines))
    code, out, err = run_main(["evaluate", str(run), "--out", str(tmp_path / "o"), "--limit", "300"], capsys)
    assert code == 0, err
    assert "accuracy" in out and "Report:" in out
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["n"] == 300 and summary["limit"] == 300
    assert summary["history_source"] == str(run / "metrics.jsonl")
    assert (tmp_path / "o" / "training_curves.png").is_file()


def test_without_history_there_are_no_curves_and_the_report_says_so(real_data, models, tmp_path, capsys):
    code, _, err = run_main(["evaluate", str(models["bare"]), "--out", str(tmp_path), "--limit", "200"], capsys)
    assert code == 0, err
    assert not (tmp_path / "training_curves.png").exists()
    page = (tmp_path / "report.html").read_text()
    assert "No training history" in page and page.count("data:image/png;base64,") == 4


def test_evaluating_an_onnx_model_never_imports_torch(real_data, models, tmp_path):
    code = (
        "import sys; from digitrec.evaluate import evaluate_model\n"
        f"s = evaluate_model({str(models['carded'])!r}, {str(tmp_path)!r}, limit=100)\n"
        "assert s['n'] == 100\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "model file not found"),
        ("suffix", "unknown model type '.txt'"),
        ("corrupt_onnx", "cannot load"),
        ("empty_folder", "without a model in it"),
        ("wrong_classes", "answers with shape (5,)"),
    ],
)
def test_bad_models_fail_with_a_clear_message(case, message, tmp_path, capsys):
    if case == "missing":
        model = tmp_path / "nope.onnx"
    elif case == "suffix":
        model = tmp_path / "model.txt"
        model.write_text("hello")
    elif case == "corrupt_onnx":
        model = tmp_path / "model.onnx"
        model.write_bytes(b"\x08\x07this is not a protobuf" * 10)
    elif case == "empty_folder":
        model = tmp_path
    else:
        model = write_onnx(tmp_path / "five.onnx", np.zeros((784, 5), np.float32), np.zeros(5, np.float32), None)
    code, _, err = run_main(["evaluate", str(model), "--out", str(tmp_path / "out")], capsys)
    assert code == 1
    assert err.startswith("Error: ") and message in err, err
    assert "Traceback" not in err


def test_bad_limit_and_a_bad_model_in_a_real_process(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "digitrec", "evaluate", str(tmp_path / "x.pt")], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "Error: model file not found" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "digitrec", "evaluate", "--limit", "0"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "--limit" in result.stderr


def test_a_pytorch_checkpoint_run_folder(real_data, tmp_path, capsys):
    """A run folder as `digitrec train` leaves it: checkpoint.pt (+ metrics.jsonl); numbers match torch."""
    import torch

    from digitrec.checkpoint import save_checkpoint
    from digitrec.models import build_model

    torch.manual_seed(0)
    model = build_model("mlp", hidden=16).eval()
    run = tmp_path / "run"
    meta = {
        "recipe": "mlp",
        "architecture": "mlp",
        "config": {"model": {"hidden": 16}},
        "seed": 0,
        "parameters": sum(p.numel() for p in model.parameters()),
        "history": HISTORY,
    }
    save_checkpoint(run / "checkpoint.pt", {"model": model.state_dict(), "meta": meta, "train_state": {}})
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in HISTORY))

    out = tmp_path / "out"
    code, stdout, err = run_main(["evaluate", str(run), "--out", str(out), "--limit", "500", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    images, labels = real_data["test"]
    with torch.no_grad():
        logits = model(torch.tensor(images[:500], dtype=torch.float32).div(255).unsqueeze(1))
    assert summary["model"]["kind"] == "checkpoint" and summary["model"]["path"] == str(run / "checkpoint.pt")
    assert summary["errors"] == int((logits.argmax(1).numpy() != labels[:500]).sum())
    expected_loss = torch.nn.functional.cross_entropy(logits, torch.tensor(labels[:500], dtype=torch.long)).item()
    assert summary["loss"] == pytest.approx(expected_loss, rel=1e-4)
    assert summary["history_source"] is not None and (out / "training_curves.png").is_file()
    assert "mlp" in (out / "report.html").read_text()


def test_a_corrupt_checkpoint_fails_cleanly(tmp_path, capsys):
    model = tmp_path / "checkpoint.pt"
    model.write_bytes(b"PK\x03\x04 not really a zip" * 20)
    code, _, err = run_main(["evaluate", str(model), "--out", str(tmp_path / "out")], capsys)
    assert code == 1 and err.startswith("Error: ") and "cannot read" in err and "Traceback" not in err


def test_an_output_path_that_is_a_file_fails_cleanly(real_data, models, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_main(["evaluate", str(models["bare"]), "--out", str(blocker / "sub")], capsys)
    assert code == 1 and "Error: cannot create the output folder" in err


def test_without_a_shipped_model_the_message_says_what_to_do(tmp_path, monkeypatch, capsys):
    from digitrec import paths

    monkeypatch.setattr(paths, "assets_dir", lambda: tmp_path)
    code, _, err = run_main(["evaluate", "--out", str(tmp_path / "out")], capsys)
    assert code == 1 and "the shipped model is missing" in err and "digitrec evaluate MODEL" in err


@pytest.mark.browser
def test_report_renders_in_a_real_browser_with_nothing_fetched(real_data, models, tmp_path, artifacts_dir):
    """report.html in headless chromium: every figure decodes, no request leaves the file, and the page
    fits a laptop and a phone screen without sideways scrolling."""
    from playwright.sync_api import sync_playwright

    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():  # never a silent skip
        pytest.fail(f"{chromium} is missing: `make browser` (or apt-get install chromium) installs it")
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["evaluate", str(models["carded"]), "--out", str(out), "--limit", "2000"])
    assert result.exit_code == 0, result.output
    url = (out / "report.html").as_uri()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"])
        try:
            viewports = (("laptop", {"width": 1200, "height": 900}), ("phone", {"width": 390, "height": 844}))
            for name, viewport in viewports:
                page = browser.new_page(viewport=viewport)
                requests = []
                page.on("request", lambda request: requests.append(request.url))
                page.goto(url)
                page.wait_for_load_state("load")
                assert all(r == url or r.startswith("data:") for r in requests), requests
                sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
                assert len(sizes) == 5 and all(done and width > 200 for done, width in sizes), sizes
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"{name}: the page scrolls sideways by {overflow}px"
                assert "Evaluation of linear-test" in page.inner_text("h1")
                page.screenshot(path=str(artifacts_dir / f"evaluate_report_{name}.png"), full_page=True)
                page.close()
        finally:
            browser.close()


def test_evaluating_another_model_never_overwrites_the_shipped_models_report(
    real_data, models, tmp_path, monkeypatch, capsys
):
    from digitrec.runtime import default_model_path

    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(["evaluate", "--limit", "20", "--json"], capsys)
    assert code == 0, err
    shipped = json.loads((tmp_path / "out/evaluate/summary.json").read_text())
    assert shipped["model"]["path"] == str(default_model_path())
    # Another model, no --out: a folder of its own.
    code, _, err = run_main(["evaluate", str(models["bare"]), "--limit", "20", "--json"], capsys)
    assert code == 0, err
    assert (tmp_path / "out/evaluate-bare/report.html").is_file()
    assert json.loads((tmp_path / "out/evaluate/summary.json").read_text()) == shipped
    # Into the shipped model's folder on purpose: refused, then replaced with --force.
    code, _, err = run_main(["evaluate", str(models["bare"]), "--out", "out/evaluate", "--limit", "20"], capsys)
    assert code == 1 and "holds the report of another model" in err and "--force" in err
    assert json.loads((tmp_path / "out/evaluate/summary.json").read_text()) == shipped
    code, _, err = run_main(
        ["evaluate", str(models["bare"]), "--out", "out/evaluate", "--limit", "20", "--force"], capsys
    )
    assert code == 0, err
    assert json.loads((tmp_path / "out/evaluate/summary.json").read_text())["model"]["path"] == str(models["bare"])


def test_lines_stay_whole_when_the_output_is_not_a_terminal(real_data, tmp_path, capsys):
    """`make demo > log`, CI: rich broke lines at 80 columns, mid-phrase ("78 flagged (63" / "right,
    15 wrong)"). Piped, each line stays one line; the table keeps its width."""
    code, out, err = run_main(["evaluate", "--out", str(tmp_path), "--limit", "300"], capsys)
    assert code == 0, err
    doubt = next(line for line in out.splitlines() if line.startswith("at min_confidence"))
    assert re.fullmatch(r"at min_confidence 0\.93: .* answered, .* right; \d+ flagged \(\d+ right, \d+ wrong\)", doubt)
    assert all(len(line) <= 80 for line in out.splitlines() if "│" in line)


def test_a_model_exported_into_the_working_folder_gets_a_report_folder_named_after_it(
    real_data, models, tmp_path, monkeypatch, capsys
):
    """The README's `digitrec export runs/cnn --out model.onnx`, then `digitrec evaluate model.onnx`:
    model.onnx lies in the checkout, not in a run folder, so its report goes to out/evaluate-model
    (it went to out/evaluate-CHECKOUT, named after whatever folder the user was in)."""
    checkout = tmp_path / "my checkout"
    (checkout / "runs/cnn").mkdir(parents=True)
    (checkout / "model.onnx").write_bytes(models["bare"].read_bytes())
    (checkout / "runs/cnn/model.onnx").write_bytes(models["bare"].read_bytes())
    (checkout / "runs/cnn/metrics.jsonl").write_text("{}\n")
    monkeypatch.chdir(checkout)
    code, _, err = run_main(["evaluate", "model.onnx", "--limit", "20"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (checkout / "out").iterdir()) == ["evaluate-model"]
    assert (checkout / "out/evaluate-model/report.html").is_file()
    # A model.onnx exported into its run folder is still named after the run.
    from digitrec.cli.evaluate import default_out

    assert default_out(Path("runs/cnn/model.onnx")) == Path("out/evaluate-cnn")
    assert default_out(Path("runs/cnn")) == Path("out/evaluate-cnn")


def test_paths_with_brackets_are_printed_as_they_are(real_data, models, tmp_path, capsys):
    """rich reads '[v2]' in a folder's name as markup: the model's path and the report's were
    printed without it, naming folders that do not exist."""
    folder = tmp_path / "models [v2]"
    folder.mkdir()
    model = folder / "bare.onnx"
    model.write_bytes(models["bare"].read_bytes())
    code, out, err = run_main(["evaluate", str(model), "--out", str(folder / "out"), "--limit", "100"], capsys)
    assert code == 0, err
    flat = " ".join(out.split())  # rich may wrap a long path
    assert str(model) in flat and f"Report: {folder / 'out' / 'report.html'}" in flat
