"""Who wrote each MNIST digit (`digitrec.writers`): numbers written by one hand, validation on
hands training never saw, and training that still runs without the writer files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from digitrec import writers


def _writer_file(folder, split: str, rows: list[tuple[int, int]]) -> None:
    """A QMNIST-style table: digit, series, writer, ... (8 tab-separated columns)."""
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / writers.FILES[split], "wt") as f:
        for digit, writer in rows:
            f.write(f"{digit}\t4\t{writer}\t0\t30\t0\t0\t0\n")


def test_writer_file_read_and_checked_against_the_labels(tmp_path, monkeypatch):
    monkeypatch.setattr(writers, "SIZES", {"train": 6, "test": 2})
    rows = [(5, 10), (0, 10), (4, 11), (1, 12), (9, 11), (2, 10)]
    _writer_file(tmp_path, "train", rows)
    labels = np.array([d for d, _ in rows])
    got = writers.mnist_writers("train", labels, tmp_path)
    assert got.tolist() == [10, 10, 11, 12, 11, 10]
    # A file of other digits (not MNIST's order) is not trusted; a missing file is no writers.
    assert writers.mnist_writers("train", labels[::-1], tmp_path) is None
    assert writers.mnist_writers("test", None, tmp_path) is None
    groups = writers.writer_groups(got)
    assert [g.tolist() for g in groups] == [[0, 1, 5], [2, 4], [3]]


def test_one_writers_digits_and_disjoint_validation_writers():
    writer_of = np.repeat(np.arange(50), 20)  # 50 writers, 20 digits each
    train, held = writers.split_writers(writer_of, 0.1, seed=0)
    assert len(held) == 5 and len(train) == 45
    train_writers = {int(writer_of[g[0]]) for g in train}
    assert not train_writers & {int(writer_of[g[0]]) for g in held}
    rng = np.random.default_rng(0)
    for length in (1, 4, 8):
        for _ in range(20):
            idx = writers.one_writer_digits(rng, train, length)
            assert len(idx) == length and len(set(writer_of[idx].tolist())) == 1
            assert int(writer_of[idx[0]]) in train_writers
            assert len(set(idx.tolist())) == length  # no digit image twice when the writer has enough


def test_training_numbers_are_each_one_writers(monkeypatch):
    from digitrec.train.lines import number_digits

    writer_of = np.repeat(np.arange(30), 10)
    groups = writers.writer_groups(writer_of)
    numbers = number_digits(np.random.default_rng(1), 200, len(writer_of), groups)
    assert all(len(set(writer_of[n].tolist())) == 1 for n in numbers)
    assert {len(n) for n in numbers} == set(range(1, 9))


def test_without_writer_files_training_data_is_made_with_a_warning_in_the_log(tmp_path, monkeypatch, real_data):
    from digitrec.train import line_reader

    monkeypatch.setenv(writers.ENV, str(tmp_path / "nowhere"))
    logged: list[str] = []
    config = line_reader.LineReaderConfig(numbers=30, seed=0)
    data = line_reader.build_data(config, workers=1, log=logged.append)
    assert len(data["train"][1]) >= 20 and len(data["test"][1]) >= 10
    assert logged[0].startswith("warning: no MNIST writer files")


@pytest.mark.skipif(writers.mnist_writers("train") is None, reason="../shared/data/mnist-writers not here")
def test_the_shared_writer_files_match_mnist(real_data):
    images, labels = real_data["train"]
    writer_of = writers.mnist_writers("train", labels)
    assert writer_of is not None and len(np.unique(writer_of)) == 539
    test_writers = writers.mnist_writers("test", real_data["test"][1])
    assert len(np.unique(test_writers)) == 297 and not set(writer_of.tolist()) & set(test_writers.tolist())
