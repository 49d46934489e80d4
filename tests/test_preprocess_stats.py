"""preprocess.stats: percentiles of uint8 pixels from their histogram, bit for bit numpy's."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from digitrec.preprocess.stats import histogram, median_abs_deviation, otsu_level, percentile


@pytest.mark.parametrize("seed", range(40))
def test_the_histogram_gives_numpys_percentiles_and_median_deviation_exactly(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    if seed % 2:  # paper-like: most pixels near 0, a tail of ink
        values = np.clip(rng.normal(8, 6, n), 0, 255).astype(np.uint8)
    else:
        values = rng.integers(0, 256, n).astype(np.uint8)
    for q in (0, 10, 50, 90, 99.5, 100):
        assert percentile(histogram(values), q) == np.percentile(values, q)
    median = np.median(values)
    assert median_abs_deviation(histogram(values)) == (median, np.median(np.abs(values - median)))


def test_the_histogram_counts_every_pixel_of_a_view_and_of_a_photo_sized_map():
    rng = np.random.default_rng(0)
    photo = np.clip(rng.normal(12, 20, (750, 1000)), 0, 255).astype(np.uint8)  # OpenCV counts it
    for values in (photo, photo[::3, 1::2], photo[:, 7], np.zeros(0, np.uint8)):  # views, a column, none
        counts = histogram(values)
        assert counts.dtype == np.int64 and np.array_equal(counts, np.bincount(values.ravel(), minlength=256))


@pytest.mark.parametrize("seed", range(8))
def test_otsus_level_from_the_histogram_is_opencvs(seed):
    """Uniform, one-peak, two-peak (paper and ink) and two- or three-value pixels: the same level
    as cv2.threshold's Otsu on the pixels themselves."""
    rng = np.random.default_rng(seed)
    for _ in range(100):
        n = int(rng.integers(1, 20_000))
        values = [
            rng.integers(0, 256, n),
            rng.normal(rng.uniform(0, 255), rng.uniform(0.1, 60), n),
            np.r_[rng.normal(40, 10, n), rng.normal(200, 20, n // 5)],
            rng.choice(rng.integers(0, 256, int(rng.integers(1, 4))), n),
        ][int(rng.integers(4))]
        values = np.clip(values, 0, 255).astype(np.uint8)
        level, _ = cv2.threshold(values.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        assert otsu_level(histogram(values)) == level
