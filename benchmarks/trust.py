"""Can the answers be trusted? Calibration of the shipped model, and what the rejector flags.

  (a) calibration: ECE of the shipped digit model (with its card's temperature) on the MNIST test
      set and on each single-digit source of the shared external set;
  (b) rejection: the share flagged ("not a digit", "several digits", "no ink", or no ink found at
      all) of synthetic letters and symbols in fonts the rejector never saw, scribbles, shapes,
      blank and noise-only pages, digit pairs and triples, whole numbers of 4-6 digits and of 2-6
      dressed as documents, from MNIST writers it never saw; and of the shared set's real numbers
      (cheque amounts, register rows, photographed numbers), which `predict` must flag, not answer;
      and of the REAL digits of every shared source, with the accuracy of the answered ones
      against all of them;
  (c) cost: milliseconds per image of the rejector beside the digit model.

Everything goes through the product's path (`Recognizer.views`, `answer_views`). The synthetic
sets are drawn with another seed than training's; the shared set is never used to choose anything.

    .venv/bin/python benchmarks/trust.py                  # everything (about 2 minutes on one core)
    .venv/bin/python benchmarks/trust.py --limit 300 --synthetic 0.5
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from external import DEFAULT_DATA, SOURCES, load_source, matmul_gflops  # noqa: E402
from read import REAL_SOURCES as NUMBER_SOURCES  # noqa: E402
from read import real_cases  # noqa: E402

from digitrec import doubt  # noqa: E402
from digitrec.errors import DigitrecError  # noqa: E402
from digitrec.evaluate.metrics import expected_calibration_error  # noqa: E402

# Synthetic test images per kind at --synthetic 1.
SYNTHETIC = {"letter": 600, "scribble": 300, "shape": 200, "blank": 300, "digit": 600}
PAIRS_PER_GROUP = 150  # per layout of synth.GROUPS: separated, touching, overlapping, photo
PER_CHARACTER = 12  # letters by character: images of each letter and symbol, in held-out fonts
SEED = 2026  # training draws with seed 0: other images
REJECTED = (doubt.NOT_A_DIGIT, doubt.SEVERAL_DIGITS, doubt.NO_INK)  # the rejector's reasons (and no ink found)


def answers_for(rec, items) -> list:
    """Items (bytes, arrays) -> Prediction or DigitrecError each, through the product's path."""
    views = []
    for item in items:
        try:
            views.append(rec.views(item))
        except DigitrecError as exc:
            views.append(exc)
    return rec.answer_views(views)


def flagged(answer) -> str | None:
    """The reason an answer is not a digit: the rejector's, or 'no ink' when preprocessing found none."""
    if isinstance(answer, DigitrecError):
        return doubt.NO_INK if "no ink" in str(answer) else "error"
    return answer.reason


def synthetic_sets(scale: float) -> dict[str, list[np.ndarray]]:
    from digitrec.data import load_mnist
    from digitrec.synth import GROUPS, make_number
    from digitrec.train.negatives import installed_fonts, make_image, split_fonts
    from digitrec.train.rejector import WRITERS_FILE, writer_split

    images, labels = load_mnist("train")
    _, held_idx, split = writer_split(len(images), WRITERS_FILE)
    _, held_fonts = split_fonts(installed_fonts())
    print(
        f"# synthetic: held-out fonts {', '.join(sorted({f.family for f in held_fonts}))}; MNIST writers held out {split}"
    )
    rng = np.random.default_rng(SEED)
    images, labels = images[held_idx], labels[held_idx]
    sets = {
        kind: [make_image(rng, kind, held_fonts, images, labels) for _ in range(max(1, round(n * scale)))]
        for kind, n in SYNTHETIC.items()
    }
    for group in GROUPS:
        n = max(1, round(PAIRS_PER_GROUP * scale))
        sets[f"pair ({group})"] = [
            make_number(rng, images, labels, int(rng.choice([2, 3])), group)[0] for _ in range(n)
        ]
    # Whole numbers, added later: their own generator, so the sets above stay as they were.
    later = np.random.default_rng([SEED, 1])
    for group in GROUPS:
        n = max(1, round(PAIRS_PER_GROUP * scale))
        sets[f"number 4-6 ({group})"] = [
            make_number(later, images, labels, int(later.choice([4, 5, 6])), group)[0] for _ in range(n)
        ]
    # Numbers as documents hold them (a register cell, a cheque, ruled paper, marks beside), added
    # later still: again their own generator.
    documents = np.random.default_rng([SEED, 2])
    sets["number 2-6 (document)"] = [
        make_image(documents, "document-number", held_fonts, images, labels)
        for _ in range(max(1, round(PAIRS_PER_GROUP * scale)))
    ]
    return sets


