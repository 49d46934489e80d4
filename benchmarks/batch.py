"""`digitrec batch` on this machine: memory over many small files, local vs Ray on big photos.

    .venv/bin/python benchmarks/batch.py                                # the issue's sizes
    .venv/bin/python benchmarks/batch.py --small 1000,10000 --photos 300  # a quick look

Prints, in one run:
  * the machine: cores, load average, float32 peak GFLOP/s (measured as benchmarks/throughput.py does);
  * small files: `digitrec batch FOLDER` in a fresh process over 28x28 PNGs (MNIST test digits,
    cycled), for each count in --small: wall time, images/s, and the peak RSS of the command's own
    process and of all its processes together (sampled from /proc every 50 ms). Target: RSS grows
    < 100 MB from 1,000 to 100,000 files;
  * photos: one-megapixel JPEG photos of MNIST digits (benchmarks/throughput.py makes and caches them),
    through `run_batch` in this process, local with 1 and 2 workers, Ray with 1 and 2 actors:
    wall time including the engine's start-up, images/s, CPU ms per image (local: this process and
    the workers it reaped), model GFLOP/s, accuracy, and whether Ray's answers equal local's. Targets: Ray >= 0.7x local; local >= 250 photos/s (10,000 photos).
Other processes on the machine lower every number: the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import cpu_name, matmul_peaks, onnx_flops, photo_folder  # noqa: E402 - the sibling benchmark


def small_folder(root: Path, n: int) -> Path:
    """n 28x28 PNGs (MNIST test digits, cycled), 1,000 per subfolder, made once."""
    import cv2

    from digitrec.data import load_mnist

    folder = root / f"small-{n}"
    done = folder / ".complete"
    if not done.exists():
        images, _ = load_mnist("test")
        start = time.perf_counter()
        for i in range(n):
            sub = folder / f"{i // 1000:04d}"
            if i % 1000 == 0:
                sub.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(sub / f"{i:06d}.png"), 255 - images[i % len(images)])
        done.touch()
        print(f"  made {n:,} small PNGs in {folder} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return folder


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = [int(c) for t in Path(f"/proc/{p}/task").iterdir() for c in (t / "children").read_text().split()]
        except OSError:
            kids = []
        out += kids
        todo += kids
    return out


def run_cli_measured(args: list[str]) -> dict:
    """The real command in a fresh process; peak RSS of it and of it plus its workers."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "digitrec", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    main_peak = total_peak = 0.0
    while proc.poll() is None:
        main = rss_mb(proc.pid)
        main_peak = max(main_peak, main)
        total_peak = max(total_peak, main + sum(rss_mb(p) for p in descendants(proc.pid)))
        time.sleep(0.05)
    wall = time.perf_counter() - start
    err = proc.stderr.read()
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"digitrec {' '.join(args)} failed:\n{err}")
    return {"wall_s": wall, "main_rss_mb": main_peak, "all_rss_mb": total_peak}


