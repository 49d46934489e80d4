"""Training data for the line reader (`digitrec.read.line_reader`): lines of digits as the reader sees them.

Numbers of 1-8 MNIST *training* digits, each number of one writer's digits
(`digitrec.writers`), made by `digitrec.synth` (all four layouts: separated,
touching, overlapping, photo-like; some with marks that are not digits (points, commas, dashes,
equals signs, slashes, ticks), a quarter ending in smaller digits like a cheque's cents), each
digit first distorted by the classifier's augmentation (slant, size, stroke width, European 1s and
7s), some broken in two (a pen that skipped, a 5 whose flag came loose: one digit in several
pieces), most of them dressed as documents (`digitrec.documents`), then found and cleaned by the real segmenter and rendered by
`line_image`, exactly as the reader renders a line. Numbers the segmenter does not see as one line
are left out (their label would not match). numpy, OpenCV and torch (for the augmentation).
"""

from __future__ import annotations

import numpy as np

from digitrec.preprocess.segment import segment
from digitrec.read.line_reader import line_image
from digitrec.synth import FORM_MARKS, GROUPS, MARKS_SHARE, SMALL_TAIL_SHARE, make_number

BROKEN = 0.1  # the share of digits broken in two
MAX_DIGITS = 8
# Of the generated numbers, this share is dressed as a document (`digitrec.documents`: a hand's
# slant and pen, crosses, ticks, underlines, register cells, cheques, ruled and squared paper,
# photos); the rest are plain, as before, so the clean case is not forgotten.
DOCUMENT_SHARE = 0.6
MINUS_SHARE = 0.05  # numbers written with a minus sign before them


def number_digits(
    rng: np.random.Generator, n_numbers: int, n_images: int, writers: list[np.ndarray] | None
) -> list[np.ndarray]:
    """The image indices of each of `n_numbers` numbers of 1-MAX_DIGITS digits: each from one
    writer of `writers` (index groups, `digitrec.writers`), or at random when there are none."""
    from digitrec.writers import one_writer_digits

    lengths = rng.integers(1, MAX_DIGITS + 1, n_numbers)
    if writers is None:
        return [rng.integers(0, n_images, n) for n in lengths]
    return [one_writer_digits(rng, writers, int(n)) for n in lengths]


def augmented_digits(images: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """uint8 (N, 28, 28) -> the same digits, each distorted once by the default recipe's
    augmentation (no stretching to fill the box: that imitates boxed forms, not numbers)."""
    import torch

    from digitrec.train.augment import augment_batch
    from digitrec.train.config import AugmentConfig

    cfg = AugmentConfig(fill_p=0.0, translate=0.0)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, len(images), 4096):
        x = torch.from_numpy(images[start : start + 4096].copy()).float()[:, None] / 255.0
        y = torch.from_numpy(labels[start : start + 4096].astype(np.int64))
        out.append((augment_batch(x, cfg, gen, y)[:, 0] * 255).round().clamp(0, 255).byte().numpy())
    return np.concatenate(out)


def break_strokes(images: np.ndarray, rng: np.random.Generator, share: float = BROKEN) -> np.ndarray:
    """uint8 (N, 28, 28) -> a copy in which `share` of the digits have a gap in a stroke: a line
    2 px wide and 9 px long at a random angle through a random ink pixel (short, so that a cut along
    a stroke only thins it instead of splitting it into two strokes)."""
    import cv2

    out = images.copy()
    for k in np.nonzero(rng.random(len(images)) < share)[0]:
        ys, xs = np.nonzero(images[k] > 128)
        if not len(ys):
            continue
        at = int(rng.integers(len(ys)))
        angle = rng.uniform(0, np.pi)
        dx, dy = 4.5 * np.cos(angle), 4.5 * np.sin(angle)
        cv2.line(out[k], (round(xs[at] - dx), round(ys[at] - dy)), (round(xs[at] + dx), round(ys[at] + dy)), 0, 2)
    return out


def line_examples(
    rng: np.random.Generator,
    images: np.ndarray,
    labels: np.ndarray,
    numbers: list[np.ndarray],
    groups: tuple[str, ...] = GROUPS,
    document: float = DOCUMENT_SHARE,
    forms: float = 0.0,
    soft: float = 0.0,
) -> tuple[list[np.ndarray], list[str]]:
    """-> (uint8 (32, W) line images, their strings: the digits and the kept marks, '.', ',' and
    '-', where they are written) from one generated number per entry of `numbers` (the indices
    of its digits in `images`). `forms` and `soft`: as `synth.make_number`'s (real writers' digit
    forms; soft and low-resolution scans)."""
    xs, ys = [], []
    for digits in numbers:
        group = groups[int(rng.integers(len(groups)))]
        text = []
        grey, _ = make_number(
            rng,
            images,
            labels,
            len(digits),
            group,
            punctuation=bool(rng.random() < MARKS_SHARE),
            small_tail=SMALL_TAIL_SHARE,
            marks=FORM_MARKS,
            digits=digits,
            document=document,
            text_out=text,
            minus=MINUS_SHARE,
            forms=forms,
            soft=soft,
        )
        seg = segment(grey, cut=False)
        if len(seg.lines) != 1:
            continue
        line = seg.lines[0]
        xs.append(line_image(line.atoms, seg.ink, seg.stroke, line.height))
        ys.append(text[0])
    return xs, ys
