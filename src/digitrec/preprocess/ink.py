"""Where is the ink? A grey image of paper (or a screen) -> an ink-contrast map and a clean ink mask.

Works for every kind of input with the same code: dark ink on lit paper (photos, scans, with shadows
and a lighting gradient), and light ink on a dark background (MNIST-style files, drawing canvases).
Steps, each kept because a kind of input needs it:
  1. polarity: which side is ink (see `ink_is_bright`);
  2. lighting: divide by the paper's brightness, estimated by a grey closing wider than the strokes,
     so shadows, gradients and vignetting vanish while the ink keeps its contrast;
  3. ruled lines, grid lines and page edges erased (`lines.py`);
  4. a hysteresis threshold on that contrast, relative to the noise, so faint pencil survives and
     paper grain and JPEG ringing do not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from digitrec.preprocess.components import Labels, label_blobs
from digitrec.preprocess.debug import Stages
from digitrec.preprocess.lines import remove_lines
from digitrec.preprocess.noise import median, median_u8, paper_noise, percentile_whole, robust_sigma

# An image is 'evenly lit' when it is small (a cropped digit) or when one exact grey level covers
# this much of it (a digital drawing, a normalised scan: photos, with their noise, stay under 0.27 on
# the shared photo set): lighting correction is then moot and the raw histogram tells ink from paper.
SMALL_SIDE = 128
FLAT_FRACTION = 0.4
MIN_RANGE = 12  # grey levels: an image flatter than this holds no ink
MIN_DEPTH = 16  # grey levels: a stroke's core is at least this much darker than its paper
MIN_CONTRAST = 0.08  # a stroke's core absorbs at least 8% of the paper's light; less is a blank page
WEAK_CONTRAST = 0.03  # faint edges of a pencil stroke, kept when attached to a core
# A paper estimate under a blob darker than around it by this much of the ink's depth: a stroke swallowed.
HOLLOW_DEPTH = 0.3
NOISE_SIGMAS = 5.0  # thresholds sit this many noise standard deviations above the paper


@dataclass
class InkMap:
    contrast: np.ndarray  # float32 (H, W): 0 = paper, 1 = full ink
    mask: np.ndarray  # uint8 (H, W): 255 = ink (hysteresis threshold of `contrast`)
    stroke_width: float  # px, median over the ink mask
    ink_level: float  # typical contrast of a stroke's core (what becomes 255 in MNIST form)
    bright_ink: bool  # the input had light ink on a dark background
    noise: float  # standard deviation of the paper's contrast
    lines: np.ndarray | None = None  # uint8 (H, W): bands where ruled lines were erased
    line_angles: list[float] = field(default_factory=list)  # their directions, degrees in [0, 180)
    flat: bool = False  # a digital drawing or a normalised scan (one exact grey covers much of it)
    labelled: Labels | None = None  # the mask's blobs, when labelled here (`select_digit` reuses them)


def find_ink(grey: np.ndarray, stages: Stages | None = None) -> InkMap:
    """uint8 (H, W) grey, either polarity -> InkMap. Raises nothing: an empty mask means no ink."""
    if int(grey.max()) - int(grey.min()) < MIN_RANGE:  # one flat grey: nothing written
        empty = np.zeros(grey.shape, np.uint8)
        return InkMap(np.zeros(grey.shape, np.float32), empty, 0.0, 0.0, False, 0.0, flat=True)
    small, flat = max(grey.shape) < SMALL_SIDE, is_flat(grey)
    even = small or flat  # evenly lit: lighting correction is moot, the raw histogram is enough
    bright = ink_is_bright(grey, even)
    paper = 255 - grey if bright else grey  # from here on: dark ink on light paper
    rough = rough_ink(paper, even)
    # Measured where the rough mask is darkest: the pen, not the printed grid it touches.
    width = stroke_width(rough, paper) if rough.any() else 2.0
    line_angles: list[float]
    for attempt in range(3):
        last = attempt == 2
        background = paper_brightness(paper, width)
        # A near-black 'paper' absorbs nothing more: the floor keeps noise there from becoming ink.
        contrast = np.clip(1.0 - paper.astype(np.float32) / np.maximum(background, 16.0), 0.0, 1.0)
        # Rules first, while they are sharp: the smoothing below spreads them.
        if flat:  # a digital drawing or a normalised scan: no paper, no rules
            lines, line_angles = np.zeros(paper.shape, np.uint8), []
        else:
            contrast, lines, line_angles = remove_lines(contrast, paper_noise(contrast), underline_only=small)
        contrast = _denoise(contrast, width)
        noise = paper_noise(contrast)
        # Grey levels below the paper: a stroke's core is at least MIN_DEPTH darker, whatever the
        # exposure (contrast alone would let grain on a dark page pass for ink).
        mask, level = ink_mask(contrast, noise, contrast * np.maximum(background, 16.0) >= MIN_DEPTH)
        core = (mask > 0) & (contrast > level / 2)  # width at half the ink's depth, as a pen's width is
        measured = stroke_width(core) if core.any() else width
        # A grainy pencil's or a marker's rough mask can miss part of the width, and a closing
        # narrower than the stroke hollows it out: estimate the paper again with wider strokes.
        if last:
            labelled = None
            break
        labelled = label_blobs(mask)
        if _hollow(paper, background, labelled):
            width = 3 * max(width, measured)
        elif measured > 1.25 * width:
            width = measured
        else:
            break
    if stages is not None:
        stages["upright"] = paper
        stages["background"] = np.clip(background, 0, 255).astype(np.uint8)
        stages["contrast"] = np.clip(contrast * 255, 0, 255).astype(np.uint8)
        if lines.any():
            stages["lines"] = lines
        stages["mask"] = mask
    return InkMap(contrast, mask, measured, level, bright, noise, lines, line_angles, flat, labelled)


def is_evenly_lit(grey: np.ndarray) -> bool:
    return max(grey.shape) < SMALL_SIDE or is_flat(grey)


def is_flat(grey: np.ndarray) -> bool:
    """One exact grey level covers much of the image: a digital drawing or a normalised scan."""
    # OpenCV's histogram of the pixels as one row: 5x quicker than np.bincount (exact below 2**24 pixels)
    counts = cv2.calcHist([grey.reshape(1, -1)], [0], None, [256], [0, 256])
    return bool(counts.max() >= FLAT_FRACTION * grey.size)


def ink_is_bright(grey: np.ndarray, evenly_lit: bool | None = None) -> bool:
    """True when the ink is lighter than its background (MNIST polarity).

    Evenly lit images: Otsu splits ink from background, and ink is the class made of thin strokes
    (smaller mean distance to the other class), which holds even when a stretched digit covers more
    than half of its box, where 'the background is the majority' fails.
    Photos: shadows fool any global split, so compare the two tails of the deviation from a local
    median background: ink is a sparse, strong deviation on one side; paper grain and shadow edges
    are weak or symmetric. (Checked on 200 phone-photo renderings and on fat marker digits.)
    """
    if evenly_lit is None:
        evenly_lit = is_evenly_lit(grey)
    if evenly_lit:
        _, bright = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        if not bright.any() or bright.all():
            return False
        in_bright = cv2.distanceTransform(bright, cv2.DIST_L2, 3)[bright > 0].mean()
        in_dark = cv2.distanceTransform(255 - bright, cv2.DIST_L2, 3)[bright == 0].mean()
        return bool(in_bright < in_dark)
    # Three window sizes: a small one follows shadows closely, a large one spans a marker's fat
    # strokes (a small window's median slides into them and the paper beside looks like ink).
    score, small, level = 0.0, _shrunk(grey), grey.astype(np.float32)
    for fraction in (1 / 12, 1 / 6, 1 / 4):
        deviation = level - _median_background(grey, fraction, small)
        noise = robust_sigma(deviation) + 1.0
        darker = np.count_nonzero(deviation < -6 * noise)
        lighter = np.count_nonzero(deviation > 6 * noise)
        score += np.log((lighter + 1) / (darker + 1))
    return bool(score > 0)


def _median_background(grey: np.ndarray, fraction: float = 1 / 12, small: np.ndarray | None = None) -> np.ndarray:
    """Local median over windows of `fraction` of the long side, computed on a <=128 px copy
    (`small`, the `_shrunk` grey, when the caller has it already)."""
    h, w = grey.shape
    small = _shrunk(grey) if small is None else small
    k = max(3, int(max(small.shape) * fraction) | 1)
    return cv2.resize(cv2.medianBlur(small, k), (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def _shrunk(grey: np.ndarray) -> np.ndarray:
    """A <=128 px copy, for medians over wide windows."""
    h, w = grey.shape
    scale = min(1.0, 128 / max(h, w))
    return cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def rough_ink(paper: np.ndarray, evenly_lit: bool) -> np.ndarray:
    """A first ink mask (uint8 0/255, dark ink on light paper), only good enough to measure the
    stroke width."""
    if evenly_lit:
        _, dark = cv2.threshold(paper, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
        return dark
    deviation: np.ndarray = paper.astype(np.float32) - _median_background(paper, 1 / 8)
    noise = robust_sigma(deviation) + 1.0
    # Ink is the darkest thing on the page: faint rules, grid lines and grain fall below half of it.
    darkest = -percentile_whole(deviation, 0.05)
    return ((deviation < -max(6 * noise, 0.5 * darkest)) * 255).astype(np.uint8)


def stroke_width(mask: np.ndarray, paper: np.ndarray | None = None) -> float:
    """Median stroke width in px: twice the distance-to-background along the strokes' ridges.
    With `paper` (dark ink on light), only the darkest quarter of the ridge counts."""
    mask = (mask > 0).astype(np.uint8)
    # Only the strokes' bounding box, with 2 px of background around it, matters (the distance
    # transform's steps are at most 2 px long): on a page that is a few % of the pixels.
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0:
        return 1.0
    rows, columns = slice(max(0, y - 2), y + h + 2), slice(max(0, x - 2), x + w + 2)
    mask = mask[rows, columns]
    paper = None if paper is None else paper[rows, columns]
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n > 2:  # specks (grain, JPEG noise) would pull the median down: measure the big blobs only
        areas = stats[1:, cv2.CC_STAT_AREA]
        big = np.concatenate([[False], areas >= 0.05 * areas.max()])
        mask = big[labels].astype(np.uint8)
    # A 1 px frame of background: ink touching the border still has a finite distance.
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    ridge = (dist > 0) & (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)) - 1e-3)
    if paper is not None and ridge.any():
        ridge &= paper <= np.percentile(paper[ridge], 25)
    return 2.0 * median(dist[ridge]) if ridge.any() else 1.0


def paper_brightness(paper: np.ndarray, width: float) -> np.ndarray:
    """float32 (H, W) brightness of the bare paper: a grey closing (max then min filter) with a
    window three stroke widths wide erases the ink but follows shadows; a box blur smooths it."""
    h, w = paper.shape
    k = int(3 * width + 3)
    # Morphology on a reduced copy when the window is large: same result, a fraction of the work.
    scale = min(1.0, 9.0 / k) if k > 9 else 1.0
    small = (
        paper
        if scale == 1.0
        else cv2.resize(paper, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    )
    ks = max(3, int(k * scale) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (ks, ks))
    closed = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE)
    closed = cv2.blur(closed, (ks, ks), borderType=cv2.BORDER_REPLICATE)
    if scale != 1.0:
        closed = cv2.resize(closed, (w, h), interpolation=cv2.INTER_LINEAR)
    # The closing is an upper envelope: never darker than the pixel itself.
    return np.maximum(closed.astype(np.float32), paper.astype(np.float32))


def _hollow(paper: np.ndarray, background: np.ndarray, labelled: Labels) -> bool:
    """Did the paper estimate swallow the middle of a fat stroke? A closing narrower than the
    stroke leaves it in the 'paper', so under the blob the paper estimate is much darker than
    around the blob. Only blobs in even light are judged (a shadow's edge also makes 'under' and
    'around' differ), and not lines or page edges (touching two borders, or most of the image).
    `labelled`: the ink mask's blobs."""
    h, w = labelled.image.shape
    n, labels, stats = labelled.n, labelled.image, labelled.stats
    if n < 2:
        return False
    biggest = stats[1:, cv2.CC_STAT_AREA].max()
    for i in range(1, n):
        x, y, bw, bh, area = stats[i]
        borders = (x == 0) + (y == 0) + (x + bw == w) + (y + bh == h)
        if area < 0.2 * biggest or borders >= 2 or bw * bh > 0.6 * h * w:
            continue
        pad = max(3, min(bw, bh) // 4)
        y0, y1, x0, x1 = max(0, y - pad), min(h, y + bh + pad), max(0, x - pad), min(w, x + bw + pad)
        box = np.zeros((y1 - y0, x1 - x0), bool)
        box[y - y0 : y - y0 + bh, x - x0 : x - x0 + bw] = True
        ring = background[y0:y1, x0:x1][~box]
        if ring.size == 0:
            continue
        low, around, high = (float(v) for v in np.percentile(ring, [10, 50, 90]))
        if high - low > 0.1 * around:
            continue  # uneven light around the blob (a shadow's edge): the comparison means nothing
        blob = labels[y : y + bh, x : x + bw] == i
        under = float(np.median(background[y : y + bh, x : x + bw][blob]))
        ink = median_u8(paper[y : y + bh, x : x + bw][blob])
        if around - under > HOLLOW_DEPTH * max(1.0, around - ink):
            return True
    return False


def _denoise(contrast: np.ndarray, width: float) -> np.ndarray:
    """A light Gaussian, scaled to the stroke, removes grain without thinning the strokes."""
    sigma = min(2.0, width / 6.0)
    if sigma < 0.5:
        return contrast
    return cv2.GaussianBlur(contrast, (0, 0), sigma)


def ink_mask(contrast: np.ndarray, noise: float, deep: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Hysteresis threshold -> (uint8 mask, ink level).

    Strong pixels: above Otsu's split of the clearly-not-paper pixels (ink cores), above
    MIN_CONTRAST and, where `deep` is given, at least MIN_DEPTH grey levels under the paper. Weak
    pixels, kept when connected to a strong one: above a third of the ink level (anti-aliased
    edges, faint parts of a pencil stroke). Both stay above the paper's noise.
    """
    floor = max(WEAK_CONTRAST, NOISE_SIGMAS * noise)
    candidates = contrast[contrast > floor]
    empty = np.zeros(contrast.shape, np.uint8)
    if candidates.size < 4:
        return empty, 0.0
    values = np.clip(candidates * 255, 0, 255).astype(np.uint8).reshape(-1, 1)
    otsu, _ = cv2.threshold(values, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    strong = contrast > max(MIN_CONTRAST, floor, otsu / 255.0)
    if deep is not None:
        strong &= deep
    if not strong.any():
        return empty, 0.0
    level = float(np.percentile(contrast[strong], 90))
    weak = (contrast > max(floor, level / 3)).astype(np.uint8)
    labelled = label_blobs(weak)  # within the ink's box only: a few % of a page
    labels = labelled.image[labelled.box]
    keep = np.zeros(labelled.n, np.uint8)
    keep[labels[strong[labelled.box]]] = 255
    keep[0] = 0
    mask = np.zeros(contrast.shape, np.uint8)
    mask[labelled.box] = keep[labels]
    return mask, level
