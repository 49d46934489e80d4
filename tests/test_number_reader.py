"""`NumberReader` (digitrec.read) composes the reader's parts: the digit model, the segmentation
verifier, the line reader, the settings (`ReaderParams`) and a work budget; `Recognizer.read` is the
one it makes on first use."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from digitrec.errors import ImageError, ModelError, TooMuchToRead
from digitrec.read import DEFAULT_PARAMS, UNLIMITED, NumberReader, PatternError, ReadBudget
from digitrec.read.line_reader import default_line_reader_path, line_reader_path_for
from digitrec.read.verifier import default_verifier_path
from digitrec.runtime import Recognizer


@pytest.fixture
def number(tmp_path) -> Path:
    """A PNG of "1010" written with a pen: strokes and rings, dark on light paper."""
    image = np.full((100, 260), 235, np.uint8)
    for x in (40, 160):
        cv2.line(image, (x, 20), (x, 80), 25, 6)
    for x in (100, 215):
        cv2.ellipse(image, (x, 50), (18, 30), 0, 0, 360, 25, 6)
    path = tmp_path / "1010.png"
    cv2.imwrite(str(path), image)
    return path


def test_recognizer_read_is_its_number_reader(number):
    rec = Recognizer(threads=1)
    reading = rec.read(number)
    assert reading.text == "1010" and 0.9 < reading.confidence <= 1.0
    assert rec.reader is rec.reader  # made once
    own = NumberReader(rec).read(number)
    assert own.text == reading.text and own.confidence == reading.confidence
    assert [d.box for d in own.digits] == [d.box for d in reading.digits]


def test_its_settings_and_its_budget_are_its_own(number):
    rec = Recognizer(threads=1)
    # The confidence map is a setting: a map of only a bias of 8 says sigmoid(8) for any line.
    sure = NumberReader(rec, params=replace(DEFAULT_PARAMS, confidence_weights=(8.0,) + (0.0,) * 8))
    assert sure.read(number).confidence == pytest.approx(1 / (1 + math.exp(-8.0)), abs=1e-12)
    # So is how surely a line must read to be kept: at 1.0 none is.
    strict = NumberReader(rec, params=replace(DEFAULT_PARAMS, min_line_confidence=1.0))
    with pytest.raises(ImageError, match="^no digits found$"):
        strict.read(number)
    # The reader's budget holds unless a read is given its own.
    small = NumberReader(rec, budget=ReadBudget(max_candidates=3))
    with pytest.raises(TooMuchToRead, match=r"^too much to read: \d+ candidate digits \(limit 3\)$"):
        small.read(number)
    assert small.read(number, budget=UNLIMITED).text == "1010"


def test_its_networks_are_loaded_or_given(number):
    rec = Recognizer(threads=1)
    loaded = rec.reader
    assert loaded.line_reader.path == line_reader_path_for(rec.path, rec.card) == default_line_reader_path()
    assert loaded.verifier.path == default_verifier_path()
    given = NumberReader(rec, verifier=loaded.verifier, line_reader=loaded.line_reader)
    rec.reader = given
    assert rec.reader is given and given.verifier is loaded.verifier
    assert rec.read(number, digits=4, pattern=r"10\d\d").text == "1010"
    assert len(rec.read(number, digits=3).text) == 3  # the decoder keeps to it, even against the ink
    with pytest.raises(PatternError, match="is not a digit"):
        rec.read(number, pattern="[a-z]+")


def test_the_shipped_reader_scores_its_cuts_with_the_model_its_settings_were_chosen_with(number, tmp_path):
    # predict's model and the reader's digit scorer are two files: the card names the scorer.
    rec = Recognizer(threads=1, min_confidence=0.5, reject=False)
    scorer = rec.reader.recognizer
    assert rec.path.name == "model.onnx" and scorer.path == rec.path.with_name("reader_digits.onnx")
    assert rec.card["recipe"] == "cnn_mix" and scorer.card["recipe"] == "cnn"
    assert (scorer.threads, scorer.min_confidence, scorer.reject) == (1, 0.5, False)  # the same options
    assert rec.reader.line_reader.path == default_line_reader_path()  # the card names none: the shipped one
    # Reading is the scorer's: the same digits as a reader made on that model directly...
    reading = rec.read(number)
    direct = NumberReader(Recognizer(scorer.path, threads=1, min_confidence=0.5, reject=False)).read(number)
    assert reading.text == direct.text and [d.box for d in reading.digits] == [d.box for d in direct.digits]
    # ...and predict's model has its word on them in the confidence (`Evidence.second_log_prob`).
    said = rec.predict_probabilities(np.stack([d.image28 for d in reading.digits]), calibrated=False)
    lowest = min(math.log(said[k, d.digit]) for k, d in enumerate(reading.digits))
    assert reading.lines[0][0].evidence.second_log_prob == pytest.approx(lowest, abs=1e-5)
    scorer_said = direct.lines[0][0].evidence
    assert scorer_said.second_log_prob == pytest.approx(scorer_said.min_digit_log_prob, abs=1e-5)  # itself
    # A model whose card names none reads with itself; one that names a missing file says so.
    assert NumberReader(scorer).recognizer is scorer
    moved = tmp_path / "model.onnx"
    shutil.copy(rec.path, moved)
    with pytest.raises(ModelError, match=r"reader's digit model reader_digits.onnx, which is not there"):
        Recognizer(moved).read(number)


def test_the_reader_imports_no_torch_and_its_pattern_module_alone_is_light():
    code = "import sys, digitrec.read, digitrec.read.reader; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
    # The CLI and the server check --pattern before loading anything: that needs no OpenCV, no onnxruntime.
    code = "import sys, digitrec.read.pattern; assert not {'cv2', 'onnxruntime'} & set(sys.modules), 'heavy import'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_one_line_number_wider_than_a_digit_is_not_also_read_as_one_digit(number, mnist, monkeypatch):
    # Asking whether the page is one digit costs predict's views of the whole page (22 of 139 ms a
    # photo): a line wider than any one digit is not asked; a lone digit still is (and is read).
    rec = Recognizer(threads=1)
    scorer = rec.reader.recognizer  # the digit model the reader reads with (`digit_scorer`)
    asked = []
    views = scorer.views
    monkeypatch.setattr(scorer, "views", lambda grey, **kw: asked.append(grey.shape) or views(grey, **kw))
    assert rec.read(number).text == "1010" and asked == []
    images, labels = mnist["test"]
    assert rec.read(images[5449]).text == str(labels[5449]) and len(asked) == 1


def _printed(text: str) -> np.ndarray:
    """TEXT in OpenCV's Hershey simplex (a font the rejector never trained on), dark on light paper."""
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 2.0, 4)
    page = np.full((h + base + 60, w + 60), 235, np.uint8)
    cv2.putText(page, text, (30, h + 30), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 30, 4, cv2.LINE_AA)
    return page


