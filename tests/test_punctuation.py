"""`keep_punctuation`: decimal points, separators and minus signs kept in a reading
(`digitrec.read.punctuation`), never changing the digits the reader chose."""

from __future__ import annotations

import numpy as np
import pytest

from digitrec.read.line_reader import ALPHABET
from digitrec.read.punctuation import punctuate

BLANK_CH = "_"


def _columns(path: str, p: float = 0.9) -> np.ndarray:
    """A line reader's (T, 14) log-probabilities that are sure of `path`, one character per
    column ('_' the blank)."""
    log_probs = np.full((len(path), len(ALPHABET) + 1), np.log((1 - p) / len(ALPHABET)))
    for t, ch in enumerate(path):
        log_probs[t, len(ALPHABET) if ch == BLANK_CH else ALPHABET.index(ch)] = np.log(p)
    return log_probs


@pytest.mark.parametrize(
    "digits, path, expected",
    [
        ("750", "_7_._5_0_", "7.50"),
        ("125000", "1_,_2_5_0_._0_0", "1,250.00"),
        ("5", "-_5_", "-5"),
        ("11", "_1_._1_", "1.1"),  # a mark between two equal digits
        ("11", "_1__1_", "11"),
        ("750", "_7_.5_0_.", "7.50"),  # a mark after the number is not part of it
        ("75", "_7_9_._5", "7.5"),  # the reader's digits stay: the line reader's extra 9 is not taken
        ("750", "_7_5_", "750"),  # the line reader misses a digit: no marks, the digits stay
        ("123", "12", "123"),  # too few columns for the digits
        ("", "_._", ""),
    ],
)
def test_punctuate_places_the_line_readers_marks_between_the_readers_digits(digits, path, expected):
    assert punctuate(digits, _columns(path), ALPHABET) == expected


def test_a_mark_the_line_reader_doubts_is_left_out():
    log_probs = _columns("_7_._5_0_")
    # At the point's column: blank 0.6, point 0.3.
    log_probs[3] = np.log(np.full(len(ALPHABET) + 1, 0.1 / (len(ALPHABET) - 1)))
    log_probs[3, len(ALPHABET)], log_probs[3, ALPHABET.index(".")] = np.log(0.6), np.log(0.3)
    assert punctuate("750", log_probs, ALPHABET) == "750"


def test_a_digits_only_line_reader_keeps_no_marks():
    assert punctuate("750", _columns("_7_5_0_")[:, list(range(10)) + [13]], "0123456789") == "750"


def test_a_reading_with_marks_shows_them_in_text_lines_and_json():
    from digitrec.read import ReadDigit, Reading

    digits = [ReadDigit(d, 0.9, (10 * k, 0, 8, 10), np.zeros((28, 28), np.uint8)) for k, d in enumerate([7, 5, 0])]
    reading = Reading([digits])
    assert reading.text == "750"
    reading.punctuated = ["7.50"]
    assert reading.text == "7.50" and reading.to_dict()["lines"] == ["7.50"]
    assert [d["digit"] for d in reading.to_dict()["digits"]] == [7, 5, 0]


def _digits_only_line_reader(path):
    """A tiny untrained line reader of the first kind (digits and blank, no alphabet on its card)."""
    import torch

    from digitrec.models import LineCNN
    from digitrec.read.line_reader import HEIGHT
    from digitrec.train.line_reader import _card, export

    torch.manual_seed(0)
    model = LineCNN(classes=11).eval()
    card = _card(model, 0.0, [], "test", alphabet="0123456789")
    del card["alphabet"]  # as the readers trained before the marks were
    export(model, path, card, [np.zeros((HEIGHT, 64), np.uint8)])


def test_keeping_punctuation_needs_a_line_reader_with_marks(tmp_path):
    from digitrec.errors import ModelError
    from digitrec.read import NumberReader
    from digitrec.read.line_reader import LineReader
    from digitrec.runtime import Recognizer

    _digits_only_line_reader(tmp_path / "old.onnx")
    rec = Recognizer()
    rec.reader = NumberReader(rec, line_reader=LineReader(tmp_path / "old.onnx"))
    assert rec.reader.line_reader.alphabet == "0123456789"
    image = np.full((80, 200), 230, np.uint8)
    import cv2

    cv2.line(image, (100, 15), (100, 65), 30, 5)  # a 1
    assert rec.read(image).text == "1"  # reading digits needs no marks
    # ... but it cannot place marks: keeping them is refused with a message, not a wrong answer,
    # while the shipped line reader writes them.
    with pytest.raises(ModelError, match="reads digits only"):
        rec.read(image, keep_punctuation=True)
    assert Recognizer().read(image, keep_punctuation=True).text == "1"
