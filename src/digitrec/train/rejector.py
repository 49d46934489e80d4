"""Train the rejector ("is this one digit?") and export it as ONNX with its threshold.

    python -m digitrec.train.rejector [--out runs/rejector] [--export PATH] [--scale 1.0]

Data (`digitrec.train.negatives`): digits, letters and symbols, scribbles, shapes, blank pages and
digit pairs, each drawn as a real image and preprocessed as `predict` does. Training uses some font
families and MNIST writers; validation the others (held-out fonts; MNIST *training* images of
writers kept apart, from the QMNIST writer ids in ../shared/data/mnist-writers when it is there,
else the last 5,000 training images, as the verifier does). The MNIST test set is never used.
The examples are cached in the run folder (`examples.npz`, with --scale and --seed).

The threshold on P(digit) is chosen on the validation digits (`DIGITS_FLAGGED`: the share of them
the rejector may flag) and written in the card, with the share of each validation kind flagged;
--export also grafts the reason head on (`train.reason_head`: why an input is flagged).
Recipe: `configs/rejector.toml`; the training loop is every recipe's (`digitrec.train.loop`).
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from pathlib import Path

import numpy as np

from digitrec.errors import DigitrecError

# The QMNIST table of who wrote each MNIST training image (a developer's copy; optional).
WRITERS_FILE = Path(__file__).resolve().parents[4] / "shared" / "data" / "mnist-writers" / "qmnist-train-labels.tsv.gz"
HELD_OUT_WRITERS = 5  # writer id % 5 == 0: a fifth of the writers only in validation
HELD_OUT = 55_000  # without the writer table: training images from here on are validation's
# Examples per kind at --scale 1 (about 8 minutes of drawing and preprocessing on a quiet core).
TRAIN_COUNTS = {
    "digit": 10_000,
    "font-digit": 1_500,
    "scan-digit": 7_500,
    "cut-digit": 2_500,
    "cheque-digit": 2_500,
    "photo-digit": 5_000,
    "pen-digit": 2_500,
    "letter": 10_000,
    "scribble": 4_000,
    "scrawl": 2_000,
    "shape": 1_500,
    "blank": 2_500,
    "pair": 4_000,
}
# Kinds added later, drawn with their own generator after all the others, so that adding one leaves
# every example of the kinds above as it was (a retrain's change is then the new kind's doing).
LATER_COUNTS = {"number": 2_000}
VALIDATION_SHARE = 0.25  # validation examples per training example, kind by kind
# The rejector may flag this share of the validation digits (held-out writers and fonts): real
# digits are further from MNIST than those, and the issue allows 2% of them flagged.
DIGITS_FLAGGED = 0.01
# A drawn digit that the shipped digit model reads at under this probability was spoiled by its
# rendering (a faint pencil on grainy paper whose specks were taken for the digit): not a fair
# example of a digit, so left out of both sets (0.7% of them).
READABLE = 0.5


def writer_split(n_images: int, writers_file: Path | None) -> tuple[np.ndarray, np.ndarray, str]:
    """-> (training indices, validation indices, how they were split) of the MNIST training images."""
    if writers_file is not None and writers_file.is_file():
        with gzip.open(writers_file, "rt") as f:
            writer = np.array([int(line.split("\t")[2]) for line in f])
        if len(writer) == n_images:
            held = writer % HELD_OUT_WRITERS == 0
            return (
                np.nonzero(~held)[0],
                np.nonzero(held)[0],
                f"by writer (QMNIST writer id % {HELD_OUT_WRITERS} == 0 held out)",
            )
    return np.arange(HELD_OUT), np.arange(HELD_OUT, n_images), f"by index (training images {HELD_OUT:,}+ held out)"


def build_data(scale: float, seed: int, writers_file: Path | None, log=print) -> dict:
    from digitrec.data import load_mnist
    from digitrec.train.negatives import installed_fonts, make_examples, split_fonts

    images, labels = load_mnist("train")
    train_idx, val_idx, split = writer_split(len(images), writers_file)
    train_fonts, val_fonts = split_fonts(installed_fonts())
    log(
        f"MNIST split {split}; fonts: {len({f.family for f in train_fonts})} families for training, held out: "
        + ", ".join(sorted({f.family for f in val_fonts}))
    )
    t0 = time.perf_counter()

    def draw(rng: np.random.Generator, table: dict[str, int], training: bool) -> tuple[np.ndarray, ...]:
        """The examples of `table`'s kinds for training (training fonts and writers) or validation."""
        share, fonts, idx = (1.0, train_fonts, train_idx) if training else (VALIDATION_SHARE, val_fonts, val_idx)
        counts = {k: max(1, round(n * scale * share)) for k, n in table.items()}
        return make_examples(rng, counts, fonts, images[idx], labels[idx], log)

    def joined(first: tuple[np.ndarray, ...], second: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        return tuple(np.concatenate([a, b]) for a, b in zip(first, second))

    rng, later = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    log("training examples:")
    train = draw(rng, TRAIN_COUNTS, training=True)
    log("validation examples (held-out fonts and writers):")
    val = draw(rng, TRAIN_COUNTS, training=False)
    log("later kinds, training and validation:")
    x, y, _ = joined(train, draw(later, LATER_COUNTS, training=True))
    xv, yv, kv = joined(val, draw(later, LATER_COUNTS, training=False))
    log(f"drawn and preprocessed in {time.perf_counter() - t0:.0f} s")
    return {
        "train": (x, y),
        "test": (xv, yv),
        "test_kinds": kv,
        "split": split,
        "held_out_fonts": sorted({f.family for f in val_fonts}),
    }


def _cached_data(out: Path, scale: float, seed: int, writers_file: Path | None) -> dict:
    """The examples for (scale, seed, the kinds' counts): from `out`/examples.npz when made with the
    same, else drawn and saved there (`train.cache`)."""
    from digitrec.train.cache import cached

    def to_arrays(data: dict) -> dict:
        return {
            "x_train": data["train"][0],
            "y_train": data["train"][1],
            "x_test": data["test"][0],
            "y_test": data["test"][1],
            "kinds_test": data["test_kinds"],
            "split": np.array(data["split"]),
            "held_out_fonts": np.array(data["held_out_fonts"]),
        }

    def from_arrays(f: dict) -> dict:
        return {
            "train": (f["x_train"], f["y_train"]),
            "test": (f["x_test"], f["y_test"]),
            "test_kinds": f["kinds_test"],
            "split": str(f["split"]),
            "held_out_fonts": list(f["held_out_fonts"]),
        }

    # The kinds and their counts decide the examples too: a cache from before a kind was added
    # (`number`, session 11) would train without it.
    kinds = " ".join(f"{kind}:{n}" for kind, n in {**TRAIN_COUNTS, **LATER_COUNTS}.items())
    return cached(
        out / "examples.npz",
        {"scale": float(scale), "seed": seed, "kinds": kinds},
        lambda: build_data(scale, seed, writers_file),
        to_arrays,
        from_arrays,
    )


def readable_digits(data: dict) -> dict:
    """Drop the digit examples the shipped digit model cannot read (see READABLE), in both sets.
    The shipped rejector was filtered with `cnn`, the digit model shipped then (now
    `assets/reader_digits.onnx`); retrained today, the filter is `cnn_mix`'s, so a few examples differ."""
    from digitrec.runtime import Recognizer

    model = Recognizer(reject=False)
    out = dict(data)
    for name in ("train", "test"):
        x, y = data[name]
        spoiled = np.zeros(len(y), bool)
        digits = np.nonzero(y == 0)[0]
        spoiled[digits] = model.predict_probabilities(x[digits]).max(axis=1) < READABLE
        out[name] = (x[~spoiled], y[~spoiled])
        if name == "test":
            out["test_kinds"] = data["test_kinds"][~spoiled]
        print(f"{name}: {spoiled.sum():,} of {len(digits):,} digits left out as unreadable")
    return out


def choose_threshold(p_digit: np.ndarray, flagged: float = DIGITS_FLAGGED) -> float:
    """P(digit) of validation digits -> the threshold under which only `flagged` of them fall."""
    return float(np.quantile(p_digit, flagged))


def flag_rates(probabilities: np.ndarray, kinds: np.ndarray, threshold: float) -> dict[str, float]:
    """(N, 4) probabilities, (N,) kinds -> per kind, the share flagged (P(digit) < threshold)."""
    from digitrec.reject import DIGIT

    flagged = probabilities[:, DIGIT] < threshold
    return {str(k): round(float(flagged[kinds == k].mean()), 4) for k in sorted(set(kinds.tolist()))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/rejector"))
    parser.add_argument("--scale", type=float, default=1.0, help="examples per kind, as a multiple of TRAIN_COUNTS")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seeds the examples and the training (default: examples 0, training the recipe's `seed`)",
    )
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--config", type=Path, default=None, help="a TOML file over configs/rejector.toml")
    parser.add_argument("--writers", type=Path, default=WRITERS_FILE, help="QMNIST writer table (optional)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--force", action="store_true", help="train again from scratch in --out (examples kept)")
    parser.add_argument("--export", type=Path, default=None, help="also write the ONNX model here")
    args = parser.parse_args(argv)

    from digitrec.paths import CHECKPOINT_NAME, CONFIG_NAME, METRICS_NAME
    from digitrec.train import load_recipe, train

    if (args.out / CHECKPOINT_NAME).exists() and not (args.resume or args.force):
        raise DigitrecError(
            f"{args.out / CHECKPOINT_NAME} already exists: pass --resume to continue that run, "
            "--force to train again, or choose another --out"
        )
    data = readable_digits(_cached_data(args.out, args.scale, args.seed or 0, args.writers))
    # A --config's own `seed` holds unless --seed is given (it was overridden by --seed's default 0).
    overrides: dict[str, object] = {"threads": args.threads, **({} if args.seed is None else {"seed": args.seed})}
    if args.epochs:
        overrides["epochs"] = args.epochs
    config = load_recipe("rejector", args.config, overrides=overrides)
    # The loop's own validation images come out of the training examples: a tenth at most (--scale).
    config = load_recipe(
        "rejector", args.config, overrides={**overrides, "val_size": min(config.val_size, len(data["train"][1]) // 10)}
    )
    if args.force:
        for name in (CHECKPOINT_NAME, METRICS_NAME, CONFIG_NAME):
            (args.out / name).unlink(missing_ok=True)
    counts = np.bincount(data["train"][1], minlength=4)
    print(f"training set: {len(data['train'][1]):,} (per class {counts.tolist()}); validation {len(data['test'][1]):,}")
    summary = train(config, args.out, data={"train": data["train"], "test": data["test"]}, resume=args.resume)
    print(
        f"rejector: validation accuracy {summary['test_accuracy']:.4f} (4 classes), {summary['train_seconds']:.0f} s of training"
    )
    if args.export:
        export(args.out, args.export, data)


def threshold_section(path: Path, data: dict, log=print) -> dict:
    """The threshold of the rejector file at `path` by the rule (`choose_threshold`), computed from
    the file itself with its temperature (what the runtime computes) on `data`'s validation
    examples -> the card's `rejector` entries for it: threshold, rule, share of each kind flagged."""
    from digitrec.modelfile.read import open_model
    from digitrec.reject import DIGIT
    from digitrec.reject import probabilities as rejector_probabilities

    x, y = data["test"]
    kinds = data["test_kinds"]
    session, model_card = open_model(path, "rejector", require_input=True)
    assert model_card is not None  # require_input: a model without a card raised ModelError
    probabilities = rejector_probabilities(session, model_card, x)
    threshold = choose_threshold(probabilities[y == DIGIT, DIGIT])
    rates = flag_rates(probabilities, kinds, threshold)
    log(
        f"threshold P(digit) < {threshold:.4f}: flagged on validation "
        + ", ".join(f"{k} {v:.1%}" for k, v in rates.items())
    )
    return {
        "threshold": round(threshold, 6),
        "threshold_rule": f"the {DIGITS_FLAGGED:.1%} quantile of P(digit) of the validation digits",
        "validation_flagged": rates,
        "validation_examples": {str(k): int((kinds == k).sum()) for k in sorted(set(kinds.tolist()))},
    }


def export(run: Path, path: Path, data: dict) -> dict:
    """Checkpoint -> ONNX with the temperature fitted and the threshold chosen on the validation
    examples, and what the threshold flags there, in the card's `rejector` section; then the reason
    head fitted and grafted on (`train.reason_head`), its numbers in `rejector.reason_head`."""
    from digitrec.export import export_onnx
    from digitrec.modelfile.write import rewrite_card
    from digitrec.reject import CLASSES

    card = export_onnx(
        run,
        path,
        name="digitrec-rejector",
        test_data=data["test"],
        validation_data=data["test"],
        labels=list(CLASSES),
        log=print,
    )
    data_card = {k: v for k, v in card.items() if k not in ("format", "path", "bytes")}
    data_card["rejector"] = {
        **threshold_section(path, data),
        "mnist_split": data["split"],
        "held_out_fonts": data["held_out_fonts"],
    }
    rewrite_card(path, data_card)
    # Why each flagged input is flagged, learned apart from whether (`train.reason_head`).
    from digitrec.train.reason_head import add_reason_head

    return add_reason_head(path, data)


if __name__ == "__main__":
    try:
        main()  # the script's own output is main's; the functions above only return and raise
    except DigitrecError as exc:
        sys.exit(f"Error: {exc}")
