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
Generated documents (`--test-documents N`, default 200, their own seed): numbers of 1-8 digits of
one MNIST test writer each, dressed as documents (`document_cases`: cheque, register, ruled and
squared paper, photos, crosses, ticks and underlines beside the number), the test counterpart of
the validation documents that settings are chosen on.
Generated forms (`--forms N`, default 200, their own seed): numbers of 2-7 digits of one MNIST
test writer each whose 1s, 2s, 4s, 7s and 9s are redrawn half the time in forms real writers use
and MNIST's rarely did (`digitrec.glyph_forms`: flagged 1s, looped 2s, open 4s, crossed 7s,
straight-stemmed 9s; issue 16), half of them dressed as documents.
Real numbers: the multi-digit rows of ../shared/data/external/{orand-car-strings,
dk-parish-rowid,photo-strings}/manifest.csv (when that folder is there).
Bare digits: 28x28 MNIST test digits as they are (white on black), each to be read as a one-digit
number (`--bare N` of them, a fixed sample).
Drawings: MNIST test digits drawn with a marker on a drawing app's canvas (`drawing_cases`: fat
strokes, one exact grey for the paper), each to be read as a one-digit number (`--drawings N`).

Whether the string confidence can be trusted: its expected calibration error (ECE, 10 bins) on
the generated strings, and risk-coverage tables: the accuracy of the most confident 50/80/90/100%
of the strings, for the generated strings and for each real source.

`--fit-confidence` fits the confidence's calibration map (`read.params.ReaderParams`) on other
generated strings, never test digits, never ../shared: the same groups and lengths from the MNIST
*training* images the digit model held out for validation (seed 100), and `--documents N` numbers
dressed as documents (`document_cases`: cheques, register cells, ruled paper, crosses, ticks,
photos), each one writer's digits that neither the digit model nor the line reader trained on.
Every reading's evidence is cached (the cache directory, `read-confidence/`), so refits are
instant. It chooses the map's inputs (the shipped five, plus any of EXTRA_FEATURES) by log-loss on
a third of the writers held out, prints the weights to put in ReaderParams, and the
risk-coverage and ECE of the shipped and the fitted map per generated set and per real source
(a report only: nothing is chosen on ../shared).

    .venv/bin/python benchmarks/read.py [--per-length 25] [--bare 1000] [--drawings 300] [--letters 150] [--model M]
        [--failures DIR] [--line-reader PATH] [--results FILE.csv] [--amounts N]
    .venv/bin/python benchmarks/read.py --fit-confidence [--per-length 20] [--documents 1500]

`--only letters` reads strings of letters (none shaped like a digit, in fonts the rejector never
saw) and counts those in which no number is found: what `read` should say of them.

`--only validation [--per-length N] [--documents N] [--bare N] [--drawings N] [--forms N] [--set KEY=VALUE ...]`
reads the strings that reader settings are chosen on (the `--fit-confidence` sets: validation
digits, writers neither network saw), N bare 28x28 validation digits and N of them drawn on a
canvas, N (default 300) forms numbers of those writers, never the test digits or ../shared, with
the shipped `ReaderParams` or the ones given.

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


def real_cases(source: str, root: Path = EXTERNAL):
    """(name, path, label) of each multi-digit image of a shared source, from its manifest."""
    manifest = root / source / "manifest.csv"
    if not manifest.is_file():
        return
    with open(manifest, newline="") as f:
        for row in csv.DictReader(f):
            if len(row["label"]) > 1:
                yield row["path"], root / source / row["path"], row["label"]


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


# --rescale: every image (generated or real) resampled by this factor before it is read. A reader
# that generalises to other scanners and cameras should read the same document at another
# resolution about as well (docs/read.md, "Resolution").
RESCALE = 1.0
BLUR = 0.0  # --blur: a Gaussian of this sigma (px, after any rescale) over every image, a soft scan
# --faint: every image's ink this share as dark against its paper, then a camera's grain: pencil,
# or a faded page, photographed (docs/read.md, "Faint ink").
FAINT = 1.0
GRAIN = 2.0  # grey levels, the sigma of the grain a faint image gets


