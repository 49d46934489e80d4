"""Benchmark `digitrec read`: string and digit accuracy on generated numbers and on real ones.

Generated numbers (fixed seed) are strings of 1-8 MNIST *test* digits (never train) pasted dark
on light paper with random gaps, sizes and baseline jitter, in groups:
  separated   gaps of 0.1-0.5 digit heights between the digits' boxes;
  touching    each digit slid left until its ink touches its neighbour's;
  overlapping slid a further 3-12% of the height into its neighbour;
  photo       separated or touching, then a lighting gradient, noise, blur and JPEG;
  marks       separated, with marks beside the digits (points, commas, dashes, equals signs,
              slashes, ticks: synth.FORM_MARKS) that are not part of the answer, as on a cheque
              (its own seed, so the other groups are the same with or without it).
Real numbers: the multi-digit rows of ../shared/data/external/{orand-car-strings,
dk-parish-rowid,photo-strings}/manifest.csv (when that folder is there).
Bare digits: 28x28 MNIST test digits as they are (white on black), each to be read as a one-digit
number (`--bare N` of them, a fixed sample).

Whether the string confidence can be trusted: its expected calibration error (ECE, 10 bins) on
the generated strings, and risk-coverage tables: the accuracy of the most confident 50/80/90/100%
of the strings, for the generated strings and for each real source.

`--fit-confidence` fits the confidence's calibration map (`read.params.ReaderParams`) on other
generated strings: the same groups and lengths, digits from the MNIST *training* images the digit
model held out for validation (never test digits, never ../shared), seed 100; it prints the
weights to put in ReaderParams.

    .venv/bin/python benchmarks/read.py [--per-length 25] [--bare 1000] [--model M] [--failures DIR]
        [--line-reader PATH] [--results FILE.csv] [--amounts N]
    .venv/bin/python benchmarks/read.py --fit-confidence [--per-length 50]

--line-reader reads with another line reader (to compare one with the shipped one); --results
writes every image's reading (source, name, group, label, text) for paired comparisons; the real
sources are also scored per group (dk-parish-rowid per register book); --amounts N also reads N
generated amounts with marks ("1,250.00", "-5", "7.50") with keep_punctuation.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from digitrec.synth import FORM_MARKS, GROUPS, digit_matches, make_number, write_text

EXTERNAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "external"
REAL_SOURCES = ("orand-car-strings", "dk-parish-rowid", "photo-strings")


# --- generated numbers ---------------------------------------------------------------------------


def generated_cases(per_length: int, seed: int = 0, digits: tuple[np.ndarray, np.ndarray] | None = None):
    """(group, length, image, label) for every group and length 1-8; `digits`: the (images,
    labels) to compose from (default: the MNIST test set)."""
    from digitrec.data import load_mnist

    images, labels = load_mnist("test") if digits is None else digits
    rng = np.random.default_rng(seed)
    for group in GROUPS:
        for length in range(1, 9):
            for _ in range(per_length):
                image, label = make_number(rng, images, labels, length, group)
                yield group, length, image, label
    rng = np.random.default_rng(seed + 1)
    for length in range(1, 9):
        for _ in range(per_length):
            image, label = make_number(rng, images, labels, length, "separated", punctuation=True, marks=FORM_MARKS)
            yield "marks", length, image, label


# --- real numbers ---------------------------------------------------------------------------------


def real_cases(source: str):
    manifest = EXTERNAL / source / "manifest.csv"
    if not manifest.is_file():
        return
    with open(manifest, newline="") as f:
        for row in csv.DictReader(f):
            if len(row["label"]) > 1:
                yield row["path"], EXTERNAL / source / row["path"], row["label"]


def real_group(source: str, name: str) -> str:
    """The group a real image belongs to, for leave-one-group-out numbers: a register's book
    (the K-number in its name: about one writer per book); every cheque and photo its own."""
    if source == "dk-parish-rowid":
        return next((part for part in name.split("_") if part.startswith("K")), "?")
    return name


def amount_texts(rng: np.random.Generator, n: int) -> list[str]:
    """n amounts as people write them: cents, thousands separators, minus signs."""
    texts = []
    for _ in range(n):
        units = str(int(rng.integers(0, 10 ** int(rng.integers(1, 5)))))
        kind = int(rng.integers(4))
        if kind == 0:  # 7.50
            texts.append(f"{units}.{int(rng.integers(0, 100)):02d}")
        elif kind == 1:  # 1,250.00
            texts.append(
                f"{int(rng.integers(1, 100))},{int(rng.integers(0, 1000)):03d}.{int(rng.integers(0, 100)):02d}"
            )
        elif kind == 2:  # -5
            texts.append(f"-{units}")
        else:  # 3,000
            texts.append(f"{int(rng.integers(1, 1000))},{int(rng.integers(0, 1000)):03d}")
    return texts


# --- scoring --------------------------------------------------------------------------------------


def read_one(recognizer, image):
    """-> (text, string confidence, the Reading); ("", 0.0, None) when nothing was read."""
    from digitrec.errors import DigitrecError

    try:
        reading = recognizer.read(image)
    except DigitrecError:
        return "", 0.0, None
    return reading.text, reading.confidence, reading


COVERAGES = (0.5, 0.8, 0.9, 1.0)


def risk_coverage(right: list[bool], confidence: list[float]) -> list[float]:
    """The accuracy of the most confident share of the answers, for each share in COVERAGES
    (ties broken by order, the share rounded up)."""
    order = np.argsort(-np.asarray(confidence, np.float64), kind="stable")
    ok = np.asarray(right, bool)[order]
    return [float(ok[: max(1, int(np.ceil(share * len(ok))))].mean()) for share in COVERAGES]


def correctness_ece(right: list[bool], confidence: list[float], bins: int = 10) -> float:
    """ECE of a confidence that an answer is right: over 10 equal-width bins of confidence, the
    share-weighted gap between the bin's accuracy and its mean confidence."""
    ok, conf = np.asarray(right, np.float64), np.asarray(confidence, np.float64)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    return float(
        sum(
            abs(ok[which == b].mean() - conf[which == b].mean()) * (which == b).mean()
            for b in range(bins)
            if (which == b).any()
        )
    )