def letters_by_character(rec, scale: float) -> dict[str, float]:
    """-> {character: share rejected} over PER_CHARACTER images of each letter and symbol the letter
    set draws (`negatives.LETTERS`, `SYMBOLS`: the glyphs a digit is written like, O l I S Z b g q,
    are not among them), in held-out fonts, drawn as the letter set draws them (another seed)."""
    from digitrec.train.negatives import LETTERS, SYMBOLS, distort, glyph, installed_fonts, on_paper, split_fonts

    _, fonts = split_fonts(installed_fonts())
    rng = np.random.default_rng(SEED + 1)
    n = max(1, round(PER_CHARACTER * scale))
    out = {}
    for char in LETTERS + SYMBOLS:
        images = [on_paper(rng, distort(rng, glyph(rng, char, fonts[rng.integers(len(fonts))]))) for _ in range(n)]
        out[char] = float(np.mean([flagged(a) in REJECTED for a in answers_for(rec, images)]))
    return out


def cost(rec, views: np.ndarray, repeat: int = 3) -> tuple[float, float]:
    """-> (ms per image of the digit model over its views, ms per image of the rejector)."""
    firsts = views[:, 0]
    best_model = best_reject = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        rec.predict_probabilities(views.reshape(-1, 28, 28))
        best_model = min(best_model, time.perf_counter() - t)
        t = time.perf_counter()
        rec.rejector.reasons(firsts)  # what predict runs: with the reason head's output when it has one
        best_reject = min(best_reject, time.perf_counter() - t)
    return 1000 * best_model / len(views), 1000 * best_reject / len(views)


