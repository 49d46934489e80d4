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

    .venv/bin/python benchmarks/read.py [--per-length 25] [--model M] [--failures DIR]
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

from digitrec.synth import FORM_MARKS, GROUPS, digit_matches, make_number

EXTERNAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "external"
REAL_SOURCES = ("orand-car-strings", "dk-parish-rowid", "photo-strings")


# --- generated numbers ---------------------------------------------------------------------------


def generated_cases(per_length: int, seed: int = 0):
    from digitrec.data import load_mnist

    images, labels = load_mnist("test")
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


# --- scoring --------------------------------------------------------------------------------------


def read_text(recognizer, image) -> str:
    from digitrec.errors import DigitrecError

    try:
        return recognizer.read(image).text
    except DigitrecError:
        return ""


def gflops() -> float:
    a = np.random.default_rng(0).random((512, 512), dtype=np.float32)
    t = time.perf_counter()
    for _ in range(10):
        a @ a
    return 10 * 2 * 512**3 / (time.perf_counter() - t) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-length", type=int, default=25, help="generated numbers per group and length")
    parser.add_argument("--model", default=None, help="ONNX model (default: the shipped one)")
    parser.add_argument("--failures", type=Path, default=None, help="write debug images of misreadings here")
    parser.add_argument("--only", choices=("generated", "real"), default=None)
    args = parser.parse_args()

    from digitrec.reading import draw_reading
    from digitrec.runtime import Recognizer

    rec = Recognizer(args.model)
    print(f"# {datetime.date.today()}  model {rec.card.get('name', rec.path.name)} ({rec.path})")
    print(
        f"# machine: {platform.machine()}, {os.cpu_count()} cores, matmul {gflops():.1f} GFLOP/s; "
        f"command: {' '.join(sys.argv)}"
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

    if args.only != "real":
        t0 = time.perf_counter()
        stats = defaultdict(lambda: [0, 0, 0, 0])  # strings right, strings, digits right, digits
        for n, (group, length, image, label) in enumerate(generated_cases(args.per_length)):
            text = read_text(rec, image)
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

    if args.only != "generated":
        print("\nReal numbers (multi-digit rows of ../shared/data/external)")
        print("| source | images | string acc | digit acc | ms/image |")
        print("|---|---|---|---|---|")
        for source in REAL_SOURCES:
            right = digits_right = digits = n = 0
            t0 = time.perf_counter()
            for name, path, label in real_cases(source):
                text = read_text(rec, path)
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


if __name__ == "__main__":
    main()
