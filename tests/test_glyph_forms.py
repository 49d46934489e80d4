"""Real writers' digit forms (`digitrec.glyph_forms`), each drawn on a digit's own strokes: the ink
changes where the form says, the digit stays the class a person would read, and a seed fixes it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import plain_digits

from digitrec import glyph_forms, synth

PEN = 5  # px, the strokes of the digits below (48 px tall, as a string's digit)


def _ink(piece: np.ndarray) -> np.ndarray:
    return piece > glyph_forms.INK


def tight(piece: np.ndarray) -> np.ndarray:
    """The piece cropped to its ink, as synth pastes digits (the forms trim what they pad)."""
    ys, xs = np.nonzero(piece > 0)
    return piece[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _holes(piece: np.ndarray) -> int:
    contours, hierarchy = cv2.findContours(_ink(piece).astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return 0 if hierarchy is None else int((hierarchy[0][:, 3] >= 0).sum())


def one(lean: float = 0.0) -> np.ndarray:
    """An upright stroke (lean: dx/dy of its top to the right)."""
    piece = np.zeros((52, 40), np.float32)
    cv2.line(piece, (20 + int(lean * 22), 2), (20 - int(lean * 22), 49), 255.0, PEN)
    return tight(piece)


def seven() -> np.ndarray:
    piece = np.zeros((52, 40), np.float32)
    cv2.line(piece, (4, 4), (34, 4), 255.0, PEN)
    cv2.line(piece, (34, 4), (18, 48), 255.0, PEN)
    return tight(piece)


def two() -> np.ndarray:
    piece = np.zeros((52, 40), np.float32)
    cv2.ellipse(piece, (20, 15), (13, 11), 0, 180, 360 + 30, 255.0, PEN)
    cv2.line(piece, (31, 21), (5, 47), 255.0, PEN)
    cv2.line(piece, (5, 47), (36, 47), 255.0, PEN)
    return tight(piece)


def closed_four() -> np.ndarray:
    """A 4 whose arm meets the stem at its top: a triangle over the crossbar."""
    piece = np.zeros((52, 40), np.float32)
    cv2.line(piece, (28, 3), (28, 49), 255.0, PEN)  # the stem
    cv2.line(piece, (28, 3), (4, 33), 255.0, PEN)  # the arm, closing the top
    cv2.line(piece, (4, 33), (36, 33), 255.0, PEN)  # the crossbar
    return tight(piece)


def nine() -> np.ndarray:
    """A loop and a tail curling left below it."""
    piece = np.zeros((52, 40), np.float32)
    cv2.circle(piece, (19, 14), 11, 255.0, PEN)
    cv2.ellipse(piece, (14, 30), (16, 18), 0, -60, 80, 255.0, PEN)
    return tight(piece)


def test_a_flagged_one_gets_a_falling_stroke_left_of_its_top_and_keeps_its_stem():
    piece = one()
    out = glyph_forms.flag_one(np.random.default_rng(0), piece)
    ys, xs = np.nonzero(_ink(out))
    stem_x = xs[ys >= ys.max() - 3].mean()  # the stem's foot (a foot bar, if any, is centred on it)
    flag = (xs < stem_x - PEN) & (ys < ys.min() + 0.7 * (ys.max() - ys.min()))  # not a foot
    assert flag.sum() > 40  # new ink left of the stem
    # The flag falls from the stem's top to the lower left, steeply: never a 7's level bar.
    assert ys[flag].min() <= ys.min() + 2 * PEN  # it starts at the top
    end_y, end_x = ys[flag][np.argmin(xs[flag])], xs[flag].min()
    assert end_y - ys.min() >= 0.6 * (stem_x - end_x)
    assert -np.polyfit(xs[flag], ys[flag], 1)[0] > 0.5
    assert _ink(out).sum(0).max() >= _ink(piece).sum(0).max()  # the stem is all still there


def test_a_one_leaning_far_right_gets_no_flag_along_its_stem():
    piece = one(lean=0.6)
    assert glyph_forms.flag_one(np.random.default_rng(0), piece) is piece


def test_a_looped_one_crosses_its_stem_low_and_closes_a_loop_over_its_top():
    piece = one()
    loops = 0
    for seed in range(10):
        out = glyph_forms.looped_one(np.random.default_rng(seed), piece)
        ys, xs = np.nonzero(_ink(out))
        loops += _holes(out) >= 1  # the loop: paper enclosed between the up stroke and the stem
        assert xs.min() < xs[ys >= ys.max() - 3].mean() - PEN  # the up stroke starts left of the foot
        assert out.shape[0] <= piece.shape[0] * 1.25  # a 1 still: about as tall, not a new line
        assert _ink(out).sum(0).max() >= _ink(piece).sum(0).max()  # the stem is all still there
    assert loops >= 7  # a 5 px pen fills the narrowest (3 of these 10), as it does on paper
    assert glyph_forms.looped_one(np.random.default_rng(0), np.full((2, 5), 255.0, np.float32)).shape == (2, 5)


def test_a_crossed_seven_gets_a_level_bar_across_its_stem_halfway_down():
    piece = seven()
    out = glyph_forms.crossed_seven(np.random.default_rng(1), piece)
    assert out.shape[0] == piece.shape[0] and out.shape[1] > piece.shape[1]  # wider, not taller
    assert _ink(out).sum() - _ink(piece).sum() > 30
    rows = np.flatnonzero(_ink(out).sum(1) > _ink(piece).sum(1) + 3)
    assert rows.size and 0.35 * piece.shape[0] < rows.mean() < 0.65 * piece.shape[0]  # halfway down
    assert np.array_equal(_ink(out).sum(1)[:8], _ink(piece).sum(1)[:8])  # the 7's own bar as it was


def test_a_looped_two_gets_a_hollow_loop_at_its_foot():
    piece = two()
    assert _holes(piece) == 0
    out = glyph_forms.looped_two(np.random.default_rng(2), piece)
    assert _holes(out) == 1
    contours, hierarchy = cv2.findContours(_ink(out).astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    hole = next(c for c, info in zip(contours, hierarchy[0]) if info[3] >= 0)
    x, y, w, h = cv2.boundingRect(hole)
    assert y > 0.6 * out.shape[0] and x < 0.5 * out.shape[1]  # in the lower-left corner


def test_an_open_four_loses_the_join_at_its_top_and_keeps_stem_and_crossbar():
    piece = closed_four()
    assert _holes(piece) == 1
    out = glyph_forms.open_four(np.random.default_rng(3), piece)
    assert out.shape == piece.shape  # only wiped (the stem and crossbar keep the extent)
    assert _holes(out) == 0  # open at the top
    assert np.array_equal(out[36:], piece[36:])  # the stem below the crossbar, and the crossbar
    assert np.array_equal(out[30:36], piece[30:36])
    assert _ink(out)[:30, 26:].sum() >= 0.95 * _ink(piece)[:30, 26:].sum()  # the stem above it
    assert _ink(out)[10:30, :20].sum() > 20  # the arm is still there


def test_a_straight_nine_keeps_its_loop_and_gets_a_straight_stem():
    piece = nine()
    out = glyph_forms.straight_nine(np.random.default_rng(4), piece)
    assert _holes(out) == 1
    ys, xs = np.nonzero(_ink(out))
    tail = ys > 30  # below the loop
    assert tail.any() and ys.max() >= 44
    # one straight stroke: every row of the tail has its ink within a pen's width of a line
    fit = np.polyval(np.polyfit(ys[tail], xs[tail], 1), ys[tail])
    assert np.abs(xs[tail] - fit).max() <= PEN
    contours, hierarchy = cv2.findContours(_ink(out).astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    x, _, w, _ = cv2.boundingRect(next(c for c, info in zip(contours, hierarchy[0]) if info[3] >= 0))
    assert xs[tail].min() > x + w // 2 - PEN  # down from the loop's right side, not curling left


@pytest.mark.parametrize("label", [1, 2, 4, 7, 9])
def test_redraw_is_fixed_by_its_seed(label):
    piece = {1: one(), 2: two(), 4: closed_four(), 7: seven(), 9: nine()}[label]
    a = glyph_forms.redraw(np.random.default_rng(5), piece, label, 1.0)
    b = glyph_forms.redraw(np.random.default_rng(5), piece, label, 1.0)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, piece)  # hooked or flagged, a 1 changes too
    assert glyph_forms.redraw(np.random.default_rng(5), piece, label, 0.0) is piece


def test_digits_without_a_form_stay_and_draw_nothing_from_the_generator():
    rng = np.random.default_rng(6)
    piece = two()
    for label in (0, 3, 5, 6, 8):
        assert glyph_forms.redraw(rng, piece, label, 1.0) is piece
    assert rng.random() == np.random.default_rng(6).random()


def test_numbers_without_forms_are_made_exactly_as_before_and_with_them_keep_their_label():
    images, labels = plain_digits()
    for group in ("separated", "touching"):
        a = synth.make_number(np.random.default_rng(7), images, labels, 5, group, document=0.5)
        b = synth.make_number(np.random.default_rng(7), images, labels, 5, group, document=0.5, forms=0.0)
        assert a[1] == b[1] and np.array_equal(a[0], b[0])
    changed = 0
    for seed in range(10):
        plain = synth.make_number(np.random.default_rng(seed), images, labels, 4, "separated")
        formed = synth.make_number(np.random.default_rng(seed), images, labels, 4, "separated", forms=1.0)
        again = synth.make_number(np.random.default_rng(seed), images, labels, 4, "separated", forms=1.0)
        assert formed[1] == plain[1]  # the same digits, the same label
        assert np.array_equal(formed[0], again[0])
        changed += formed[0].shape != plain[0].shape or not np.array_equal(formed[0], plain[0])
    assert changed == 10


@pytest.mark.parametrize("label", [1, 2, 4, 7, 9])
@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1), (2, 2)])
def test_a_piece_of_one_or_two_pixels_is_redrawn_or_left_without_an_error(label, shape):
    """open_four took argmax of an empty middle on a 1 px tall piece (numpy's ValueError)."""
    piece = np.full(shape, 255.0, np.float32)
    out = glyph_forms.redraw(np.random.default_rng(8), piece, label, 1.0)
    assert out.dtype == np.float32 and out.size and (out > glyph_forms.INK).any()