def main(argv: list[str] | None = None) -> int:
    from digitrec.data import load_mnist
    from digitrec.runtime import Recognizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("DIGITREC_EXTERNAL", DEFAULT_DATA)))
    parser.add_argument("--sources", default=",".join(SOURCES))
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per real source")
    parser.add_argument("--synthetic", type=float, default=1.0, help="scale of the synthetic sets")
    args = parser.parse_args(argv)

    rec = Recognizer()
    print(f"# trust benchmark, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"# command: python benchmarks/trust.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(
        f"# machine: {platform.machine()}, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}, "
        f"matmul {matmul_gflops():.0f} GFLOP/s (shared with other jobs: timings are noisy)"
    )
    print(f"# rejector threshold P(digit) < {rec.rejector.threshold:.4f} (from its card)\n")

    # (a) calibration, (b) real digits: flagged, and accuracy of the answered vs all
    test_images, test_labels = load_mnist("test")
    probs = rec.predict_probabilities(test_images)
    mnist_flags = rec.rejections(test_images)
    rows = [("MNIST test", test_labels, probs, mnist_flags)]
    sources = [s for s in args.sources.split(",") if s]
    for source in sources:
        if not (args.data / source).is_dir():
            print(f"# {source}: not found under {args.data}, skipped")
            continue
        _, items, labels = load_source(args.data, source, args.limit)
        answers = answers_for(rec, items)
        ok = np.array([not isinstance(a, DigitrecError) for a in answers])
        rows.append(
            (
                source,
                labels[ok],
                np.array([a.probabilities for a in answers if not isinstance(a, DigitrecError)]),
                [a.reason for a in answers if not isinstance(a, DigitrecError)],
            )
        )
    # "rejected": the rejector's reasons only (not a digit, several digits, no ink), the share the
    # issue's <= 2% is about; "flagged" adds "low confidence" (the digit model's own doubt).
    header = (
        f"{'real digits':18s} {'images':>6s} {'ECE':>6s} {'rejected':>8s} {'flagged':>8s} {'acc all':>8s} "
        f"{'acc answered':>12s}  reasons"
    )
    print(header)
    print("-" * len(header))
    for name, labels, p, reasons in rows:
        flag = np.array([r is not None for r in reasons])
        rejected = np.mean([r in REJECTED for r in reasons])
        right = p.argmax(1) == labels
        print(
            f"{name:18s} {len(labels):6d} {expected_calibration_error(labels, p):6.3f} {rejected:8.2%} {flag.mean():8.2%} "
            f"{right.mean():8.2%} {right[~flag].mean():12.2%}  "
            + " ".join(f"{k}:{v}" for k, v in Counter(r for r in reasons if r).most_common()),
            flush=True,
        )

    # (b) synthetic inputs that are no single digit (and digits, for reference)
    print()
    header = f"{'synthetic (held out)':22s} {'images':>6s} {'rejected':>8s} {'flagged':>8s}  reasons"
    print(header)
    print("-" * len(header))
    for kind, images in synthetic_sets(args.synthetic).items():
        reasons = [flagged(a) for a in answers_for(rec, images)]
        share = np.mean([r is not None for r in reasons])
        rejected = np.mean([r in REJECTED for r in reasons])
        print(
            f"{kind:22s} {len(images):6d} {rejected:8.2%} {share:8.2%}  "
            + " ".join(f"{k}:{v}" for k, v in Counter(r for r in reasons if r).most_common()),
            flush=True,
        )

    # real numbers given to predict (one digit expected): every multi-digit image of the shared
    # strings, as a user who passes a number to `predict` does; what should come back is a flag
    # ("several digits: use read"), never a digit.
    header = f"{'real numbers':22s} {'images':>6s} {'rejected':>8s} {'flagged':>8s}  reasons"
    print("\n" + header)
    print("-" * len(header))
    for source in NUMBER_SOURCES:
        paths = [path for _, path, _ in real_cases(source, args.data)]
        if args.limit:
            paths = paths[: args.limit]
        if not paths:
            continue
        reasons = [flagged(a) for a in answers_for(rec, [path.read_bytes() for path in paths])]
        print(
            f"{source:22s} {len(paths):6d} {np.mean([r in REJECTED for r in reasons]):8.2%} "
            f"{np.mean([r is not None for r in reasons]):8.2%}  "
            + " ".join(f"{k}:{v}" for k, v in Counter(r or "answered" for r in reasons).most_common()),
            flush=True,
        )

    # which letters get through: each character's share flagged, the least flagged first
    rates = letters_by_character(rec, args.synthetic)
    worst = sorted(rates.items(), key=lambda kv: kv[1])
    print(
        f"\nletters by character ({max(1, round(PER_CHARACTER * args.synthetic))} each, held-out fonts): "
        f"{np.mean(list(rates.values())):.2%} rejected; least rejected "
        + " ".join(f"{c}:{v:.0%}" for c, v in worst[:12])
    )

    # (c) cost of the rejector beside the digit model, on MNIST test views (3 views each, as predict)
    views = np.repeat(np.stack([rec.views(d) for d in test_images[:1000]]), 3, axis=1)  # photos get 3 views
    model_ms, reject_ms = cost(rec, views)
    print(
        f"\ncost per image, 1000 images in one batch: digit model (3 views) {model_ms:.3f} ms, rejector {reject_ms:.3f} ms"
    )
    print(
        "predict(one PNG) end to end, 200 MNIST test digits on 200x200 paper, best of 5: "
        + ", ".join(f"{name} {ms:.2f} ms" for name, ms in predict_cost(test_images[:200], repeat=5).items())
    )
    return 0


def predict_cost(digits: np.ndarray, repeat: int = 3) -> dict[str, float]:
    """ms per `predict` of a PNG file's bytes, the rejector off and on (one image at a time)."""
    import cv2

    from digitrec.runtime import Recognizer

    pages = []
    for d in digits:
        ink = cv2.resize(d, (100, 100), interpolation=cv2.INTER_CUBIC)
        page = np.full((200, 200), 235, np.uint8)
        page[50:150, 50:150] = 235 - (ink.astype(np.int32) * 190 // 255)
        pages.append(cv2.imencode(".png", page)[1].tobytes())
    recognizers = {"rejector off": Recognizer(reject=False), "rejector on": Recognizer(reject=True)}
    for rec in recognizers.values():
        rec.predict(pages[0])  # load the sessions first
    out = {name: float("inf") for name in recognizers}
    for _ in range(repeat):  # off and on in turn, so that a neighbour's load falls on both alike
        for name, rec in recognizers.items():
            t = time.perf_counter()
            for page in pages:
                rec.predict(page)
            out[name] = min(out[name], 1000 * (time.perf_counter() - t) / len(pages))
    return out


if __name__ == "__main__":
    sys.exit(main())
