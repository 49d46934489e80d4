"""Ruled lines, grid lines and page edges: find them on the ink-contrast map and erase them.

A digit is written on lined or squared paper, or photographed with the page's edge in the frame;
none of that is the digit, and a rule crossing a stroke would change its shape.
"""

from __future__ import annotations

from typing import TypeAlias

import cv2
import numpy as np

from digitrec.preprocess.noise import paper_noise

Segment: TypeAlias = tuple[float, float, float, float]  # a straight line's ends: x0, y0, x1, y1

MIN_SIDE = 128  # px: a smaller image is a cropped digit, with no rules to find
FAINTEST = 0.015  # contrast: a printed rule can be this faint on a reduced copy
LINE_SPAN = 0.45  # straight ink this long (of the image's shorter side) may be a ruled line
LINE_SUPPORT = 0.6  # one of many parallel rules is inked along this much of its extension across the image
LINE_ALONE = 0.9  # a lone rule (or a page edge), along this much
UNDERLINE_SPAN = 0.85  # in a small crop, a rule runs from side to side: this much of the width ...
UNDERLINE_SUPPORT = 0.9  # ... and is inked along this much of it
LINE_KEEP = 1.6  # on a ruled line, keep ink this much darker than the line (a stroke crossing it)


def remove_lines(
    contrast: np.ndarray, noise: float, *, underline_only: bool = False
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Erase ruled lines, grid lines and page edges. Candidates are straight runs at least
    LINE_SPAN of the image's short side long (a probabilistic Hough transform); one is a rule when
    it is thin (paper on both sides) and its extension across the whole image is inked along most
    of its length (LINE_SUPPORT): a rule crosses the page, a digit's straight stroke stops. The
    whole extended line is erased, except where a stroke crossing it is much darker than the line.
    `noise`: the paper's noise in `contrast` (`noise.paper_noise`). `underline_only`: a small crop
    of a scanned digit, where the only rule is one running under the writing (the baseline of a
    form or a cheque): nearly level, in the lower part of the crop, from one side to the other.
    -> (contrast without lines, uint8 mask of the erased bands, the lines' angles in degrees)."""
    h, w = contrast.shape
    bands = np.zeros((h, w), np.uint8)
    angles: list[float] = []
    if min(h, w) < MIN_SIDE and not underline_only:
        return contrast, bands, angles
    # The Hough transform runs on a copy ~256 px on its short side (its cost grows with the pixels).
    f = max(1, round(min(h, w) / 256))
    small = contrast if f == 1 else cv2.resize(contrast, (w // f, h // f), interpolation=cv2.INTER_AREA)
    # Averaging down thins the grain faster than a 1 px line: judge visibility by the copy's noise.
    small_noise = noise if f == 1 else paper_noise(small)
    visible = ((small > max(FAINTEST, 4 * small_noise)) * 255).astype(np.uint8)
    # Only thin things can be rules: drop the inside of fat strokes (fewer points to vote, and
    # the Hough transform's cost grows with them).
    inside: np.ndarray = cv2.erode(visible, np.ones((5, 5), np.uint8))
    visible &= ~inside
    length = int((UNDERLINE_SPAN * small.shape[1]) if underline_only else LINE_SPAN * min(small.shape))
    gap = max(3, min(small.shape) // 100)
    if not may_hold_segment(visible, length, gap):
        return contrast, bands, angles
    segments = cv2.HoughLinesP(visible, 1, np.pi / 360, threshold=length // 2, minLineLength=length, maxLineGap=gap)
    if segments is None:
        return contrast, bands, angles
    thickness = max(2 if underline_only else 3, round(max(h, w) / 400))
    found = []  # (line across the image, its contrast, support, angle in degrees)
    seen = np.zeros((h, w), np.uint8)
    for segment in segments.reshape(-1, 4) * f + f // 2:
        x0, y0, x1, y1 = (int(v) for v in segment)
        if underline_only and not _is_underline((x0, y0, x1, y1), h):
            continue
        t = np.linspace(0, 1, 9)
        if seen[
            np.clip(np.round(y0 + t * (y1 - y0)).astype(int), 0, h - 1),
            np.clip(np.round(x0 + t * (x1 - x0)).astype(int), 0, w - 1),
        ].all():
            continue  # the same line found again (all along it, not just where it crosses another)
        on, beside = _line_profile(contrast, (x0, y0, x1, y1), thickness)
        if beside >= 0.5 * on:
            continue  # inside a fat stroke, not a thin rule
        full = _across_image(_refine(contrast, (x0, y0, x1, y1), thickness, 0.5 * on), w, h)
        if full is None:
            continue
        cv2.line(seen, full[:2], full[2:], 255, thickness + 2)
        angle = float(np.degrees(np.arctan2(full[3] - full[1], full[2] - full[0]))) % 180
        found.append((full, on, _support(contrast, full, thickness, 0.5 * on), angle))
    level = np.zeros((h, w), np.float32)  # per pixel: the contrast of the line erased there
    for full, on, support, angle in found:
        # A rule crosses the page, inked nearly all along; or it is one of a ruled sheet's many
        # parallel lines. A digit's long straight stroke does neither (a 4 has two, not three).
        parallel = sum(min(abs(angle - a), 180 - abs(angle - a)) < 3 for _, _, _, a in found) - 1
        if underline_only:
            rule = support >= UNDERLINE_SUPPORT
        else:
            rule = support >= LINE_ALONE or (support >= LINE_SUPPORT and parallel >= 2)
        if not rule:
            continue
        band = np.zeros((h, w), np.uint8)
        cv2.line(band, full[:2], full[2:], 255, thickness + 2)
        np.maximum(level, (band > 0) * np.float32(on), out=level)
        bands |= band
        angles.append(angle)
    if not bands.any():
        return contrast, bands, angles
    cleaned = contrast.copy()
    # Keep what is much darker than the line itself: a stroke crossing it.
    cleaned[(bands > 0) & (contrast < LINE_KEEP * level + 2 * noise)] = 0
    return cleaned, bands, angles


def may_hold_segment(visible: np.ndarray, length: int, gap: int) -> bool:
    """False when cv2.HoughLinesP(visible, ..., minLineLength=length, maxLineGap=gap) surely finds
    nothing, for the cost of two projections instead of the transform (most photos of a digit on
    plain paper). OpenCV keeps a segment when its ends are `length` apart in x or in y, walking
    along it over at most `gap` empty pixels between points: so the columns (or rows) holding
    points must span `length` with no hole wider than `gap`."""
    for axis in (0, 1):
        at = np.flatnonzero(visible.any(axis=axis))
        if at.size == 0:
            return False
        holes = np.flatnonzero(np.diff(at) > gap + 1)  # the stretch before each of them ends there
        starts, ends = at[np.r_[0, holes + 1]], at[np.r_[holes, at.size - 1]]
        if (ends - starts).max() >= length:
            return True
    return False


def _is_underline(segment: Segment, height: int) -> bool:
    x0, y0, x1, y1 = segment
    level = abs(np.degrees(np.arctan2(y1 - y0, x1 - x0))) % 180
    return bool(min(level, 180 - level) <= 8 and (y0 + y1) / 2 >= 0.6 * height)


def _refine(contrast: np.ndarray, segment: Segment, thickness: int, threshold: float) -> Segment:
    """The Hough segment, found on a reduced copy, is a pixel or two off: along it, find the inked
    pixel within two thicknesses across, and fit a line to those points at full resolution."""
    x0, y0, x1, y1 = (float(v) for v in segment)
    length = max(1.0, np.hypot(x1 - x0, y1 - y0))
    nx, ny = -(y1 - y0) / length, (x1 - x0) / length
    t = np.linspace(0, 1, max(16, int(length / 2)))
    offsets = np.arange(-2 * thickness, 2 * thickness + 1, dtype=np.float32)
    h, w = contrast.shape
    xs = x0 + t[None] * (x1 - x0) + offsets[:, None] * nx  # (offsets, samples)
    ys = y0 + t[None] * (y1 - y0) + offsets[:, None] * ny
    values = contrast[np.clip(np.round(ys), 0, h - 1).astype(int), np.clip(np.round(xs), 0, w - 1).astype(int)]
    best = values.argmax(axis=0)
    inked = values[best, np.arange(len(t))] > threshold
    if inked.sum() < 10:
        return segment
    columns = np.arange(len(t))[inked]
    points = np.column_stack([xs[best[inked], columns], ys[best[inked], columns]]).astype(np.float32)
    vx, vy, cx, cy = cv2.fitLine(points, cv2.DIST_L2, 0, 0.01, 0.01).ravel()
    return (float(cx - 100 * vx), float(cy - 100 * vy), float(cx + 100 * vx), float(cy + 100 * vy))


def _across_image(segment: Segment, w: int, h: int) -> tuple[int, int, int, int] | None:
    """The segment's line extended to the image's borders: (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = (float(v) for v in segment)
    dx, dy = x1 - x0, y1 - y0
    if dx == 0 and dy == 0:
        return None
    ts = []
    for t in ((0 - x0) / dx, (w - 1 - x0) / dx) if dx else ():
        if 0 <= y0 + t * dy <= h - 1:
            ts.append(t)
    for t in ((0 - y0) / dy, (h - 1 - y0) / dy) if dy else ():
        if 0 <= x0 + t * dx <= w - 1:
            ts.append(t)
    if len(ts) < 2:
        return None
    a, b = min(ts), max(ts)
    return (round(x0 + a * dx), round(y0 + a * dy), round(x0 + b * dx), round(y0 + b * dy))


def _support(contrast: np.ndarray, line: Segment, thickness: int, threshold: float) -> float:
    """Fraction of the line's length along which it is inked (within half a thickness of it)."""
    x0, y0, x1, y1 = (float(v) for v in line)
    length = max(1.0, np.hypot(x1 - x0, y1 - y0))
    nx, ny = -(y1 - y0) / length, (x1 - x0) / length
    t = np.linspace(0, 1, max(16, int(length / 4)))
    half = max(1, thickness // 2)
    offsets = np.arange(-half, half + 1, dtype=np.float32)
    h, w = contrast.shape
    px = np.clip(np.round(x0 + t[None] * (x1 - x0) + offsets[:, None] * nx), 0, w - 1).astype(int)
    py = np.clip(np.round(y0 + t[None] * (y1 - y0) + offsets[:, None] * ny), 0, h - 1).astype(int)
    return float((contrast[py, px].max(axis=0) > threshold).mean())


def _line_profile(contrast: np.ndarray, segment: Segment, thickness: int) -> tuple[float, float]:
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
