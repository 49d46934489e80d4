"""Order statistics of uint8 pixels from their histogram: the same numbers as numpy's
`percentile` / `median` (its default 'linear' method, to the bit), without sorting. A photo's
ink map has a million pixels, and sorting them for each median cost reading 20-25 ms a photo."""

from __future__ import annotations

import numpy as np

LEVELS = np.arange(256, dtype=np.float64)


def percentile_u8(values: np.ndarray, q: float) -> float:
    """np.percentile(values, q) of a non-empty uint8 array."""
    return _percentile(np.bincount(values.ravel(), minlength=256), LEVELS, q)


def median_abs_deviation_u8(values: np.ndarray) -> tuple[float, float]:
    """(np.median(values), np.median(np.abs(values - that median))) of a non-empty uint8 array."""
    counts = np.bincount(values.ravel(), minlength=256)
    median = _percentile(counts, LEVELS, 50)
    distance = np.abs(LEVELS - median)
    order = np.argsort(distance, kind="stable")
    return median, _percentile(counts[order], distance[order], 50)


def _percentile(counts: np.ndarray, levels: np.ndarray, q: float) -> float:
    """The q-th percentile of `counts[i]` copies of `levels[i]` (levels ascending)."""
    cumulative = np.cumsum(counts)
    n = int(cumulative[-1])
    index = q / 100 * (n - 1)
    lo = int(np.floor(index))
    x_lo = float(levels[np.searchsorted(cumulative, lo, side="right")])
    x_hi = float(levels[np.searchsorted(cumulative, min(lo + 1, n - 1), side="right")])
    t, diff = index - lo, x_hi - x_lo
    return x_hi - diff * (1 - t) if t >= 0.5 else x_lo + diff * t  # numpy's interpolation, bit for bit
