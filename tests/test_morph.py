"""preprocess.morph: long straight openings equal OpenCV's, to the bit, borders included."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from digitrec.preprocess.morph import open_line


def _opencv_open(image: np.ndarray, length: int, axis: int) -> np.ndarray:
    shape = (length, 1) if axis == 1 else (1, length)
    opened: np.ndarray = cv2.morphologyEx(image, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, shape))
    return opened


@pytest.mark.parametrize("seed", range(30))
def test_open_line_is_opencvs_opening_for_every_length_and_shape(seed):
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(1, 50, 2))
    image = rng.integers(0, 256, (h, w)).astype(np.uint8)
    if seed % 2:  # mostly paper, as an ink map is: runs of ink between zeros
        image[rng.random((h, w)) < 0.4] = 0
    # Odd and even lengths (the anchor is off centre), shorter and longer than the image.
    for length in (1, 2, 3, 8, int(rng.integers(4, 70)), 2 * max(h, w) + 1):
        for axis in (0, 1):
            assert np.array_equal(open_line(image, length, axis), _opencv_open(image, length, axis)), (length, axis)


def test_open_line_keeps_a_page_wide_rule_and_drops_the_digits_on_it():
    """A ruled page as segment sees it (an ink map): the rule's own level stays, a digit standing
    on it goes, exactly as OpenCV's opening has it."""
    ink = np.zeros((300, 800), np.uint8)
    cv2.line(ink, (0, 200), (799, 203), 90, 3)  # a faint, slightly tilted rule
    cv2.putText(ink, "4071", (100, 195), cv2.FONT_HERSHEY_SIMPLEX, 4, 220, 9)
    ink = cv2.GaussianBlur(ink, (3, 3), 0)
    length = int(0.6 * 800)
    opened = open_line(ink, length, 1)
    assert np.array_equal(opened, _opencv_open(ink, length, 1))
    assert opened[:150].max() == 0 and opened[195:210].max() >= 80  # digits gone, the rule kept
    assert np.array_equal(open_line(ink, length, 0), _opencv_open(ink, length, 0))
