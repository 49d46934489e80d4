"""Where is the ink? A grey image of paper (or a screen) -> an ink-contrast map and a clean ink mask.

Works for every kind of input with the same code: dark ink on lit paper (photos, scans, with shadows
and a lighting gradient), and light ink on a dark background (MNIST-style files, drawing canvases).
Steps, each kept because a kind of input needs it:
  1. polarity: which side is ink (see `ink_is_bright`);
  2. lighting: divide by the paper's brightness, estimated by a grey closing wider than the strokes,
     so shadows, gradients and vignetting vanish while the ink keeps its contrast;
  3. a hysteresis threshold on that contrast, relative to the noise, so faint pencil survives and
     paper grain, JPEG ringing and faint ruled lines do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# An image is 'evenly lit' when it is small (a cropped digit) or when one exact grey level covers
# this much of it (a digital drawing, a normalised scan: photos, with their noise, stay under 0.27 on
# the shared photo set): lighting correction is then moot and the raw histogram tells ink from paper.
SMALL_SIDE = 128
FLAT_FRACTION = 0.4
MIN_RANGE = 12  # grey levels: an image flatter than this holds no ink
MIN_CONTRAST = 0.08  # a stroke's core absorbs at least 8% of the paper's light; less is a blank page
WEAK_CONTRAST = 0.03  # faint edges of a pencil stroke, kept when attached to a core
LINE_SPAN = 0.45  # straight ink this long (of the image's shorter side) is a ruled line, not a digit
HOLLOW_DEPTH = 0.6  # a hole in the mask this dark (as a fraction of the ink's darkness) is a stroke's middle
LINE_KEEP = 1.6  # on a ruled line, keep ink this much darker than the line (a stroke crossing it)
NOISE_SIGMAS = 5.0  # thresholds sit this many noise standard deviations above the paper


@dataclass
class InkMap:
    contrast: np.ndarray  # float32 (H, W): 0 = paper, 1 = full ink
    mask: np.ndarray  # uint8 (H, W): 255 = ink (hysteresis threshold of `contrast`)
    stroke_width: float  # px, median over the ink mask
    ink_level: float  # typical contrast of a stroke's core (what becomes 255 in MNIST form)
    bright_ink: bool  # the input had light ink on a dark background
    noise: float  # standard deviation of the paper's contrast


def find_ink(grey: np.ndarray, stages: dict | None = None) -> InkMap:
    """uint8 (H, W) grey, either polarity -> InkMap. Raises nothing: an empty mask means no ink."""
    if int(grey.max()) - int(grey.min()) < MIN_RANGE:  # one flat grey: nothing written
        empty = np.zeros(grey.shape, np.uint8)
        return InkMap(np.zeros(grey.shape, np.float32), empty, 0.0, 0.0, False, 0.0)
    even = is_evenly_lit(grey)
    bright = ink_is_bright(grey, even)
    paper = 255 - grey if bright else grey  # from here on: dark ink on light paper
    rough = _rough_ink(paper, even)
    width = stroke_width(rough) if rough.any() else 2.0
    for attempt in range(3):
        last = attempt == 2
        background = paper_brightness(paper, width)
        # A near-black 'paper' absorbs nothing more: the floor keeps noise there from becoming ink.
        contrast = np.clip(1.0 - paper.astype(np.float32) / np.maximum(background, 16.0), 0.0, 1.0)
        contrast = _denoise(contrast, width)
        noise = paper_noise(contrast)
        contrast, lines = remove_lines(contrast, noise)
        mask, level = ink_mask(contrast, noise)
        core = (mask > 0) & (contrast > level / 2)  # width at half the ink's depth, as a pen's width is
        measured = stroke_width(core) if core.any() else width
        # A grainy pencil's or a marker's rough mask can miss part of the width, and a closing
        # narrower than the stroke hollows it out: estimate the paper again with wider strokes.
        if last:
            break
        if _hollow(paper, mask):
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
    return InkMap(contrast, mask, measured, level, bright, noise)


def is_evenly_lit(grey: np.ndarray) -> bool:
    if max(grey.shape) < SMALL_SIDE:
        return True
    return np.bincount(grey.ravel(), minlength=256).max() >= FLAT_FRACTION * grey.size


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
    score = 0.0
    for fraction in (1 / 12, 1 / 6, 1 / 4):
        deviation = grey.astype(np.float32) - _median_background(grey, fraction)
        noise = _robust_sigma(deviation) + 1.0
        darker = int((deviation < -6 * noise).sum())
        lighter = int((deviation > 6 * noise).sum())
        score += np.log((lighter + 1) / (darker + 1))
    return bool(score > 0)


def _robust_sigma(deviation: np.ndarray) -> float:
    """1.4826 x the median absolute deviation from 0, on a ~40k-pixel grid sample (a median of
    every pixel of a photo costs milliseconds and says nothing more)."""
    step = max(1, int(np.sqrt(deviation.size / 40_000)))
    return 1.4826 * float(np.median(np.abs(deviation[::step, ::step])))


def _median_u8(values: np.ndarray) -> float:
    """Median of uint8 values from their histogram: linear time, no sort."""
    if values.size == 0:
        return 0.0
    counts = np.cumsum(np.bincount(values.ravel(), minlength=256))
    return float(np.searchsorted(counts, (values.size + 1) // 2))


def _median_background(grey: np.ndarray, fraction: float = 1 / 12) -> np.ndarray:
    """Local median over windows of `fraction` of the long side, computed on a <=128 px copy."""
    h, w = grey.shape
    scale = min(1.0, 128 / max(h, w))
    small = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    k = max(3, int(max(small.shape) * fraction) | 1)
    return cv2.resize(cv2.medianBlur(small, k), (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def _rough_ink(paper: np.ndarray, evenly_lit: bool) -> np.ndarray:
    """A first ink mask, only good enough to measure the stroke width."""
    if evenly_lit:
        _, dark = cv2.threshold(paper, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
        return dark
    deviation = paper.astype(np.float32) - _median_background(paper, 1 / 8)
    noise = _robust_sigma(deviation) + 1.0
    # Ink is the darkest thing on the page: faint rules, grid lines and grain fall below half of it.
    darkest = -float(np.percentile(deviation, 0.05))
    return ((deviation < -max(6 * noise, 0.5 * darkest)) * 255).astype(np.uint8)


def stroke_width(mask: np.ndarray) -> float:
    """Median stroke width in px: twice the distance-to-background along the strokes' ridges."""
    mask = (mask > 0).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n > 2:  # specks (grain, JPEG noise) would pull the median down: measure the big blobs only
        areas = stats[1:, cv2.CC_STAT_AREA]
        big = np.concatenate([[False], areas >= 0.05 * areas.max()])
        mask = big[labels].astype(np.uint8)
    # A 1 px frame of background: ink touching the border still has a finite distance.
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)
    ridge = (dist > 0) & (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)) - 1e-3)
    return float(2.0 * np.median(dist[ridge])) if ridge.any() else 1.0


