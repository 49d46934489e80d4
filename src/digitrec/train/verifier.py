"""Train the reader's segmentation verifier and export it as ONNX.

    digitrec train --recipe verifier [--out runs/verifier] [--set numbers=5000]
    python -m digitrec.train.verifier [--out runs/verifier] [--numbers 5000] [--export PATH]

Data (`digitrec.train.segments`): the candidate digits the reader sees when it reads numbers made
of MNIST *training* digits 0-54,999 (training) and 55,000-59,999 (the held-out 'test' set, never
the MNIST test set, which the reading benchmark uses), plus 20,000 plain MNIST training digits.
The candidates are cached in the run folder (`candidates.npz`, with the --numbers and --seed that
made them), so `--force` or `--resume` only trains.
Recipe: `configs/verifier.toml` (the cnn design, narrower, 11 classes); the training loop is the
same as every recipe's (`digitrec.train.loop`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from digitrec.errors import DigitrecError

HELD_OUT = 55_000  # training digits from here on make the verifier's test numbers
PLAIN_DIGITS = 20_000
# Most candidates are not one digit (every run of atoms is one); three of them per digit is plenty.
NEGATIVES_PER_DIGIT = 3


def build_data(numbers: int, seed: int, soft: float = 0.0, log=print) -> dict:
    from digitrec.data import load_mnist
    from digitrec.train.segments import NOT_ONE_DIGIT, candidate_examples

    images, labels = load_mnist("train")
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    x_train, y_train = candidate_examples(rng, images[:HELD_OUT], labels[:HELD_OUT], numbers, soft=soft)
    log(f"{len(y_train):,} training candidates from {numbers:,} numbers ({time.perf_counter() - t0:.0f} s)")
    negative, positive = np.nonzero(y_train == NOT_ONE_DIGIT)[0], np.nonzero(y_train != NOT_ONE_DIGIT)[0]
    negative = rng.choice(negative, min(len(negative), NEGATIVES_PER_DIGIT * len(positive)), replace=False)
    keep = np.sort(np.concatenate([positive, negative]))
    x_train, y_train = x_train[keep], y_train[keep]
    # The held-out candidates stay sharp (no `soft`): test accuracies compare across recipes.
    x_test, y_test = candidate_examples(rng, images[HELD_OUT:], labels[HELD_OUT:], max(100, numbers // 10))
    plain = rng.choice(HELD_OUT, PLAIN_DIGITS, replace=False)
    x_train, y_train = (
        np.concatenate([x_train, images[plain]]),
        np.concatenate([y_train, labels[plain].astype(np.int64)]),
    )
    return {"train": (x_train, y_train), "test": (x_test, y_test)}


def candidate_settings(numbers: int, seed: int, soft: float) -> dict:
    """What decides the candidates: their cache's key, and what the verifier's card says made them."""
    return {"numbers": numbers, "seed": seed, "soft": soft}


def _cached_data(out: Path, numbers: int, seed: int, soft: float = 0.0) -> dict:
    """The candidates for (numbers, seed, soft): from `out`/candidates.npz when it was made with the same,
    else generated and saved there (`train.cache`)."""
    from digitrec.train.cache import cached

    return cached(
        out / "candidates.npz",
        candidate_settings(numbers, seed, soft),
        lambda: build_data(numbers, seed, soft),
        lambda data: {
            "x_train": data["train"][0],
            "y_train": data["train"][1],
            "x_test": data["test"][0],
            "y_test": data["test"][1],
        },
        lambda f: {"train": (f["x_train"], f["y_train"]), "test": (f["x_test"], f["y_test"])},
        defaults={"soft": 0.0},  # candidates made before soft scans existed
    )


def train_verifier(
    out: Path,
    *,
    numbers: int = 5000,
    seed: int = 0,
    soft: float = 0.0,
    epochs: int | None = None,
    threads: int = 0,
    limit: int = 0,
    resume: bool = False,
    force: bool = False,
    export_to: Path | None = None,
    config_file: Path | None = None,
    log=print,
) -> dict:
    """Train the verifier (configs/verifier.toml, `config_file` over it) in the run folder `out`;
    `export_to`: also write the ONNX model there. -> the training summary. Raises DigitrecError
    (a run already there, a cache made otherwise); prints only through `log`."""
    from digitrec.export import export_onnx
    from digitrec.paths import CHECKPOINT_NAME, CONFIG_NAME, METRICS_NAME
    from digitrec.train import load_recipe, train
    from digitrec.train.config import share

    overrides = {"seed": seed, "threads": threads, "limit": limit}
    if epochs:
        overrides["epochs"] = epochs
    config = load_recipe("verifier", config_file, overrides=overrides)
    soft = share(soft, "soft", "verifier")
    if (out / CHECKPOINT_NAME).exists() and not (resume or force):
        raise DigitrecError(
            f"{out / CHECKPOINT_NAME} already exists: pass --resume to continue that run, "
            "--force to train again, or choose another --out"
        )
    data = _cached_data(out, numbers, seed, soft)
    if force:
        for name in (CHECKPOINT_NAME, METRICS_NAME, CONFIG_NAME):
            (out / name).unlink(missing_ok=True)
    counts = np.bincount(data["train"][1], minlength=11)
    log(f"training set: {len(data['train'][1]):,} ({counts[10]:,} not one digit); test {len(data['test'][1]):,}")
    summary = train(config, out, data=data, resume=resume)
    log(
        f"verifier: test accuracy {summary['test_accuracy']:.4f} on held-out candidates, "
        f"{summary['train_seconds']:.0f} s of training"
    )
    if export_to:
        made = candidate_settings(numbers, seed, soft)
        card = export_onnx(
            out, export_to, name="digitrec-verifier", test_data=data["test"], log=log, card_extra={"candidates": made}
        )
        log(f"wrote {card['path']} ({card['bytes']:,} bytes)")
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/verifier"))
    parser.add_argument("--numbers", type=int, default=5000, help="generated numbers for the training candidates")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--soft", type=float, default=0.0, help="share of the numbers scanned soft or at a low resolution"
    )
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="train on only N candidates (smoke tests)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument(
        "--force", action="store_true", help="train again from scratch in --out (the candidates there are kept)"
    )
    parser.add_argument("--export", type=Path, default=None, help="also write the ONNX model here")
    args = parser.parse_args(argv)
    train_verifier(
        args.out,
        numbers=args.numbers,
        seed=args.seed,
        soft=args.soft,
        epochs=args.epochs,
        threads=args.threads,
        limit=args.limit,
        resume=args.resume,
        force=args.force,
        export_to=args.export,
    )


if __name__ == "__main__":
    try:
        main()  # the script's own output is main's; the functions above only return and raise
    except DigitrecError as exc:
        sys.exit(f"Error: {exc}")
