"""benchmarks/read.py's --rescale, --blur and --faint: every image changed before the reader sees it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import load_benchmark, steepest_edge


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("read")


class _Shapes:
    """A recognizer that records the shape of what it is asked to read."""

    def __init__(self):
        self.seen = []

    def read(self, image):
        self.seen.append(image.shape if isinstance(image, np.ndarray) else image)
        raise __import__("digitrec").errors.ImageError("no digits found")


def test_rescale_resamples_paths_and_arrays_before_reading(bench, tmp_path, monkeypatch):
    page = np.full((60, 140, 3), 230, np.uint8)
    cv2.putText(page, "42", (20, 45), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (30, 30, 30), 3)
    cv2.imwrite(str(tmp_path / "n.png"), page)
    rec = _Shapes()
    assert bench.read_one(rec, tmp_path / "n.png") == ("", 0.0, None)
    assert rec.seen == [tmp_path / "n.png"]  # as given by default: the path itself
    monkeypatch.setattr(bench, "RESCALE", 0.5)
    bench.read_one(rec, tmp_path / "n.png")
    monkeypatch.setattr(bench, "RESCALE", 2.0)
    bench.read_one(rec, page)
    assert rec.seen[1:] == [(30, 70), (120, 280)]  # grey, half and twice the size
    small = bench.rescaled(page, 0.5)
    assert small.dtype == np.uint8 and small.min() < 100 < small.max()  # the ink survives the shrink


def test_blur_softens_every_image_at_its_own_size(bench, tmp_path, monkeypatch):
    page = np.full((60, 140, 3), 230, np.uint8)
    cv2.putText(page, "42", (20, 45), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (30, 30, 30), 3)
    cv2.imwrite(str(tmp_path / "n.png"), page)
    rec = _Shapes()
    monkeypatch.setattr(bench, "BLUR", 1.5)
    bench.read_one(rec, tmp_path / "n.png")
    assert rec.seen == [(60, 140)]  # read as an array of its own size, not as the path
    soft, sharp = bench.rescaled(page, 1.0, 1.5), bench.rescaled(page, 1.0)
    assert soft.shape == sharp.shape == (60, 140)
    assert steepest_edge(soft) < 0.6 * steepest_edge(sharp) and soft.min() > sharp.min()


def test_faint_keeps_the_paper_and_scales_the_inks_contrast_in_either_polarity(bench, monkeypatch):
    page = np.full((60, 140), 230, np.uint8)
    cv2.putText(page, "42", (20, 45), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 30, 3)
    for grey, paper in ((page, 230), (255 - page, 25)):  # dark ink on light paper, and light on dark
        faint = bench.rescaled(grey, 1.0, 0.0, 0.2)
        ink = grey != paper
        assert abs(np.median(faint[~ink]) - paper) <= 1  # the paper stays
        contrast = np.abs(faint[ink].astype(float) - paper).max()
        assert 0.2 * 200 - 8 <= contrast <= 0.2 * 200 + 8  # the ink 200 levels off, now a fifth
        assert 1.5 < np.std(faint[~ink].astype(float)) < 2.5  # and a camera's grain
        assert np.array_equal(faint, bench.rescaled(grey, 1.0, 0.0, 0.2))  # drawn the same each time
    seen = []

    class _Keep:
        def read(self, image):
            seen.append(image)
            raise __import__("digitrec").errors.ImageError("no digits found")

    monkeypatch.setattr(bench, "FAINT", 0.2)
    bench.read_one(_Keep(), page)
    assert np.array_equal(seen[0], bench.rescaled(page, 1.0, 0.0, 0.2))  # what the reader got was faint
    assert 230 - seen[0].min() < 0.3 * (230 - page.min())