def rescaled(image, factor: float, blur: float = 0.0, faint: float = 1.0):
    """A path, bytes or array -> its grey image resampled by `factor` (area for shrinking, cubic
    for enlarging, as a scanner's or a phone's resampling does), then blurred by a Gaussian of
    sigma `blur` px (a soft scan) when it is over 0, then with `faint` < 1 its ink made that
    share as dark against the paper (the median grey, so either polarity) with a grain of GRAIN
    grey levels (seeded by the image, so a rerun draws the same)."""
    import zlib

    from digitrec.preprocess import load_grey

    grey = load_grey(image)
    if factor != 1:
        grow = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
        size = (max(1, round(grey.shape[1] * factor)), max(1, round(grey.shape[0] * factor)))
        grey = cv2.resize(grey, size, interpolation=grow)
    if blur > 0:
        grey = cv2.GaussianBlur(grey, (0, 0), blur)
    if faint < 1:
        paper = float(np.median(grey))
        grain = np.random.default_rng(zlib.crc32(grey.tobytes())).normal(0, GRAIN, grey.shape)
        grey = np.clip(paper + (grey - paper) * faint + grain + 0.5, 0, 255).astype(np.uint8)
    return grey


def as_scanned(image):
    """`image` as this run reads it (--rescale, --blur, --faint): as given when none is set."""
    return image if RESCALE == 1 and not BLUR and FAINT == 1 else rescaled(image, RESCALE, BLUR, FAINT)


def read_one(recognizer, image):
    """-> (text, string confidence, the Reading); ("", 0.0, None) when nothing was read."""
    from digitrec.errors import DigitrecError

    try:
        reading = recognizer.read(as_scanned(image))
    except DigitrecError:
        return "", 0.0, None
    return reading.text, reading.confidence, reading


COVERAGES = (0.5, 0.8, 0.9, 1.0)


def read_cases(rec, cases, source: str, group: str, rows: list, failure) -> tuple[list[bool], list[float], int, int]:
    """Read (writer, image, label) cases, adding a row each (for --results) and every fifth
    misreading to --failures -> (right or not, string confidences, digits right, digits)."""
    right, confidences = [], []
    digits_right = digits = 0
    for n, (_writer, image, label) in enumerate(cases):
        text, confidence, _ = read_one(rec, image)
        rows.append((source, str(n), group, label, text))
        right.append(text == label)
        confidences.append(confidence)
        digits_right += digit_matches(text, label)
        digits += len(label)
        if text != label and n % 5 == 0:
            failure(f"{group}_{n}", image, label, text)
    return right, confidences, digits_right, digits


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


DOCUMENT_SEED = 200
TEST_DOCUMENT_SEED = 300  # the reported documents: test digits, their own seed
# The forms group (`forms_cases`): validation and test numbers, each their own seed so that every
# other group reads as before; the share of 1s, 2s, 4s, 7s and 9s redrawn in a real writer's form.
FORMS_SEED, TEST_FORMS_SEED, FORMS_SHARE = 400, 500, 0.5
# Bump when what `confidence_evidence` stores changes: the cache key includes it.
EVIDENCE_VERSION = 1


