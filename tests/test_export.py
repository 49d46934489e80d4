"""ONNX export: parity with PyTorch, the model card, the runtime contract, clear errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from digitrec.checkpoint import load_model, read_checkpoint, save_checkpoint
from digitrec.cli import main
from digitrec.data import FILES
from digitrec.errors import ModelError
from digitrec.export import card_path_for, export_onnx, validation_split
from digitrec.runtime import Recognizer, softmax
from digitrec.train import load_recipe, train


@pytest.fixture(scope="module")
def run_dir(mnist, tmp_path_factory):
    """A real (small) trained run folder, shared by the tests below."""
    config = load_recipe("fast", overrides={"limit": 2000, "epochs": 1, "threads": 2})
    folder = tmp_path_factory.mktemp("export") / "run"
    train(config, folder, data=mnist)
    return folder


def test_export_matches_pytorch_and_carries_its_card(run_dir, mnist, tmp_path):
    out = tmp_path / "model.onnx"
    card = export_onnx(
        run_dir, out, test_data=mnist["test"], validation_data=validation_split({"limit": 2000}, mnist["train"])
    )
    assert out.is_file() and card_path_for(out) == tmp_path / "model_card.json"
    assert json.loads((tmp_path / "model_card.json").read_text())["parameters"] == card["parameters"]

    # The contract: input `image` (N, 1, 28, 28) float in [0, 1], output `logits` (N, 10), dynamic batch.
    proto = onnx.load(str(out))
    assert [i.name for i in proto.graph.input] == ["image"] and [o.name for o in proto.graph.output] == ["logits"]
    embedded = json.loads({p.key: p.value for p in proto.metadata_props}["digitrec"])
    expected = {
        "name",
        "recipe",
        "architecture",
        "parameters",
        "flops_per_image",
        "input",
        "labels",
        "test_accuracy",
        "train_seconds",
        "seed",
        "config",
        "data_sha256",
        "commit",
        "created",
        "history",
    }
    assert expected <= set(embedded)
    assert embedded["data_sha256"] == {s.name: s.sha256 for s in FILES.values()}
    assert embedded["labels"] == list("0123456789") and embedded["input"]["range"] == [0.0, 1.0]
    assert [row["epoch"] for row in embedded["history"]] == [1]
    assert embedded["onnx_parity_max_abs_diff"] < 1e-4

    # Independent parity check through the product's own runtime, on images it never saw in export.
    images, labels = mnist["test"]
    batch = images[-300:]
    model, _ = load_model(run_dir)
    temperature = card["calibration"]["temperature"]  # fitted on the run's own validation images
    assert (
        embedded["calibration"]["images"] == 200
        and embedded["calibration"]["nll_after"] <= embedded["calibration"]["nll_before"]
        and 0.05 < temperature < 20
    )
    with torch.no_grad():
        expected_probs = softmax(model(torch.tensor(batch).float().div(255).unsqueeze(1)).numpy() / temperature)
    got = Recognizer(out).predict_probabilities(batch)
    assert np.abs(got - expected_probs).max() < 1e-4
    accuracy = float((Recognizer(out).predict_probabilities(images).argmax(1) == labels).mean())
    assert card["test_accuracy"] == pytest.approx(accuracy) and accuracy > 0.85


def test_a_disagreeing_export_is_refused(run_dir, mnist, tmp_path, monkeypatch):
    import digitrec.export as export_module

    real = export_module._to_onnx

    def broken(model, path):  # export a model whose weights were changed behind PyTorch's back
        with torch.no_grad():
            shifted = __import__("copy").deepcopy(model)
            shifted.net[-1].bias += 1.0 * torch.arange(10)
        real(shifted, path)

    monkeypatch.setattr(export_module, "_to_onnx", broken)
    with pytest.raises(ModelError, match="disagrees with PyTorch"):
        export_onnx(run_dir, tmp_path / "bad.onnx", test_data=mnist["test"], validation_data=mnist["test"])
    assert not (tmp_path / "bad.onnx").exists() and not list(tmp_path.glob(".bad.onnx*"))


def test_checkpoints_load_with_weights_only(run_dir):
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["format"] == "digitrec-checkpoint/1" and {"model", "meta", "train_state"} <= set(state)
    json.dumps(state["meta"])  # plain JSON-able types only
    assert read_checkpoint(run_dir)["meta"]["epoch"] == 1


def test_cli_export_json_and_errors(run_dir, mnist, real_mnist_env, monkeypatch, tmp_path, capsys):
    for k, v in real_mnist_env.items():
        monkeypatch.setenv(k, v)
    if "XDG_CACHE_HOME" not in real_mnist_env:
        monkeypatch.delenv("XDG_CACHE_HOME")

    def run(args):
        with pytest.raises(SystemExit) as info:
            main(args)
        captured = capsys.readouterr()
        return info.value.code, captured.out, captured.err

    out = tmp_path / "m.onnx"
    code, stdout, err = run(["export", str(run_dir / "checkpoint.pt"), "--out", str(out), "--json"])
    assert code == 0, err
    card = json.loads(stdout.strip().splitlines()[-1])
    assert card["recipe"] == "fast" and card["path"] == str(out) and (tmp_path / "m_card.json").is_file()

    # A run stopped after 1 of its 3 epochs: exported all the same, but said to be unfinished.
    half = tmp_path / "half[run]"
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    state["meta"]["config"]["epochs"] = 3
    save_checkpoint(half / "checkpoint.pt", state)
    code, stdout, err = run(["export", str(half), "--out", str(tmp_path / "half.onnx"), "--json"])
    assert code == 0 and "Warning: the run is unfinished: trained 1 of 3 epochs" in err, err
    assert f"digitrec train --out '{half}' --resume" in err  # the folder's brackets are not rich markup
    assert json.loads(stdout.strip().splitlines()[-1])["unfinished"].startswith("trained 1 of 3 epochs")
    assert "unfinished" not in card  # the finished run's card says nothing of it

    keras = tmp_path / "model.keras"
    keras.write_bytes(b"PK")
    for args, message in [
        ([str(keras)], "is not a Keras model"),  # .keras files go to digitrec.keras_export (tests/test_byo_model.py)
        ([str(tmp_path / "nowhere")], "checkpoint not found"),
        ([str(run_dir), "--out", str(tmp_path / "m.txt")], "must end in .onnx"),
    ]:
        code, _, err = run(["export", *args])
        assert code == 1 and message in err and "Traceback" not in err, err

    junk = tmp_path / "junk.pt"
    save_checkpoint(junk, {"model": {}, "meta": {"architecture": "cnn", "config": {}}})
    code, _, err = run(["export", str(junk)])
    assert code == 1 and "do not fit" in err


@pytest.fixture
def untrained_checkpoint(tmp_path):
    """A checkpoint of an untrained MLP: enough to export (no MNIST, no training)."""
    from digitrec.models import build_model

    torch.manual_seed(0)
    model = build_model("mlp", hidden=16)
    meta = {"recipe": "mlp", "architecture": "mlp", "config": {"model": {"hidden": 16}}, "seed": 0, "epoch": 0}
    path = tmp_path / "run" / "checkpoint.pt"
    save_checkpoint(path, {"model": model.state_dict(), "meta": meta})
    rng = np.random.default_rng(0)
    test_data = (rng.integers(0, 256, (50, 28, 28), dtype=np.uint8), rng.integers(0, 10, 50).astype(np.uint8))
    return path, test_data


def test_export_out_under_a_file_is_a_clear_error(untrained_checkpoint, tmp_path, capsys):
    from digitrec.errors import DigitrecError

    path, test_data = untrained_checkpoint
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    with pytest.raises(DigitrecError, match="taken is a file, not a folder"):
        export_onnx(path, blocker / "sub" / "m.onnx", test_data=test_data, validation_data=test_data)
    with pytest.raises(SystemExit) as info:
        main(["export", str(path), "--out", str(blocker / "m.onnx")])
    err = capsys.readouterr().err
    assert info.value.code == 1 and "is a file, not a folder" in err and "Traceback" not in err
    assert blocker.read_text() == "a file, not a folder"
    # refused before MNIST was fetched into this test's own (empty) cache: no 55 MB download first
    assert not any((tmp_path / "cache").rglob("*-ubyte*"))


def test_export_writes_a_valid_card_and_its_sidecar_atomically(untrained_checkpoint, tmp_path, monkeypatch):
    """A full disk while the card is written: a clear error, and no half card beside the model."""
    from digitrec import files
    from digitrec.errors import DigitrecError
    from digitrec.modelfile import ModelCard

    path, test_data = untrained_checkpoint
    out = tmp_path / "m.onnx"
    card = export_onnx(path, out, test_data=test_data, validation_data=test_data)
    assert ModelCard.from_json((tmp_path / "m_card.json").read_text(), require_input=True).data == {
        k: v for k, v in card.items() if k not in ("path", "card_path", "bytes")
    }
    assert card["format"] == "digitrec-card/1"

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    (tmp_path / "m_card.json").unlink()
    with pytest.raises(DigitrecError, match="No space left on device"):
        export_onnx(path, out, test_data=test_data, validation_data=test_data)
    assert not (tmp_path / "m_card.json").exists() and not list(tmp_path.glob(".*part"))
