"""Grey openings along a long straight line, in O(log length) passes per pixel.

OpenCV's erosion and dilation by a 1 x L rectangle cost O(L) per pixel: a page-wide rule is
hundreds of pixels long, and those openings were a sixth of reading a photo. A minimum over L
consecutive values is the minimum of two overlapping windows of a power of two, and those come
from repeatedly taking the minimum of a window and its copy shifted by its own length (van
Herk's idea, done here with whole-array numpy passes). The result is OpenCV's to the bit, borders
included (tests/test_morph.py): outside the image counts as absent for both filters.
"""

from __future__ import annotations

import numpy as np


def open_line(image: np.ndarray, length: int, axis: int) -> np.ndarray:
    """uint8 (H, W) -> cv2.morphologyEx(image, cv2.MORPH_OPEN, a 1-wide rectangle `length` long
    along `axis` (1: horizontal, 0: vertical), its default anchor)."""
    anchor = length // 2  # OpenCV's default anchor: the kernel's centre
    eroded = _sliding(image, length, anchor, axis, np.minimum, 255)
    return _sliding(eroded, length, anchor, axis, np.maximum, 0)


def _sliding(image: np.ndarray, length: int, anchor: int, axis: int, pick: np.ufunc, absent: int) -> np.ndarray:
    """out[x] = pick(image[x - anchor : x - anchor + length]) along `axis`, values beyond the
    ends standing in as `absent` (which `pick` never chooses over a real value)."""
    n = image.shape[axis]
    pad = [(0, 0), (0, 0)]
    pad[axis] = (anchor, length - 1 - anchor)
    window = np.pad(image, pad, constant_values=absent)
    span = 1  # window[x] = pick of the `span` values from x on
    while 2 * span <= length:
        size = window.shape[axis] - span
        window = pick(_take(window, 0, size, axis), _take(window, span, size, axis))
        span *= 2
    # Two windows of `span` >= length / 2 values, at the start and at the end, cover `length`.
    out: np.ndarray = pick(_take(window, 0, n, axis), _take(window, length - span, n, axis))
    return out


def _take(a: np.ndarray, start: int, size: int, axis: int) -> np.ndarray:
    return a[start : start + size] if axis == 0 else a[:, start : start + size]
