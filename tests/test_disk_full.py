"""A full disk (issue 14 #11): every file digitrec writes for a user is written whole or not at all
(`digitrec.files`), and the command says which file it could not write and exits 1, no traceback.

The disk fills for real, without root: the command runs in a child process whose file-size limit
(RLIMIT_FSIZE) is smaller than what it writes, with SIGXFSZ ignored, so write() fails with EFBIG
part-way through the file, as it fails with ENOSPC on a full disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from digitrec.cli import main
main(sys.argv[2:])
"""


def run_limited(args: list[str], limit: int, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        **(env or {}),
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return subprocess.run(
        [sys.executable, "-c", LIMITED, str(limit), *args], capture_output=True, text=True, env=env, timeout=120
    )


def assert_clean_failure(result, target: Path) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert f"cannot write {target}" in result.stderr and "File too large" in result.stderr, result.stderr
    assert not target.exists(), "no partial or empty file is left"
    assert not list(target.parent.glob(".*.part")), "no temporary file is left"


@pytest.fixture
def digits(tmp_path) -> list[Path]:
    files = []
    for k in range(3):
        image = np.zeros((60, 40), np.uint8)
        cv2.line(image, (20, 8), (20 + k, 52), 255, 5)
        files.append(tmp_path / f"digit{k}.png")
        cv2.imwrite(str(files[-1]), 255 - image)
    return files


def test_predict_csv_on_a_full_disk_leaves_no_file(digits, tmp_path):
    target = tmp_path / "answers.csv"
    result = run_limited(["predict", "--csv", str(target), *map(str, digits)], limit=80)
    assert_clean_failure(result, target)
    ok = run_limited(["predict", "--csv", str(target), *map(str, digits)], limit=1 << 20)
    assert ok.returncode == 0, ok.stderr
    assert target.read_text().splitlines()[0] == "path,digit,confidence,top,uncertain,reason,error"


def test_read_debug_on_a_full_disk_is_the_images_error(tmp_path):
    page = np.full((80, 160), 255, np.uint8)
    for k, x in enumerate((20, 70, 120)):
        cv2.line(page, (x, 15), (x + 4 * k, 65), 0, 6)
    image = tmp_path / "number.png"
    cv2.imwrite(str(image), page)
    out = tmp_path / "debug"
    result = run_limited(["read", "--json", "--debug", str(out), str(image)], limit=1000)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    entry = json.loads(result.stdout)[0]
    assert entry["error"].startswith(f"cannot write {out / 'number.read.png'}") and "File too large" in entry["error"]
    assert list(out.iterdir()) == []


def test_data_fetch_on_a_full_disk_is_a_clear_error(tmp_path, real_mnist_env):
    from digitrec import data

    real = Path(real_mnist_env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "digitrec" / "mnist"
    if not all((real / spec.name).is_file() for spec in data.FILES.values()):
        pytest.skip("the real MNIST cache is needed (run `digitrec data fetch` once)")
    folder = tmp_path / "mnist-files"  # the user's copy (--data-dir), to be verified and cached
    folder.mkdir()
    for spec in data.FILES.values():
        os.symlink(real / spec.name, folder / spec.name)
    target = Path(os.environ["XDG_CACHE_HOME"]) / "digitrec" / "mnist" / data.FILES["train-images"].name
    result = run_limited(["data", "fetch", "--no-npm", "--data-dir", str(folder)], limit=1 << 20)
    assert_clean_failure(result, target)


def test_evaluate_on_a_full_disk_leaves_no_truncated_report(tmp_path, real_mnist_env):
    from predict_helpers import write_linear_onnx

    rng = np.random.default_rng(0)
    model = write_linear_onnx(tmp_path / "linear.onnx", rng.normal(0, 0.01, (784, 10)), np.zeros(10))
    env = {k: v for k, v in real_mnist_env.items()}
    env.setdefault("XDG_CACHE_HOME", str(Path.home() / ".cache"))  # read MNIST from the cache: nothing written there
    args = ["evaluate", str(model), "--limit", "200", "--json"]
    whole = run_limited([*args, "--out", str(tmp_path / "whole")], limit=1 << 30, env=env)
    assert whole.returncode == 0, whole.stderr
    sizes = {p.name: p.stat().st_size for p in (tmp_path / "whole").iterdir()}
    # room for every file but the report, which embeds every figure and so is the largest
    others = max(size for name, size in sizes.items() if name != "report.html")
    assert sizes["report.html"] > others + 1000
    out = tmp_path / "full"
    result = run_limited([*args, "--out", str(out)], limit=others + 500, env=env)
    assert_clean_failure(result, out / "report.html")
    assert not (out / "summary.json").exists()
