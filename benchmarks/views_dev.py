"""Which views should `predict` give the model? Candidate preparations compared on a synthetic dev set,
per kind of image, with the shipped model (issue 16: settings are chosen here, never on ../shared).

The dev set is drawn from the 5,000 MNIST training digits every recipe holds out for validation
(`train.loop.split_indices`), as the images users bring: the digit model's own renderers
(`train.rendered.render_digit`: paper, normalised scans 16-32 px, often stretched and binary, cuts
from a number, cheque cuts; font digits in held-out fonts), plus three kinds they lack: fat pens (MNIST ink
dilated 3-5 px, as paper digits and as normalised scans), European 1s (a long flag from the top,
sometimes a foot), which the squeezed views are for, and blurred grey scans (16-32 px, the digit
stretched to the box or fitted into it keeping its aspect, then smoothed, as USPS stores digits),
where issue 16 saw the default fall below the plain pipeline. Each raw image goes through the
product's ink finding (`locate_digit`), then through each candidate:

  crop      the product's (`soft_crop` of the chosen blobs), that one with one step of the plain
            pipeline swapped in (level, rim, grey levels, box), plain's own, and the candidates of
            views study 2 (`CROPS`; docs/predict.md; "scan: plain crop" passed the dev set and was
            not shipped; predict now adds it to a scan's first view, the last row);
  strokes   the stroke width clipped into MNIST's range (what predict does) or kept as written;
  views     as written only, or averaged with the 80% and 60% squeezes (predict).

    .venv/bin/python benchmarks/views_dev.py              # 6,600 images, about 5 minutes on one core
    .venv/bin/python benchmarks/views_dev.py --scale 0.1  # a quick look
    .venv/bin/python benchmarks/views_dev.py --crops "product,plain" --kinds
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from external import plain_crop  # noqa: E402  (the plain pipeline's crop, as external.py scores it)

from digitrec.errors import DigitrecError  # noqa: E402
from digitrec.preprocess.digit import (  # noqa: E402
    VIEW_SQUEEZES,
    digit_views,
    fit_and_centre,
    is_mnist_like,
    is_normalised_scan,
    locate_digit,
    scan_crop,
    soft_crop,
)
from digitrec.preprocess.frames import remove_frames  # noqa: E402
from digitrec.preprocess.ink import SMALL_SIDE, InkMap  # noqa: E402

# kind -> images at --scale 1. Normalised scans get the most: they are where issue 16 found the loss.
KINDS = {
    "digit": 500,
    "scan-digit": 1500,
    "cut-digit": 400,
    "cheque-digit": 500,
    "font-digit": 300,
    "fat-scan": 1000,
    "fat-digit": 400,
    "flag1-digit": 250,
    "flag1-scan": 250,
    "blur-scan": 1500,
}


def fat_pen(rng: np.random.Generator, digit28: np.ndarray) -> np.ndarray:
    k = 2 * int(rng.integers(1, 3)) + 1  # 3 or 5 px at 28 px: a marker
    return cv2.dilate(digit28, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))


def flagged_one(rng: np.random.Generator, one28: np.ndarray) -> np.ndarray:
    """An MNIST 1 with a European flag: a stroke from its top down to the left, 25-50% of its
    height at 20-50 degrees; three in ten with a foot."""
    big = cv2.resize(one28, (112, 112), interpolation=cv2.INTER_CUBIC)
    ys, xs = np.nonzero(big > 128)
    top = int(ys.argmin())
    tx, ty, h = int(xs[top]), int(ys[top]), int(ys.max() - ys.min())
    length, angle = rng.uniform(0.25, 0.5) * h, np.deg2rad(rng.uniform(20, 50))
    width = int(rng.integers(6, 12))
    cv2.line(
        big, (tx, ty), (int(tx - length * np.cos(angle)), int(ty + length * np.sin(angle))), 255, width, cv2.LINE_AA
    )
    if rng.random() < 0.3:
        bx, by, f = int(xs[ys.argmax()]), int(ys.max()), int(rng.uniform(0.15, 0.3) * h)
        cv2.line(big, (bx - f, by), (bx + f, by), 255, width, cv2.LINE_AA)
    return cv2.resize(big, (28, 28), interpolation=cv2.INTER_AREA)


def blurred_scan(rng: np.random.Generator, digit28: np.ndarray) -> tuple[np.ndarray, str]:
    """-> (uint8 grey scan, ink bright: the digit in a 16-32 px box, stretched to it or fitted
    keeping its aspect, smoothed by a Gaussian of 0.5-1.2 px at 16 px; its kind name)."""
    from digitrec.train import negatives

    ink = negatives.mnist_ink(digit28)
    side = int(rng.choice([16, 16, 20, 32]))
    stretched = rng.random() < 0.5
    if stretched:
        box = cv2.resize(ink, (side, side), interpolation=cv2.INTER_AREA)
    else:
        h, w = ink.shape
        f = side / max(h, w)
        small = cv2.resize(ink, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        box = np.zeros((side, side), np.float32)
        top, left = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
        box[top : top + small.shape[0], left : left + small.shape[1]] = small
    box = cv2.GaussianBlur(box, (0, 0), rng.uniform(0.5, 1.2) * side / 16)
    grey = np.clip(box / max(float(box.max()), 1e-3) * 255, 0, 255).astype(np.uint8)
    return grey, f"blur{side}{'s' if stretched else 'k'}"


def dev_set(scale: float, seed: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """-> (raw grey images, labels, kind names), drawn from MNIST's validation digits."""
    from digitrec.data import load_mnist
    from digitrec.train import negatives
    from digitrec.train.config import TrainConfig
    from digitrec.train.loop import split_indices
    from digitrec.train.rendered import render_digit

    images, labels = load_mnist("train")
    val, _ = split_indices(TrainConfig(), len(images))
    images, labels = images[val], labels[val]
    ones = images[labels == 1]
    _, held_out_fonts = negatives.split_fonts(negatives.installed_fonts())
    rng = np.random.default_rng(seed)
    greys, truth, kinds = [], [], []
    for kind, n in KINDS.items():
        for _ in range(max(1, round(n * scale))):
            shown = kind
            if kind == "blur-scan":
                i = int(rng.integers(len(images)))
                (grey, shown), label = blurred_scan(rng, images[i]), int(labels[i])
            elif kind.startswith(("fat", "flag1")):
                i = int(rng.integers(len(images)))
                digit, label = (
                    (fat_pen(rng, images[i]), int(labels[i]))
                    if kind.startswith("fat")
                    else (
                        flagged_one(rng, ones[rng.integers(len(ones))]),
                        1,
                    )
                )
                if kind.endswith("scan"):
                    grey = negatives.scanned_digit(rng, digit)
                else:
                    grey = negatives.on_paper(rng, negatives.distort(rng, negatives.mnist_ink(digit), 0.5))
            else:
                grey, label = render_digit(rng, kind, held_out_fonts, images, labels)
            if kind == "scan-digit":  # split by what the issue suspects: size and binary vs grey
                shown = f"scan{grey.shape[0]}{'b' if len(np.unique(grey)) <= 2 else 'g'}"
            greys.append(grey)
            truth.append(label)
            kinds.append(shown)
    return greys, np.array(truth), np.array(kinds)