def print_trust(rows: list[tuple[str, list[bool], list[float]]]) -> None:
    print("\nRisk-coverage: accuracy (%) of the most confident share of the strings; ECE of the string confidence")
    print("| set | strings | " + " | ".join(f"top {int(c * 100)}%" for c in COVERAGES) + " | ECE |")
    print("|---|---|" + "---|" * (len(COVERAGES) + 1))
    for name, right, confidence in rows:
        if right:
            cells = " | ".join(f"{100 * a:.1f}" for a in risk_coverage(right, confidence))
            print(f"| {name} | {len(right)} | {cells} | {correctness_ece(right, confidence):.3f} |")


def fit_confidence(rec, per_length: int) -> None:
    """Fit ReaderParams.confidence_weights on generated validation strings and print them."""
    from digitrec.export import validation_split
    from digitrec.read.params import DEFAULT_PARAMS, FEATURES, ReaderParams, fit_logistic

    digits = validation_split(rec.card.get("config", {}))
    features, right, product, skipped = [], [], [], 0
    for _group, _length, image, label in generated_cases(per_length, seed=100, digits=digits):
        text, _, reading = read_one(rec, image)
        if reading is None or len(reading.lines) != 1:
            skipped += 1
            continue
        evidence = reading.lines[0][0].evidence
        features.append(evidence.features())
        right.append(text == label)
        product.append(float(np.exp(evidence.digit_log_prob)))
    x, y = np.array(features), np.array(right)
    weights = fit_logistic(x, y)
    fitted = ReaderParams(confidence_weights=tuple(float(round(w, 4)) for w in weights))
    after = [fitted.line_confidence(e) for e in _evidences(x)]
    before = [DEFAULT_PARAMS.line_confidence(e) for e in _evidences(x)]
    print(f"\nFitted on {len(y)} generated validation strings ({y.mean():.1%} right; {skipped} not one line, left out)")
    print(
        "confidence_weights = ("
        + ", ".join(f"{w:.4f}" for w in fitted.confidence_weights)
        + ")  # "
        + ", ".join(FEATURES)
    )
    print(
        f"ECE: product of the digits' probabilities {correctness_ece(list(y), product):.3f}, "
        f"the params in use {correctness_ece(list(y), before):.3f}, fitted {correctness_ece(list(y), after):.3f}"
    )


