"""Order statistics of uint8 pixels from their histogram: the same numbers as numpy's
`percentile` / `median` (its default 'linear' method, to the bit), without sorting. A photo's
ink map has a million pixels, and sorting them for each median cost reading 20-25 ms a photo;
one histogram also serves every subset chosen by value (the pixels under a threshold), and gives
OpenCV's Otsu level (`otsu_level`) as well."""

from __future__ import annotations

import cv2
import numpy as np

LEVELS = np.arange(256, dtype=np.float64)


def histogram(values: np.ndarray) -> np.ndarray:
    """uint8 array -> (256,) int64 counts of each value."""
    if values.size == 0 or values.size >= 2**24:  # OpenCV counts in float32, exact below 2**24
        return np.bincount(values.ravel(), minlength=256)
    # OpenCV's histogram of the pixels as one row: 3-5x quicker than np.bincount on a photo.
    counts = cv2.calcHist([np.ascontiguousarray(values).reshape(1, -1)], [0], None, [256], [0, 256])
    return counts.ravel().astype(np.int64)


def percentile(counts: np.ndarray, q: float, levels: np.ndarray = LEVELS) -> float:
    """np.percentile of `counts[i]` copies of `levels[i]` (levels ascending, some count > 0)."""
    cumulative = np.cumsum(counts)
    n = int(cumulative[-1])
    index = q / 100 * (n - 1)
    lo = int(np.floor(index))
    x_lo = float(levels[np.searchsorted(cumulative, lo, side="right")])
    x_hi = float(levels[np.searchsorted(cumulative, min(lo + 1, n - 1), side="right")])
    t, diff = index - lo, x_hi - x_lo
    return x_hi - diff * (1 - t) if t >= 0.5 else x_lo + diff * t  # numpy's interpolation, bit for bit


def median_abs_deviation(counts: np.ndarray) -> tuple[float, float]:
    """(the median, the median of the distances to it) of a histogram's values, as np.median gives."""
    median = percentile(counts, 50)
    distance = np.abs(LEVELS - median)
    order = np.argsort(distance, kind="stable")
    return median, percentile(counts[order], 50, distance[order])


def otsu_level(counts: np.ndarray) -> float:
    """cv2.threshold(values, 0, 255, THRESH_OTSU)'s level, from the values' histogram (some count
    > 0): OpenCV's own sums, in its order, so the same double to the bit, without gathering a
    photo's pixels into an array for it."""
    eps = float(np.finfo(np.float32).eps)  # FLT_EPSILON, as OpenCV skips near-empty classes
    scale = 1.0 / int(counts.sum())
    total = 0.0
    for i in range(256):
        total += i * float(counts[i])
    mean = total * scale
    below_mean = below = best = 0.0  # the lower class's mean and weight; the best variance between
    level = 0
    for i in range(256):
        p = int(counts[i]) * scale
        below_mean *= below
        below += p
        above = 1.0 - below
        if min(below, above) < eps or max(below, above) > 1.0 - eps:
            continue
        below_mean = (below_mean + i * p) / below
        above_mean = (mean - below * below_mean) / above
        between = below * above * (below_mean - above_mean) * (below_mean - above_mean)
        if between > best:
            best, level = between, i
    return float(level)
