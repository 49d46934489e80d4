"""A grey image of one digit -> 28x28 uint8, white ink on black, the way MNIST was prepared:
find the ink (`ink.py`), keep the digit's blobs (`components.py`), crop, bring the stroke width into
MNIST's range, fit into 20x20 keeping the aspect ratio, centre by centre of mass in 28x28.
"""

from __future__ import annotations

import cv2
import numpy as np

from digitrec.errors import NoInk
from digitrec.preprocess.components import select_digit
from digitrec.preprocess.debug import Stages
from digitrec.preprocess.frames import remove_frames, trim_dark_border
from digitrec.preprocess.ink import InkMap, find_ink, stroke_width

# Analyse at most this long side: on the shared photo set 640 reads as well as 1600, at a quarter
# of the cost; a digit 6% of a 4:3 photo's height keeps ~30 px, more than MNIST's 20.
WORK_SIDE = 640
MIN_WORK_SIDE = 64  # tiny scans (16x16) are enlarged so that morphology has room to work
BOX = 20  # MNIST: the digit's longer side is scaled to 20 px ...
SIZE = 28  # ... and centred by its centre of mass in 28x28
RENDER = 4  # strokes are normalised at 4x (80 px box), then area-averaged down: anti-aliased edges
# MNIST's stroke width in the 20 px box, measured on its test set (ridge distance, 5th-95th pct 1.5-3.6 px,
# median 2.5). Strokes outside this range are thinned or thickened to its edge.
STROKE_RANGE = (1.8, 3.4)
# Views the model is averaged over: as written, and squeezed to 80% and 60% width (see
# `digit_views`). Measured on the external benchmark with the shipped CNN: +1 to +1.5 points on
# Semeion, UJI pen and ORAND, within 0.1 point elsewhere.
VIEW_SQUEEZES = (1.0, 0.8, 0.6)


def is_mnist_like(grey: np.ndarray) -> bool:
    """Already 28x28, white ink on a black background: pass through unchanged."""
    return grey.shape == (SIZE, SIZE) and np.median(grey) < 40


def normalize_digit(grey: np.ndarray, stages: Stages | None = None) -> np.ndarray:
    """uint8 (H, W) grey, any polarity -> uint8 (28, 28), ink = 255. `stages` collects images for --debug."""
    mnist: np.ndarray = digit_views(grey, stages, squeezes=(1.0,))[0]
    return mnist


def digit_views(
    grey: np.ndarray, stages: Stages | None = None, squeezes: tuple[float, ...] = VIEW_SQUEEZES, *, margin: bool = True
) -> np.ndarray:
    """uint8 (H, W) grey, any polarity -> uint8 (V, 28, 28): the MNIST form of the digit, one view per
    horizontal squeeze factor (1.0 = as written). Averaging the model over narrowed views makes it
    robust to digits wider than MNIST's narrow hands: boxes that stretch digits to fill them
    (NIST, Semeion), European 1s with long flags. An image already in MNIST form is one view.
    `margin`: trim a scanner's black margin first (`frames.trim_dark_border`)."""
    if stages is not None:
        stages["input"] = grey
    if is_mnist_like(grey):  # already in MNIST form: the model sees exactly it, as in `evaluate`
        if stages is not None:
            stages["mnist"] = grey
        one_view: np.ndarray = grey.copy()[None]
        return one_view
    work, ink, crop = _chosen_crop(grey, stages, margin)
    as_written = fit_and_centre(crop, stages)
    if len(squeezes) > 1 and is_normalised_scan(grey, ink):
        # A scan that holds one digit and nothing else: the plain MNIST crop of it (`scan_crop`) reads
        # fat and broken strokes that blob selection cuts short (views study 2, docs/predict.md). The
        # chosen blobs' view stays first: it is what the rejector was trained on and judges.
        plain = [fit_and_centre(scan_crop(work, ink), squeeze=s) for s in squeezes]
        if stages is not None:
            stages["scan mnist"] = plain[0]
        return np.stack([as_written, *plain])
    return np.stack([as_written, *(fit_and_centre(crop, squeeze=s) for s in squeezes[1:])])


def is_normalised_scan(grey: np.ndarray, ink: InkMap) -> bool:
    """A flat image under MIN_WORK_SIDE: how USPS, Semeion and NIST forms store a digit (16-32 px)."""
    return ink.flat and max(grey.shape) < MIN_WORK_SIDE


def find_digit(grey: np.ndarray, stages: Stages | None = None) -> np.ndarray:
    """uint8 (H, W) grey, any polarity -> float32 crop of the digit, ink 1 on 0, anti-aliased.
    Raises NoInk (an ImageError whose doubt_reason is doubt.NO_INK) when there is no ink."""
    return _chosen_crop(grey, stages)[2]


def _chosen_crop(grey: np.ndarray, stages: Stages | None, margin: bool = True) -> tuple[np.ndarray, InkMap, np.ndarray]:
    """-> (the working copy, its InkMap, `find_digit`'s crop); the 'digit' and 'crop' stages."""
    work, ink, mask, box = locate_digit(grey, stages, margin=margin)
    crop = soft_crop(ink, mask, box)
    if stages is not None:
        stages["digit"] = mask
        stages["crop"] = (crop * 255).astype(np.uint8)
    return work, ink, crop