def upright_ink(work: np.ndarray, ink: InkMap) -> np.ndarray:
    """The working copy as float ink bright on dark, the paper's median level (outside the ink mask) at 0."""
    bright = work.astype(np.float32) if ink.bright_ink else 255.0 - work.astype(np.float32)
    paper = float(np.median(bright[ink.mask == 0])) if (ink.mask == 0).any() else 0.0
    return np.clip(bright - paper, 0, None)


def otsu_box(work: np.ndarray, ink: InkMap) -> tuple[int, int, int, int]:
    """The box of plain's Otsu mask of the (upright) working copy."""
    bright = work if ink.bright_ink else 255 - work
    _, mask = cv2.threshold(bright, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    x, y, w, h = cv2.boundingRect(mask)
    return (x, y, w, h) if w else (0, 0, *work.shape[::-1])


def _keep(ink: InkMap, mask: np.ndarray) -> np.ndarray:
    rim = max(1, round(ink.stroke_width / 4))
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rim + 1, 2 * rim + 1))) > 0


def _cut(a: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    return a[y : y + h, x : x + w]


def _level_max(a: np.ndarray) -> np.ndarray:
    return a / max(float(a.max()), 1e-3)


# Crops: the product's (`soft_crop` of the chosen blobs) with one of its steps
# swapped for plain's, and candidates; each a function of (raw grey, working copy, InkMap, its ink
# mask without frames, the digit's blobs, their box) -> float crop, ink 1 on 0.
CROPS = {
    "product": lambda g, work, ink, unframed, mask, box: soft_crop(ink, mask, box),
    # candidate C of views study 2 (passed the dev set, not shipped: the rejector judged its first
    # view): a normalised scan (flat, under MIN_WORK_SIDE) cropped the plain way
    "scan: plain crop": lambda g, work, ink, unframed, mask, box: (
        scan_crop(work, ink) if is_normalised_scan(g, ink) else soft_crop(ink, mask, box)
    ),
    # the ink level that becomes 1: the crop's maximum (plain) instead of the cores' 90th percentile
    "level=max": lambda g, work, ink, unframed, mask, box: _level_max(_cut(ink.contrast * _keep(ink, mask), box)),
    # no rim cut: the whole box's contrast (plain keeps everything in its box)
    "no rim": lambda g, work, ink, unframed, mask, box: _cut(
        np.clip(ink.contrast / max(ink.ink_level, 1e-3), 0, 1), box
    ),
    # the raw grey levels (no lighting division, no smoothing) in the rim, level = max
    "raw grey": lambda g, work, ink, unframed, mask, box: _level_max(
        _cut(upright_ink(work, ink) * _keep(ink, mask), box)
    ),
    # plain's box (Otsu's mask of the working copy) around the product's soft crop
    "otsu box": lambda g, work, ink, unframed, mask, box: np.clip(
        _cut(ink.contrast, otsu_box(work, ink)) / max(ink.ink_level, 1e-3), 0, 1
    ),
    # plain's whole crop, on the (enlarged) working copy instead of the raw image
    "plain on work": lambda g, work, ink, unframed, mask, box: _level_max(
        _cut(upright_ink(work, ink), otsu_box(work, ink))
    ),
    # Candidates. Every ink blob inside the chosen box, not only the chosen ones (pieces of a broken
    # fat stroke that blob selection left out, inside the digit's own box)
    "box ink": lambda g, work, ink, unframed, mask, box: soft_crop(ink, ink.mask, box),
    # a flat image (normalised scan, drawing) holds one digit: all its ink, its box
    "flat: all ink": lambda g, work, ink, unframed, mask, box: (
        soft_crop(ink, ink.mask, cv2.boundingRect(ink.mask)) if ink.flat else soft_crop(ink, mask, box)
    ),
    # the same for every evenly lit image (flat, or small: a cropped digit, a cheque's cut)
    "even: all ink": lambda g, work, ink, unframed, mask, box: (
        soft_crop(ink, ink.mask, cv2.boundingRect(ink.mask))
        if ink.flat or max(work.shape) < SMALL_SIDE
        else soft_crop(ink, mask, box)
    ),
    # an evenly lit image cropped the plain way (Otsu's box of the upright grey, level = max) ...
    "even: plain on work": lambda g, work, ink, unframed, mask, box: (
        _level_max(_cut(upright_ink(work, ink), otsu_box(work, ink)))
        if ink.flat or max(work.shape) < SMALL_SIDE
        else soft_crop(ink, mask, box)
    ),
    # ... at its own resolution (what plain does)
    "even: plain": lambda g, work, ink, unframed, mask, box: (
        plain_crop(g) if ink.flat or max(work.shape) < SMALL_SIDE else soft_crop(ink, mask, box)
    ),
    "flat: plain on work": lambda g, work, ink, unframed, mask, box: (
        _level_max(_cut(upright_ink(work, ink), otsu_box(work, ink))) if ink.flat else soft_crop(ink, mask, box)
    ),
    "flat: plain on work; small: all ink": lambda g, work, ink, unframed, mask, box: (
        _level_max(_cut(upright_ink(work, ink), otsu_box(work, ink)))
        if ink.flat
        else soft_crop(ink, ink.mask, cv2.boundingRect(ink.mask))
        if max(work.shape) < SMALL_SIDE
        else soft_crop(ink, mask, box)
    ),
    "flat: plain on work; small: box ink": lambda g, work, ink, unframed, mask, box: (
        _level_max(_cut(upright_ink(work, ink), otsu_box(work, ink)))
        if ink.flat
        else soft_crop(ink, unframed, box)
        if max(work.shape) < SMALL_SIDE
        else soft_crop(ink, mask, box)
    ),
    "flat: all ink; box ink": lambda g, work, ink, unframed, mask, box: soft_crop(
        ink, ink.mask, cv2.boundingRect(ink.mask) if ink.flat else box
    ),
}


def with_unframed(work: np.ndarray, ink: InkMap, mask: np.ndarray, box: tuple[int, int, int, int]) -> tuple:
    """`locate_digit`'s findings, with the ink mask once frames are removed (every blob, chosen or not)."""
    return work, ink, remove_frames(ink.mask, ink.labelled)[0], mask, box


def fits(crop: np.ndarray, normalize_strokes: bool) -> np.ndarray:
    """-> uint8 (3, 28, 28): as written, squeezed to 80% and 60%."""
    return np.stack([fit_and_centre(crop, squeeze=s, normalize_strokes=normalize_strokes) for s in VIEW_SQUEEZES])


GROUPS = {  # printed columns: kind names (prefixes) -> column
    "digit": ("digit",),
    "scans": ("scan",),
    "cut": ("cut-digit",),
    "cheque": ("cheque-digit",),
    "font": ("font-digit",),
    "fatscan": ("fat-scan",),
    "fatpaper": ("fat-digit",),
    "flag1p": ("flag1-digit",),
    "flag1s": ("flag1-scan",),
    "blur": ("blur",),
}


def group_of(kind: str) -> str:
    return next(g for g, prefixes in GROUPS.items() if any(kind.startswith(p) for p in prefixes))


def main(argv: list[str] | None = None) -> int:
    from digitrec.runtime import Recognizer

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="share of KINDS' image counts")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument(
        "--kinds", action="store_true", help="a column per kind (scan and blur sizes) instead of per group"
    )
    parser.add_argument("--crops", default=None, help="comma-separated CROPS names (default: all, and plain)")
    args = parser.parse_args(argv)

    rec = Recognizer(reject=False, min_confidence=0.0)
    print(f"# views dev set, {datetime.date.today()}")
    print(f"# command: python benchmarks/views_dev.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"# machine: {platform.machine()}, {os.cpu_count()} CPU cores; model: {rec.card.get('name', '?')}\n")
    greys, truth, kinds = dev_set(args.scale, args.seed)
    if args.kinds:
        columns = np.array(kinds)
        names = sorted(
            dict.fromkeys(kinds),
            key=lambda n: (
                list(KINDS).index(n if n in KINDS else "scan-digit" if n.startswith("scan") else "blur-scan"),
                n,
            ),
        )
    else:
        columns = np.array([group_of(k) for k in kinds])
        names = [g for g in GROUPS if (columns == g).any()]
    print(f"{'candidate (crop, strokes, views)':44s}" + "".join(f"{n[:8]:>9s}" for n in names) + f"{'all':>6s}")
    print(f"{'images':44s}" + "".join(f"{(columns == n).sum():9d}" for n in names) + f"{len(truth):6d}")

    def show(label: str, p: np.ndarray) -> np.ndarray:
        right = (np.nan_to_num(p, nan=-1.0).argmax(axis=1) == truth) & ~np.isnan(p).any(axis=1)
        cells = "".join(f"{right[columns == n].sum():9d}" for n in names)
        print(f"{label:44s}{cells}{right.sum():6d}", flush=True)
        return right

    # Every crop of every image, fitted with strokes normalised and as written, three views each.
    crop_names = args.crops.split(",") if args.crops else [*CROPS, "plain"]
    views = np.zeros((len(crop_names), 2, len(greys), len(VIEW_SQUEEZES), 28, 28), np.uint8)
    found = np.ones((len(crop_names), len(greys)), bool)
    for i, grey in enumerate(greys):
        try:
            parts = None if is_mnist_like(grey) else with_unframed(*locate_digit(grey))
        except DigitrecError:  # no ink found: wrong for every product candidate
            parts = None
            found[[c for c, n in enumerate(crop_names) if n != "plain"], i] = False
        for c, name in enumerate(crop_names):
            if not found[c, i]:
                continue
            try:
                if parts is None and name != "plain":
                    crop = None
                else:
                    crop = plain_crop(grey) if name == "plain" else CROPS[name](grey, *parts)
            except DigitrecError:
                found[c, i] = False
                continue
            for s, strokes in enumerate((True, False)):
                views[c, s, i] = np.repeat(grey[None], 3, 0) if crop is None else fits(crop, strokes)
    probs = rec.predict_probabilities(views.reshape(-1, 28, 28)).reshape(*views.shape[:4], 10)
    probs[~found[:, None].repeat(2, 1)] = np.nan
    for c, name in enumerate(crop_names):
        for s, strokes in enumerate(("normalised", "as written")):
            p = probs[c, s]
            show(f"{name}, {strokes}, one view", p[:, 0])
            show(f"{name}, {strokes}, 3 views averaged", p.mean(axis=1))
    # What predict does (`digit_views`): the chosen blobs' three views, but a normalised scan's first
    # view followed by its plain crop's three (views study 3, docs/predict.md).
    shipped = np.full((len(greys), 10), np.nan, np.float32)
    for i, grey in enumerate(greys):
        try:
            shipped[i] = rec.predict_probabilities(digit_views(grey)).mean(axis=0)
        except DigitrecError:
            continue
    show("predict (digit_views)", shipped)
    print(
        "\nCells: images read right. 'predict (digit_views)' is the product: 'product, normalised, 3 views "
        "averaged' except on normalised scans; "
        "external.py's plain is 'plain, normalised, one view'. A kind's noise: a difference of a few images "
        "(paired, the same images for every candidate)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
