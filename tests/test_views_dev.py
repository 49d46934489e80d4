"""benchmarks/views_dev.py: the synthetic dev set it draws and the candidates it compares (the
stroke switch of `fit_and_centre` exists for it), at a tiny scale."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import load_benchmark

from digitrec.preprocess import fit_and_centre
from digitrec.preprocess.digit import RENDER, STROKE_RANGE
from digitrec.preprocess.ink import stroke_width


@pytest.fixture(scope="module")
def views_dev():
    return load_benchmark("views_dev")


def width(digit: np.ndarray) -> float:
    return stroke_width((cv2.resize(digit, None, fx=RENDER, fy=RENDER) > 127).astype(np.uint8)) / RENDER


def test_the_stroke_switch_keeps_a_markers_width():
    crop = np.zeros((100, 60), np.uint8)
    cv2.line(crop, (30, 5), (30, 95), 255, 24)  # a marker's 1: 24 px of 100, 4.8 px in the 20 px box
    assert STROKE_RANGE[0] - 0.6 <= width(fit_and_centre(crop)) <= STROKE_RANGE[1] + 0.6
    assert width(fit_and_centre(crop, normalize_strokes=False)) > STROKE_RANGE[1] + 1


def test_a_flagged_one_gets_its_flag(views_dev):
    one = np.zeros((28, 28), np.uint8)
    cv2.line(one, (14, 4), (14, 24), 255, 2)
    flagged = views_dev.flagged_one(np.random.default_rng(0), one)
    assert flagged.shape == (28, 28) and not one[:, :12].any()
    assert (flagged[:14, :12] > 60).sum() >= 3  # ink left of the stem, in its upper half: the flag


@pytest.mark.mnist
def test_the_table_has_every_kind_and_candidate(views_dev, mnist, real_data, capsys):
    assert views_dev.main(["--scale", "0.004", "--kinds"]) == 0
    out = capsys.readouterr().out
    for kind in ("digit", "cheque-d", "fat-scan", "flag1-di", "flag1-sc"):
        assert kind in out
    assert "blur" in out  # the blurred scans, where the default fell below plain
    crops = [*views_dev.CROPS, "plain"]
    rows = [line for line in out.splitlines() if line.split(",")[0] in crops]
    assert len(rows) == 4 * len(crops)  # strokes normalised or as written, one view or three
    assert rows[1].startswith("product, normalised, 3 views averaged")  # the product's default
    totals = [int(row.split()[-1]) for row in rows]
    images = int(next(line for line in out.splitlines() if line.startswith("images")).split()[-1])
    assert images >= 20 and all(0 < t <= images for t in totals)
