"""Noise and medians for the preprocessing: robust, and cheap on a whole photo."""

from __future__ import annotations

import cv2
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
    """Robust standard deviation of the paper's contrast. Measured on the paper side of an Otsu
    split, since ink can cover more than half of a tightly cropped digit."""
    step = max(1, int(np.sqrt(contrast.size / 50_000)))  # a grid sample: a median needs no more
    sample = np.ascontiguousarray(contrast[::step, ::step])
    values = np.clip(sample * 255, 0, 255).astype(np.uint8)
    split, _ = cv2.threshold(values, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    paper = sample[values <= split]
    if paper.size == 0:
        return 0.0
    return 1.4826 * float(np.median(np.abs(paper - np.median(paper))))
