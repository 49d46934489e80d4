"""Which blobs of ink are the digit? Connected components of the ink mask -> the digit's mask.

The digit is the strongest blob (area x contrast) that is not a speck, a page edge or a ruled line
(or what is left of one); pieces of the same digit (the loose top bar of a 5, a stroke cut by an
erased rule) join it when they are close and overlap it. Slivers of a neighbouring digit at the
crop's edge, trailing dots and specks do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

SPECK_FRACTION = 0.02  # a blob under 2% of the biggest one is a speck (dust, grain, JPEG blocks)
SMALL_FRACTION = 0.15  # a blob under 15% of the digit joins it only when it sits over or under it
JOIN_GAP = 0.25  # pieces of one digit are at most this fraction of the digit's size apart
MAX_ELONGATION = 8.0  # long axis / short axis above this: a ruled line or a page edge, not a digit
# A blob at least this fraction of the digit's height (or width) and SMALL_FRACTION of its area,
# apart from it, is something else written beside it: kept in view (see `_another_character`).
ANOTHER_SIZE = 0.5
ON_LINE = 0.5  # a blob with half of its pixels along an erased ruled line is what is left of that line


@dataclass
class Blob:
    label: int
    x: int
    y: int
    w: int
    h: int
    area: int
    strength: float  # area x mean contrast
    edges: frozenset[str]  # which image borders it touches: "left", "right", "top", "bottom"
    elongation: float = 1.0  # length / width along its principal axes (a slanted line is long too)
    angle: float = 0.0  # direction of its long axis, degrees in [0, 180)
    on_line: float = 0.0  # fraction of its pixels along an erased ruled line

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.w, self.h


@dataclass
class Labels:
    """8-connected components of a mask, as cv2.connectedComponentsWithStats numbers them."""

    n: int  # labels 1..n-1 are blobs, 0 is the background
    image: np.ndarray  # int32 (H, W)
    stats: np.ndarray  # (n, 5): x, y, w, h, area per label (row 0: the background within `box`)
    box: tuple[slice, slice]  # rows and columns that hold every blob


def label_blobs(mask: np.ndarray) -> Labels:
    """uint8 mask -> its 8-connected components, labelled within the mask's bounding box only (a
    digit covers a few % of a page; labelling the whole page was a tenth of the preprocessing).
    The box starts on even coordinates because OpenCV scans 2x2 blocks: the labels are numbered
    exactly as on the whole mask, which keeps ties between blobs resolved the same way."""
    x, y, w, h = cv2.boundingRect(mask)
    x0, y0 = x - x % 2, y - y % 2
    box = (slice(y0, y + h), slice(x0, x + w))
    image = np.zeros(mask.shape, np.int32)
    if w == 0:
        return Labels(1, image, np.zeros((1, 5), np.int32), box)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask[box], connectivity=8)
    image[box] = labels
    stats[:, cv2.CC_STAT_LEFT] += x0
    stats[:, cv2.CC_STAT_TOP] += y0
    return Labels(n, image, stats, box)


def blobs_of(mask: np.ndarray, contrast: np.ndarray, labelled: Labels | None = None) -> tuple[Labels, list[Blob]]:
    """Connected components (8-connected) -> (their labels, blobs). `labelled`: the mask's
    `label_blobs`, when the caller has it already."""
    labelled = label_blobs(mask) if labelled is None else labelled
    n, labels, stats = labelled.n, labelled.image, labelled.stats
    # Per label, in the box only: the blobs' sums are the same, added up in the same order.
    sums = np.bincount(labels[labelled.box].ravel(), weights=contrast[labelled.box].ravel(), minlength=n)
    height, width = mask.shape
    blobs = []
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        edges = frozenset(
            name
            for name, touch in (
                ("left", x == 0),
                ("top", y == 0),
                ("right", x + w == width),
                ("bottom", y + h == height),
            )
            if touch
        )
        blob = Blob(i, x, y, w, h, area, float(sums[i]), edges)
        if area >= 10:  # specks need no shape
            blob.elongation, blob.angle = _principal_axes(labels[y : y + h, x : x + w] == i)
        blobs.append(blob)
    return labelled, blobs


def _principal_axes(pixels: np.ndarray) -> tuple[float, float]:
    """bool image of one blob -> (elongation, angle of the long axis in degrees, [0, 180))."""
    m = cv2.moments(pixels.astype(np.uint8), True)
    spread = np.hypot(m["mu20"] - m["mu02"], 2 * m["mu11"])
    major, minor = m["mu20"] + m["mu02"] + spread, m["mu20"] + m["mu02"] - spread
    # A one-pixel-wide line has no width in moments: count it as 1/sqrt(12) px, a pixel's own spread.
    minor = max(minor, 2 * m["m00"] / 12)
    angle = float(np.degrees(0.5 * np.arctan2(2 * m["mu11"], m["mu20"] - m["mu02"]))) % 180
    return float(np.sqrt(major / minor)), angle


def select_digit(
    mask: np.ndarray,
    contrast: np.ndarray,
    lines: np.ndarray | None = None,
    line_angles: Sequence[float] = (),
    *,
    slivers: bool = True,
    labelled: Labels | None = None,
) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """-> (uint8 mask of the digit's blobs, bounding box x, y, w, h), or None when there is no digit.
    `lines`, `line_angles`: where ruled lines were erased and their directions; what is left of them
    (or of rules too short to be found, parallel to them) is not the digit. `slivers`: the image
    may be cut from a page, with pieces of the neighbouring digits at its border (not so for a
    digital drawing or a normalised scan, where every piece belongs to the one digit).
    `labelled`: the mask's `label_blobs`, when the caller has it."""
    labelled, blobs = blobs_of(mask, contrast, labelled)
    labels = labelled.image
    if not blobs:
        return None
    on_line = _fraction_on(labels, len(blobs), lines) if lines is not None and lines.any() else np.zeros(len(blobs) + 1)
    for blob in blobs:
        blob.on_line = float(on_line[blob.label])
    # Ruled lines and page edges go, unless they are all there is (then the 'line' is a 1).
    lines_left = [b for b in blobs if _is_line(b, mask.shape) or _parallel_rule(b, mask.shape, line_angles)]
    candidates = [b for b in blobs if b not in lines_left] or blobs
    biggest = max(b.area for b in candidates)
    candidates = [b for b in candidates if b.area >= SPECK_FRACTION * biggest]
    main = max(candidates, key=_digit_score)
    # Erased ruled lines cut strokes into pieces: bridge gaps as wide as their bands.
    bridge = 0.0
    if lines is not None and lines.any():
        bridge = 2 * float(cv2.distanceTransform(lines, cv2.DIST_L2, 3).max()) + 2
    group = [main]
    x0, y0, x1, y1 = main.x, main.y, main.x + main.w, main.y + main.h
    grown = True
    while grown:  # the digit grows piece by piece, so pieces reach further pieces
        grown = False
        for blob in sorted(candidates, key=lambda b: -b.strength):
            if blob in group or not _joins(blob, main, (x0, y0, x1, y1), bridge, slivers):
                continue
            group.append(blob)
            x0, y0 = min(x0, blob.x), min(y0, blob.y)
            x1, y1 = max(x1, blob.x + blob.w), max(y1, blob.y + blob.h)
            grown = True
    # Whatever else is written here as big as the digit (a second digit, a letter's other half)
    # stays in view: the rejector must see "12" to say "several digits", not a confident 1.
    for blob in candidates:
        if blob not in group and _another_character(blob, main, line_angles):
            group.append(blob)
            x0, y0 = min(x0, blob.x), min(y0, blob.y)
            x1, y1 = max(x1, blob.x + blob.w), max(y1, blob.y + blob.h)
    keep = np.zeros(labelled.n, np.uint8)
    keep[[b.label for b in group]] = 255
    digit = np.zeros(mask.shape, np.uint8)
    digit[labelled.box] = keep[labels[labelled.box]]
    return digit, (x0, y0, x1 - x0, y1 - y0)


def _another_character(blob: Blob, main: Blob, line_angles: Sequence[float] = ()) -> bool:
    """A blob apart from the digit that is written like one: at least half its height (or width),
    a sizeable share of its ink, and neither a neighbour's sliver at the border nor what is left of
    a rule (whole rules and page edges are no candidates at all)."""
    if blob.edges - main.edges:  # cut by a border the digit does not touch: a neighbour's sliver
        return False
    if blob.on_line >= ON_LINE:  # what is left of a ruled line
        return False
    if blob.elongation > MAX_ELONGATION:  # a thin stroke: a 1 (upright) or a piece of a rule (not)
        lying = min(blob.angle, 180 - blob.angle) < 45
        along_rule = any(min(abs(blob.angle - a), 180 - abs(blob.angle - a)) < 10 for a in line_angles)
        if lying or along_rule:
            return False
    tall = max(blob.h / max(main.h, 1), blob.w / max(main.w, 1)) >= ANOTHER_SIZE
    return tall and blob.area >= SMALL_FRACTION * main.area


def _fraction_on(labels: np.ndarray, n: int, lines: np.ndarray) -> np.ndarray:
    """Per blob label: the fraction of its pixels within a line's erased band, widened a little."""
    near = cv2.dilate(lines, np.ones((5, 5), np.uint8)) > 0
    total = np.bincount(labels.ravel(), minlength=n + 1)
    inside = np.bincount(labels[near], minlength=n + 1)
    return inside / np.maximum(total, 1)


def _parallel_rule(blob: Blob, shape: tuple[int, int], line_angles: Sequence[float]) -> bool:
    """A long thin blob parallel to the ruled lines found on the page: a piece of another rule
    (cut short by the frame's corner, say) that was too short to be found. Long: a fifth of the
    image's short side, more than a loose bar of a digit."""
    if not line_angles or max(blob.w, blob.h) < 0.2 * min(shape) or blob.elongation <= MAX_ELONGATION:
        return False
    return any(min(abs(blob.angle - a), 180 - abs(blob.angle - a)) < 4 for a in line_angles)


def _is_line(blob: Blob, shape: tuple[int, int]) -> bool:
    """Long, thin and cut by the image border: a ruled line, a grid line or a page edge."""
    height, width = shape
    span = blob.w / width if blob.w >= blob.h else blob.h / height
    if blob.elongation > MAX_ELONGATION and (span > 0.5 and blob.edges or len(blob.edges) >= 2):
        return True  # across the image, or cutting one of its corners
    fill = blob.area / max(1, blob.w * blob.h)  # a grid: a net of lines, mostly empty inside
    spans = blob.w > 0.9 * width or blob.h > 0.9 * height
    return spans and fill < 0.2 and len(blob.edges) >= 2


def _digit_score(blob: Blob) -> float:
    """Strong blobs win; one cut by the image border is likely a neighbour's sliver or a page edge,
    a long thin one a leftover piece of a ruled line (a 1 is rarely over 10 times longer than wide)."""
    on_line = blob.on_line >= ON_LINE  # mostly along an erased rule: likely what is left of it
    score = blob.strength * (0.3 if blob.edges else 1.0) * (0.3 if on_line else 1.0)
    return score * (0.2 if blob.elongation > 10 else 1.0)


def _joins(blob: Blob, main: Blob, box: tuple[int, int, int, int], bridge: float = 0.0, slivers: bool = True) -> bool:
    x0, y0, x1, y1 = box
    size = max(main.w, main.h)  # the first blob's: a growing group must not reach ever further
    gap_x = max(0, x0 - (blob.x + blob.w), blob.x - x1)
    gap_y = max(0, y0 - (blob.y + blob.h), blob.y - y1)
    if max(gap_x, gap_y) > max(JOIN_GAP * size, bridge):
        return False
    # Long, thin and lying along an erased rule: a dash left of it, not a piece of the digit.
    if blob.on_line >= 0.8 and blob.elongation > 6:
        return False
    # Cut by a border the digit does not touch: a sliver of the neighbouring digit.
    if slivers and blob.edges - main.edges and blob.area < 0.5 * main.area:
        return False
    if blob.area < SMALL_FRACTION * main.area:
        # Small pieces join only over or under the digit (a 5's bar), not beside it (a trailing dot).
        overlap = min(x1, blob.x + blob.w) - max(x0, blob.x)
        return overlap >= 0.5 * blob.w
    return True