@pytest.mark.parametrize("text", ["HELLO", "ABX", "TAKE"])
def test_a_line_of_letters_is_not_a_number(text, number):
    # The cuts read letters as digits ("TAKE" as 74185); the rejector calls most of them "not a
    # digit", so the line is dropped, and the page is not read as one digit either.
    assert Recognizer(threads=1, reject=False).read(_printed(text)).text.isdigit()
    with pytest.raises(ImageError, match="^no digits found$"):
        Recognizer(threads=1).read(_printed(text))
    assert Recognizer(threads=1).read(number).text == "1010"  # 1s are never asked: a lone stroke


def test_a_process_that_predicts_and_reads_loads_the_rejector_once(monkeypatch):
    # The reader scores its cuts with another digit model, but the rejector is no digit model: it
    # asks predict's (a second one cost 2.7 MB and its load in every server worker).
    from digitrec.reject import Rejector

    loaded = []
    init = Rejector.__init__
    monkeypatch.setattr(Rejector, "__init__", lambda self, *a, **k: loaded.append(1) or init(self, *a, **k))
    rec = Recognizer(threads=1)
    page = _printed("TAKE")
    # predict asked its rejector: a word is not a digit (its four outputs said "several digits";
    # the reason head, docs/trust.md, tells letters from numbers)
    assert rec.predict(page).reason == "not a digit"
    with pytest.raises(ImageError, match="^no digits found$"):  # the rejector dropped the line of letters
        rec.read(page)
    assert rec.reader.recognizer is not rec and len(loaded) == 1
    off = Recognizer(threads=1, reject=False)
    assert off.read(page).text.isdigit() and len(loaded) == 1  # without it, never loaded


def test_a_card_naming_its_own_file_as_the_scorer_reads_with_that_one_model(number, tmp_path):
    # A hostile or careless card (`"reader_digits": "model.onnx"` in model.onnx): no second copy of
    # the same network, no loop; a relative name with a "." in it is the same file too.
    from digitrec.modelfile.write import rewrite_card

    for name in ("mine.onnx", "./mine.onnx"):
        mine = tmp_path / "mine.onnx"
        shutil.copy(Recognizer(threads=1).path, mine)
        card = {k: v for k, v in Recognizer(mine).card.items() if k != "format"}
        rewrite_card(mine, {**card, "reader_digits": name}, card_path=False)
        rec = Recognizer(mine, threads=1)
        assert rec.reader.recognizer is rec and rec.read(number).text == "1010"


def test_the_reader_names_every_network_a_reading_depends_on():
    """Caches and resumed batches of readings are keyed by these files' bytes."""
    from digitrec.runtime import Recognizer

    names = [p.name for p in Recognizer().reader.network_files()]
    assert names == ["model.onnx", "reader_digits.onnx", "verifier.onnx", "line_reader.onnx", "rejector.onnx"]
    assert "rejector.onnx" not in [p.name for p in Recognizer(reject=False).reader.network_files()]
