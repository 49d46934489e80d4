"""Training data for the reader's segmentation verifier: what candidate digits look like.

The reader (`digitrec.read`) over-segments a written number into atoms and scores every run of
consecutive atoms as a possible digit. An MNIST classifier reads half a 0, or two touching digits,
as some digit with confidence; the verifier learns an eleventh answer, "not one digit". Its
examples are exactly the reader's candidates: numbers made from MNIST *training* digits
(`digitrec.synth`), segmented by the real segmenter, each candidate rendered as the reader renders
it, and labelled from which digit owns each pixel of ink:
- the digit, when the run holds (nearly) all of one digit's ink and (nearly) nothing else;
- NOT_ONE_DIGIT when it holds a clear part of a digit, or pieces of two;
- dropped in between (a 5 without its loose flag: neither answer is right).
numpy and OpenCV only; the training itself is in `digitrec.train.verifier`.
"""

from __future__ import annotations

import cv2
import numpy as np

from digitrec.preprocess.segment import TextLine, segment
from digitrec.read.candidates import render_candidates
from digitrec.read.verifier import NOT_ONE_DIGIT
from digitrec.synth import FORM_MARKS, GROUPS, MARKS_SHARE, SMALL_TAIL_SHARE, make_number

# Fractions of ink (mask pixels) for the labels: purity = the owner's share of the run's ink,
# coverage = the share of the owner's ink inside the run.
ONE_PURITY, ONE_COVERAGE = 0.92, 0.9
NOT_PURITY, NOT_COVERAGE = 0.8, 0.7


def label_candidates(line: TextLine, groups, owner: np.ndarray, mask: np.ndarray, text: str) -> list[int | None]:
    """For each run (i, j) of `line`'s atoms: the digit it is, NOT_ONE_DIGIT, or None (ambiguous).
    `owner` (int, working scale): which digit of the number `text` owns each pixel (its index in
    `text`), -1 for none; `mask`: the segmenter's ink mask."""
    n_digits = int(owner.max()) + 1
    totals = np.bincount(owner[mask & (owner >= 0)], minlength=max(n_digits, 1))
    atom_counts = []
    for a in line.atoms:
        own = owner[a.y : a.y + a.h, a.x : a.x + a.w][a.mask]
        atom_counts.append(np.bincount(own + 1, minlength=n_digits + 1))  # [unowned, digit 0, ...]
    out: list[int | None] = []
    for i, j in groups:
        counts = np.sum(atom_counts[i:j], axis=0)
        size = counts.sum()
        if size == 0 or n_digits == 0:
            out.append(NOT_ONE_DIGIT)
            continue
        k = int(counts[1:].argmax())
        purity, coverage = counts[k + 1] / size, counts[k + 1] / max(totals[k], 1)
        if purity >= ONE_PURITY and coverage >= ONE_COVERAGE:
            out.append(int(text[k]))
        elif purity < NOT_PURITY or coverage < NOT_COVERAGE:
            out.append(NOT_ONE_DIGIT)
        else:
            out.append(None)
    return out


def candidate_examples(
    rng: np.random.Generator,
    images: np.ndarray,
    labels: np.ndarray,
    n_numbers: int,
    groups: tuple[str, ...] = GROUPS,
    soft: float = 0.0,
):
    """-> (uint8 (N, 28, 28) candidates rendered as the reader renders them, int64 (N,) labels:
    a digit or NOT_ONE_DIGIT), from `n_numbers` generated numbers of 1-8 of the given digits, the
    share `soft` of them scanned soft or at a low resolution (`synth.soft_scan`)."""
    xs, ys = [], []
    for _ in range(n_numbers):
        owner_out: list = []
        group = groups[int(rng.integers(len(groups)))]
        grey, text = make_number(
            rng,
            images,
            labels,
            int(rng.integers(1, 9)),
            group,
            punctuation=bool(rng.random() < MARKS_SHARE),
            owner_out=owner_out,
            small_tail=SMALL_TAIL_SHARE,
            marks=FORM_MARKS,
            soft=soft,
        )
        seg = segment(grey)
        owner = cv2.resize(owner_out[0], (seg.mask.shape[1], seg.mask.shape[0]), interpolation=cv2.INTER_NEAREST)
        plan, rendered = render_candidates(seg)
        found = [
            label
            for line, runs in zip(seg.lines, plan)
            for label in label_candidates(line, runs, owner, seg.mask, text)
        ]
        keep = [k for k, label in enumerate(found) if label is not None]
        xs.append(rendered[keep])
        ys += [found[k] for k in keep]
    return np.concatenate(xs), np.array(ys, np.int64)
