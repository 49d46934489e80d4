"""`digitrec finetune --numbers` adapts the reader's line model: the lines of the user's numbers found
as the reader finds them, the shipped line reader rebuilt in PyTorch from its ONNX weights, a real
tiny run whose line reader `read --model` then uses, and clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from digitrec.errors import ImageError, ModelError


def _strip(*digits: int) -> np.ndarray:
    """A number written as the page writes it: the digits side by side, black on white."""
    from web_helpers import draw_digit

    return np.hstack([draw_digit(d, size=120, stroke=10) for d in digits])


def test_the_shipped_line_reader_rebuilt_from_its_onnx_weights_gives_its_log_probabilities(tmp_path):
    import torch

    from digitrec.read.line_reader import LineReader, default_line_reader_path
    from digitrec.tune.lines import lines_from_numbers
    from digitrec.tune.weights import line_reader_from_onnx

    cv2.imwrite(str(tmp_path / "7171.png"), _strip(7, 1, 7, 1))
    lines = lines_from_numbers([(tmp_path / "7171.png", "7171")], lambda grey: None)
    module, card = line_reader_from_onnx(default_line_reader_path())
    assert card["kind"] == "line-reader" and module.along[-1].out_channels == len(card["alphabet"]) + 1
    with torch.no_grad():
        got = module(torch.from_numpy(lines.images[0][None, None] / np.float32(255))).log_softmax(-1)[0].numpy()
    expected = LineReader().log_probs_all(lines.images[0])
    assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-3


def test_the_lines_of_numbers_are_found_and_split_where_the_reader_finds_them(tmp_path):
    from digitrec.read.line_reader import HEIGHT
    from digitrec.runtime import Recognizer
    from digitrec.tune.lines import lines_from_numbers

    cv2.imwrite(str(tmp_path / "17.png"), _strip(1, 7))
    two = np.full((300, 360), 255, np.uint8)  # 11 above 71: two lines of one labelled number
    two[:120, :240], two[180:, :240] = _strip(1, 1), _strip(7, 1)
    cv2.imwrite(str(tmp_path / "11-71.png"), two)
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((60, 200), 255, np.uint8))
    numbers = [
        (tmp_path / "17.png", "17"),
        (tmp_path / "11-71.png", "1171"),
        (tmp_path / "11-71.png", "117"),  # a digit short: which line lacks it?
        (tmp_path / "blank.png", "5"),
        (tmp_path / "missing.png", "5"),
    ]
    warnings = []
    lines = lines_from_numbers(numbers, Recognizer().read, warnings.append)
    assert lines.texts == ["17", "11", "71"] and (lines.numbers, lines.used) == (5, 2)
    assert [f.name for f in lines.files] == ["17.png", "11-71.png", "11-71.png"]
    assert all(x.shape[0] == HEIGHT and x.dtype == np.uint8 and x.max() == 255 for x in lines.images)
    why = dict((p.name, w) for p, w in lines.skipped)
    assert lines.skipped[0][1] == "read '11 / 71' in 2 lines (4 digits), labelled '117'"
    assert why["blank.png"] == "no ink found" and "missing.png" in why
    assert warnings and "3 of 5 numbers not used for the line reader" in warnings[0]


@pytest.fixture(scope="module")
def tuned(mnist, tmp_path_factory):
    """`digitrec.finetune --numbers` on 12 generated numbers (MNIST test digits), kept short."""
    import digitrec
    from digitrec.synth import make_number
    from digitrec.tune.line import LineTuneConfig
    from digitrec.tune.run import FinetuneConfig

    images, labels = mnist["test"]
    root = tmp_path_factory.mktemp("numbers")
    rng = np.random.default_rng(0)
    rows = ["path,text"]
    for k in range(12):
        grey, text = make_number(rng, images, labels, int(rng.integers(2, 5)))
        cv2.imwrite(str(root / f"{k}.png"), grey)
        rows.append(f"{k}.png,{text}")
    (root / "numbers.csv").write_text("\n".join(rows) + "\n")
    out = root / "mine.onnx"
    summary = digitrec.finetune(
        [],
        out,
        numbers=root / "numbers.csv",
        config=FinetuneConfig(max_steps=3, min_steps=3, threads=1),
        line_config=LineTuneConfig(replay_lines=32, guard_lines=16, min_steps=4, max_steps=4, evaluations=1, threads=1),
        mnist=mnist["train"],
    )
    return root, out, summary


@pytest.mark.slow  # the fixture: 15 s on a busy 2-core machine
def test_finetune_numbers_writes_a_line_reader_beside_the_model_with_its_card(tuned):
    from digitrec.modelfile import open_model

    root, out, summary = tuned
    line = summary["line_reader"]
    assert line["path"] == str(root / "mine.line.onnx") and line["numbers"] == 12
    assert 0.0 <= line["val_accuracy"] <= 1.0 and 0.0 <= line["generated_accuracy"] <= 1.0
    card = json.loads((root / "mine.line_card.json").read_text())
    assert card["kind"] == "line-reader" and card["name"] == "digitrec-line-reader-finetuned"
    about = card["finetune"]
    assert about["base_file"] == "line_reader.onnx" and len(about["data_sha256"]) == 64
    assert (about["numbers"], about["train_numbers"] + about["val_numbers"]) == (12, 12)
    assert card["val_accuracy"] == about["val_accuracy"] == line["val_accuracy"]
    _, digit_card = open_model(out)
    assert digit_card.data["line_reader"] == "mine.line.onnx"  # the digit model names it


@pytest.mark.slow
def test_reading_with_the_tuned_model_uses_its_line_reader(tuned, tmp_path, capsys):
    from conftest import run_main

    from digitrec.read.line_reader import default_line_reader_path
    from digitrec.runtime import Recognizer

    root, out, _ = tuned
    rec = Recognizer(out)
    assert rec.reader.line_reader.path == root / "mine.line.onnx"
    assert Recognizer().reader.line_reader.path == default_line_reader_path()
    image = root / "0.png"
    code, stdout, err = run_main(["read", "--model", str(out), str(image), "--json"], capsys)
    assert code == 0, err
    # Moved without its line reader: reading says what is missing, not a traceback. (A digit model
    # that kept its base also names its scorer, mine.reader_digits.onnx: moved with it, so that the
    # line reader is what is missing.)
    shutil.copy(out, tmp_path / "mine.onnx")
    if "reader_digits" in rec.card:
        shutil.copy(root / rec.card["reader_digits"], tmp_path)
    code, stdout, err = run_main(["read", "--model", str(tmp_path / "mine.onnx"), str(image)], capsys)
    assert code == 1 and "names the line reader mine.line.onnx, which is not there" in err
    assert "Traceback" not in err
    with pytest.raises(ModelError, match="keep the files together"):
        Recognizer(tmp_path / "mine.onnx").read(image)


@pytest.mark.parametrize(
    "rows, message",
    [
        ("path,text\na.png,12a\n", "line 2: '12a'"),
        ("path,text\n,12\n", "without a path or a text"),
        ("file,text\na.png,1\n", "path and text"),
    ],
)
def test_bad_numbers_csv_rows_are_clear_errors(rows, message, tmp_path, capsys):
    from conftest import run_main

    (tmp_path / "n.csv").write_text(rows)
    code, _, err = run_main(
        ["finetune", "--numbers", str(tmp_path / "n.csv"), "--out", str(tmp_path / "m.onnx")], capsys
    )
    assert code == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "m.line.onnx").exists()


def test_too_few_numbers_leave_the_line_reader_as_it_is_with_a_warning(tmp_path):
    from digitrec.errors import DataError
    from digitrec.read.line_reader import default_line_reader_path
    from digitrec.tune.line import finetune_line_reader
    from digitrec.tune.lines import lines_from_numbers

    for k, digits in enumerate([(1, 7), (7, 1)]):
        cv2.imwrite(str(tmp_path / f"{k}.png"), _strip(*digits))
    lines = lines_from_numbers([(tmp_path / "0.png", "17"), (tmp_path / "1.png", "71")], lambda g: None)
    with pytest.raises(DataError, match="only 2 number"):
        finetune_line_reader(lines, tmp_path / "m.line.onnx", Path(default_line_reader_path()))
    assert not (tmp_path / "m.line.onnx").exists()


def _crossed_numbers(mnist, root: Path, count: int, seed: int) -> list[tuple[Path, str]]:
    """Numbers of MNIST test digits, each with a cross after it, as some registers mark a row:
    the shipped reader reads the cross as a digit ("83+" -> "837"); the labels leave it out."""
    from digitrec.synth import make_number

    images, labels = mnist["test"]
    rng, numbers = np.random.default_rng(seed), []
    for k in range(count):
        grey, text = make_number(rng, images, labels, int(rng.integers(2, 4)))
        h, w = grey.shape
        grey = np.hstack([grey, np.full((h, h // 2), 255, np.uint8)])
        x, pen = w + h // 6, max(2, h // 12)
        cv2.line(grey, (x, int(h * 0.15)), (x + h // 10, int(h * 0.85)), 0, pen)
        cv2.line(grey, (x - h // 8, int(h * 0.5)), (x + h // 5, int(h * 0.45)), 0, pen)
        cv2.imwrite(str(root / f"{seed}-{k}.png"), grey)
        numbers.append((root / f"{seed}-{k}.png", text))
    return numbers


@pytest.mark.slow  # 40-70 s on a busy 2-core machine
def test_the_line_reader_learns_a_forms_habit_the_digit_path_cannot_cut(real_data, mnist, tmp_path, capsys):
    from conftest import run_main

    from digitrec.runtime import Recognizer

    tune = _crossed_numbers(mnist, tmp_path, 30, 0)
    test = _crossed_numbers(mnist, tmp_path, 20, 1)
    (tmp_path / "numbers.csv").write_text("path,text\n" + "".join(f"{p.name},{t}\n" for p, t in tune))

    def right(model) -> int:
        rec, n = Recognizer(model, threads=1), 0
        for path, text in test:
            try:
                n += "".join(rec.read(path).line_texts) == text
            except ImageError:  # nothing read as digits
                pass
        return n

    assert right(None) == 0  # the cross is read as a digit every time
    out = tmp_path / "mine.onnx"
    args = ["finetune", "--numbers", str(tmp_path / "numbers.csv"), "--out", str(out), "--threads", "1", "--json"]
    code, stdout, err = run_main(args, capsys)
    assert code == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    # The reader finds one digit too many in every number: no digit can be cut, the digit model stays.
    assert summary["numbers"]["digits"] < 10 and summary["images"] == 0 and "the digit model is the base's" in err
    # ...and reads numbers with the base's digit scorer, copied beside it (the shipped card names one).
    tuned_reader = Recognizer(out, threads=1).reader
    assert tuned_reader.recognizer.path == tmp_path / "mine.reader_digits.onnx" == Path(summary["reader_digits"])
    assert tuned_reader.line_reader.path == tmp_path / "mine.line.onnx"
    line = summary["line_reader"]
    assert line["numbers"] == 30 and line["val_accuracy_before"] == 0.0 and line["val_accuracy"] >= 0.5
    assert line["generated_accuracy"] >= line["generated_accuracy_before"] - 0.03  # nothing forgotten
    assert right(out) >= 6  # of 20 new numbers (10 on 2026-12-06); 0 before


@pytest.mark.mnist
def test_replay_numbers_are_drawn_once_then_read_from_the_cache(real_data, tmp_path, monkeypatch):
    """Drawing the replay numbers was most of a short `finetune --numbers`: the same base and seed
    now read them from the cache; another seed draws its own."""
    from digitrec import paths
    from digitrec.train import line_reader
    from digitrec.tune import line

    mnist_files = paths.mnist_cache_dir()
    monkeypatch.setattr(paths, "mnist_cache_dir", lambda: mnist_files)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    recipe = line_reader.LineReaderConfig()
    images, texts = line._generated(recipe, 0, 12, False)
    assert len(texts) >= 8 and len(list((tmp_path / "digitrec" / "line-replay").glob("*.npz"))) == 1

    drawn = []
    monkeypatch.setattr(line_reader, "generate_lines", lambda *args: drawn.append(args) or ([], []))
    again_images, again_texts = line._generated(recipe, 0, 12, False)
    assert not drawn and again_texts == texts
    assert all(np.array_equal(a, b) for a, b in zip(again_images, images))
    assert line._generated(recipe, 1, 12, False) == ([], []) and len(drawn) == 1
