"""`digitrec predict` in a real process: files, folders, stdin; table, JSON, CSV and debug strips;
one bad file among good ones gets its own error and a non-zero exit, the others their answers."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from predict_helpers import good_model_path, write_linear_onnx

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "digitrec", "predict", *args], input=stdin, capture_output=True, timeout=120
    )
    done.stdout, done.stderr = done.stdout.decode(), done.stderr.decode()
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    """A tiny linear ONNX model: the CLI's plumbing does not need a good one."""
    folder = tmp_path_factory.mktemp("model")
    weight = np.random.default_rng(0).normal(0, 1, (784, 10)).astype(np.float32)
    return str(write_linear_onnx(folder / "linear.onnx", weight, np.zeros(10, np.float32), {"name": "linear"}))


@pytest.fixture
def images(tmp_path) -> dict[str, Path]:
    page = np.full((120, 100), 235, np.uint8)
    cv2.line(page, (50, 20), (45, 100), 20, 7)
    folder = tmp_path / "in"
    (folder / "deeper").mkdir(parents=True)
    paths = {"good": folder / "one.png", "upper": folder / "deeper" / "scan.Jpg", "bad": folder / "notes.txt"}
    cv2.imwrite(str(paths["good"]), page)
    paths["upper"].write_bytes(cv2.imencode(".jpg", page)[1].tobytes())  # note the capital J
    paths["bad"].write_text("not an image")
    (folder / "README").write_text("a folder also holds other files")
    return paths


def test_one_bad_file_among_good_ones(model, images, tmp_path):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((80, 80), 250, np.uint8))
    done = run(
        str(images["good"]),
        str(images["bad"]),
        str(tmp_path / "missing.png"),
        str(blank),
        str(images["upper"]),
        "--model",
        model,
        "--json",
        "--top",
        "2",
        "--min-confidence",
        "0",  # always answer: this random model is unsure of everything
    )
    assert done.returncode == 1
    answers = json.loads(done.stdout)
    assert [a["path"] for a in answers] == [
        str(images["good"]),
        str(images["bad"]),
        str(tmp_path / "missing.png"),
        str(blank),
        str(images["upper"]),
    ]
    for answer in answers:
        assert set(answer) == {"path", "digit", "confidence", "top", "uncertain", "reason", "error"}
    good, bad, missing, empty, upper = answers
    assert good["error"] is None and isinstance(good["digit"], int) and 0 < good["confidence"] <= 1
    assert len(good["top"]) == 2 and good["top"][0][0] == good["digit"] and good["top"][0][1] == good["confidence"]
    assert upper["error"] is None and upper["digit"] == good["digit"]
    assert bad["digit"] is None and bad["top"] == [] and "not an image" in bad["error"]
    assert "no such file" in missing["error"]
    assert "no ink found" in empty["error"] and empty["reason"] == "no ink"
    assert good["reason"] is bad["reason"] is missing["reason"] is None


def test_folders_are_searched_recursively_and_case_insensitively(model, images):
    done = run(str(images["good"].parent), "--model", model, "--json")
    assert done.returncode == 0, done.stderr
    assert sorted(a["path"] for a in json.loads(done.stdout)) == sorted([str(images["good"]), str(images["upper"])])
    empty = images["good"].parent / "empty"
    empty.mkdir()
    done = run(str(empty), "--model", model, "--json")
    assert done.returncode == 1 and "no images" in json.loads(done.stdout)[0]["error"]