def paper_brightness(paper: np.ndarray, width: float) -> np.ndarray:
    """float32 (H, W) brightness of the bare paper: a grey closing (max then min filter) with a
    window three stroke widths wide erases the ink but follows shadows; a box blur smooths it."""
    h, w = paper.shape
    k = int(3 * width + 3)
    # Morphology on a reduced copy when the window is large: same result, a fraction of the work.
    scale = min(1.0, 9.0 / k) if k > 9 else 1.0
    small = paper if scale == 1.0 else cv2.resize(paper, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                  interpolation=cv2.INTER_AREA)
    ks = max(3, int(k * scale) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (ks, ks))
    closed = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE)
    closed = cv2.blur(closed, (ks, ks), borderType=cv2.BORDER_REPLICATE)
    if scale != 1.0:
        closed = cv2.resize(closed, (w, h), interpolation=cv2.INTER_LINEAR)
    # The closing is an upper envelope: never darker than the pixel itself.
    return np.maximum(closed.astype(np.float32), paper.astype(np.float32))


def _hollow(paper: np.ndarray, mask: np.ndarray) -> bool:
    """Are there holes in the ink mask that are as dark as the ink? A closing narrower than a fat
    stroke leaves only its edges: the stroke's dark middle then shows up as a hole. (The real holes
    of 0, 6, 8, 9 are paper.)"""
    if not mask.any():
        return False
    outside = mask.copy()
    cv2.floodFill(outside, None, (0, 0), 128)  # corner (0, 0) assumed paper: good enough for a check
    holes = outside == 0
    if holes.sum() < 0.05 * (mask > 0).sum():
        return False
    ink = _median_u8(paper[mask > 0])
    hole = _median_u8(paper[holes])
    paper_level = _median_u8(paper[outside == 128])
    return paper_level - hole > HOLLOW_DEPTH * (paper_level - ink)


def _denoise(contrast: np.ndarray, width: float) -> np.ndarray:
    """A light Gaussian, scaled to the stroke, removes grain without thinning the strokes."""
    sigma = min(2.0, width / 6.0)
    if sigma < 0.5:
        return contrast
    return cv2.GaussianBlur(contrast, (0, 0), sigma)


