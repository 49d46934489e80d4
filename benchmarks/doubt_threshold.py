"""How `doubt.DEFAULT_MIN_CONFIDENCE` was chosen, recomputed: the shipped model on its MNIST validation split.

    .venv/bin/python benchmarks/doubt_threshold.py                 # the shipped model
    .venv/bin/python benchmarks/doubt_threshold.py --model m.onnx  # any model whose card has its training config

The rule: the lowest threshold on the calibrated probability at which the answered validation
digits are at least `doubt.TARGET_ACCURACY` right (it flags the fewest answers for that accuracy),
rounded up to two decimals. Validation only: the split `digitrec train` held out and `export`
fitted the temperature on (`export.validation_split`). The MNIST test set is printed for
information only, never used to choose, and ../shared is never read.
Prints the risk-coverage table (accuracy of the most confident 50/80/90/95/99/100%) and, for a few
thresholds, the share answered, their accuracy and what was flagged (right and wrong).
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform
import sys

THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.93, 0.95, 0.99)


def rounded_up(threshold: float, decimals: int = 2) -> float:
    """0.9266 -> 0.93: a round number that keeps the target (a higher threshold flags more)."""
    scale = 10**decimals
    return math.ceil(threshold * scale - 1e-9) / scale


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="ONNX model (default: the shipped one)")
    args = parser.parse_args(argv)

    from digitrec import doubt
    from digitrec.data import load_mnist
    from digitrec.evaluate import metrics
    from digitrec.export import validation_split
    from digitrec.runtime import Recognizer

    rec = Recognizer(args.model, threads=1)
    if "config" not in rec.card:
        sys.exit("this model's card has no training config: its validation split is unknown")
    print(f"# {datetime.date.today()} · {platform.node()} · python {platform.python_version()}")
    print(f"# model {rec.card.get('name')} ({rec.path}), temperature {rec.adapter.temperature:.4f}")
    sets = {"validation": validation_split(rec.card["config"]), "test (information only)": load_mnist("test")}
    chosen = None
    for name, (images, labels) in sets.items():
        probs = rec.predict_probabilities(images)
        print(f"\n## MNIST {name}: {len(labels):,} images, {metrics.accuracy(labels, probs):.2%} right")
        print("most confident | answered | accuracy")
        for row in metrics.accuracy_at_coverage(labels, probs):
            print(f"{row['coverage']:>14.0%} | {row['answered']:>8,} | {row['accuracy']:.4%}")
        print("min_confidence | answered | accuracy | flagged (right, wrong)")
        for t in THRESHOLDS:
            a = metrics.answered_at(labels, probs, t)
            print(
                f"{t:>14.2f} | {a['coverage']:>8.2%} | {a['accuracy']:.4%} | "
                f"{a['flagged']} ({a['flagged_right']}, {a['flagged_wrong']})"
            )
        if chosen is None:  # the validation split, first
            lowest = metrics.lowest_threshold_for_accuracy(labels, probs, doubt.TARGET_ACCURACY)
            if lowest is None:
                sys.exit(f"no threshold reaches {doubt.TARGET_ACCURACY:.1%} on validation")
            chosen = rounded_up(lowest)
            print(
                f"\nlowest threshold with the answered >= {doubt.TARGET_ACCURACY:.1%} right: {lowest:.4f}"
                f" -> {chosen:.2f} (doubt.DEFAULT_MIN_CONFIDENCE = {doubt.DEFAULT_MIN_CONFIDENCE})"
            )


if __name__ == "__main__":
    main()
