"""Digit forms that real writers use and MNIST's American writers rarely did, drawn on a digit's
own strokes: a 1 with a long flag (or lead-in) from the lower left or written as a narrow loop
(an ℓ), a 2 with a loop at its foot, a
4 open at the top, a 7 with a crossbar, a 9 with a straight stem (issue 16: the cheque amounts
the reader misreads are mostly these). Each form finds the stroke it changes from the ink (the
top of a 1, the foot of a 2, the stem of a 4, 7 or 9) and keeps the label a person would read:
a crossed 7 is a 7, and a 1's flag always falls steeply from its top, never a 7's level bar.

Pieces are float32 ink crops (0-255, ink bright on black), as `synth.make_number` scales them to
the string's height before pasting. numpy and OpenCV only (the benchmark's strings and, later,
training data are drawn with the same code).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from digitrec.documents import hooked_one
from digitrec.preprocess.ink import stroke_width

INK = 100  # of 255: a pixel at least this bright is the stroke (MNIST's soft edges are fainter)
HOOKED_SHARE = 0.3  # of the 1s redrawn, those with documents.hooked_one's lead-in from the baseline
FOOT_SHARE = 0.3  # of the flagged 1s, those with a foot (a short bar under the stem)
# A hand's slant (dx/dy, + leans right) and pen (px at a 40 px digit height, as documents.styled
# takes them) for a whole number: a few styles real writers have.
STYLES = {"upright": (0.0, 0), "leaning": (0.3, 0), "backhand": (-0.2, 0), "heavy": (0.1, 2), "fine": (0.15, -1)}


def hand(rng: np.random.Generator) -> tuple[float, int]:
    """One of STYLES for a whole number, its slant jittered by up to 0.05."""
    slant, pen = list(STYLES.values())[int(rng.integers(len(STYLES)))]
    return slant + float(rng.uniform(-0.05, 0.05)), pen


def redraw(rng: np.random.Generator, piece: np.ndarray, label: int, share: float) -> np.ndarray:
    """With probability `share`, `piece` (a digit of class `label`) in one of its class's FORMS;
    unchanged otherwise, and for classes without a form (nothing is drawn from `rng` for them)."""
    forms = FORMS.get(label)
    if not forms or rng.random() >= share:
        return piece
    return forms[int(rng.integers(len(forms)))](rng, piece)


def pen_of(piece: np.ndarray) -> int:
    """The width added strokes are drawn with, px (at least 1): 0.8 of the ink's stroke width above
    INK, as an anti-aliased line of full ink looks bolder than MNIST's soft-edged strokes."""
    return max(1, int(round(0.8 * stroke_width(piece > INK))))


def flag_one(rng: np.random.Generator, piece: np.ndarray) -> np.ndarray:
    """A 1 with a long flag: a stroke 0.35-0.6 of the height long from the stem's top down to the
    lower left, falling at 40-60 degrees and at least 25 flatter than the stem (still over 30
    after a right-leaning hand's slant of 0.35: a 7's bar is level, and a flag nearly along the
    stem is no flag). A stem leaning too far right for that keeps no flag; some get a foot."""
    ys, xs = np.nonzero(piece > INK)
    if len(np.unique(ys)) < 3:
        return piece
    stem = np.degrees(np.arctan2(1.0, -np.polyfit(ys, xs, 1)[0]))  # from level, 90 = upright
    angle = min(rng.uniform(40, 60), stem - 25)
    if angle < 40:
        return piece
    h, pen = int(ys.max() - ys.min() + 1), pen_of(piece)
    length, angle = h * rng.uniform(0.35, 0.6), np.radians(angle)
    reach, drop = length * np.cos(angle), length * np.sin(angle)
    pad = int(np.ceil(reach + h * 0.25)) + pen
    out = np.pad(piece, ((pen, pen), (pad, pad)))
    top = (int(round(xs[ys <= ys.min() + 1].mean())) + pad, int(ys.min()) + pen)
    cv2.line(out, (int(round(top[0] - reach)), int(round(top[1] + drop))), top, 255.0, pen, cv2.LINE_AA)
    if rng.random() < FOOT_SHARE:
        foot_x = int(round(xs[ys >= ys.max() - 1].mean())) + pad
        half, y = h * rng.uniform(0.12, 0.22), int(ys.max()) + pen
        cv2.line(out, (int(foot_x - half), y), (int(foot_x + half), y), 255.0, pen, cv2.LINE_AA)
    return _trim(out)


def hooked_or_flagged_one(rng: np.random.Generator, piece: np.ndarray) -> np.ndarray:
    """A 1 with a lead-in: documents.hooked_one's from the baseline (HOOKED_SHARE) or a flag."""
    return hooked_one(rng, piece) if rng.random() < HOOKED_SHARE else flag_one(rng, piece)