def _evidences(x: np.ndarray):
    from digitrec.read.params import Evidence

    return [Evidence(r[1], r[2], r[3], bool(r[4]), int(r[5])) for r in x]


def gflops() -> float:
    a = np.random.default_rng(0).random((512, 512), dtype=np.float32)
    t = time.perf_counter()
    for _ in range(10):
        a @ a
    return 10 * 2 * 512**3 / (time.perf_counter() - t) / 1e9


def load() -> str:
    """The machine's 1/5/15-minute load averages: timings mean little when others share the cores."""
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-length", type=int, default=25, help="generated numbers per group and length")
    parser.add_argument("--model", default=None, help="ONNX model (default: the shipped one)")
    parser.add_argument("--failures", type=Path, default=None, help="write debug images of misreadings here")
    parser.add_argument("--only", choices=("generated", "real", "bare"), default=None)
    parser.add_argument("--bare", type=int, default=1000, help="bare 28x28 MNIST test digits to read (0: none)")
    parser.add_argument("--fit-confidence", action="store_true", help="fit the string confidence's calibration map")
    parser.add_argument("--line-reader", type=Path, default=None, help="another line reader (default: the shipped one)")
    parser.add_argument("--results", type=Path, default=None, help="write every image's reading to this CSV")
    parser.add_argument("--amounts", type=int, default=0, help="also read N generated amounts with their marks")
    args = parser.parse_args()

    from digitrec.read.draw import draw_reading
    from digitrec.runtime import Recognizer

    rec = Recognizer(args.model)
    if args.line_reader:
        from digitrec.read import NumberReader
        from digitrec.read.line_reader import LineReader

        rec.reader = NumberReader(rec, line_reader=LineReader(args.line_reader, threads=rec.threads))
    rows = []  # (source, name, group, label, text) for --results
    if args.fit_confidence:
        fit_confidence(rec, args.per_length)
        return
    trust: list[tuple[str, list[bool], list[float]]] = []
    print(f"# {datetime.date.today()}  model {rec.card.get('name', rec.path.name)} ({rec.path})")
    print(f"# line reader {args.line_reader or 'shipped'}")
    print(
        f"# machine: {platform.machine()}, {os.cpu_count()} cores, matmul {gflops():.1f} GFLOP/s, "
        f"load {load()}; command: {' '.join(sys.argv)}"
    )

    def failure(name: str, image, label: str, text: str) -> None:
        if args.failures is None:
            return
        args.failures.mkdir(parents=True, exist_ok=True)
        from digitrec.preprocess import load_grey

        grey = load_grey(image)
        try:
            drawn = draw_reading(grey, rec.read(grey))
        except Exception:
            drawn = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
        safe = f"{name}_want{label}_got{text.replace(chr(10), '|') or 'none'}.png"
        cv2.imwrite(str(args.failures / safe), drawn)

    if args.only in (None, "generated"):
        t0 = time.perf_counter()
        stats = defaultdict(lambda: [0, 0, 0, 0])  # strings right, strings, digits right, digits
        generated: tuple[list[bool], list[float]] = ([], [])
        for n, (group, length, image, label) in enumerate(generated_cases(args.per_length)):
            text, confidence, _ = read_one(rec, image)
            rows.append(("generated", str(n), group, label, text))
            generated[0].append(text == label)
            generated[1].append(confidence)
            for key in ((group, length), (group, "4-6" if 4 <= length <= 6 else None), (group, "all")):
                if key[1] is None:
                    continue
                s = stats[key]
                s[0] += text == label
                s[1] += 1
                s[2] += digit_matches(text, label)
                s[3] += len(label)
            if text != label and n % 5 == 0:
                failure(f"{group}_{n}", image, label, text)
        elapsed = time.perf_counter() - t0
        shown = (*GROUPS, "marks")
        total = sum(stats[(g, "all")][1] for g in shown)
        print(f"\nGenerated numbers ({args.per_length} per group and length; {elapsed / total * 1000:.0f} ms each)")
        print("| group | " + " | ".join(f"len {k}" for k in range(1, 9)) + " | **4-6** | all (digits) |")
        print("|---|" + "---|" * 10)
        for g in shown:
            cells = [f"{100 * stats[(g, k)][0] / stats[(g, k)][1]:.0f}" for k in range(1, 9)]
            s46, sall = stats[(g, "4-6")], stats[(g, "all")]
            print(
                f"| {g} | " + " | ".join(cells) + f" | **{100 * s46[0] / s46[1]:.1f}** | "
                f"{100 * sall[0] / sall[1]:.1f} ({100 * sall[2] / sall[3]:.1f}) |"
            )
        print("(string accuracy %, per length; last column: string accuracy over all lengths, and digit accuracy)")
        trust.append(("generated (all groups)", *generated))

    if args.only in (None, "bare") and args.bare:
        from digitrec.data import load_mnist

        images, labels = load_mnist("test")
        pick = np.random.default_rng(0).choice(len(images), min(args.bare, len(images)), replace=False)
        t0 = time.perf_counter()
        texts = [read_one(rec, images[i])[0] for i in pick]
        right = sum(t == str(labels[i]) for t, i in zip(texts, pick))
        print(
            f"\nBare 28x28 MNIST test digits read as one-digit numbers: {right}/{len(pick)} = "
            f"{100 * right / len(pick):.1f}% ({(time.perf_counter() - t0) / len(pick) * 1000:.0f} ms each)"
        )

    if args.only in (None, "real"):
        print("\nReal numbers (multi-digit rows of ../shared/data/external)")
        print("| source | images | string acc | digit acc | ms/image |")
        print("|---|---|---|---|---|")
        per_group = {}
        for source in REAL_SOURCES:
            right = digits_right = digits = n = 0
            t0 = time.perf_counter()
            real: tuple[list[bool], list[float]] = ([], [])
            for name, path, label in real_cases(source):
                text, confidence, _ = read_one(rec, path)
                group = real_group(source, name)
                rows.append((source, name, group, label, text))
                if source == "dk-parish-rowid":
                    g = per_group.setdefault(group, [0, 0])
                    g[0], g[1] = g[0] + (text == label), g[1] + 1
                real[0].append(text == label)
                real[1].append(confidence)
                n += 1
                right += text == label
                digits_right += digit_matches(text, label)
                digits += len(label)
                if text != label:
                    failure(f"{source}_{Path(name).stem}", path, label, text)
            if n:
                print(
                    f"| {source} | {n} | {100 * right / n:.1f} | {100 * digits_right / digits:.1f} | "
                    f"{(time.perf_counter() - t0) / n * 1000:.0f} |"
                )
            else:
                print(f"| {source} | not found under {EXTERNAL} | | | |")
            trust.append((source, *real))
        every = [(r, c) for name, right, conf in trust if name in REAL_SOURCES for r, c in zip(right, conf)]
        trust.append(("real (all three)", [r for r, _ in every], [c for _, c in every]))
        if per_group:
            print(
                "\ndk-parish-rowid per register book: "
                + ", ".join(f"{b} {r}/{t}" for b, (r, t) in sorted(per_group.items()))
            )

    print_trust(trust)

    if args.amounts:
        from digitrec.data import load_mnist

        images, labels = load_mnist("test")
        rng = np.random.default_rng(2)
        right = digits_right = 0
        for n, label in enumerate(amount_texts(rng, args.amounts)):
            image = write_text(rng, images, labels, label)
            try:
                text = rec.read(image, keep_punctuation=True).text
            except Exception as exc:  # a digits-only line reader, or nothing read
                text = f"error: {exc}"
            rows.append(("amounts", str(n), "amounts", label, text))
            right += text == label
            digits_right += "".join(c for c in text if c.isdigit()) == "".join(c for c in label if c.isdigit())
        print(
            f"\nGenerated amounts with marks, keep_punctuation: {100 * right / args.amounts:.1f}% exact "
            f"({100 * digits_right / args.amounts:.1f}% with the digits right), {args.amounts} amounts"
        )

    print(f"\n# load at the end {load()} (1/5/15-min averages; other processes share the cores)")
    if args.results:
        with open(args.results, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["source", "name", "group", "label", "text"])
            writer.writerows(rows)


if __name__ == "__main__":
    main()
