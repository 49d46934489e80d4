"""The real MNIST, fetched and verified by digitrec itself."""

import numpy as np
import pytest

pytestmark = pytest.mark.mnist


def test_real_mnist_shapes_counts_and_mean(mnist):
    train_x, train_y = mnist["train"]
    test_x, test_y = mnist["test"]
    assert train_x.shape == (60000, 28, 28) and train_x.dtype == np.uint8
    assert test_x.shape == (10000, 28, 28) and test_y.dtype == np.uint8
    assert np.bincount(train_y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(test_y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert train_x.mean() == pytest.approx(33.32, abs=0.01)


def test_loading_a_cached_split_reads_the_cache_only(real_data, monkeypatch):
    # What keeps loading fast (about 0.15 s; benchmarks/data_load.py times it): no fetch, no network.
    from digitrec import data

    def no_fetch(*args, **kwargs):
        raise AssertionError("load_mnist fetched although the cache is complete")

    monkeypatch.setattr(data, "fetch_mnist", no_fetch)
    images, labels = data.load_mnist("train")
    assert images.shape == (60000, 28, 28) and labels[:5].tolist() == [5, 0, 4, 1, 9]