def test_stdin_table_csv_and_debug(model, images, tmp_path):
    done = run("-", "--model", model, "--min-confidence", "0", stdin=images["good"].read_bytes())
    assert done.returncode == 0
    row = next(line for line in done.stdout.splitlines() if line.strip().startswith("-"))
    assert re.search(r"\b\d\b.*%", row)

    table_csv, debug, blank = tmp_path / "out.csv", tmp_path / "debug", tmp_path / "blank.png"
    light = 235 - np.mgrid[0:90, 0:90][1] / 4 + np.random.default_rng(0).normal(0, 2, (90, 90))  # bare paper
    cv2.imwrite(str(blank), light.clip(0, 255).astype(np.uint8))
    done = run(
        str(images["good"]),
        str(images["bad"]),
        str(blank),
        "--model",
        model,
        "--csv",
        str(table_csv),
        "--debug",
        str(debug),
        "--min-confidence",
        "0",
    )
    assert done.returncode == 1
    assert "one.png" in done.stdout and "error: not an image" in done.stdout
    rows = list(csv.DictReader(table_csv.open()))
    assert [r["path"] for r in rows] == [str(images["good"]), str(images["bad"]), str(blank)]
    assert rows[0]["digit"].isdigit() and rows[1]["error"].startswith("not an image")
    assert rows[2]["error"].startswith("no ink found") and rows[2]["reason"] == "no ink"
    assert rows[0]["reason"] == rows[1]["reason"] == ""
    # A strip for each image that was decoded, also the one without ink (to see why); none for notes.txt.
    strips = sorted(p.name for p in debug.iterdir())
    assert strips == ["blank.png", "one.png"]
    assert cv2.imread(str(debug / "one.png")).shape[0] > 150


