"""benchmarks/external.py: its 'plain' pipeline, and the table it prints, on a small folder made here
in the external set's layout (the shared set itself is never needed by the tests)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import load_benchmark

from digitrec.errors import NoInk


@pytest.fixture(scope="module")
def external():
    return load_benchmark("external")


def written(label: int) -> np.ndarray:
    """A dark pen digit (a ring 0 or a stroke 1) on light grey paper, 60x90, off centre."""
    page = np.full((90, 60), 215, np.uint8)
    if label:
        cv2.line(page, (22, 20), (26, 70), 40, 4)
    else:
        cv2.ellipse(page, (25, 45), (12, 22), 0, 0, 360, 40, 4)
    return page


def test_plain_fits_the_ink_box_into_20x20_and_centres_it(external, tmp_path):
    cv2.imwrite(str(tmp_path / "zero.png"), written(0))
    mnist = external.plain_28((tmp_path / "zero.png").read_bytes())
    assert mnist.shape == (28, 28) and mnist.dtype == np.uint8
    ys, xs = np.nonzero(mnist > 40)
    assert ys.max() - ys.min() + 1 in (19, 20, 21)  # the ring's height, the longer side, is 20 px
    assert xs.max() - xs.min() + 1 < 16  # ... its aspect kept
    m = cv2.moments(mnist.astype(np.float32))
    assert abs(m["m10"] / m["m00"] - 14) < 0.6 and abs(m["m01"] / m["m00"] - 14) < 0.6
    assert mnist[0].max() == 0 and mnist[:, 0].max() == 0  # the paper is gone, not grey


def test_plain_refuses_a_blank_page(external):
    with pytest.raises(NoInk):
        external.plain_28(np.full((40, 40), 200, np.uint8))


def test_the_table_has_the_plain_column_beside_naive_and_digitrec(external, tmp_path, capsys):
    folder = tmp_path / "pens"
    folder.mkdir()
    rows = ["path,label,source,notes"]
    for k in range(6):
        cv2.imwrite(str(folder / f"{k}.png"), written(k % 2))
        rows.append(f"{k}.png,{k % 2},pens,")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    external.main(["--data", str(tmp_path), "--sources", "pens"])
    out = capsys.readouterr().out
    assert "naive   plain digitrec" in out
    row = next(line for line in out.splitlines() if line.startswith("pens"))
    images, _naive, plain, digitrec = row.split()[1:5]
    assert (images, plain, digitrec) == ("6", "100.0%", "100.0%")  # plain and digitrec read all six
    assert "mean of sources" in out
