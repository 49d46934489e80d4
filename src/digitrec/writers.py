"""Who wrote each MNIST digit, so that a generated number is written by one hand and validation
uses hands that training never saw.

`../shared/data/mnist-writers/` (QMNIST, Yadav & Bottou 2019) gives each MNIST digit its NIST
writer: 539 writers in MNIST train (19-131 digits each), 297 others in MNIST test. A real number
is written by one person, so its digits share slant, size and stroke; a number of random MNIST
digits mixes hands, and a validation split by index shares writers with training (a reader tuned
on it learns those writers, not handwriting). numpy only; nothing here needs the files: without
them `writer_groups` returns None and the callers compose numbers from random digits.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

# Where the writer files are: DIGITREC_MNIST_WRITERS, else ../shared beside the checkout.
ENV = "DIGITREC_MNIST_WRITERS"
FILES = {"train": "qmnist-train-labels.tsv.gz", "test": "qmnist-test-labels.tsv.gz"}
SIZES = {"train": 60_000, "test": 10_000}  # MNIST's images; the test file has QMNIST's 50,000 more
WRITER_COLUMN, LABEL_COLUMN = 2, 0


def writers_dir() -> Path:
    env = os.environ.get(ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist-writers"


def mnist_writers(split: str, labels: np.ndarray | None = None, directory: Path | None = None) -> np.ndarray | None:
    """-> int64 (N,) the NIST writer of each MNIST `split` image, or None when the file is not
    there or does not match MNIST (`labels`, when given, must equal the file's digit column)."""
    path = (directory or writers_dir()) / FILES[split]
    if not path.is_file():
        return None
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, dtype=np.int64, max_rows=SIZES[split], usecols=(LABEL_COLUMN, WRITER_COLUMN))
    if len(table) != SIZES[split] or (labels is not None and not np.array_equal(table[:, 0], labels)):
        return None
    return table[:, 1]


def writer_groups(writer_of: np.ndarray) -> list[np.ndarray]:
    """(N,) writer ids -> one int64 array of image indices per writer (writers in id order)."""
    order = np.argsort(writer_of, kind="stable")
    _, starts = np.unique(writer_of[order], return_index=True)
    return np.split(order, starts[1:])


def split_writers(writer_of: np.ndarray, held_out: float, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """-> (training writers' groups, held-out writers' groups): `held_out` of the writers, chosen
    by `seed`, are kept out whole, so validation reads hands training never saw."""
    groups = writer_groups(writer_of)
    rng = np.random.default_rng(seed)
    out = set(rng.choice(len(groups), max(1, round(held_out * len(groups))), replace=False).tolist())
    return [g for k, g in enumerate(groups) if k not in out], [g for k, g in enumerate(groups) if k in out]


def one_writer_digits(rng: np.random.Generator, groups: list[np.ndarray], length: int) -> np.ndarray:
    """Indices of `length` digits written by one writer (chosen in proportion to how much they
    wrote), without repeating a digit image unless the writer wrote fewer than `length`."""
    sizes = np.array([len(g) for g in groups], np.float64)
    group = groups[int(rng.choice(len(groups), p=sizes / sizes.sum()))]
    return rng.choice(group, length, replace=len(group) < length)