@pytest.mark.parametrize(
    "command, inputs, written",
    [
        ("predict", ["three.jpg", "three.png"], ["three-2.png", "three-3.png"]),
        ("read", ["three.jpg", "three.png", "three.read.png"], ["three-2.read.png", "three-3.read.png", "three.read.read.png"]),
    ],
)  # fmt: skip
def test_debug_into_the_input_folder_never_writes_over_an_input(command, inputs, written, tmp_path):
    """`digitrec predict scans/ --debug scans/` (or `--debug .` beside scan.png): the debug pictures
    are named after the inputs, and used to replace them: the user's scans were lost, and three.jpg's
    picture (three.png, three.read.png) replaced an input before it was read."""
    import shutil

    folder = tmp_path / "my scans"
    folder.mkdir()
    examples = {"three.jpg": "grid_6.jpg", "three.png": "scan_3.png", "three.read.png": "drawing_4.png"}
    for name in inputs:
        shutil.copy(EXAMPLES / examples[name], folder / name)
    before = {name: (folder / name).read_bytes() for name in inputs}
    for _ in range(2):  # and again: the first run's pictures are no inputs, and are replaced
        done = subprocess.run(
            [sys.executable, "-m", "digitrec", command, *[str(folder / name) for name in inputs],
             "--debug", str(folder), "--json"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        answers = [str(a["digit" if command == "predict" else "text"]) for a in json.loads(done.stdout)]
        assert answers == ["6", "3", "4"][: len(inputs)]
        assert {name: (folder / name).read_bytes() for name in inputs} == before
    assert sorted(p.name for p in folder.iterdir() if p.name not in before) == written


@pytest.mark.parametrize("command, suffix", [("predict", ".png"), ("read", ".read.png")])
def test_debug_never_writes_over_a_file_it_did_not_write(command, suffix, tmp_path, capsys):
    """`digitrec predict scans/three.jpg --debug scans/` beside the user's own three.png, which is no
    input: it was replaced by the debug picture. That name is now passed over (three-2.png), and a
    second run replaces only the picture the first one wrote."""
    import shutil

    from conftest import run_main

    from digitrec.preprocess.debug import is_debug_png

    folder = tmp_path / "scans"
    folder.mkdir()
    shutil.copy(EXAMPLES / "grid_6.jpg", folder / "three.jpg")
    users = folder / f"three{suffix}"
    shutil.copy(EXAMPLES / "scan_3.png", users)
    before = users.read_bytes()
    for _ in range(2):
        code, out, err = run_main([command, str(folder / "three.jpg"), "--debug", str(folder), "--json"], capsys)
        assert code == 0 and json.loads(out)[0]["error"] is None, err
        assert users.read_bytes() == before
        assert sorted(p.name for p in folder.iterdir()) == sorted(["three.jpg", users.name, f"three-2{suffix}"])
    written = folder / f"three-2{suffix}"
    assert is_debug_png(written) and not is_debug_png(users) and cv2.imread(str(written)).shape[0] > 100


def test_debug_names_pass_over_folders_and_fifos_without_opening_them(tmp_path):
    import os

    from digitrec.cli.output import DebugFiles

    os.mkfifo(tmp_path / "a.png")  # opened to look inside, it would wait for a writer forever
    (tmp_path / "a-2.png").mkdir()
    assert DebugFiles(tmp_path, [], ".png").path_for("photos/a.jpg") == tmp_path / "a-3.png"


def test_a_folder_of_photos_digitrec_cannot_read_says_what_it_reads(tmp_path, capsys):
    """An iPhone's photos are HEIC: a folder of them held "no images", which the user could not
    believe. Each command that takes folders names the formats it looks for, the same way."""
    from conftest import run_main

    photos = tmp_path / "iphone"
    photos.mkdir()
    (photos / "IMG_0001.HEIC").write_bytes(b"\0\0\0\x18ftypheic" + b"\0" * 100)
    formats = "PNG, JPEG, GIF, BMP, TIFF, WebP and PBM/PGM/PPM"
    for command in ("predict", "read"):
        code, out, _ = run_main([command, str(photos), "--json"], capsys)
        assert code == 1 and json.loads(out)[0]["error"] == f"folder holds no images digitrec reads ({formats} files)"
    code, _, err = run_main(["batch", str(photos), "--out", str(tmp_path / "out")], capsys)
    assert code == 1 and err == f"Error: {photos}: no images found (digitrec reads {formats} files)\n"


@pytest.mark.parametrize("command", ["predict", "read"])
def test_csv_is_no_flag_and_never_writes_over_an_image(command, tmp_path):
    """`digitrec predict --csv a.png b.png`, as if --csv were a flag like --json: a.png is taken as
    the CSV file's name. It used to be replaced by the table; now it is a usage error."""
    import shutil

    first, second = tmp_path / "a.png", tmp_path / "b.png"
    shutil.copy(EXAMPLES / "scan_3.png", first)
    shutil.copy(EXAMPLES / "drawing_4.png", second)
    before = first.read_bytes()
    done = subprocess.run(
        [sys.executable, "-m", "digitrec", command, "--csv", str(first), str(second)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and first.read_bytes() == before
    assert f"Invalid value for '--csv': {first} is an image file's name; name the CSV file to write" in done.stderr


@pytest.mark.parametrize("command", ["predict", "read"])
def test_a_dash_with_nothing_piped_in_is_an_error_not_a_wait(command):
    """`digitrec predict -` typed at a terminal: reading stdin would wait for the keyboard, with
    nothing on the screen. The other files are still answered."""
    import os
    import pty

    terminal, other_end = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "digitrec", command, "-", str(EXAMPLES / "grid_6.jpg"), "--json"],
            stdin=other_end,
            capture_output=True,
            text=True,
            timeout=30,  # before: waited for the keyboard until killed
        )
    finally:
        os.close(terminal)
        os.close(other_end)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    dash, grid = json.loads(done.stdout)
    assert dash["error"] == "standard input is a terminal, not an image: pipe one in (cat digit.png | digitrec ... -)"
    assert grid["error"] is None and str(grid["digit" if command == "predict" else "text"]) == "6"


@pytest.mark.parametrize("command", ["predict", "read"])
def test_a_dash_with_standard_input_closed_is_an_error_not_a_traceback(command):
    """`digitrec predict - a.png <&-` (fd 0 closed: Python's sys.stdin is None) was an AttributeError."""
    import os

    done = subprocess.run(
        [sys.executable, "-m", "digitrec", command, "-", str(EXAMPLES / "grid_6.jpg"), "--json"],
        preexec_fn=lambda: os.close(0),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    dash, grid = json.loads(done.stdout)
    assert dash["error"] == "standard input is closed: pipe an image in (cat digit.png | digitrec ... -)"
    assert grid["error"] is None and str(grid["digit" if command == "predict" else "text"]) == "6"


def test_min_confidence_answers_question_marks(model, images, tmp_path):
    done = run(str(images["good"]), "--model", model, "--min-confidence", "1", "--json")
    assert done.returncode == 0
    answer = json.loads(done.stdout)[0]
    assert answer["digit"] is None and answer["uncertain"] and answer["error"] is None
    assert answer["reason"] == "low confidence"
    table = run(str(images["good"]), "--model", model, "--min-confidence", "1")
    assert "?" in table.stdout and "(low confidence)" in table.stdout


def test_doubt_is_on_by_default(model, images, tmp_path):
    """No option: the documented default (0.93) flags this model's 88.9% answer, in JSON, CSV and
    the table; --min-confidence 0 answers it."""
    table_csv = tmp_path / "out.csv"
    done = run(str(images["good"]), "--model", model, "--json", "--csv", str(table_csv))
    assert done.returncode == 0  # a flagged answer is an answer, not an error
    answer = json.loads(done.stdout)[0]
    assert abs(answer["confidence"] - 0.889) < 1e-3 and answer["top"][0][0] == 1
    assert answer["digit"] is None and answer["uncertain"] is True and answer["reason"] == "low confidence"
    row = next(csv.DictReader(table_csv.open()))
    assert row["digit"] == "" and row["uncertain"] == "True" and row["reason"] == "low confidence"
    table = run(str(images["good"]), "--model", model)
    assert re.search(r"\?.*88\.9% \(low confidence\)", table.stdout)
    answered = json.loads(run(str(images["good"]), "--model", model, "--json", "--min-confidence", "0").stdout)[0]
    assert answered["digit"] == 1 and answered["uncertain"] is False and answered["reason"] is None


def test_bad_options_and_models(images, tmp_path):
    done = run(str(images["good"]), "--model", str(tmp_path / "nope.onnx"))
    assert done.returncode == 1 and "Error: model file not found" in done.stderr
    assert run(str(images["good"]), "--top", "0").returncode == 2
    assert run().returncode == 2  # no paths: usage


def test_a_training_run_as_model_says_how_to_export_it(images, tmp_path, capsys):
    """`digitrec train` leaves runs/NAME/checkpoint.pt; handed to predict, read or the library, it is
    one line that names `digitrec export`, not onnxruntime's "Protobuf parsing failed"."""
    import zipfile

    from conftest import run_main

    from digitrec import Recognizer
    from digitrec.errors import ModelError

    run_dir = tmp_path / "runs" / "fast"
    run_dir.mkdir(parents=True)
    checkpoint = run_dir / "checkpoint.pt"
    with zipfile.ZipFile(checkpoint, "w") as archive:  # torch.save writes a zip archive
        archive.writestr("checkpoint/data.pkl", b"weights")
    export = f"export it first: digitrec export {run_dir} --out model.onnx"
    done = run(str(images["good"]), "--model", str(checkpoint))
    assert done.returncode == 1, done.stderr
    kind = "a PyTorch training checkpoint, not an ONNX or Keras model"
    assert done.stderr == f"Error: {checkpoint} is {kind}; {export}\n"
    code, _, err = run_main(["read", str(images["good"]), "--model", str(checkpoint)], capsys)
    assert code == 1 and export in err and err.count("\n") == 1, err
    with pytest.raises(ModelError, match=f"{run_dir} is a folder, not a model file \\(.onnx or .keras\\); {export}"):
        Recognizer(run_dir)
    with pytest.raises(ModelError, match=r"is a folder, not a model file \(.onnx or .keras\)$"):
        Recognizer(tmp_path / "runs")  # no checkpoint in it: nothing to export


def test_the_examples_are_read_correctly():
    """Every sample image in examples/ ends its name with the digit it shows."""
    done = run(str(EXAMPLES), "--model", str(good_model_path()), "--json")
    assert done.returncode == 0, done.stdout
    answers = json.loads(done.stdout)
    assert len(answers) >= 8
    for answer in answers:
        expected = int(Path(answer["path"]).stem.rsplit("_", 1)[1])
        assert answer["digit"] == expected, answer