def paper_noise(contrast: np.ndarray) -> float:
    """Robust standard deviation of the paper's contrast. Measured on the paper side of an Otsu
    split, since ink can cover more than half of a tightly cropped digit."""
    values = np.clip(contrast * 255, 0, 255).astype(np.uint8)
    split, _ = cv2.threshold(values, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    paper = contrast[values <= split]
    if paper.size == 0:
        return 0.0
    paper = paper[:: max(1, paper.size // 50_000)]  # a median needs no more samples than this
    return 1.4826 * float(np.median(np.abs(paper - np.median(paper))))


def remove_lines(contrast: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Erase ruled lines, grid lines and page edges: straight runs of ink at least LINE_SPAN of the
    image long that run into the image border (a digit's stroke does not) and are thin (paper on
    both sides), found by a probabilistic Hough transform. Where a stroke crosses a line, ink much
    darker than the line is kept. -> (contrast without lines, uint8 mask of the erased bands)."""
    h, w = contrast.shape
    bands = np.zeros((h, w), np.uint8)
    if min(h, w) < SMALL_SIDE:
        return contrast, bands
    # The Hough transform runs on a copy ~256 px on its short side (its cost grows with the pixels).
    f = max(1, round(min(h, w) / 256))
    small = contrast if f == 1 else cv2.resize(contrast, (w // f, h // f), interpolation=cv2.INTER_AREA)
    visible = ((small > max(WEAK_CONTRAST, 4 * noise)) * 255).astype(np.uint8)
    length = int(LINE_SPAN * min(small.shape))
    segments = cv2.HoughLinesP(visible, 1, np.pi / 360, threshold=length // 2, minLineLength=length,
                               maxLineGap=max(3, min(small.shape) // 100))
    if segments is None:
        return contrast, bands
    segments = segments.reshape(-1, 4) * f + f // 2
    thickness = max(3, round(max(h, w) / 400))
    near = max(3, round(0.03 * min(h, w)))
    level = np.zeros((h, w), np.float32)  # per pixel: the contrast of the line erased there
    for x0, y0, x1, y1 in segments:
        if min(x0, y0, x1, y1, w - 1 - max(x0, x1), h - 1 - max(y0, y1)) > near:
            continue  # a long straight stroke of a big digit, not a rule across the page
        if bands[min(h - 1, (y0 + y1) // 2), min(w - 1, (x0 + x1) // 2)]:
            continue  # the same line found again
        on, beside = _line_profile(contrast, (x0, y0, x1, y1), thickness)
        if beside >= 0.5 * on:
            continue  # inside a fat stroke, not a thin rule
        band = np.zeros((h, w), np.uint8)
        cv2.line(band, (int(x0), int(y0)), (int(x1), int(y1)), 255, thickness)
        np.maximum(level, (band > 0) * np.float32(on), out=level)
        bands |= band
    if not bands.any():
        return contrast, bands
    cleaned = contrast.copy()
    # Keep what is much darker than the line itself: a stroke crossing it.
    cleaned[(bands > 0) & (contrast < LINE_KEEP * level + 2 * noise)] = 0
    return cleaned, bands


def _line_profile(contrast: np.ndarray, segment, thickness: int) -> tuple[float, float]:
    """-> (the line's contrast, the contrast beside it at two thicknesses on either side): medians
    along the segment, which ignore the few places where a digit crosses it."""
    x0, y0, x1, y1 = (float(v) for v in segment)
    length = max(1.0, np.hypot(x1 - x0, y1 - y0))
    nx, ny = -(y1 - y0) / length, (x1 - x0) / length  # unit normal
    t = np.linspace(0, 1, 48)
    half = thickness // 2
    offsets = np.array(list(range(-half, half + 1)) + [-2 * thickness, 2 * thickness], np.float32)
    h, w = contrast.shape
    px = np.clip(np.round(x0 + t[None] * (x1 - x0) + offsets[:, None] * nx), 0, w - 1).astype(int)
    py = np.clip(np.round(y0 + t[None] * (y1 - y0) + offsets[:, None] * ny), 0, h - 1).astype(int)
    medians = np.median(contrast[py, px], axis=1)  # one per offset
    return float(medians[:-2].max()), float(medians[-2:].max())


def ink_mask(contrast: np.ndarray, noise: float) -> tuple[np.ndarray, float]:
    """Hysteresis threshold -> (uint8 mask, ink level).

    Strong pixels: above Otsu's split of the clearly-not-paper pixels (ink cores), and above
    MIN_CONTRAST. Weak pixels, kept when connected to a strong one: above a third of the ink level
    (anti-aliased edges, faint parts of a pencil stroke). Both stay above the paper's noise.
    """
    floor = max(WEAK_CONTRAST, NOISE_SIGMAS * noise)
    candidates = contrast[contrast > floor]
    empty = np.zeros(contrast.shape, np.uint8)
    if candidates.size < 4:
        return empty, 0.0
    values = np.clip(candidates * 255, 0, 255).astype(np.uint8).reshape(-1, 1)
    otsu, _ = cv2.threshold(values, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    strong = contrast > max(MIN_CONTRAST, floor, otsu / 255.0)
    if not strong.any():
        return empty, 0.0
    level = float(np.percentile(contrast[strong], 90))
    weak = (contrast > max(floor, level / 3)).astype(np.uint8)
    n, labels = cv2.connectedComponents(weak, connectivity=8)
    keep = np.zeros(n, bool)
    keep[np.unique(labels[strong])] = True
    keep[0] = False
    return (keep[labels] * 255).astype(np.uint8), level