def looped_one(rng: np.random.Generator, piece: np.ndarray) -> np.ndarray:
    """A 1 written as a narrow loop (an ℓ, as many Latin-American and European hands write a 1 that
    starts a number): an up stroke from the lower left of the stem's foot that crosses the stem low
    down, rises on its right and turns over the top into it, so the stem comes down through the
    loop. The loop is 0.2-0.35 of the height wide (a thick pen may fill a narrow one, as it does on
    paper); a 1 whose ink has no height stays as it is."""
    ys, xs = np.nonzero(piece > INK)
    if len(np.unique(ys)) < 3:
        return piece
    top, bottom = int(ys.min()), int(ys.max())
    h, pen = bottom - top + 1, pen_of(piece)
    top_x = float(xs[ys <= top + 1].mean())
    foot_x = float(xs[ys >= bottom - 1].mean())
    mid_x, mid_y = (top_x + foot_x) / 2, (top + bottom) / 2
    width = h * rng.uniform(0.2, 0.35)
    start = (foot_x - width * rng.uniform(0.6, 1.0), bottom - h * rng.uniform(0.0, 0.1))
    bow = (mid_x + width * rng.uniform(0.8, 1.2), mid_y - h * rng.uniform(0.0, 0.1))
    cap = (top_x + width * rng.uniform(0.6, 0.9), top - h * rng.uniform(0.1, 0.18))
    t = np.linspace(0.0, 1.0, 40)[:, None]
    points = (
        (1 - t) ** 3 * np.array(start)
        + 3 * (1 - t) ** 2 * t * np.array(bow)
        + 3 * (1 - t) * t**2 * np.array(cap)
        + t**3 * np.array([top_x, float(top)])
    )
    pad = int(np.ceil(2 * width + h * 0.15)) + pen
    out = np.pad(piece, ((pad, pen), (pad, pen)))
    cv2.polylines(out, [np.round(points + pad).astype(np.int32)], False, 255.0, pen, cv2.LINE_AA)
    return _trim(out)


