"""train.cache: a trainer's drawn examples are reused only when made with the same settings."""

from __future__ import annotations

import numpy as np
import pytest

from digitrec.errors import DataError
from digitrec.train.cache import cached


def _roundtrip(path, made_with, build):
    return cached(path, made_with, build, lambda d: {"x": d[0], "y": d[1]}, lambda f: (f["x"], f["y"]))


def test_examples_are_drawn_once_and_read_back_the_same(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return np.arange(12, dtype=np.uint8).reshape(3, 4), np.array([1, 2, 3])

    path = tmp_path / "run" / "examples.npz"
    first = _roundtrip(path, {"numbers": 3, "seed": 0, "settings": '{"a": 1}'}, build)
    again = _roundtrip(path, {"numbers": 3, "seed": 0, "settings": '{"a": 1}'}, build)
    assert calls == [1]  # the second run read the file
    assert (first[0] == again[0]).all() and again[0].dtype == np.uint8 and again[1].tolist() == [1, 2, 3]


def test_a_cache_made_otherwise_is_refused_and_a_failed_build_leaves_nothing(tmp_path):
    path = tmp_path / "examples.npz"
    _roundtrip(path, {"scale": 0.5, "seed": 3}, lambda: (np.zeros(2), np.zeros(2)))
    with pytest.raises(DataError, match=r"made with --scale 0.5 --seed 3, not --scale 1.0 --seed 3"):
        _roundtrip(path, {"scale": 1.0, "seed": 3}, lambda: (np.zeros(2), np.zeros(2)))

    def broken():
        raise KeyboardInterrupt

    other = tmp_path / "other.npz"
    with pytest.raises(KeyboardInterrupt):
        _roundtrip(other, {"seed": 1}, broken)
    assert not other.exists()


def test_a_setting_added_later_reads_as_its_default_in_older_caches_and_is_checked_in_newer(tmp_path):
    def made(path, with_, defaults=None):
        return cached(
            path,
            with_,
            lambda: (np.zeros(2), np.zeros(2)),
            lambda d: {"x": d[0], "y": d[1]},
            lambda f: (f["x"], f["y"]),
            defaults=defaults,
        )

    old = tmp_path / "old.npz"
    made(old, {"numbers": 5})  # saved before `soft` existed
    made(old, {"numbers": 5, "soft": 0.0}, defaults={"soft": 0.0})  # reused: it was made without soft scans
    with pytest.raises(DataError, match="--soft 0.0, not --numbers 5 --soft 0.5"):
        made(old, {"numbers": 5, "soft": 0.5}, defaults={"soft": 0.0})
    soft = tmp_path / "soft.npz"
    made(soft, {"numbers": 5, "soft": 0.5}, defaults={"soft": 0.0})
    with pytest.raises(DataError, match="--soft 0.5, not --numbers 5 --soft 0.0"):  # never the soft data for soft=0
        made(soft, {"numbers": 5, "soft": 0.0}, defaults={"soft": 0.0})
