"""The generator of written numbers (`digitrec.synth`) and the line reader's broken strokes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import plain_digits, steepest_edge

from digitrec import synth
from digitrec.train.lines import break_strokes


@pytest.mark.parametrize("mark", list(synth.FORM_MARKS))
def test_each_mark_is_ink_that_no_digit_owns_and_not_in_the_label(mark):
    images, labels = plain_digits()
    rng = np.random.default_rng(0)
    owners: list = []
    plain, plain_label = synth.make_number(np.random.default_rng(0), images, labels, 3, "separated")
    grey, label = synth.make_number(rng, images, labels, 3, "separated", punctuation=True, owner_out=owners, marks=mark)
    assert label == plain_label and set(label) <= set("01")
    ink = grey < grey.max() - 40
    unowned = ink & (owners[0] < 0)
    assert unowned.sum() >= 4, f"{mark!r} drew no ink of its own"
    assert grey.shape[1] > plain.shape[1]  # the marks take room after the digits


def test_ticks_and_slashes_are_shorter_than_theplain_digits():
    images, labels = plain_digits()
    for seed in range(20):
        owners: list = []
        grey, _ = synth.make_number(
            np.random.default_rng(seed), images, labels, 2, "separated", punctuation=True, owner_out=owners, marks="/'"
        )
        owner = owners[0]
        shortest_digit = min(np.ptp(np.nonzero((owner == k).any(axis=1))[0]) for k in range(2))
        marks = ((grey < grey.max() - 40) & (owner < 0)).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(marks)
        assert n > 1 and stats[1:, cv2.CC_STAT_HEIGHT].max() < shortest_digit


def test_the_cheque_marks_are_the_default():
    images, labels = plain_digits()
    a = synth.make_number(np.random.default_rng(4), images, labels, 4, "touching", punctuation=True)
    b = synth.make_number(
        np.random.default_rng(4), images, labels, 4, "touching", punctuation=True, marks=synth.CHEQUE_MARKS
    )
    assert a[1] == b[1] and np.array_equal(a[0], b[0])


def test_broken_strokes_only_remove_ink_and_splitplain_digits():
    images, _ = plain_digits(40)
    broken = break_strokes(images, np.random.default_rng(1), share=1.0)
    assert (broken <= images).all() and (broken != images).any(axis=(1, 2)).all()

    def pieces(x: np.ndarray) -> int:
        return cv2.connectedComponents((x > 128).astype(np.uint8))[0] - 1

    # A cut across an upright stroke splits it; a ring cut once only opens.
    strokes = range(1, 40, 2)
    assert sum(pieces(broken[k]) > pieces(images[k]) for k in strokes) >= 12
    untouched = break_strokes(images, np.random.default_rng(1), share=0.0)
    assert np.array_equal(untouched, images)


@pytest.mark.parametrize("group", ["touching", "overlapping"])
def test_a_faint_digit_stays_in_its_place(group):
    """A digit with no ink above synth.INK (a thin stroke made small) has nothing to touch: the next
    digit used to slide past it to the left edge (and, overlapping, past the edge). Now the slide
    stops at its left edge; overlapping moves on by its usual 3-12% of the height."""
    images, labels = plain_digits(2)
    images[1] = images[1] // 6  # a faint 1
    for seed in range(10):
        spans: list = []
        rng = np.random.default_rng(seed)
        grey, label = synth.make_number(rng, images, labels, 6, group, spans=spans)
        lefts = [a for a, _ in spans]
        # Overlapping slides each digit up to 0.12 digit heights further after it touches (or stops).
        ink_rows = np.ptp(np.nonzero((grey < grey.max() - 15).any(axis=1))[0]) + 1  # about 1-1.4 heights
        slack = 0 if group == "touching" else 0.12 * ink_rows / 0.85 + 1
        assert all(b >= a - slack for a, b in zip(lefts, lefts[1:])) and min(lefts) >= 0, (label, lefts)


def test_a_soft_scan_keeps_the_number_its_shape_and_owners_and_softens_every_edge():
    images, labels = plain_digits()
    softer = 0
    for seed in range(12):
        owners: list = []
        sharp, label = synth.make_number(np.random.default_rng(seed), images, labels, 3, "separated")
        grey, soft_label = synth.make_number(
            np.random.default_rng(seed), images, labels, 3, "separated", soft=1.0, owner_out=owners
        )
        assert soft_label == label and grey.shape == sharp.shape == owners[0].shape
        # the same page: the paper is as light and the ink still darker than it
        assert abs(float(np.median(grey)) - float(np.median(sharp))) < 3 and grey.min() < np.median(grey) - 40
        softer += steepest_edge(grey) < 0.8 * steepest_edge(sharp)
    assert softer == 12


class _Draws:
    """A generator stand-in: random() gives `first` (which branch), uniform(lo, hi) the point `at`
    of the way from lo to hi."""

    def __init__(self, first: float, at: float):
        self.first, self.at = first, at

    def random(self) -> float:
        return self.first

    def uniform(self, lo: float, hi: float) -> float:
        return lo + self.at * (hi - lo)


@pytest.mark.parametrize(("first", "branch"), [(0.2, "blur"), (0.8, "low resolution")])
def test_soft_scan_softens_in_proportion_to_the_digit_height(first, branch):
    """Both branches scale with the digits: the same page said to hold digits twice as tall gets
    an edge about twice as wide (a fixed blur would not)."""
    page = np.full((200, 400), 230.0, np.float32)
    cv2.rectangle(page, (197, 20), (203, 180), 30.0, -1)  # a stroke 7 px wide

    def spread(height: float) -> int:
        """How much wider than the stroke the ink reaches (px darker than the paper by over 10)."""
        soft = synth.soft_scan(_Draws(first, 0.5), page, height)
        assert soft.shape == page.shape and soft.dtype == np.float32
        return int(np.sum(230 - soft[100] > 10)) - 7

    assert spread(40.0) >= 3, branch
    assert 1.6 <= spread(80.0) / spread(40.0) <= 2.5, branch


def test_soft_scan_blurs_by_the_digit_height_or_lowers_the_resolution():
    rng = np.random.default_rng(0)
    page = np.full((120, 300), 230.0, np.float32)
    cv2.line(page, (50, 20), (50, 100), 30.0, 6)  # a 1, 80 px tall
    for _ in range(40):
        soft = synth.soft_scan(rng, page, 80.0)
        assert soft.shape == page.shape and soft.dtype == np.float32
        # at least 3% of 80 px of blur (or digits 18 px tall at most): the stroke's edge spreads
        row = soft[60]
        assert np.sum((row > 40) & (row < 220)) >= 4
        assert steepest_edge(row[None]) < 0.5 * steepest_edge(page[60:61])
