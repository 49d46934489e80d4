"""Learning curve of `digitrec finetune` on real cheque digits (ORAND-CAR, ../shared), split by cheque.

For each size n, cheques are drawn in a seeded order until their digits reach n; the tuning set is
the first n of those digits, written to a CSV exactly as a user would (`path,label`), and the test
set is every digit of the cheques NOT drawn, so no test writer is ever tuned on. "third" tunes on
all digits of one third of the cheques (the issue's target: the other cheques' error at least
halves). For each run: accuracy on the other cheques before (the shipped model) and after, through
the product's own path (`Recognizer.predict_many`: preprocessing, views, calibrated model); MNIST
test accuracy and ECE after; the finetune's wall-clock seconds (everything: preparing, training,
calibrating, writing).

    .venv/bin/python benchmarks/finetune.py                              # 10,30,100,third,300; seed 0
    .venv/bin/python benchmarks/finetune.py --sizes 10,third --seeds 0,1 --threads 2
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from external import DEFAULT_DATA, load_source, matmul_gflops  # noqa: E402 - the benchmark's own loader

SOURCE = "orand-car-digits"


def cheque_of(name: str) -> str:
    """a_car_000154_d2.png -> a_car_000154 (the digits of one cheque share a writer)."""
    return name.rsplit("_d", 1)[0]


def split(names: list[str], size: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """-> (tuning indices, test indices): whole cheques on each side."""
    cheques = sorted({cheque_of(n) for n in names})
    order = np.random.default_rng(seed).permutation(len(cheques))
    by_cheque: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        by_cheque.setdefault(cheque_of(n), []).append(i)
    if size == "third":
        drawn = [cheques[k] for k in order[: len(cheques) // 3]]
        tune = [i for c in drawn for i in by_cheque[c]]
    else:
        want, tune, drawn = int(size), [], []
        for k in order:
            if len(tune) >= want:
                break
            drawn.append(cheques[k])
            tune += by_cheque[cheques[k]]
        tune = tune[:want]
    test = [i for c in cheques if c not in set(drawn) for i in by_cheque[c]]
    return np.array(tune), np.array(test)


def accuracy_on(model, items, labels) -> float:
    from digitrec.errors import DigitrecError
    from digitrec.runtime import Recognizer

    answers = Recognizer(model, reject=False).predict_many(items)
    return float(np.mean([not isinstance(a, DigitrecError) and a.digit == y for a, y in zip(answers, labels)]))


def main(argv: list[str] | None = None) -> int:
    import digitrec
    from digitrec.data import load_mnist
    from digitrec.evaluate.metrics import accuracy, expected_calibration_error
    from digitrec.runtime import Recognizer, default_model_path
    from digitrec.tune.run import FinetuneConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("DIGITREC_EXTERNAL", DEFAULT_DATA)))
    parser.add_argument("--sizes", default="10,30,100,third,300")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a FinetuneConfig setting, e.g. --set lr=1e-3 (repeatable)",
    )
    args = parser.parse_args(argv)

    settings = FinetuneConfig(threads=args.threads)
    for item in args.settings:
        key, _, value = item.partition("=")
        settings = replace(settings, **{key: type(getattr(settings, key))(value)})
    names, items, labels = load_source(args.data, SOURCE, None)
    mnist_test = load_mnist("test")
    mnist_train = load_mnist("train")
    print(f"# finetune benchmark, {datetime.date.today()}")
    print(f"# command: python benchmarks/finetune.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(
        f"# machine: {platform.machine()}, {os.cpu_count()} CPU cores, matmul {matmul_gflops():.0f} GFLOP/s "
        "(shared with other jobs: seconds are noisy)"
    )
    print(
        f"# data: {SOURCE}, {len(labels)} digits of {len({cheque_of(n) for n in names})} cheques; "
        f"base: {default_model_path().name}; settings: {settings}\n"
    )
    header = (
        f"{'tuning':>6s} {'seed':>4s} {'cheques':>7s} {'test':>5s} {'before':>7s} {'after':>7s} "
        f"{'held-out':>8s} {'MNIST':>7s} {'ECE':>6s} {'seconds':>7s} {'steps':>5s}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            for seed in map(int, args.seeds.split(",")):
                tune, test = split(names, size, seed)
                csv = Path(tmp) / f"tune-{size}-{seed}.csv"
                csv.write_text("path,label\n" + "".join(f"{args.data / SOURCE / names[i]},{labels[i]}\n" for i in tune))
                before = accuracy_on(default_model_path(), [items[i] for i in test], labels[test])
                out = Path(tmp) / f"m-{size}-{seed}.onnx"
                start = time.perf_counter()
                summary = digitrec.finetune([csv], out, config=replace(settings, seed=seed), mnist=mnist_train)
                seconds = time.perf_counter() - start
                after = accuracy_on(out, [items[i] for i in test], labels[test])
                probs = Recognizer(out).predict_probabilities(mnist_test[0])
                n_cheques = len({cheque_of(names[i]) for i in tune})
                print(
                    f"{len(tune):6d} {seed:4d} {n_cheques:7d} {len(test):5d} {before:7.1%} {after:7.1%} "
                    f"{summary['val_accuracy']:8.1%} {accuracy(mnist_test[1], probs):7.2%} "
                    f"{expected_calibration_error(mnist_test[1], probs):6.3f} {seconds:7.1f} {summary['steps']:5d}",
                    flush=True,
                )
    print(
        "\nbefore/after: accuracy on the digits of the cheques not tuned on (the shipped model / the "
        "fine-tuned one); held-out: the share of the tuning files finetune kept for early stopping; MNIST and "
        "ECE: the fine-tuned model on the 10,000 MNIST test digits."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
