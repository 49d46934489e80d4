"""`Recognizer.predict_paths`: the library's way through many files. A file's answer depends on the
file and the decode size only, never on how many files came with it; arrays of MNIST digits are batches."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import run_main
from predict_helpers import good_model_path, paper_photo

from digitrec.bulk import BULK_SIDE, MIN_FILES
from digitrec.errors import DigitrecError, ImageError
from digitrec.runtime import Prediction, Recognizer


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """17 big phone-like photos (over 640 px: the decode size matters) of synthetic digits."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(7)
    paths = []
    for i in range(MIN_FILES + 1):
        digit = np.zeros((28, 28), np.uint8)
        cv2.putText(digit, str(i % 10), (5, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 255, 2)
        path = folder / f"p{i:02d}.jpg"
        path.write_bytes(paper_photo(digit, rng, size=(900, 1200)))  # JPEG bytes
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def recognizer():
    return Recognizer(good_model_path())


@pytest.mark.parametrize("side", [None, BULK_SIDE])
def test_a_file_gets_the_same_answer_alone_and_among_16_others(photos, recognizer, side):
    kwargs = {} if side is None else {"side": side}
    alone = list(recognizer.predict_paths(photos[:1], **kwargs))[0]
    among = list(recognizer.predict_paths(photos, workers=2, **kwargs))  # worker processes, batched
    assert len(among) == len(photos) and all(isinstance(a, Prediction) for a in among)
    np.testing.assert_array_equal(among[0].probabilities, alone.probabilities)
    if side is None:  # the default decode is predict()'s own
        np.testing.assert_array_equal(alone.probabilities, recognizer.predict(photos[0]).probabilities)


def test_the_cli_answers_a_file_the_same_alone_and_in_a_crowd(photos, capsys):
    code, out, _ = run_main(["predict", photos[0], "--json"], capsys)
    assert code == 0
    alone = json.loads(out)[0]
    code, out, _ = run_main(["predict", *photos, "--json"], capsys)
    assert code == 0
    among = json.loads(out)[0]
    assert among["path"] == alone["path"] and among["top"] == alone["top"]


def test_predict_paths_keeps_order_errors_and_debug_stages(photos, recognizer, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    answers = list(recognizer.predict_paths([photos[1], str(bad), ImageError("given up"), photos[2]], debug=True))
    assert isinstance(answers[1], DigitrecError) and "not an image" in str(answers[1])
    assert str(answers[2]) == "given up"
    assert answers[0].probabilities.shape == (10,) and "input" in answers[0].stages
    np.testing.assert_array_equal(answers[3].probabilities, recognizer.predict(photos[2]).probabilities)


def test_predict_takes_a_batch_of_mnist_digits(recognizer):
    digits = np.zeros((3, 28, 28), np.uint8)
    for i, digit in enumerate(digits):
        cv2.putText(digit, str(i + 1), (5, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 255, 2)
    answers = recognizer.predict(digits)
    assert isinstance(answers, list) and len(answers) == 3
    for digit, answer in zip(digits, answers):
        np.testing.assert_array_equal(answer.probabilities, recognizer.predict(digit).probabilities)
    rgb = np.dstack([np.pad(digits[0], 40)] * 3)  # (108, 108, 3): one colour image, not a batch
    assert isinstance(recognizer.predict(rgb), Prediction)


def test_predict_on_a_folder_answers_what_it_cannot_list_and_broken_links(locked_archive, capsys):
    """`predict FOLDER`: a subfolder it may not list and a broken link each get an error row (they
    were left out, and the exit status said everything had been answered)."""
    folder, locked, broken = locked_archive
    code, out, _ = run_main(["predict", str(folder), "--json"], capsys)
    rows = {r["path"]: r for r in json.loads(out)}
    assert code == 1
    assert sorted(rows) == sorted([str(folder / "3.png"), str(broken), str(locked), str(folder / "ok" / "7.jpg")])
    assert rows[str(locked)]["error"] == "cannot list this folder (Permission denied): its images were not answered"
    assert rows[str(broken)]["error"] == "no such file"
    assert (rows[str(folder / "3.png")]["digit"], rows[str(folder / "ok" / "7.jpg")]["digit"]) == (3, 7)
