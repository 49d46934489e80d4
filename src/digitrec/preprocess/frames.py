"""A digit written in a printed box: the box goes, the digit stays.

Ruled lines that cross the image are erased earlier (`lines.py`); a box drawn around the digit does
not cross the image, so it stayed, became the 'digit' and was read as a 0. A frame is a blob whose
bounding box is edged by straight lines on at least three sides (a form's cells are often open at
one side), each side a row or column of the box almost fully inked, while a handwritten stroke is
never that straight for that long, with ink inside it. Those sides are erased from the mask; what
is inside is then the digit as usual. An empty box is left as it is (the rejector calls it no digit).
"""

from __future__ import annotations

import numpy as np

from digitrec.preprocess.components import Labels, label_blobs
from digitrec.preprocess.stats import histogram, percentile

MIN_SIDE = 12  # px: smaller blobs are strokes, not boxes
EDGE_BAND = 0.15  # a side lies within this fraction of the box's size from its edge
STRAIGHT = 0.85  # a side's row (or column) is inked along this fraction of the box's length
MIN_SIDES = 3
ENCLOSED = 0.9  # ... and that ink spans at most this fraction of the box: a frame has room around it
INSIDE = 0.02  # the box holds ink over at least this share of its inner area once its sides go


def remove_frames(mask: np.ndarray, labelled: Labels | None = None) -> tuple[np.ndarray, bool]:
    """uint8 ink mask -> (the mask with the sides of boxes around ink erased, whether any was)."""
    labelled = label_blobs(mask) if labelled is None else labelled
    out, found = mask, False
    for i in range(1, labelled.n):
        x, y, w, h, _ = (int(v) for v in labelled.stats[i])
        if w < MIN_SIDE or h < MIN_SIDE:
            continue
        blob = labelled.image[y : y + h, x : x + w] == i
        rows, cols = _sides(blob)
        if sum(bool(side) for side in (*rows, *cols)) < MIN_SIDES:
            continue
        erase = np.zeros_like(blob)
        for r in (*rows[0], *rows[1]):
            erase[max(0, r - 1) : r + 2] = True
        for c in (*cols[0], *cols[1]):
            erase[:, max(0, c - 1) : c + 2] = True
        inner = (mask[y : y + h, x : x + w] > 0) & ~erase  # the box's own ink and any other blob in it
        if inner.sum() < INSIDE * w * h:
            continue  # an empty box: nothing to uncover
        ys, xs = np.nonzero(inner)
        if np.ptp(ys) + 1 > ENCLOSED * h or np.ptp(xs) + 1 > ENCLOSED * w:
            continue  # the 'sides' are the strokes of a digit stretched to fill its box (Semeion, NIST)
        if not found:
            out, found = mask.copy(), True
        region = out[y : y + h, x : x + w]
        region[blob & erase] = 0
    return out, found


def _sides(blob: np.ndarray) -> tuple[tuple[list[int], list[int]], tuple[list[int], list[int]]]:
    """bool (h, w) blob -> ((top rows, bottom rows), (left columns, right columns)) that are
    straight, almost fully inked sides of its bounding box."""
    h, w = blob.shape
    row_fill, col_fill = blob.mean(axis=1), blob.mean(axis=0)
    band_h, band_w = max(2, round(EDGE_BAND * h)), max(2, round(EDGE_BAND * w))
    top = [r for r in range(band_h) if row_fill[r] >= STRAIGHT]
    bottom = [r for r in range(h - band_h, h) if row_fill[r] >= STRAIGHT]
    left = [c for c in range(band_w) if col_fill[c] >= STRAIGHT]
    right = [c for c in range(w - band_w, w) if col_fill[c] >= STRAIGHT]
    return (top, bottom), (left, right)


# A scanner's black edge: columns (rows) at the image's side where nearly every pixel is far darker
# than the page. Handwriting never fills a whole column of a crop that holds it like that.
BORDER_DARK = 0.5  # darker than half the page's brightness
BORDER_FULL = 0.9  # over this share of the column (row)
BORDER_KEEP = 0.5  # bands over half a side are no margin but the picture: nothing is trimmed


def trim_dark_border(grey: np.ndarray) -> np.ndarray:
    """uint8 grey of a crop cut from a scanned page -> the crop without the solid dark bands of the
    scanner's edge along its sides (a register cell beside the book's black margin). Left as it is
    when the page itself is dark (white ink on black, as MNIST stores digits): its background is no
    border. The band became the 'digit' (a fat, sure 1) and, as the darkest thing in view, set the
    ink level so that the number beside it was too faint to be ink."""
    h, w = grey.shape
    page = percentile(histogram(grey), 50)
    if page < 128 or min(h, w) < 8:
        return grey
    dark = grey < BORDER_DARK * page
    full_cols = dark.mean(axis=0) > BORDER_FULL
    full_rows = dark.mean(axis=1) > BORDER_FULL
    left, right = _run(full_cols), _run(full_cols[::-1])
    top, bottom = _run(full_rows), _run(full_rows[::-1])
    if left + right > BORDER_KEEP * w or top + bottom > BORDER_KEEP * h or not (left or right or top or bottom):
        return grey
    # The band's edge is ragged: a few more columns go with it, or its teeth stay as a tall stroke.
    pad_x, pad_y = max(2, w // 50), max(2, h // 50)
    x0, x1 = left + pad_x if left else 0, w - (right + pad_x if right else 0)
    y0, y1 = top + pad_y if top else 0, h - (bottom + pad_y if bottom else 0)
    if x1 <= x0 or y1 <= y0:  # a strip (8 px wide) whose two bands and pads meet: nothing would be left
        return grey
    return grey[y0:y1, x0:x1]


def _run(full: np.ndarray) -> int:
    """How many leading entries are True."""
    return int(full.argmin()) if not full.all() else len(full)
