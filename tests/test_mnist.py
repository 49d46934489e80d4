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


def test_loading_is_fast(real_data):
    import time

    from digitrec import data

    start = time.perf_counter()
    data.load_mnist("train")
    # generous bound for a loaded shared machine; typically ~0.15 s
    assert time.perf_counter() - start < 2.0