def crossed_seven(rng: np.random.Generator, piece: np.ndarray) -> np.ndarray:
    """A 7 with a crossbar: a short level stroke across its stem, 40-60% of the way down."""
    ys, xs = np.nonzero(piece > INK)
    if not len(ys):
        return piece
    h, pen = int(ys.max() - ys.min() + 1), pen_of(piece)
    y = int(ys.min() + h * rng.uniform(0.4, 0.6))
    row = xs[np.abs(ys - y) <= pen // 2]
    if not len(row):  # no stem at that height: a broken 7 stays as it is
        return piece
    half = h * rng.uniform(0.14, 0.22)
    centre = float(np.median(row)) + h * rng.uniform(-0.04, 0.04)
    pad = int(np.ceil(half)) + pen
    out = np.pad(piece, ((0, 0), (pad, pad)))
    tilt = int(round(h * rng.uniform(-0.04, 0.04)))
    cv2.line(out, (int(centre - half) + pad, y + tilt), (int(centre + half) + pad, y - tilt), 255.0, pen, cv2.LINE_AA)
    return _trim(out)


def looped_two(rng: np.random.Generator, piece: np.ndarray) -> np.ndarray:
    """A 2 with a small loop at its foot, where the down stroke turns into the base: a ring of
    0.18-0.28 of the height across (and 2.4 pens at least, so it stays open), inside the lower-left
    corner of the ink: the down stroke ends on it and the base leaves it; hollow inside."""
    ys, xs = np.nonzero(piece > INK)
    if not len(ys):
        return piece
    h, pen = int(ys.max() - ys.min() + 1), pen_of(piece)
    foot = ys >= ys.max() - 0.25 * h
    corner_x = int(xs[foot].min())  # the foot's leftmost ink: where the diagonal meets the base
    r = max(1.2 * pen + 1.0, h * rng.uniform(0.09, 0.14))
    pad = int(np.ceil(2 * r)) + pen
    out = np.pad(piece, ((pad, pad), (pad, pad)))
    centre = (corner_x + pad + int(round(r * rng.uniform(0.7, 1.0))), int(ys.max() + pad - r * rng.uniform(0.8, 1.0)))
    axes = (int(round(r)), int(round(r * rng.uniform(0.75, 1.0))))
    tilt = float(rng.uniform(-30, 30))
    inner = (max(1, axes[0] - pen // 2 - 1), max(1, axes[1] - pen // 2 - 1))
    cv2.ellipse(out, centre, inner, tilt, 0, 360, 0.0, -1)  # hollow: the loop is open paper inside
    cv2.ellipse(out, centre, axes, tilt, 0, 360, 255.0, pen, cv2.LINE_AA)
    return _trim(out)


def open_four(rng: np.random.Generator, piece: np.ndarray) -> np.ndarray:
    """A 4 open at the top: the left arm does not meet the stem above the crossbar. The stem is
    the ink below the crossbar (nothing else is there), carried up along its own line; above the
    crossbar, a band 6-10% of the height wide left of it is wiped (a 4 already open loses nothing;
    a wider cut left some arms too short to read as a 4)."""
    ys, xs = np.nonzero(piece > INK)
    if not len(ys):
        return piece
    top, h, pen = int(ys.min()), int(ys.max() - ys.min() + 1), pen_of(piece)
    rows = np.arange(top, top + h)
    counts = np.bincount(ys - top, minlength=h)
    middle = (rows >= top + 0.35 * h) & (rows <= top + 0.85 * h)
    if not middle.any():  # one row of ink (h = 1): no crossbar to find, and argmax of nothing fails
        return piece
    bar = int(rows[middle][np.argmax(counts[middle])])  # the crossbar: the fullest row of the middle
    below = ys > bar + pen
    if np.unique(ys[below]).size < 3:
        return piece
    slope, offset = np.polyfit(ys[below], xs[below], 1)  # the stem, x at row y
    out = piece.copy()
    gap = max(2.0, h * rng.uniform(0.06, 0.1))
    yy, xx = np.mgrid[: out.shape[0], : out.shape[1]]
    left_edge = slope * yy + offset - 0.6 * pen  # the stem's left side
    wipe = (xx < left_edge) & (xx > left_edge - gap) & (yy < bar - pen)
    out[wipe] = 0.0
    return _trim(out) if (out > INK).any() else piece


def straight_nine(rng: np.random.Generator, piece: np.ndarray) -> np.ndarray:
    """A 9 with a straight stem: its tail below the loop replaced by a straight stroke from the
    loop's right side down to the digit's foot. A 9 with no closed loop stays as it is."""
    mask = (piece > INK).astype(np.uint8)
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return piece
    contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    holes = [cv2.boundingRect(c) for c, info in zip(contours, hierarchy[0]) if info[3] >= 0]
    h, pen = int(ys.max() - ys.min() + 1), pen_of(piece)
    holes = [b for b in holes if b[1] + b[3] < ys.min() + 0.7 * h and b[2] * b[3] >= 4]
    if not holes:
        return piece
    hx, hy, hw, hh = max(holes, key=lambda b: b[2] * b[3])
    loop_foot = hy + hh + pen  # the loop's lower stroke
    out = piece.copy()
    out[loop_foot + 1 :] = 0.0
    mid = hy + hh // 2
    right = np.flatnonzero(mask[mid])
    start_x = int(right.max()) - pen // 2 if len(right) else hx + hw + pen // 2
    lean = rng.uniform(0.0, 0.2)  # the foot this much of the drop left of the top
    foot = (int(round(start_x - lean * (ys.max() - mid))), int(ys.max()))
    pad = max(0, -foot[0]) + pen
    out = np.pad(out, ((0, 0), (pad, pen)))
    cv2.line(out, (start_x + pad, mid), (foot[0] + pad, foot[1]), 255.0, pen, cv2.LINE_AA)
    return _trim(out)


def _trim(out: np.ndarray) -> np.ndarray:
    """The crop to the ink (the padding added for new strokes, less what they did not use)."""
    ys, xs = np.nonzero(out > 0)
    return out[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


# class -> the forms it may be redrawn in (`redraw` picks one at random).
FORMS: dict[int, tuple[Callable[[np.random.Generator, np.ndarray], np.ndarray], ...]] = {
    1: (hooked_or_flagged_one, looped_one),
    2: (looped_two,),
    4: (open_four,),
    7: (crossed_seven,),
    9: (straight_nine,),
}


def mnist_with_forms(images: np.ndarray, labels: np.ndarray, share: float, seed: int) -> np.ndarray:
    """uint8 (N, 28, 28) MNIST-form digits -> a copy in which each digit of a class with FORMS is
    redrawn, with probability `share`, in one of them: its ink crop enlarged 3x (the forms' strokes
    are drawn at a written digit's size), redrawn, and prepared again as `predict` prepares a crop
    (`fit_and_centre`: 20x20, MNIST's stroke width, centre of mass). For a digit model's training."""
    from digitrec.preprocess.digit import fit_and_centre

    rng = np.random.default_rng(seed)
    out = images.copy()
    for k in np.flatnonzero(np.isin(labels, list(FORMS)) & (rng.random(len(labels)) < share)):
        ys, xs = np.nonzero(images[k])
        if not len(ys):
            continue
        crop = images[k, ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32)
        big = cv2.resize(crop, (crop.shape[1] * 3, crop.shape[0] * 3), interpolation=cv2.INTER_CUBIC)
        piece = redraw(rng, np.clip(big, 0, 255), int(labels[k]), 1.0)
        out[k] = fit_and_centre(np.clip(piece, 0, 255).astype(np.uint8))
    return out
