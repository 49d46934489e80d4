"""Which blobs of ink are the digit? Connected components of the ink mask -> the digit's mask.

The digit is the strongest blob (area x contrast) that is not a speck, a page edge or a ruled line;
pieces of the same digit (the loose top bar of a 5, a broken stroke) join it when they are close and
overlap it. Slivers of a neighbouring digit at the crop's edge, trailing dots and specks do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SPECK_FRACTION = 0.02  # a blob under 2% of the biggest one is a speck (dust, grain, JPEG blocks)
SMALL_FRACTION = 0.15  # a blob under 15% of the digit joins it only when it sits over or under it
JOIN_GAP = 0.25  # pieces of one digit are at most this fraction of the digit's size apart
MAX_ELONGATION = 8.0  # long side / short side above this: a ruled line or a page edge, not a digit


@dataclass
class Blob:
    label: int
    x: int
    y: int
    w: int
    h: int
    area: int
    strength: float  # area x mean contrast
    edges: frozenset  # which image borders it touches: "left", "right", "top", "bottom"

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.w, self.h


def blobs_of(mask: np.ndarray, contrast: np.ndarray) -> tuple[np.ndarray, list[Blob]]:
    """Connected components (8-connected) -> (label image, blobs)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    sums = np.bincount(labels.ravel(), weights=contrast.ravel(), minlength=n)
    height, width = mask.shape
    blobs = []
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        edges = frozenset(name for name, touch in (("left", x == 0), ("top", y == 0),
                                                   ("right", x + w == width), ("bottom", y + h == height)) if touch)
        blobs.append(Blob(i, x, y, w, h, area, float(sums[i]), edges))
    return labels, blobs


def select_digit(mask: np.ndarray, contrast: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """-> (uint8 mask of the digit's blobs, bounding box x, y, w, h), or None when there is no digit."""
    labels, blobs = blobs_of(mask, contrast)
    if not blobs:
        return None
    biggest = max(b.area for b in blobs)
    candidates = [b for b in blobs if b.area >= SPECK_FRACTION * biggest]
    # Ruled lines and page edges go, unless they are all there is (then the 'line' is a 1).
    candidates = [b for b in candidates if not _is_line(b, mask.shape)] or candidates
    main = max(candidates, key=_digit_score)
    group = [main]
    x0, y0, x1, y1 = main.x, main.y, main.x + main.w, main.y + main.h
    for blob in sorted(candidates, key=lambda b: -b.strength):
        if blob is main or not _joins(blob, main, (x0, y0, x1, y1)):
            continue
        group.append(blob)
        x0, y0 = min(x0, blob.x), min(y0, blob.y)
        x1, y1 = max(x1, blob.x + blob.w), max(y1, blob.y + blob.h)
    keep = np.zeros(labels.max() + 1, bool)
    keep[[b.label for b in group]] = True
    return (keep[labels] * 255).astype(np.uint8), (x0, y0, x1 - x0, y1 - y0)


def _is_line(blob: Blob, shape: tuple[int, int]) -> bool:
    """Long, thin and cut by the image border: a ruled line, a grid line or a page edge."""
    height, width = shape
    long_side, short_side = max(blob.w, blob.h), max(1, min(blob.w, blob.h))
    span = blob.w / width if blob.w >= blob.h else blob.h / height
    if long_side / short_side > MAX_ELONGATION and span > 0.5 and blob.edges:
        return True
    fill = blob.area / max(1, blob.w * blob.h)  # a grid: a net of lines, mostly empty inside
    spans = blob.w > 0.9 * width or blob.h > 0.9 * height
    return spans and fill < 0.2 and len(blob.edges) >= 2


def _digit_score(blob: Blob) -> float:
    """Strong blobs win; one cut by the image border is likely a neighbour's sliver or a page edge."""
    return blob.strength * (0.3 if blob.edges else 1.0)


def _joins(blob: Blob, main: Blob, box: tuple[int, int, int, int]) -> bool:
    x0, y0, x1, y1 = box
    size = max(x1 - x0, y1 - y0)
    gap_x = max(0, x0 - (blob.x + blob.w), blob.x - x1)
    gap_y = max(0, y0 - (blob.y + blob.h), blob.y - y1)
    if max(gap_x, gap_y) > JOIN_GAP * size:
        return False
    # Cut by a border the digit does not touch: a sliver of the neighbouring digit.
    if blob.edges - main.edges and blob.area < 0.5 * main.area:
        return False
    if blob.area < SMALL_FRACTION * main.area:
        # Small pieces join only over or under the digit (a 5's bar), not beside it (a trailing dot).
        overlap = min(x1, blob.x + blob.w) - max(x0, blob.x)
        return overlap >= 0.5 * blob.w
    return True
