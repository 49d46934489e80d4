"""The rejector ("is this one digit?"), its training data, and boxes around digits.

Every image is a real file made here: a letter of a font the rejector never trained on, a
scribble, a blank noisy page, two digits side by side, a digit in a printed box, real MNIST test digits.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_main

from digitrec import doubt
from digitrec.errors import DigitrecError
from digitrec.reject import CLASSES, Rejector, default_rejector_path
from digitrec.train import negatives


def _page(ink: np.ndarray, seed: int = 0) -> np.ndarray:
    """float ink map (1 = ink) -> a scan of it: dark ink on light, slightly grainy paper."""
    rng = np.random.default_rng(seed)
    return np.clip(235 - ink * 190 + rng.normal(0, 3, ink.shape), 0, 255).astype(np.uint8)


def _write(path, grey: np.ndarray) -> str:
    assert cv2.imwrite(str(path), grey)
    return str(path)


def _letter(char: str) -> np.ndarray:
    """`char` in Hershey script complex, a handwriting-like font held out of the rejector's training."""
    ink = np.zeros((160, 160), np.uint8)
    cv2.putText(ink, char, (30, 120), cv2.FONT_HERSHEY_SCRIPT_COMPLEX, 3.0, 255, 5, cv2.LINE_AA)
    return _page(ink / 255.0)


def _scribble() -> np.ndarray:
    ink = np.zeros((160, 160), np.float32)
    t = np.linspace(0, 6 * np.pi, 400)
    spiral = np.stack([80 + (4 + 3.2 * t) * np.cos(t), 80 + (4 + 3.2 * t) * np.sin(t)], 1)
    cv2.polylines(ink, [np.round(spiral).astype(np.int32)], False, 1.0, 3, cv2.LINE_AA)
    return _page(ink)


def _blank_noisy_page() -> np.ndarray:
    """Paper with grain and a few specks of dust: what a phone sees of an empty sheet."""
    rng = np.random.default_rng(3)
    grey = rng.normal(200, 9, (300, 400))
    for x, y in rng.integers(10, 290, (6, 2)):
        cv2.circle(grey, (int(x), int(y)), 1, 120, -1)
    return np.clip(grey, 0, 255).astype(np.uint8)