def drawing_cases(count: int, images: np.ndarray, labels: np.ndarray, seed: int = 7):
    """`count` digits drawn with a marker on a drawing app's canvas: one digit scaled to 50-85% of
    a 140-400 px square, its strokes thickened by up to a twelfth of its size, black on white (or,
    three in ten, white on black), one exact grey for the paper. -> [(uint8 image, label)]."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in rng.choice(len(images), min(count, len(images)), replace=False):
        side = int(rng.choice([140, 200, 280, 400]))
        size = int(side * rng.uniform(0.5, 0.85))
        mask = cv2.resize(images[i], (size, size), interpolation=cv2.INTER_CUBIC) > 100
        extra = int(rng.integers(0, max(1, size // 12)))
        if extra > 1:
            pen = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (extra, extra))
            mask = cv2.dilate(mask.astype(np.uint8), pen) > 0
        paper, ink = (255, 0) if rng.random() < 0.7 else (0, 255)
        canvas = np.full((side, side), paper, np.uint8)
        y, x = int(rng.integers(0, side - size + 1)), int(rng.integers(0, side - size + 1))
        canvas[y : y + size, x : x + size][mask] = ink
        cases.append((canvas, str(labels[i])))
    return cases


def writer_pools(split: str = "validation") -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """-> (images, labels, pool, writers) of a split, for numbers of one writer's digits: "validation":
    the MNIST training images the digit model held out for validation whose writers the line reader
    held out too (neither network saw them; what settings are chosen on); "test": MNIST test
    images, by test writer (what the benchmark reports). `writers`: each writer's image indices (3
    at least); empty without the writer files (then `pool`, the split's images, at random)."""
    from digitrec.data import load_mnist
    from digitrec.writers import mnist_writers

    if split == "test":
        images, labels = load_mnist("test")
        pool = np.arange(len(images))
        writer_of = mnist_writers("test", labels)
        writers = [] if writer_of is None else [np.flatnonzero(writer_of == w) for w in np.unique(writer_of)]
    else:
        from digitrec.train.config import TrainConfig
        from digitrec.train.line_reader import LineReaderConfig, default_recipe, digit_sources
        from digitrec.train.loop import split_indices

        images, labels = load_mnist("train")
        pool, _ = split_indices(TrainConfig(), len(images))  # the shipped model's split (val_size 5,000)
        sources = digit_sources(LineReaderConfig.load(default_recipe()).held_out_writers)
        in_validation = np.zeros(len(images), bool)
        in_validation[pool] = True
        writers = [] if sources is None else [g[in_validation[g]] for g in sources[1]]
    return images, labels, pool, [g for g in writers if len(g) >= 3]


def one_writers_digits(rng: np.random.Generator, pool: np.ndarray, writers: list[np.ndarray], length: int):
    """-> (writer, the indices of `length` of one writer's digits); writer -1: the pool's, at random."""
    if not writers:
        return -1, rng.choice(pool, length)
    writer = int(rng.integers(len(writers)))
    group = writers[writer]
    return writer, rng.choice(group, length, replace=len(group) < length)


def document_cases(count: int, seed: int = DOCUMENT_SEED, split: str = "validation"):
    """(writer, image, label) for `count` numbers of 1-8 digits dressed as documents
    (`synth.make_number(document=1)`: a hand's slant and pen, crosses, ticks and underlines beside,
    ruled, squared, register and cheque paper, photos; some with marks between the digits), whole
    images as `read` gets them. Each number is one writer's digits (`writer_pools(split)`)."""
    from digitrec.synth import SMALL_TAIL_SHARE

    images, labels, pool, writers = writer_pools(split)
    rng = np.random.default_rng(seed)
    for _ in range(count):
        length = int(rng.integers(1, 9))
        writer, idx = one_writers_digits(rng, pool, writers, length)
        image, label = make_number(
            rng,
            images,
            labels,
            length,
            GROUPS[int(rng.integers(len(GROUPS)))],
            punctuation=bool(rng.random() < 0.3),
            small_tail=SMALL_TAIL_SHARE,
            marks=FORM_MARKS,
            digits=idx,
            document=1.0,
        )
        yield writer, image, label


def forms_cases(count: int, seed: int = FORMS_SEED, split: str = "validation"):
    """(writer, image, label) for `count` numbers of 2-7 of one writer's digits (`writer_pools`),
    separated or touching, each 1, 2, 4, 7 and 9 redrawn with probability FORMS_SHARE in a form
    real writers use (`glyph_forms`: flagged or hooked 1s, looped 2s, open 4s, crossed 7s,
    straight-stemmed 9s), the number in one hand; half on plain paper, half dressed as
    `document_cases` (`synth.make_number(forms=..., document=0.5)`)."""
    images, labels, pool, writers = writer_pools(split)
    for n in range(count):
        # One generator per number: the same numbers with their forms left undrawn (a control) stay
        # the same numbers, though a redrawn digit's width changes how much noise a photo draws.
        rng = np.random.default_rng([seed, n])
        length = int(rng.integers(2, 8))
        writer, idx = one_writers_digits(rng, pool, writers, length)
        layout = ("separated", "touching")[int(rng.integers(2))]
        image, label = make_number(rng, images, labels, length, layout, digits=idx, document=0.5, forms=FORMS_SHARE)
        yield writer, image, label


def confidence_evidence(rec, per_length: int, documents: int) -> dict[str, np.ndarray]:
    """Read every fitting string (the plain generated groups from the digit model's validation
    digits, seed 100; `documents` document-like numbers) and the real ones (a report only) ->
    arrays with one row per line read (a reading without lines: one row of NaN evidence):
    case, set ("plain", "documents" or the real source), unit (the writer of a document number;
    the case number otherwise), right (the whole reading), before (its confidence with the
    shipped map), evidence (float64, one column per `Evidence` field). Cached under the cache
    directory by the networks' bytes and the counts, so that refits are instant."""
    import dataclasses
    import hashlib

    from digitrec import paths
    from digitrec.export import validation_split
    from digitrec.files import file_sha256
    from digitrec.read.params import Evidence

    fields = [f.name for f in dataclasses.fields(Evidence)]
    # Keyed by the bytes of every network the reader reads with (a line reader replaced in place, a
    # new shipped one, must not be answered from the evidence of the one before), the reader's
    # settings (`before` is the confidence with their map) and how the images were resampled.
    reader = rec.reader
    networks = [file_sha256(path) for path in reader.network_files()]
    settings = repr(dataclasses.asdict(reader.params))
    key = f"{EVIDENCE_VERSION}|{networks}|{settings}|{RESCALE}|{BLUR}|{FAINT}|{per_length}|{documents}|{fields}"
    cache = paths.cache_root() / "read-confidence" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if cache.is_file():
        with np.load(cache) as f:
            print(f"(evidence from {cache})")
            return dict(f)

    def cases():
        digits = validation_split(rec.card.get("config", {}))
        for n, (_g, _l, image, label) in enumerate(generated_cases(per_length, seed=100, digits=digits)):
            yield "plain", n, image, label
        for writer, image, label in document_cases(documents):
            yield "documents", writer, image, label
        for source in REAL_SOURCES:
            for n, (_name, path, label) in enumerate(real_cases(source)):
                yield source, n, path, label

    rows: dict[str, list] = {k: [] for k in ("case", "set", "unit", "right", "before", "evidence")}
    t0 = time.perf_counter()
    for case, (name, unit, image, label) in enumerate(cases()):
        text, confidence, reading = read_one(rec, image)
        lines = [] if reading is None else [line[0].evidence for line in reading.lines if line]
        for evidence in lines or [None]:
            rows["case"].append(case)
            rows["set"].append(name)
            rows["unit"].append(unit)
            rows["right"].append(text == label)
            rows["before"].append(confidence)
            rows["evidence"].append(
                [np.nan] * len(fields) if evidence is None else [float(getattr(evidence, f)) for f in fields]
            )
        if case % 200 == 199:
            print(f"  {case + 1} read ({time.perf_counter() - t0:.0f} s)", flush=True)
    out = {k: np.array(v) for k, v in rows.items()}
    out["fields"] = np.array(fields)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, **out)
    return out


