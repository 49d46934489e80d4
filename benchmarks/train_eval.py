"""Train mlp, fast, the default cnn and the pytorch/examples MNIST network in one run, and print a
table: parameters, FLOPs, epochs, training wall time, test accuracy, and the training time until the
model first reaches 99.0% test accuracy (checked after every epoch, and every 100 steps for `fast`;
the checks themselves are not counted as training time).

The reference is pytorch/examples' mnist/main.py: conv32-conv64-maxpool-dropout-fc128-dropout-fc10,
Adadelta lr 1.0, StepLR gamma 0.7, batch 64, shuffled, on all 60,000 images (14 epochs there; capped
here with --reference-epochs, since it is slow). Test accuracy is only *measured* during these
runs; no model is selected by it.

    .venv/bin/python benchmarks/train_eval.py                       # all four, ~15+ minutes on 2 cores
    .venv/bin/python benchmarks/train_eval.py --models fast,reference --reference-epochs 2
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from digitrec.data import load_mnist
from digitrec.train import Callbacks, TrainConfig, load_recipe, train
from digitrec.train.config import AugmentConfig
from digitrec.train.loop import evaluate, split_data

TARGET = 0.99
FAST_CHECK_EVERY = 100  # steps


def matmul_gflops(n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - started) / 1e9


def reference_config(epochs: int, threads: int) -> TrainConfig:
    return TrainConfig(
        recipe="reference",
        architecture="reference",
        model={},
        epochs=epochs,
        batch_size=64,
        optimizer="adadelta",
        lr=1.0,
        weight_decay=0.0,
        schedule="step",
        step_gamma=0.7,
        label_smoothing=0.0,
        ema=0.0,
        val_size=0,
        threads=threads,
        augment=AugmentConfig(enabled=False),
    )


def run_one(name: str, config: TrainConfig, data: dict, check_every: int | None) -> dict:
    """Train in a temp folder, checking test accuracy after each epoch (and every `check_every` steps).
    Checks run inside callbacks, whose time the training loop leaves out of its clock; between two
    epochs the clock here is: seconds at the last epoch's end + time since then - time in checks."""
    test = split_data(config, data["train"], data["test"])["test"]
    clock = {"done": 0.0, "since": 0.0, "checks": 0.0}
    first: list = []

    def check(model, seconds: float, label: str) -> float:
        _, accuracy = evaluate(model, *test)
        if accuracy >= TARGET and not first:
            first.extend([round(seconds, 1), label])
        return accuracy

    def restart_clock(*_):
        clock["since"], clock["checks"] = time.perf_counter(), 0.0

    def on_step(step, model):
        clock["model"] = model
        if check_every and step % check_every == 0:
            paused = time.perf_counter()
            check(model, clock["done"] + paused - clock["since"] - clock["checks"], f"step {step}")
            clock["checks"] += time.perf_counter() - paused

    def on_epoch(row):
        clock["done"] = row["seconds"]
        accuracy = check(clock["model"], row["seconds"], f"epoch {row['epoch']}")
        print(
            f"  {name} epoch {row['epoch']}: {row['seconds']:.1f} s, test {accuracy:.2%}", file=sys.stderr, flush=True
        )
        restart_clock()

    with tempfile.TemporaryDirectory(prefix=f"digitrec-bench-{name}-") as folder:
        summary = train(
            config,
            Path(folder) / "run",
            data=data,
            callbacks=Callbacks(on_start=restart_clock, on_step=on_step, on_epoch=on_epoch),
        )
    n_train = 60000 - config.val_size  # images per epoch
    return {
        "model": name,
        "parameters": summary["parameters"],
        "mflops": summary["flops_per_image"] / 1e6,
        "epochs": summary["epochs"],
        "train_seconds": summary["train_seconds"],
        "test_accuracy": summary["test_accuracy"],
        "seconds_to_99": first[0] if first else None,
        "reached_at": first[1] if first else "never",
        "images_per_second": summary["epochs"] * n_train / summary["train_seconds"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="mlp,fast,cnn,reference")
    parser.add_argument("--reference-epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    data = {"train": load_mnist("train"), "test": load_mnist("test")}
    gflops_before = matmul_gflops()
    rows = []
    for name in args.models.split(","):
        if name == "reference":
            config = reference_config(args.reference_epochs, args.threads)
        else:
            config = load_recipe(name, overrides={"threads": args.threads})
        print(f"training {name} ...", file=sys.stderr, flush=True)
        rows.append(run_one(name, config, data, FAST_CHECK_EVERY if name == "fast" else None))
    gflops_after = matmul_gflops()

    print(f"# train_eval benchmark, {datetime.date.today()}")
    print(f"# command: python benchmarks/{Path(__file__).name} {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(
        f"# machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; matmul {gflops_before:.0f} GFLOP/s before, {gflops_after:.0f} after"
    )
    print()
    header = (
        f"{'model':<10} {'params':>9} {'MFLOP/img':>9} {'epochs':>6} {'train s':>8} {'test acc':>8} "
        f"{'s to 99.0%':>11}  {'reached at':<11} {'img/s':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        to99 = f"{r['seconds_to_99']:.1f}" if r["seconds_to_99"] is not None else "-"
        print(
            f"{r['model']:<10} {r['parameters']:>9,} {r['mflops']:>9.2f} {r['epochs']:>6} {r['train_seconds']:>8.1f} "
            f"{r['test_accuracy']:>8.2%} {to99:>11}  {r['reached_at']:<11} {r['images_per_second']:>6.0f}"
        )
    by_name = {r["model"]: r for r in rows}
    if "fast" in by_name and "reference" in by_name:
        fast, ref = by_name["fast"]["seconds_to_99"], by_name["reference"]["seconds_to_99"]
        if fast and ref:
            print(f"\nfast reaches 99.0% {ref / fast:.1f}x sooner than the reference (target: at least 3x)")
        elif fast:
            print(
                f"\nthe reference did not reach 99.0% within {args.reference_epochs} epochs "
                f"({by_name['reference']['train_seconds']:.0f} s); fast did in {fast:.1f} s"
            )
    if args.json:
        args.json.write_text(json.dumps({"gflops": [gflops_before, gflops_after], "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
