"""Test accuracy of several trained runs (e.g. the `best` recipe with seeds 0, 1, 2): each one alone,
their mean and spread, and the ensemble that averages their probabilities.

    .venv/bin/python benchmarks/ensemble.py runs/best-s0 runs/best-s1 runs/best-s2
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys

import torch

from digitrec.checkpoint import load_model
from digitrec.data import load_mnist
from digitrec.train.loop import predict_logits, to_tensor


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders or checkpoint files")
    args = parser.parse_args(argv)
    images, labels = load_mnist("test")
    x, y = to_tensor(images), torch.from_numpy(labels.astype("int64"))
    rows, probabilities = [], []
    for run in args.runs:
        model, meta = load_model(run)
        p = predict_logits(model, x).softmax(1)
        probabilities.append(p)
        accuracy = (p.argmax(1) == y).float().mean().item()
        rows.append((run, meta["recipe"], meta["seed"], meta.get("train_seconds") or 0.0, accuracy))
    ensemble = (torch.stack(probabilities).mean(0).argmax(1) == y).float().mean().item()

    print(f"# ensemble benchmark, {datetime.date.today()}; python benchmarks/ensemble.py {' '.join(args.runs)}")
    print(f"# machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}")
    print(f"{'run':<28} {'recipe':<8} {'seed':>4} {'train s':>8} {'test acc':>8}")
    for run, recipe, seed, seconds, accuracy in rows:
        print(f"{run:<28} {recipe:<8} {seed:>4} {seconds:>8.0f} {accuracy:>8.2%}")
    singles = [r[-1] for r in rows]
    spread = statistics.stdev(singles) if len(singles) > 1 else 0.0
    print(f"single models: mean {statistics.mean(singles):.2%} ± {spread:.2%} (n={len(singles)})")
    print(f"ensemble of {len(rows)} (mean probabilities): {ensemble:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