def _digits_side_by_side(images: np.ndarray) -> np.ndarray:
    """MNIST test digits, 3x, side by side with a gap: "1 2" written in one-digit mode."""
    big = [cv2.resize(d, (84, 84), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255 for d in images]
    ink = np.zeros((120, 40 + 70 * len(big) + 40), np.float32)
    for k, d in enumerate(big):
        ink[18:102, 20 + 70 * k : 104 + 70 * k] = np.maximum(ink[18:102, 20 + 70 * k : 104 + 70 * k], d)
    return _page(ink)


def _cheque_cut(images: np.ndarray, sliver: int = 24) -> np.ndarray:
    """The middle of three MNIST digits written in a row (60 px each, 56 px apart), cut as a cheque
    reader's segmenter cuts it: `sliver` px of each neighbour's box kept at the edges (24 px: about
    half of a neighbour's ink), over guilloche (fine printed waves), in a pale grey pen."""
    big = [cv2.resize(d, (60, 60), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255 for d in images]
    ink = np.zeros((90, 3 * 56 + 20), np.float32)
    for k, d in enumerate(big):
        ink[15:75, 10 + 56 * k : 70 + 56 * k] = np.maximum(ink[15:75, 10 + 56 * k : 70 + 56 * k], d)
    cut = ink[:, 66 - sliver : 126 + sliver]
    h, w = cut.shape
    waves = np.zeros_like(cut)
    xs = np.arange(w, dtype=np.float32)
    for k in range(6):
        ys = h / 2 + 0.4 * h * np.sin(2 * np.pi * xs / (30 + 9 * k) + k)
        cv2.polylines(waves, [np.stack([xs, ys], 1).astype(np.int32)], False, 1.0, 1, cv2.LINE_AA)
    noise = np.random.default_rng(int(images.sum()) % 1000).normal(0, 3, cut.shape)
    return np.clip(225 - 110 * cut - 35 * waves * (cut < 0.3) + noise, 0, 255).astype(np.uint8)


def _boxed(digit28: np.ndarray, margin: int = 10, pen: int = 2) -> np.ndarray:
    """A MNIST digit written inside a printed rectangle (a form's box)."""
    ink = np.zeros((140, 140), np.float32)
    ink[28:112, 28:112] = cv2.resize(digit28, (84, 84), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    cv2.rectangle(ink, (28 - margin, 28 - margin), (112 + margin, 112 + margin), 1.0, pen)
    return _page(np.clip(ink, 0, 1))


# --- the shipped rejector -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rec():
    from digitrec.runtime import Recognizer

    return Recognizer()


def test_the_shipped_rejector_has_its_card():
    """The ONNX file describes itself: its four outputs, the threshold and how it was chosen."""
    assert default_rejector_path().is_file()
    rejector = Rejector()
    card = rejector.card.data
    assert tuple(card["labels"]) == CLASSES == ("digit", doubt.NOT_A_DIGIT, doubt.SEVERAL_DIGITS, doubt.NO_INK)
    settings = card["rejector"]
    assert 0 < settings["threshold"] < 1 and rejector.threshold == settings["threshold"]
    assert "quantile" in settings["threshold_rule"]
    assert settings["validation_flagged"]["digit"] <= 0.015  # the rule: 1% of all validation digits
    assert settings["validation_flagged"]["letter"] >= 0.9
    assert "hershey-script-complex" in settings["held_out_fonts"]
    assert card["calibration"]["temperature"] > 0
    # The reason head (train/reason_head.py): numbers of 4-6 digits were "several digits" in 79%
    # of the flagged validation ones by the four outputs, and at least 95% by the head.
    head = settings["reason_head"]
    assert rejector.has_reason_head and head["classes"] == list(CLASSES[1:])
    assert (
        head["validation_right_reasons_without"]["number"] < 0.85 <= 0.95 <= head["validation_right_reasons"]["number"]
    )
    assert min(head["validation_right_reasons"].values()) >= 0.9


def test_the_runtime_rejector_imports_no_torch():
    import subprocess

    code = "import sys, digitrec.reject, digitrec.preprocess.frames; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("char", ["B", "A", "X"])
def test_a_letter_is_not_a_digit(rec, tmp_path, char):
    """The issue's examples: B was read as 8 at 89%, A as 4, X as 8."""
    answer = rec.predict(_write(tmp_path / f"{char}.png", _letter(char)))
    assert (answer.digit, answer.uncertain, answer.reason) == (None, True, doubt.NOT_A_DIGIT)
    assert answer.top and 0 < answer.confidence <= 1  # what the digit model thought is still given


def test_a_scribble_is_not_a_digit(rec, tmp_path):
    answer = rec.predict(_write(tmp_path / "spiral.png", _scribble()))
    assert (answer.digit, answer.reason) == (None, doubt.NOT_A_DIGIT)


def test_a_blank_noisy_page_has_no_ink(rec, tmp_path):
    """It was read as a 1 at 51%: one speck of dust blown up to fill the 28x28."""
    answer = rec.predict(_write(tmp_path / "blank.jpg", _blank_noisy_page()))
    assert (answer.digit, answer.uncertain, answer.reason) == (None, True, doubt.NO_INK)


@pytest.mark.mnist
def test_two_digits_are_several_digits(rec, tmp_path, mnist):
    images, labels = mnist["test"]
    answer = rec.predict(_write(tmp_path / "pair.png", _digits_side_by_side(images[[2, 1]])))  # a 1 and a 2
    assert (labels[2], labels[1]) == (1, 2)
    assert (answer.digit, answer.reason) == (None, doubt.SEVERAL_DIGITS)


@pytest.mark.mnist
def test_a_whole_number_is_several_digits_not_no_ink(rec, tmp_path, mnist):
    """Six digits fitted into 20 px are a row of specks: the four outputs called all seven of these
    numbers "no ink" (and a page that says "nothing written here" where it should say "use read");
    the reason head, trained with numbers of 4-6 digits, calls them several digits."""
    images, _ = mnist["test"]
    paths = [_write(tmp_path / f"number{s}.png", _digits_side_by_side(images[s : s + 6])) for s in range(0, 42, 6)]
    answers = rec.predict_many(paths)
    reasons = [a.reason for a in answers]
    assert all(a.digit is None for a in answers)
    assert reasons.count(doubt.SEVERAL_DIGITS) >= 6, reasons


def test_the_reason_head_changes_the_reason_only(rec, tmp_path):
    """Whether an input is flagged is the four outputs' P(digit) alone: asking for the head's logits
    too gives the same probabilities; only the reason can differ. (That grafting changed no weight
    before `logits`: test_a_rejector_without_the_head_flags_the_same_and_gives_the_old_reasons.)"""
    from digitrec.reject import probabilities, reasons_from

    rejector = rec.rejector
    views = np.stack([rec.views(_letter(c))[0] for c in "BAX"] + [rec.views(_blank_noisy_page())[0]])
    probs, head = probabilities(rejector.session, rejector.card, views, reasons=True)
    assert np.array_equal(probs, rejector.probabilities(views)) and head.shape == (4, 3)
    assert rejector.reasons(views) == reasons_from(probs, rejector.threshold, head)
    assert rejector.reasons(views) == [doubt.NOT_A_DIGIT] * 3 + [doubt.NO_INK]


@pytest.mark.mnist
def test_real_digits_are_answered(rec, tmp_path, mnist):
    """MNIST test digits written on paper: the rejector lets (nearly) all of them through."""
    images, labels = mnist["test"]
    ink = [cv2.resize(d, (84, 84), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255 for d in images[:40]]
    paths = [_write(tmp_path / f"{i}.png", _page(np.pad(d, 30), i)) for i, d in enumerate(ink)]
    answers = rec.predict_many(paths)
    flagged = [a.reason for a in answers if a.reason not in (None, "low confidence")]  # the rejector's
    assert len(flagged) <= 2, flagged  # 5%: trust.py measures 1.8% of 600 held-out writers' digits
    right = sum(a.top[0][0] == label for a, label in zip(answers, labels[:40]))
    assert right >= 37


@pytest.mark.mnist
@pytest.mark.xfail(
    strict=True,
    reason="issue 15 §2 open: the shipped rejector (and the one trained with cheque digits, not shipped) "
    "flags 3 of these 40 as several digits",
)
def test_cheque_digits_with_their_neighbours_slivers_are_answered(rec, tmp_path, mnist):
    """ORAND's cheque digits are the real source flagged most (5.6%, most as "several digits"):
    a crop holding much of a neighbour, a thin pale pen over guilloche. Wanted: at most one of
    these 40 flagged. Strict: it says so when a rejector meets it."""
    images, labels = mnist["test"]
    paths = [_write(tmp_path / f"{i}.png", _cheque_cut(images[i - 1 : i + 2])) for i in range(1, 41)]
    answers = rec.predict_many(paths)
    rejected = [a.reason for a in answers if a.reason not in (None, doubt.LOW_CONFIDENCE)]
    assert len(rejected) <= 1, rejected
    assert sum(a.top[0][0] == label for a, label in zip(answers, labels[1:41])) >= 39


@pytest.mark.mnist
def test_a_digit_in_a_printed_box_is_read(rec, tmp_path, mnist):
    """The box was kept in what the model saw and the digit read as 0 at 32%: now the box goes."""
    images, labels = mnist["test"]
    twos = [i for i in range(200) if labels[i] == 2][:5]
    for i in twos:
        answer = rec.predict(_write(tmp_path / f"boxed{i}.png", _boxed(images[i], margin=6 + i % 10, pen=1 + i % 3)))
        assert (answer.digit, answer.reason) == (2, None), i


@pytest.mark.mnist
def test_a_digit_in_a_row_of_form_cells_is_read(rec, tmp_path, mnist):
    images, labels = mnist["test"]
    ink = np.zeros((140, 330), np.float32)
    ink[28:112, 123:207] = cv2.resize(images[0], (84, 84), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    for x in (5, 110, 220, 325):  # cells 110 px wide, the digit in the middle one
        cv2.line(ink, (x, 15), (x, 125), 1.0, 2)
    cv2.line(ink, (5, 15), (325, 15), 1.0, 2)
    cv2.line(ink, (5, 125), (325, 125), 1.0, 2)
    answer = rec.predict(_write(tmp_path / "row.png", _page(np.clip(ink, 0, 1))))
    assert answer.digit == labels[0] == 7


def test_an_empty_box_is_not_a_digit(rec, tmp_path):
    ink = np.zeros((140, 140), np.float32)
    cv2.rectangle(ink, (20, 20), (120, 120), 1.0, 2)
    answer = rec.predict(_write(tmp_path / "box.png", _page(ink)))
    assert answer.digit is None and answer.reason in (doubt.NOT_A_DIGIT, doubt.NO_INK)


def test_reject_false_answers_every_image(tmp_path):
    from digitrec.runtime import Recognizer

    rec = Recognizer(reject=False)
    answer = rec.predict(_write(tmp_path / "B.png", _letter("B")))
    assert answer.digit is not None and answer.reason is None and rec._rejector is None  # never loaded


def test_a_batch_flags_each_input_on_its_own(rec, tmp_path):
    """A letter, a broken file and a blank page in one batch: each gets its own answer, in order."""
    paths = [
        _write(tmp_path / "B.png", _letter("B")),
        str(tmp_path / "missing.png"),
        _write(tmp_path / "blank.jpg", _blank_noisy_page()),
    ]
    answers = list(rec.predict_paths(paths))
    assert answers[0].reason == doubt.NOT_A_DIGIT
    assert isinstance(answers[1], DigitrecError) and "no such file" in str(answers[1])
    assert answers[2].reason == doubt.NO_INK


def test_predict_json_shows_the_reason(tmp_path, capsys):
    letter = _write(tmp_path / "X.png", _letter("X"))
    code, out, _ = run_main(["predict", letter, "--json"], capsys)
    (row,) = json.loads(out)
    assert code == 0
    assert (row["digit"], row["uncertain"], row["reason"], row["error"]) == (None, True, doubt.NOT_A_DIGIT, None)
    code, out, _ = run_main(["predict", letter, "--json", "--no-reject", "--min-confidence", "0"], capsys)
    (row,) = json.loads(out)
    assert isinstance(row["digit"], int) and row["reason"] is None


def test_predict_table_says_use_read_for_several_digits(tmp_path, capsys):
    rng = np.random.default_rng(5)
    from digitrec.synth import make_number

    fake = np.zeros((2, 28, 28), np.uint8)
    cv2.putText(fake[0], "4", (6, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2)
    cv2.putText(fake[1], "7", (6, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2)
    grey, _ = make_number(rng, fake, np.array([4, 7]), 2, "touching")
    code, out, _ = run_main(["predict", _write(tmp_path / "47.png", grey)], capsys)
    assert code == 0 and "several digits: use read" in out


# --- the training data ----------------------------------------------------------------------------


def test_fonts_are_split_by_family():
    train, held = negatives.split_fonts(negatives.installed_fonts())
    assert train and held
    assert not {f.family for f in train} & {f.family for f in held}
    assert "hershey-script-complex" in {f.family for f in held}
    assert "hershey-script-simplex" in {f.family for f in train}


DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@pytest.mark.skipif(not __import__("os").path.isfile(DEJAVU), reason="needs DejaVuSans (fonts-dejavu-core)")
def test_every_style_of_a_family_is_held_out_with_it_and_fonts_without_digits_are_left_out(tmp_path, monkeypatch):
    # A held-out family whose bold file trained the rejector (FreeMono held out, FreeMonoBold not)
    # is no held-out family; a font that draws its missing-glyph box for "3" would teach a box as a
    # digit; a dingbat font's "A" is no letter.
    import shutil

    fontTools = pytest.importorskip("fontTools.subset")
    styles = ["FreeMono.ttf", "FreeMonoBoldOblique.ttf", "dkg.ttf", "dkgBI.ttf", "LinLibertine_R.otf"]
    styles += ["LinLibertine_RI.otf", "Breip.ttf", "breipfont.ttf", "DejaVuSans-Bold.ttf", "D050000L.otf"]
    for name in styles:
        shutil.copy(DEJAVU, tmp_path / name)
    options = fontTools.Options()
    letters_only = fontTools.Subsetter(options)
    letters_only.populate(text="ABCabc")
    font = fontTools.load_font(DEJAVU, options)
    letters_only.subset(font)
    fontTools.save_font(font, str(tmp_path / "NoDigits.ttf"), options)
    monkeypatch.setattr(negatives, "FONT_FOLDERS", (str(tmp_path),))

    fonts = [f for f in negatives.installed_fonts() if f.path]
    assert sorted({f.family for f in fonts}) == ["Breip", "DejaVuSans", "Dkg", "FreeMono", "LinLibertine"]
    assert {Path(f.path).name for f in fonts} == set(styles) - {"D050000L.otf"}
    assert not negatives.has_glyphs(str(tmp_path / "NoDigits.ttf"), "3")
    assert negatives.has_glyphs(str(tmp_path / "NoDigits.ttf"), "Ab")


def test_a_font_family_is_drawn_as_often_as_another_whatever_its_files():
    # Lato's 18 styles would otherwise draw 18 of every 19 held-out letters from one family.
    fonts = [negatives.Font("Lato", path=f"Lato-{i}.ttf") for i in range(18)] + [negatives.Font("Kristi", path="K.ttf")]
    rng = np.random.default_rng(0)
    picks = [negatives.pick_font(rng, fonts).family for _ in range(2000)]
    assert 0.45 < picks.count("Kristi") / 2000 < 0.55


def test_no_scribble_is_a_bar_that_reads_as_a_1():
    # A scribble whose ink is a narrow bar is a 1 to anyone: not a fair "not a digit". Before, one
    # in seven scribbles' strokes spanned a box narrower than 0.35 (short side / long side; the
    # pen's width widens the ink a little: the narrowest of these 300 was 0.30).
    rng = np.random.default_rng(0)
    ratios = [min(ink.shape) / max(ink.shape) for ink in (negatives.scribble(rng) for _ in range(300))]
    assert min(ratios) >= 0.35


def test_photo_digits_are_digits_the_digit_model_reads():
    from digitrec.runtime import Recognizer

    rng = np.random.default_rng(3)
    threes = np.zeros((4, 28, 28), np.uint8)
    cv2.putText(threes[0], "3", (6, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2)
    threes[1:] = threes[0]
    views = [negatives.view_of(negatives.photo_digit(rng, threes, np.full(4, 3))) for _ in range(20)]
    read = Recognizer(reject=False).predict_probabilities(np.array([v for v in views if v is not None])).argmax(1)
    assert (read == 3).sum() >= 16


def _threes(n: int = 4) -> np.ndarray:
    threes = np.zeros((n, 28, 28), np.uint8)
    cv2.putText(threes[0], "3", (6, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2)
    threes[1:] = threes[0]
    return threes


def test_pen_digits_are_thin_even_strokes_on_plain_white_that_the_digit_model_reads(tmp_path):
    from digitrec.runtime import Recognizer

    rng = np.random.default_rng(5)
    files = []
    for i in range(20):
        grey = negatives.make_image(rng, "pen-digit", [], _threes(1), np.array([3]))
        assert grey.shape[0] == grey.shape[1] and 40 <= grey.shape[0] <= 160
        assert (grey == 255).mean() > 0.6  # a drawing app's canvas: no paper grain
        ink = (grey < 128).astype(np.uint8)
        # even and thin: no ink pixel is further than a few px from the paper, however big the image
        rows = np.nonzero(ink.any(axis=1))[0]
        # an even pen: the thickest stroke 4-25% of the digit's height (uji-pen's: 8-13%, MNIST's drawn so: 8-16%)
        assert 0.04 <= 2 * cv2.distanceTransform(ink, cv2.DIST_L2, 3).max() / (rows[-1] - rows[0] + 1) <= 0.25
        files.append(_write(tmp_path / f"pen{i}.png", grey))
    results = Recognizer(reject=False, min_confidence=0).predict_many(files)
    assert sum(r.digit == 3 for r in results) >= 17


def test_photo_digits_are_on_ruled_or_squared_paper_half_the_time(monkeypatch):
    steps = []
    rule = negatives.rule
    monkeypatch.setattr(negatives, "rule", lambda rng, ink, step: (steps.append(step), rule(rng, ink, step)))
    rng = np.random.default_rng(6)
    for _ in range(40):
        negatives.photo_digit(rng, _threes(), np.full(4, 3))
    assert 12 <= len(steps) <= 28
    assert all(8 <= step <= 200 for step in steps)  # lines about a digit apart


def test_rule_draws_lines_step_apart():
    ink = np.zeros((100, 60), np.float32)
    negatives.rule(np.random.default_rng(0), ink, 20)
    rows = np.nonzero(ink.max(axis=1) > 0)[0]
    assert len(rows) >= 5 and set(np.diff(rows[ink[rows].min(axis=1) > 0])) == {20}


def test_scanned_digits_come_thick_and_in_16_to_32_px_boxes():
    rng = np.random.default_rng(7)
    three = _threes(1)[0]
    sides = {negatives.scanned_digit(rng, three).shape[0] for _ in range(60)}
    assert sides == {16, 20, 24, 28, 32}
    widths = []  # the thickest stroke, as a share of the box
    for seed in range(40):
        box = negatives.scanned_digit(np.random.default_rng(seed), three)
        ink = box > 128 if (box > 128).mean() < 0.5 else box <= 128
        widths.append(2 * cv2.distanceTransform(ink.astype(np.uint8), cv2.DIST_L2, 3).max() / box.shape[0])
    assert np.median(widths) > 0.34  # half written with a thick pen (0.29 when none was: Semeion's are thicker)
    # and never a box all ink or all paper, whatever the pen (a faint one once left nothing)
    assert all(negatives.view_of(negatives.scanned_digit(rng, three)) is not None for _ in range(300))


def test_every_kind_is_drawn_as_an_image_and_preprocessed_as_predict_does():
    from digitrec.preprocess.digit import digit_views

    rng = np.random.default_rng(0)
    images = np.zeros((4, 28, 28), np.uint8)
    cv2.putText(images[0], "3", (6, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2)
    images[1:] = images[0]
    labels = np.array([3, 3, 3, 3])
    fonts = negatives.installed_fonts()[:3]
    for kind in negatives.KIND_CLASS:
        grey = negatives.make_image(rng, kind, fonts, images, labels)
        assert grey.dtype == np.uint8 and grey.ndim == 2 and min(grey.shape) >= 16, kind  # scans: 16 px
        view = negatives.view_of(grey)
        if view is not None:  # exactly the runtime's first view
            assert np.array_equal(view, digit_views(grey)[0]), kind
    x, y, kinds = negatives.make_examples(rng, {"letter": 3, "pair": 2}, fonts, images, labels)
    assert x.shape[1:] == (28, 28) and x.dtype == np.uint8
    assert set(y.tolist()) <= {negatives.NOT_A_DIGIT, negatives.SEVERAL_DIGITS} and len(y) == len(kinds)


def test_examples_cached_before_a_kind_was_added_are_not_reused(tmp_path):
    """A run folder's examples.npz drawn before the `number` kind (made with --scale and --seed
    only): `--force` in that folder trained a rejector without numbers and said nothing."""
    from digitrec.errors import DataError
    from digitrec.train.rejector import _cached_data

    views = np.zeros((2, 28, 28), np.uint8)
    classes = np.array([0, 2])
    np.savez_compressed(
        tmp_path / "examples.npz",
        x_train=views,
        y_train=classes,
        x_test=views,
        y_test=classes,
        kinds_test=np.array(["digit", "pair"]),
        split=np.array("by index"),
        held_out_fonts=np.array(["DejaVu Serif"]),
        scale=0.01,
        seed=0,
    )
    with pytest.raises(DataError, match=r"examples.npz was made with --scale 0.01 --seed 0 --kinds None, not "):
        _cached_data(tmp_path, 0.01, 0, None)


def test_a_kind_added_later_leaves_every_other_example_as_it_was(real_data, tmp_path, monkeypatch):
    """`LATER_COUNTS` kinds are drawn by their own generator after the others: a retrain's change
    is then the new kind's doing (docs/trust.md). One example per kind at this scale."""
    from digitrec.train import rejector

    with_numbers = rejector.build_data(1e-4, 0, tmp_path / "none", log=lambda m: None)
    monkeypatch.setattr(rejector, "LATER_COUNTS", {})
    without = rejector.build_data(1e-4, 0, tmp_path / "none", log=lambda m: None)
    for name in ("train", "test"):
        (x, y), (x0, y0) = with_numbers[name], without[name]
        assert len(y) == len(y0) + 1 and y[-1] == negatives.SEVERAL_DIGITS  # the one number, last
        assert np.array_equal(x[: len(y0)], x0) and np.array_equal(y[: len(y0)], y0)
    assert with_numbers["test_kinds"][-1] == "number" and list(with_numbers["test_kinds"][:-1]) == list(
        without["test_kinds"]
    )


@pytest.mark.slow
def test_training_a_tiny_rejector_writes_a_card_with_its_threshold(real_data, tmp_path, capsys):
    from digitrec.train.rejector import main

    out = tmp_path / "run"
    recipe = tmp_path / "seed3.toml"
    recipe.write_text("seed = 3\n")  # a recipe's own seed holds without --seed (--seed's default 0 won)
    main(
        [
            "--out",
            str(out),
            "--scale",
            "0.01",
            "--epochs",
            "1",
            "--export",
            str(out / "r.onnx"),
            "--writers",
            str(tmp_path / "none"),
            "--config",
            str(recipe),
        ]
    )
    assert json.loads((out / "config.json").read_text())["seed"] == 3
    rejector = Rejector(out / "r.onnx")
    assert 0 <= rejector.threshold <= 1
    assert rejector.card.data["rejector"]["mnist_split"].startswith("by index")  # no writer table: still trains
    assert rejector.probabilities(np.zeros((2, 28, 28), np.uint8)).shape == (2, 4)
    # export grafts the reason head on, with its numbers in the card
    assert rejector.has_reason_head and len(rejector.reasons(np.zeros((2, 28, 28), np.uint8))) == 2
    assert set(rejector.card.data["rejector"]["reason_head"]["validation_right_reasons"]) <= set(negatives.KIND_CLASS)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.onnx", None, "rejector not found"),
        ("junk.onnx", b"not a model", "cannot load .* as an ONNX model"),
        ("digits.onnx", "model.onnx", "is not a digitrec rejector"),
    ],
)
def test_the_reason_head_command_refuses_a_wrong_file_before_drawing_examples(
    tmp_path, monkeypatch, name, content, message
):
    """A missing file, a file that is no ONNX model, the digit model: a ModelError first, not half
    an hour of drawing examples and then a traceback."""
    import shutil

    from digitrec.errors import ModelError
    from digitrec.train import reason_head, rejector

    monkeypatch.setattr(rejector, "_cached_data", lambda *a: pytest.fail("drew examples for a wrong file"))
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        shutil.copy(default_rejector_path().with_name(content), path)
    with pytest.raises(ModelError, match=message):
        reason_head.main([str(path), "--examples", str(tmp_path / "examples")])
    assert not (tmp_path / "examples").exists()


def test_the_reason_head_command_checks_out_before_drawing_examples(tmp_path, monkeypatch):
    from digitrec.errors import DigitrecError
    from digitrec.train import reason_head, rejector

    monkeypatch.setattr(rejector, "_cached_data", lambda *a: pytest.fail("drew examples"))
    with pytest.raises(DigitrecError, match="--out must end in .onnx"):
        reason_head.main([str(default_rejector_path()), "--out", str(tmp_path / "r.txt")])
    (tmp_path / "file").write_text("")
    with pytest.raises(DigitrecError, match="is a file, not a folder"):
        reason_head.main([str(default_rejector_path()), "--out", str(tmp_path / "file" / "r.onnx")])


def _tiny_examples(seed: int = 0) -> dict:
    """A few noise and blob images of every class, in `train.rejector`'s layout: enough to fit and
    graft a head in a second (its reasons are not the point)."""
    rng = np.random.default_rng(seed)
    x = (rng.random((80, 28, 28)) < rng.random((80, 1, 1)) * 0.3).astype(np.uint8) * 255
    y = np.arange(80) % 4
    kinds = np.array(["digit", "letter", "pair", "blank"])[y[:40]]
    return {"train": (x, y), "test": (x[:40], y[:40]), "test_kinds": kinds}


def _without_head(path, out):
    """The rejector at `path` as it was before a head was grafted on: its `logits` output only."""
    import onnx

    proto = onnx.load(str(path))
    keep = [n for n in proto.graph.node if not n.name.startswith("reason_head/")]
    del proto.graph.node[:]
    proto.graph.node.extend(keep)
    keep_init = [t for t in proto.graph.initializer if not t.name.startswith("reason_head/")]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(keep_init)
    del proto.graph.output[1:]
    onnx.save(proto, str(out))
    return out


def test_a_head_grafted_again_replaces_the_one_before_and_flags_the_same(tmp_path):
    """The shipped rejector already has a head: grafting another leaves one head (3 nodes, 4 weights,
    one `reasons` output), `logits` bit for bit, and the card and the JSON beside it the same."""
    import onnx

    from digitrec.train.reason_head import add_reason_head

    out = tmp_path / "r.onnx"
    card = add_reason_head(default_rejector_path(), _tiny_examples(), out, log=lambda m: None)
    proto = onnx.load(str(out))
    assert [o.name for o in proto.graph.output] == ["logits", "reasons"]
    assert sum(n.name.startswith("reason_head/") for n in proto.graph.node) == 3
    assert sum(t.name.startswith("reason_head/") for t in proto.graph.initializer) == 4
    assert json.loads((tmp_path / "r_card.json").read_text()) == card
    shipped, grafted = Rejector(), Rejector(out)
    assert grafted.card.data == card and card["rejector"]["threshold"] == shipped.threshold
    assert card["rejector"]["reason_head"]["training_examples"] == {
        "not a digit": 20,
        "several digits": 20,
        "no ink": 20,
    }
    views = np.stack([_tiny_examples(1)["train"][0][0], np.zeros((28, 28), np.uint8)])
    assert np.array_equal(grafted.probabilities(views), shipped.probabilities(views))
    assert grafted.reasons(views[:0]) == [] and len(grafted.reasons(views)) == 2


def test_a_rejector_without_the_head_flags_the_same_and_gives_the_old_reasons(tmp_path):
    """Grafting changed no weight before `logits`: the shipped file with its head stripped flags
    exactly what it flags; it gives its four outputs' reasons, and asking it for the head's is a
    ModelError that says so."""
    from digitrec.errors import ModelError
    from digitrec.reject import probabilities, reasons_from

    headless = Rejector(_without_head(default_rejector_path(), tmp_path / "old.onnx"))
    shipped = Rejector()
    assert shipped.has_reason_head and not headless.has_reason_head
    rec_views = [_letter("B"), _scribble(), _blank_noisy_page(), _letter("7")]
    from digitrec.runtime import Recognizer

    rec = Recognizer(threads=1, reject=False)
    views = np.stack([rec.views(page)[0] for page in rec_views])
    probs = headless.probabilities(views)
    assert np.array_equal(probs, shipped.probabilities(views))
    assert headless.reasons(views) == reasons_from(probs, headless.threshold)
    assert [r is None for r in headless.reasons(views)] == [r is None for r in shipped.reasons(views)]
    with pytest.raises(ModelError, match="has no reason head"):
        probabilities(headless.session, headless.card, views, reasons=True)
    assert headless.reasons(views[:0]) == shipped.reasons(views[:0]) == []


def test_a_feature_the_examples_never_wake_does_not_swamp_the_head():
    """A penultimate unit that is 0 on every example (dead for them) keeps a small folded weight:
    an input that does wake it moves the head's logits a little, not by thousands."""
    from digitrec.train.reason_head import fit_head, head_logits

    rng = np.random.default_rng(0)
    features = np.maximum(rng.normal(size=(90, 8)), 0).astype(np.float32)
    features[:, 3] = 0.0
    reasons = np.arange(90) % 3
    weights = fit_head(features, reasons, hidden=8, epochs=2)
    woken = features[:5].copy()
    woken[:, 3] = 1.0
    assert np.abs(head_logits(weights, woken) - head_logits(weights, features[:5])).max() < 10
