"""preprocess.stats: percentiles of uint8 pixels from their histogram, bit for bit numpy's."""

from __future__ import annotations

import numpy as np
import pytest

from digitrec.preprocess.stats import histogram, median_abs_deviation, percentile


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