def locate_digit(
    grey: np.ndarray, stages: Stages | None = None, *, margin: bool = True
) -> tuple[np.ndarray, InkMap, np.ndarray, tuple[int, int, int, int]]:
    """uint8 (H, W) grey -> (the working copy analysed, its InkMap, uint8 mask of the digit's blobs,
    their box x, y, w, h). Raises NoInk when there is no ink. `margin`: as `digit_views`'."""
    work = working_copy(grey)
    if margin and max(grey.shape) >= MIN_WORK_SIDE:  # a normalised scan (16-32 px) is one digit in its box: no margin
        trimmed = trim_dark_border(work)
        if stages is not None and trimmed is not work:
            stages["margin"] = trimmed
        work = trimmed
    ink = find_ink(work, stages)
    chosen = None
    if ink.mask.any():
        mask, framed = remove_frames(ink.mask, ink.labelled)  # a printed box around the digit goes
        chosen = select_digit(
            mask,
            ink.contrast,
            ink.lines,
            ink.line_angles,
            slivers=not ink.flat,
            labelled=None if framed else ink.labelled,
        )
    if chosen is None:
        raise NoInk("no ink found: the image looks blank (no digit darker or lighter than its background)")
    mask, box = chosen
    return work, ink, mask, box


def soft_crop(ink: InkMap, mask: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The digit's box with the anti-aliased grey levels of its strokes (contrast / ink level), ink 1 on 0."""
    x, y, w, h = box
    # Keep the anti-aliased rim around the chosen strokes, nothing else of the page.
    rim = max(1, round(ink.stroke_width / 4))
    keep = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rim + 1, 2 * rim + 1)))
    soft = np.clip(ink.contrast / max(ink.ink_level, 1e-3), 0, 1) * (keep > 0)
    crop: np.ndarray = soft[y : y + h, x : x + w]
    return crop


def scan_crop(work: np.ndarray, ink: InkMap) -> np.ndarray:
    """An evenly lit image of one digit -> its crop the plain MNIST way: the grey levels above the
    paper's median, in the box of Otsu's mask, the brightest ink = 1. No smoothing, no rim: a
    scanner's grey levels are the digit's own anti-aliasing."""
    bright = work if ink.bright_ink else 255 - work  # ink bright
    _, otsu = cv2.threshold(bright, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    x, y, w, h = cv2.boundingRect(otsu)
    if w == 0:  # `locate_digit` found ink, so Otsu does too; the whole image otherwise
        x, y, h, w = 0, 0, *bright.shape
    paper = float(np.median(bright[ink.mask == 0])) if (ink.mask == 0).any() else 0.0
    crop = np.clip(bright[y : y + h, x : x + w].astype(np.float32) - paper, 0, None)
    scaled: np.ndarray = crop / max(float(crop.max()), 1e-3)
    return scaled


def working_copy(grey: np.ndarray) -> np.ndarray:
    h, w = grey.shape
    side = max(h, w)
    if side > WORK_SIDE:
        f = WORK_SIDE / side
        return cv2.resize(grey, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    if side < MIN_WORK_SIDE:
        f = int(np.ceil(MIN_WORK_SIDE / side))
        return cv2.resize(grey, (w * f, h * f), interpolation=cv2.INTER_LINEAR)
    return grey


def fit_and_centre(
    crop: np.ndarray, stages: Stages | None = None, *, squeeze: float = 1.0, normalize_strokes: bool = True
) -> np.ndarray:
    """Ink crop (ink bright; uint8 0-255 or float 0-1) -> uint8 (28, 28): the longer side scaled to
    20 px, strokes brought into MNIST's width range (`normalize_strokes`; off only in the views
    study, benchmarks/views_dev.py), then shifted so the centre of mass sits at the centre, as in
    LeCun et al.'s MNIST preparation. `squeeze` < 1 narrows the digit first."""
    ink: np.ndarray = crop.astype(np.float32) / (255.0 if crop.dtype == np.uint8 else 1.0)
    h, w = ink.shape
    if squeeze != 1.0:
        w = max(1, round(w * squeeze))
        ink = cv2.resize(ink, (w, h), interpolation=cv2.INTER_AREA)
    big = BOX * RENDER
    scale = big / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    grow = cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA
    hi = cv2.resize(ink, (nw, nh), interpolation=grow)
    if normalize_strokes:
        hi = normalize_stroke(hi, RENDER)
    small = cv2.resize(hi, (max(1, round(nw / RENDER)), max(1, round(nh / RENDER))), interpolation=cv2.INTER_AREA)
    sh, sw = small.shape
    canvas: np.ndarray = np.zeros((SIZE, SIZE), np.float32)
    top, left = (SIZE - sh) // 2, (SIZE - sw) // 2
    canvas[top : top + sh, left : left + sw] = small
    m = cv2.moments(canvas)
    if m["m00"] > 0:
        dx, dy = SIZE / 2 - m["m10"] / m["m00"], SIZE / 2 - m["m01"] / m["m00"]
        shift = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
        canvas = cv2.warpAffine(canvas, shift, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderValue=0)
    out: np.ndarray = np.clip(canvas * 255 + 0.5, 0, 255).astype(np.uint8)
    if stages is not None:
        stages["mnist"] = out
    return out


def normalize_stroke(ink: np.ndarray, render: int) -> np.ndarray:
    """float (H, W) ink at `render` x MNIST scale -> the same with the stroke width clipped into
    STROKE_RANGE: a marker's fat strokes are eroded, a fine pen's hairlines dilated."""
    width = stroke_width((ink > 0.5).astype(np.uint8)) / render
    lo, hi = STROKE_RANGE
    if lo <= width <= hi:
        return ink
    change = round(((lo if width < lo else hi) - width) * render)  # px at render scale, +thicken -thin
    if change == 0:
        return ink
    size = 2 * (abs(change) // 2) + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    return cv2.dilate(ink, kernel) if change > 0 else cv2.erode(ink, kernel)