def photos_run(engine: str, workers: int, folder: Path, out: Path) -> tuple[dict, dict]:
    from digitrec.batch import run_batch
    from digitrec.batch.sink import read_results
    from digitrec.bulk import BULK_SIDE

    start, cpu_start = time.perf_counter(), os.times()
    # --fast's reduced decode, as benchmarks/throughput.py measures `predict --fast`.
    summary = run_batch([str(folder)], str(out), engine=engine, workers=workers, side=BULK_SIDE)
    wall, cpu_end = time.perf_counter() - start, os.times()
    # CPU of this process and of the workers it reaped (the local pool's); Ray's actors are not ours.
    cpu = sum(cpu_end[:4]) - sum(cpu_start[:4]) if engine == "local" else float("nan")
    rows = {r["path"]: r for r in read_results(out).to_pylist()}
    return {
        "engine": engine,
        "workers": workers,
        "images": summary.answered,
        "wall_s": wall,
        "cpu_ms_per_image": cpu / max(1, summary.answered) * 1e3,
    }, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", default="1000,100000", help="counts of small files, comma-separated")
    parser.add_argument("--photos", type=int, default=10000, help="one-megapixel photos, local vs ray")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare, comma-separated")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "digitrec-batch-bench")
    parser.add_argument("--photo-dir", type=Path, default=Path(tempfile.gettempdir()) / "digitrec-throughput-photos")
    parser.add_argument("--seconds", type=float, default=1.0, help="time per peak measurement")
    args = parser.parse_args()

    from digitrec.runtime import Recognizer

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    recognizer = Recognizer()
    flops = recognizer.card.get("flops_per_image") or onnx_flops(recognizer.path)
    print(f"# digitrec batch, {datetime.datetime.now():%Y-%m-%d %H:%M}")
    print(
        f"machine: {cpu_name()}, {cores} cores, Python {platform.python_version()}; "
        f"load average at start {os.getloadavg()[0]:.2f} (1 min)"
    )
    peaks = matmul_peaks(cores, args.seconds)
    print(
        "float32 peak: " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()) + " GFLOP/s "
        f"(best {max(peaks.values()):.0f}); model {flops / 1e6:.1f} MFLOP per view"
    )

    print("\n## small files (28x28 PNG): `digitrec batch FOLDER --out OUT`, a fresh process")
    print(f"{'files':>9} {'wall s':>8} {'images/s':>9} {'RSS main MB':>12} {'RSS all MB':>11} {'load':>5}")
    small = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.small.split(",") if x):  # --small '' skips this part
            folder = small_folder(args.data_dir, n)
            r = run_cli_measured(["batch", str(folder), "--out", str(Path(tmp) / f"small-{n}.parquet")])
            small.append((n, r))
            print(
                f"{n:>9,} {r['wall_s']:>8.1f} {n / r['wall_s']:>9.0f} {r['main_rss_mb']:>12.0f} "
                f"{r['all_rss_mb']:>11.0f} {os.getloadavg()[0]:>5.2f}"
            )
    if len(small) > 1:
        (n0, a), (n1, b) = small[0], small[-1]
        growth = b["all_rss_mb"] - a["all_rss_mb"]
        print(
            f"RSS growth {n0:,} -> {n1:,} files: main {b['main_rss_mb'] - a['main_rss_mb']:+.0f} MB, "
            f"all processes {growth:+.0f} MB (target < 100 MB: {'met' if growth < 100 else 'NOT met'})"
        )

    folder, paths, labels = photo_folder(args.photo_dir, args.photos)
    truth = {str(p): int(d) for p, d in zip(paths, labels)}
    print(f"\n## {args.photos:,} one-megapixel JPEG photos: run_batch, wall time includes the engine's start-up")
    print(
        f"{'engine':>7} {'workers':>7} {'wall s':>8} {'images/s':>9} {'CPU ms/img':>10} {'GFLOP/s':>8} "
        f"{'accuracy':>9} {'load':>5}"
    )
    try:
        import ray.data  # noqa: F401

        engines = ["local", "ray"]
    except ImportError:
        engines = ["local"]
        print("(Ray is not installed: pip install 'digitrec[ray]' to compare it)")
    rates, answers = {}, {}
    views = len(recognizer.views(str(paths[0])))
    with tempfile.TemporaryDirectory() as tmp:
        for engine in engines:
            for w in (int(x) for x in args.workers.split(",")):
                r, rows = photos_run(engine, w, folder, Path(tmp) / f"{engine}-{w}.parquet")
                rate = r["images"] / r["wall_s"]
                rates[engine, w], answers[engine, w] = rate, rows
                accuracy = np.mean([rows[p]["digit"] == d for p, d in truth.items()])
                print(
                    f"{engine:>7} {w:>7} {r['wall_s']:>8.1f} {rate:>9.0f} {r['cpu_ms_per_image']:>10.1f} "
                    f"{rate * views * flops / 1e9:>8.2f} "
                    f"{accuracy:>9.1%} {os.getloadavg()[0]:>5.2f}"
                )
    workers = [int(x) for x in args.workers.split(",")]
    for w in workers:
        if ("ray", w) in rates:
            same = answers["ray", w] == answers["local", w]
            print(
                f"ray / local with {w}: {rates['ray', w] / rates['local', w]:.2f}x "
                f"(target >= 0.7x), answers identical: {same}"
            )
    if len(workers) > 1:
        for engine in engines:
            print(
                f"{engine}: {workers[-1]} workers / {workers[0]}: "
                f"{rates[engine, workers[-1]] / rates[engine, workers[0]]:.2f}x"
            )
    print(
        f"\nload average at end: {os.getloadavg()[0]:.2f} (1 min); other processes share these {cores} cores "
        f"({views} views per photo in the GFLOP/s)"
    )


if __name__ == "__main__":
    main()
