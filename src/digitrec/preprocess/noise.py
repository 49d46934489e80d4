"""Noise and medians for the preprocessing: robust, and cheap on a whole photo."""

from __future__ import annotations

import numpy as np


def robust_sigma(deviation: np.ndarray) -> float:
    """1.4826 x the median absolute deviation from 0, on a ~40k-pixel grid sample (a median of
    every pixel of a photo costs milliseconds and says nothing more)."""
    step = max(1, int(np.sqrt(deviation.size / 40_000)))
    return 1.4826 * float(np.median(np.abs(deviation[::step, ::step])))


def median_u8(values: np.ndarray) -> float:
    """Median of uint8 values from their histogram: linear time, no sort."""
    if values.size == 0:
        return 0.0
    counts = np.cumsum(np.bincount(values.ravel(), minlength=256))
    return float(np.searchsorted(counts, (values.size + 1) // 2))


def paper_noise(contrast: np.ndarray) -> float:
    """Standard deviation of the paper's grain in the contrast map, from differences between
    horizontal neighbours (Immerkaer-style): strokes and lighting change slowly or rarely from one
    pixel to the next, grain every time, so the median difference measures the grain alone, on a
    blank page as on a crowded one."""
    step = max(1, int(np.sqrt(contrast.size / 50_000)))  # a row sample: a median needs no more
    rows = contrast[::step]
    if rows.shape[1] < 2:
        return 0.0
    differences = np.abs(np.diff(rows, axis=1))
    return 1.4826 * float(np.median(differences)) / np.sqrt(2)