# The map's inputs (`Evidence` fields): the first five, and those it may weigh beyond them;
# `--fit-confidence` keeps those that lower the log-loss on the held-out writers' strings.
FIVE = ("digit_log_prob", "one_digit_log_prob", "line_log_prob", "line_agrees", "digits")
EXTRA_FEATURES = ("min_digit_log_prob", "min_one_digit_log_prob", "line_margin", "length_gap", "second_log_prob")
MIN_GAIN = 0.001  # the least drop in held-out log-loss (nats per string) that earns an input its place


def _confidences(data: dict[str, np.ndarray], names: tuple[str, ...], weights: np.ndarray) -> dict[int, float]:
    """case -> the reading's confidence under a map (bias + `names`): its lines' probabilities
    multiplied, 0 for a reading with no lines."""
    x = _design(data, names)
    p = 1.0 / (1.0 + np.exp(-np.clip(np.nan_to_num(x @ weights, nan=-50.0), -50, 50)))
    out: dict[int, float] = {}
    for case, prob in zip(data["case"].tolist(), p.tolist()):
        out[case] = out.get(case, 1.0) * prob
    return out


def _design(data: dict[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray:
    fields = data["fields"].tolist()
    cols = [data["evidence"][:, fields.index(n)] for n in names]
    return np.column_stack([np.ones(len(data["case"])), *cols])


def fit_confidence(rec, per_length: int, documents: int) -> None:
    """Fit ReaderParams.confidence_weights on generated validation strings (plain and dressed as
    documents), choose its inputs on the held-out writers' strings, print the weights, and report
    the map before and after on the generated and the real strings (the real ones a report only:
    nothing is chosen on them)."""
    from digitrec.read.params import DEFAULT_PARAMS, FEATURES, fit_logistic

    data = confidence_evidence(rec, per_length, documents)
    case, sets, unit = data["case"], data["set"], data["unit"]
    lines_per_case = np.bincount(case)
    synthetic = np.isin(sets, ("plain", "documents"))
    # Fit on readings of one line (a reading of several lines is wrong: its label is one line).
    usable = synthetic & (lines_per_case[case] == 1) & ~np.isnan(data["evidence"]).any(axis=1)
    writers = np.unique(unit[sets == "documents"])
    held_writers = np.random.default_rng(0).choice(writers, len(writers) // 3, replace=False)
    held = np.where(sets == "documents", np.isin(unit, held_writers), unit % 3 == 0)
    y = data["right"].astype(np.float64)
    print(
        f"{len(np.unique(case[synthetic]))} generated readings ({(sets[synthetic] == 'documents').sum()} "
        f"lines of documents, {len(writers)} writers, {len(held_writers)} held out; plain strings: every "
        f"third held out), {usable.sum()} of one line used, {y[usable].mean():.1%} right"
    )

    def held_out_score(names: tuple[str, ...]) -> tuple[float, float, list[float]]:
        """Fitted on the other writers -> log-loss, ECE and risk-coverage on the held-out ones."""
        x = _design(data, names)
        w = fit_logistic(x[usable & ~held], y[usable & ~held])
        p = 1.0 / (1.0 + np.exp(-np.clip(x[usable & held] @ w, -50, 50)))
        yy = y[usable & held]
        loss = float(-np.mean(yy * np.log(np.maximum(p, 1e-12)) + (1 - yy) * np.log(np.maximum(1 - p, 1e-12))))
        ok = list(yy.astype(bool))
        return loss, correctness_ece(ok, list(p)), risk_coverage(ok, list(p))

    # Forward selection: from the five, add the extra input that lowers the held-out log-loss most,
    # while it lowers it by at least MIN_GAIN.
    print("\nInputs, fitted on the other writers, scored on the held-out writers' strings")
    print("| inputs | log-loss | ECE | top 80% | top 90% |")
    print("|---|---|---|---|---|")
    chosen, best = FIVE, held_out_score(FIVE)
    print(f"| the five | {best[0]:.4f} | {best[1]:.3f} | {100 * best[2][1]:.1f} | {100 * best[2][2]:.1f} |")
    while True:
        tried = {e: held_out_score(chosen + (e,)) for e in EXTRA_FEATURES if e not in chosen}
        for e, (loss, ece, rc) in tried.items():
            print(
                f"| {' + '.join(('...', *chosen[len(FIVE) :], e))} | {loss:.4f} | {ece:.3f} | {100 * rc[1]:.1f} | {100 * rc[2]:.1f} |"
            )
        if not tried or min(t[0] for t in tried.values()) > best[0] - MIN_GAIN:
            break
        add = min(tried, key=lambda e: tried[e][0])
        chosen, best = chosen + (add,), tried[add]
    print(f"chosen: the five{''.join(' + ' + e for e in chosen[len(FIVE) :])} (held-out ECE {best[1]:.3f})")
    weights = fit_logistic(_design(data, chosen)[usable], y[usable])
    print("\nFEATURES = " + repr(("bias", *chosen)))
    print("confidence_weights = (" + ", ".join(f"{w:.4f}" for w in weights) + ")")

    maps = {
        "shipped map": (tuple(FEATURES[1:]), np.asarray(DEFAULT_PARAMS.confidence_weights)),
        "the five refitted": (FIVE, fit_logistic(_design(data, FIVE)[usable], y[usable])),
        "fitted": (chosen, np.round(weights, 4)),
    }
    conf = {name: _confidences(data, names, w) for name, (names, w) in maps.items()}
    right = {int(c): bool(r) for c, r in zip(case, data["right"])}
    set_of = {int(c): str(s) for c, s in zip(case, sets)}
    print("\nMost confident 50 / 80 / 90 / 100% of the strings right (%), ECE; [strings right in the top 80%]")
    print("| set | strings | " + " | ".join(maps) + " |")
    print("|---|---|" + "---|" * len(maps))
    groups = [
        ("generated plain", ("plain",)),
        ("generated documents", ("documents",)),
        *((s, (s,)) for s in REAL_SOURCES),
    ]
    groups.append(("real, all three", REAL_SOURCES))
    for label, members in groups:
        cases = sorted(c for c, s in set_of.items() if s in members)
        if not cases:
            continue
        ok = [right[c] for c in cases]
        cells = []
        for name in maps:
            cf = [conf[name][c] for c in cases]
            rc = risk_coverage(ok, cf)
            top = int(np.ceil(0.8 * len(ok)))
            n_top = int(np.asarray(ok)[np.argsort(-np.asarray(cf), kind="stable")][:top].sum())
            cells.append(" / ".join(f"{100 * a:.1f}" for a in rc) + f", {correctness_ece(ok, cf):.3f} [{n_top}/{top}]")
        print(f"| {label} | {len(cases)} | " + " | ".join(cells) + " |")


def reader_params(settings: list[str]):
    """["KEY=VALUE", ...] -> the shipped ReaderParams with those fields replaced (each VALUE parsed as
    the field's type); an unknown key is an error naming the fields."""
    import dataclasses

    from digitrec.read.params import DEFAULT_PARAMS

    fields = {f.name: type(getattr(DEFAULT_PARAMS, f.name)) for f in dataclasses.fields(DEFAULT_PARAMS)}
    changes = {}
    for setting in settings:
        key, _, value = setting.partition("=")
        if key not in fields or fields[key] not in (int, float, bool):
            raise SystemExit(f"--set {setting}: not a numeric ReaderParams field ({', '.join(sorted(fields))})")
        changes[key] = value.lower() in ("1", "true") if fields[key] is bool else fields[key](value)
    return dataclasses.replace(DEFAULT_PARAMS, **changes)


def read_validation(
    rec, per_length: int, documents: int, bare: int = 0, drawings: int = 0, forms: int = 0
) -> list[tuple[str, str, str, str, str]]:
    """Read the strings reader settings are chosen on, and print their accuracy per group: the
    generated groups of the digit model's validation digits (seed 100, as `--fit-confidence`),
    `documents` document-like numbers of writers neither network saw, and `bare` of those
    validation digits as bare 28x28 images (group "bare", as the benchmark reads test digits), and
    `drawings` of them drawn with a marker on a canvas (group "drawings"), and `forms` numbers of
    those writers with real writers' forms of their digits (`forms_cases`, group "forms"). Never
    the test digits the benchmark reports, never ../shared. -> rows for --results."""
    from digitrec.export import validation_split

    digits = validation_split(rec.card.get("config", {}))
    cases = [(g, image, label) for g, _l, image, label in generated_cases(per_length, seed=100, digits=digits)]
    cases += [("documents", image, label) for _w, image, label in document_cases(documents)]
    pick = np.random.default_rng(0).choice(len(digits[1]), min(bare, len(digits[1])), replace=False)
    cases += [("bare", digits[0][i], str(digits[1][i])) for i in pick]
    cases += [("drawings", image, label) for image, label in drawing_cases(drawings, *digits)]
    cases += [("forms", image, label) for _w, image, label in forms_cases(forms)]
    t0 = time.perf_counter()
    rows, stats = [], defaultdict(lambda: [0, 0])
    for n, (group, image, label) in enumerate(cases):
        text = read_one(rec, image)[0]
        rows.append(("validation", str(n), group, label, text))
        for key in (group, "all"):
            stats[key][0] += text == label
            stats[key][1] += 1
    print(f"\nValidation strings ({(time.perf_counter() - t0) / max(1, len(cases)) * 1000:.0f} ms each)")
    print("| group | strings | string acc |\n|---|---|---|")
    for group, (right, total) in sorted(stats.items(), key=lambda kv: kv[0] == "all"):
        print(f"| {group} | {total} | {100 * right / total:.1f} |")
    return rows


# OpenCV's Hershey fonts, which the rejector's training holds out.
HERSHEY = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
)


def letter_cases(count: int, seed: int = 11):
    """(text, uint8 page) for `count` strings of 2-6 letters (the rejector's letter set: none a
    digit is written like), dark on light paper with grain, in varied sizes, weights and Hershey
    fonts: `read` should find no number in any of them."""
    from digitrec.train.negatives import LETTERS

    rng = np.random.default_rng(seed)
    for n in range(count):
        text = "".join(rng.choice(list(LETTERS), int(rng.integers(2, 7))))
        font, scale, thick = HERSHEY[n % len(HERSHEY)], float(rng.uniform(1.2, 2.5)), int(rng.integers(2, 7))
        (w, h), base = cv2.getTextSize(text, font, scale, thick)
        page = np.full((h + base + 60, w + 60), int(rng.integers(200, 250)), np.uint8)
        cv2.putText(page, text, (30, h + 30), font, scale, int(rng.integers(10, 80)), thick, cv2.LINE_AA)
        yield text, np.clip(page + rng.normal(0, 4, page.shape), 0, 255).astype(np.uint8)


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
    parser.add_argument(
        "--only",
        choices=("generated", "real", "bare", "drawings", "letters", "validation"),
        default=None,
        help="one part (validation: the strings to choose reader settings on, read nowhere else)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="read with this ReaderParams setting instead of the shipped one (repeatable)",
    )
    parser.add_argument(
        "--bare",
        type=int,
        default=1000,
        help="bare 28x28 MNIST test digits to read (with --only validation: validation digits; 0: none)",
    )
    parser.add_argument(
        "--drawings", type=int, default=300, help="MNIST test digits drawn with a marker on a canvas (0: none)"
    )
    parser.add_argument("--letters", type=int, default=150, help="strings of letters to read, none a number (0: none)")
    parser.add_argument("--fit-confidence", action="store_true", help="fit the string confidence's calibration map")
    parser.add_argument(
        "--documents", type=int, default=1600, help="--fit-confidence: document-like numbers to fit on too"
    )
    parser.add_argument("--line-reader", type=Path, default=None, help="another line reader (default: the shipped one)")
    parser.add_argument("--results", type=Path, default=None, help="write every image's reading to this CSV")
    parser.add_argument(
        "--test-documents",
        type=int,
        default=200,
        help="generated numbers dressed as documents, of MNIST test writers, to read (0: none)",
    )
    parser.add_argument(
        "--forms",
        type=int,
        default=None,
        help="numbers with real writers' forms of 1, 2, 4, 7, 9 to read (default 200 of test writers; "
        "with --only validation 300 of validation writers; 0: none)",
    )
    parser.add_argument("--amounts", type=int, default=0, help="also read N generated amounts with their marks")
    parser.add_argument(
        "--rescale", type=float, default=1.0, help="resample every image by this factor before reading it (0.5, 2)"
    )
    parser.add_argument(
        "--blur", type=float, default=0.0, help="blur every image by a Gaussian of this sigma, px (a soft scan)"
    )
    parser.add_argument(
        "--faint",
        type=float,
        default=1.0,
        help="every image's ink this share as dark against its paper, with a camera's grain (pencil: 0.2)",
    )
    parser.add_argument("--verifier", type=Path, default=None, help="another verifier (default: the shipped one)")
    args = parser.parse_args()
    if not (args.blur >= 0 and args.rescale > 0 and 0 < args.faint <= 1):  # NaN fails each
        parser.error("--blur must be 0 or more, --rescale more than 0 and --faint in (0, 1]")
    global RESCALE, BLUR, FAINT
    RESCALE, BLUR, FAINT = args.rescale, args.blur, args.faint
    if args.forms is None:
        args.forms = 300 if args.only == "validation" else 200

    from digitrec.read.draw import draw_reading
    from digitrec.runtime import Recognizer

    rec = Recognizer(args.model)
    if args.line_reader or args.verifier or args.set:
        from digitrec.read import NumberReader
        from digitrec.read.line_reader import LineReader
        from digitrec.read.verifier import Verifier

        # one thread unless told, as the reader's own networks (`NumberReader`): timings compare
        line_reader = LineReader(args.line_reader, threads=rec.threads or 1) if args.line_reader else None
        verifier = Verifier(args.verifier, threads=rec.threads or 1) if args.verifier else None
        rec.reader = NumberReader(rec, verifier=verifier, line_reader=line_reader, params=reader_params(args.set))
    rows = []  # (source, name, group, label, text) for --results
    if args.fit_confidence:
        fit_confidence(rec, args.per_length, args.documents)
        return
    trust: list[tuple[str, list[bool], list[float]]] = []
    scorer = rec.reader.recognizer  # the digit model the reader scores its cuts with (its card may name one)
    print(f"# {datetime.date.today()}  model {rec.card.get('name', rec.path.name)} ({rec.path})")
    if scorer is not rec:
        print(f"# digit scorer of the reader {scorer.card.get('name', scorer.path.name)} ({scorer.path})")
    print(
        f"# line reader {args.line_reader or 'shipped'}, verifier {args.verifier or 'shipped'}"
        + (f"; settings {' '.join(args.set)}" if args.set else "")
    )
    print(
        f"# machine: {platform.machine()}, {os.cpu_count()} cores, matmul {gflops():.1f} GFLOP/s, "
        f"load {load()}; command: {' '.join(sys.argv)}"
    )

    def failure(name: str, image, label: str, text: str) -> None:
        if args.failures is None:
            return
        from digitrec.preprocess import load_grey

        args.failures.mkdir(parents=True, exist_ok=True)
        grey = load_grey(as_scanned(image))  # drawn as it was read
        try:
            drawn = draw_reading(grey, rec.read(grey))
        except Exception:
            drawn = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
        safe = f"{name}_want{label}_got{text.replace(chr(10), '|') or 'none'}.png"
        cv2.imwrite(str(args.failures / safe), drawn)

    if args.only == "validation":
        rows += read_validation(rec, args.per_length, args.documents, args.bare, args.drawings, args.forms)

    if args.only in (None, "generated") and args.per_length:
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

    if args.only in (None, "generated") and args.test_documents:
        t0 = time.perf_counter()
        cases = document_cases(args.test_documents, TEST_DOCUMENT_SEED, split="test")
        *documents, digits_right, digits = read_cases(rec, cases, "generated-documents", "documents", rows, failure)
        right = sum(documents[0])
        print(
            f"\nGenerated documents (1-8 digits of one MNIST test writer each, dressed as cheques, registers, "
            f"ruled and squared paper, photos, with crosses, ticks and marks): {right}/{args.test_documents} = "
            f"{100 * right / args.test_documents:.1f}% strings ({100 * digits_right / digits:.1f}% digits; "
            f"{(time.perf_counter() - t0) / args.test_documents * 1000:.0f} ms each)"
        )
        trust.append(("generated documents", *documents))

    if args.only in (None, "generated") and args.forms:
        t0 = time.perf_counter()
        cases = forms_cases(args.forms, TEST_FORMS_SEED, split="test")
        *forms, _, _ = read_cases(rec, cases, "generated-forms", "forms", rows, failure)
        right = sum(forms[0])
        print(
            f"\nGenerated forms (2-7 digits of one MNIST test writer each, their 1s, 2s, 4s, 7s and 9s redrawn "
            f"half the time as real writers write them, half dressed as documents): {right}/{args.forms} = "
            f"{100 * right / args.forms:.1f}% strings ({(time.perf_counter() - t0) / args.forms * 1000:.0f} ms each)"
        )
        trust.append(("generated forms", *forms))

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

    if args.only in (None, "drawings") and args.drawings:
        from digitrec.data import load_mnist

        cases = drawing_cases(args.drawings, *load_mnist("test"))
        t0 = time.perf_counter()
        right = sum(read_one(rec, image)[0] == label for image, label in cases)
        print(
            f"\nMNIST test digits drawn with a marker on a canvas, read as one-digit numbers: {right}/{len(cases)} = "
            f"{100 * right / len(cases):.1f}% ({(time.perf_counter() - t0) / len(cases) * 1000:.0f} ms each)"
        )

    if args.only in (None, "letters") and args.letters:
        t0 = time.perf_counter()
        texts = [read_one(rec, page)[0] for _, page in letter_cases(args.letters)]
        nothing = sum(not t for t in texts)
        print(
            f"\nStrings of letters (Hershey fonts the rejector never saw) read as no number: {nothing}/{len(texts)} = "
            f"{100 * nothing / len(texts):.1f}% ({(time.perf_counter() - t0) / len(texts) * 1000:.0f} ms each)"
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

    if trust:
        print_trust(trust)

    if args.amounts:
        from digitrec.data import load_mnist

        images, labels = load_mnist("test")
        rng = np.random.default_rng(2)
        right = digits_right = 0
        for n, label in enumerate(amount_texts(rng, args.amounts)):
            image = write_text(rng, images, labels, label)
            try:
                text = rec.read(as_scanned(image), keep_punctuation=True).text
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
