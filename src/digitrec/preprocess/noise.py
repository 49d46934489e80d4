"""Noise and medians for the preprocessing: robust, and cheap on a whole photo.

np.median and np.percentile partition every value; on a photo's 80k pixels that was a quarter of
its preprocessing. The medians here return exactly what numpy returns on the same values
(tests/test_preprocess.py checks it to the last bit) while looking at less: whole numbers (grey
levels, and their differences from a grey background) by counting, floats by partitioning only
the values near the middle.
"""

from __future__ import annotations

import cv2
import numpy as np

from digitrec.preprocess.stats import histogram, percentile


def robust_sigma(deviation: np.ndarray) -> float:
    """1.4826 x the median absolute deviation from 0, on a ~40k-pixel grid sample (a median of
    every pixel of a photo costs milliseconds and says nothing more). `deviation` holds whole grey
    levels (integer-valued, of any dtype: grey minus a grey background)."""
    step = max(1, int(np.sqrt(deviation.size / 40_000)))
    return 1.4826 * median_whole(np.abs(deviation[::step, ::step]))


def median_whole(values: np.ndarray) -> float:
    """np.median of whole numbers (integer-valued, any dtype): the middle value, or the mean of
    the two middle ones."""
    if values.size == 0:
        return float("nan")
    n = values.size
    return sum(_order_statistics(values, [(n - 1) // 2, n // 2])) / 2


def median_u8(values: np.ndarray) -> float:
    """The lower of the two middle values (the middle one for an odd count) of uint8 values."""
    if values.size == 0:
        return 0.0
    return float(_order_statistics(values, [(values.size - 1) // 2])[0])


def percentile_whole(values: np.ndarray, q: float) -> float:
    """np.percentile(values, q) (its default, linear interpolation) of whole numbers
    (integer-valued, any dtype)."""
    n = values.size
    position = (n - 1) * (q / 100)  # as numpy computes it, in float64
    k = int(np.floor(position))
    a, b = _order_statistics(values, [k, min(k + 1, n - 1)])
    # numpy interpolates in a float input's own dtype (float64 for integers), from the nearer end.
    kind = values.dtype.type if values.dtype.kind == "f" else np.float64
    return _interpolate(kind(a), kind(b), position - k)


def _interpolate(a: np.floating, b: np.floating, t: float) -> float:
    """numpy's linear interpolation between neighbouring order statistics a <= b, in their own
    dtype, from the nearer end (np.percentile's default method, to the bit)."""
    return float(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)


def percentile_float(values: np.ndarray, q: float) -> float:
    """np.percentile(values, q) of a big float array, to the last bit, partitioning only the
    values a strided sample's order statistics bracket (as `median` does). No NaN."""
    flat = values.ravel()
    n = flat.size
    position = (n - 1) * (q / 100)  # as numpy computes it, in float64
    k = int(np.floor(position))
    found = _select(flat, k, min(k + 1, n - 1))
    if found is None:
        return float(np.percentile(flat, q))
    return _interpolate(found[0], found[-1], position - k)


def _order_statistics(values: np.ndarray, ranks: list[int]) -> list[int]:
    """Whole numbers -> the values at these 0-based ranks (ascending) in sorted order, by
    bisection on the value, one counting pass per step. A photo's deviations from its background
    are mostly 0, so the lowest candidate, tried first, is usually the answer: a few passes where
    a sort, or a histogram of 80k values piled into a few levels, takes much longer."""
    found = []
    low, top = int(values.min()), int(values.max())
    for rank in ranks:
        high = top  # the answer is in [low, high]
        if np.count_nonzero(values <= low) <= rank:
            low += 1
            while low < high:
                middle = (low + high) // 2
                if np.count_nonzero(values <= middle) > rank:
                    high = middle
                else:
                    low = middle + 1
        found.append(low)
    return found


def paper_noise(contrast: np.ndarray) -> float:
    """Standard deviation of the paper's grain in the contrast map, from differences between
    horizontal neighbours (Immerkaer-style): strokes and lighting change slowly or rarely from one
    pixel to the next, grain every time, so the median difference measures the grain alone, on a
    blank page as on a crowded one. `contrast`: a float map, or a uint8 one (whole levels, whose
    differences are then counted in a histogram: the same median, without converting every pixel)."""
    step = max(1, int(np.sqrt(contrast.size / 50_000)))  # a row sample: a median needs no more
    rows = contrast[::step]
    if rows.shape[1] < 2:
        return 0.0
    if rows.dtype == np.uint8:
        middle = percentile(histogram(cv2.absdiff(rows[:, 1:], rows[:, :-1])), 50)
    else:
        middle = median(np.abs(np.diff(rows, axis=1)))
    sigma: float = 1.4826 * middle / np.sqrt(2)  # np.float64: float32 maps compare to it in float64
    return sigma


def median(values: np.ndarray) -> float:
    """np.median(values), to the last bit: for a big array partitioning only part of it
    (Floyd and Rivest's selection: a strided sample's order statistics bracket the middle, and only
    the values between them are partitioned; a bracket that misses falls back to np.median), for a
    small one (a candidate digit's stroke ridge) without np.median's overhead, which was most of
    its cost there. No NaN."""
    flat = values.ravel()
    n = flat.size
    found = _select(flat, (n - 1) // 2, n // 2)
    if found is None:
        return float(np.median(flat))
    if flat.dtype not in (np.float32, np.float64):  # whole numbers: np.mean's float64, no overflow
        return float(np.mean(found))
    # As np.median averages the two middle values: their sum halved, in their own dtype.
    return float(found[0] if len(found) == 1 else (found[0] + found[1]) / 2)


def _select(flat: np.ndarray, first: int, last: int) -> np.ndarray | None:
    """The values of ranks first..last (0-based, ascending; a rank or two) of a 1-d array, found
    by partitioning only the values between two order statistics of a strided sample that
    bracket them (Floyd and Rivest's selection), or all of a small array; None when they miss."""
    n = flat.size
    if n < 8192:
        return np.partition(flat, [first, last])[first : last + 1] if n else None
    sample = np.sort(flat[:: n // 1024])
    spread = 64  # +-4 standard deviations of a sample median's rank, more towards either end
    at = first * len(sample) // n
    low, high = sample[max(0, at - spread)], sample[min(len(sample) - 1, at + spread)]
    below = np.count_nonzero(flat < low)
    inside = flat[(flat >= low) & (flat <= high)]
    ranks = [first - below, last - below]
    if ranks[0] < 0 or ranks[1] >= inside.size:
        return None
    part = np.partition(inside, ranks)
    return part[ranks[0] : ranks[1] + 1]
