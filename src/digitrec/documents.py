"""What a generated number is written on, with, and beside: the documents of `digitrec.synth`.

Real numbers are not MNIST digits on clean paper. The register rows that the reader misread
(issue 16) sit in a cell beside a black scanner border, over an underline, next to a cross or a
tick; cheque amounts are written over guilloche; notes on ruled or squared paper; photos add
light, blur and JPEG. And one hand writes the whole number: one slant, one pen. These functions
add that to `synth.make_number`'s canvas (float32 ink, 0-255 on black, before it becomes paper)
or to its grey image (dark ink on light paper). None of it is part of the answer. numpy and
OpenCV only.
"""

from __future__ import annotations

import cv2
import numpy as np

# What a number is written on, with their shares among dressed numbers.
BACKGROUNDS = {"plain": 0.2, "ruled": 0.2, "grid": 0.15, "register": 0.25, "cheque": 0.2}
BESIDE = "xv_"  # a cross, a tick (check mark), an underline: beside or under the number, not in it


def hand(rng: np.random.Generator) -> tuple[float, int]:
    """One writer's slant (dx/dy: + leans right) and pen (px added to, or taken from, the stroke
    at a 40 px digit height; scaled to the number's height by `styled`)."""
    return float(rng.uniform(-0.25, 0.35)), int(rng.choice([-1, 0, 0, 1, 1, 2]))


def styled(piece: np.ndarray, slant: float, pen: int, height: float) -> np.ndarray:
    """A digit's float32 ink crop slanted by `slant` (about its middle row) and its stroke widened
    (pen > 0) or thinned (pen < 0) by about |pen| * height / 40 px."""
    h, w = piece.shape
    if abs(slant) > 0.02:
        extra = int(np.ceil(abs(slant) * h))  # the sheared crop is this much wider
        matrix = np.float32([[1, -slant, extra if slant > 0 else 0], [0, 1, 0]])
        piece = cv2.warpAffine(piece, matrix, (w + extra, h), flags=cv2.INTER_LINEAR, borderValue=0)
    px = int(round(abs(pen) * height / 40))
    if pen and px:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
        if pen > 0:
            piece = cv2.dilate(piece, kernel)
        else:  # thinner, but a thin stroke is never wiped out: a faint trace of it stays
            piece = np.maximum(cv2.erode(piece, kernel), piece * 0.45)
    return piece


def hooked_one(rng: np.random.Generator, piece: np.ndarray) -> np.ndarray:
    """A '1' with a long lead-in: an up-stroke from the baseline, left of the stem, to its top
    (the register hands of issue 16), on a canvas widened to the left to hold it."""
    ys, xs = np.nonzero(piece > 100)
    if not len(ys):
        return piece
    h = piece.shape[0]
    reach = int(h * rng.uniform(0.25, 0.5))
    out = np.pad(piece, ((0, 0), (reach, 0)))
    top_x = int(xs[ys == ys.min()].mean()) + reach
    start = (top_x - reach, int(ys.max() - rng.uniform(0, 0.3) * h))
    pen = max(1, int(round(np.count_nonzero(piece > 100) / max(1, ys.max() - ys.min()) / 1.5)))
    cv2.line(out, start, (top_x, int(ys.min())), 255.0, pen, cv2.LINE_AA)
    return out


def beside(rng: np.random.Generator, canvas: np.ndarray, kind: str, x: int, y: int, height: float, pen: int) -> int:
    """Draw a cross ('x') or a tick ('v') with its left edge at x, its top at y -> the x after it.
    Both are smaller than the digits (0.3-0.7 of their height)."""
    size = int(height * rng.uniform(0.3, 0.7))
    if kind == "x":
        cv2.line(canvas, (x, y), (x + size, y + size), 255.0, pen, cv2.LINE_AA)
        cv2.line(canvas, (x + size, y), (x, y + size), 255.0, pen, cv2.LINE_AA)
    else:
        mid = (x + size // 3, y + size)
        cv2.line(canvas, (x, y + size // 2), mid, 255.0, pen, cv2.LINE_AA)
        cv2.line(canvas, mid, (x + size, y - size // 3), 255.0, pen, cv2.LINE_AA)
    return x + size + pen


def underline(rng: np.random.Generator, canvas: np.ndarray, left: int, right: int, y: int, pen: int) -> None:
    """A hand-drawn line under the number, a little longer or shorter than it, slightly tilted."""
    grow = int((right - left) * rng.uniform(-0.1, 0.3))
    x0, x1 = max(0, left - grow // 2), min(canvas.shape[1] - 1, right + grow // 2)
    tilt = int(rng.integers(-3, 4))
    cv2.line(canvas, (x0, y), (x1, y + tilt), 255.0, pen, cv2.LINE_AA)


def background(rng: np.random.Generator, grey: np.ndarray, height: float, kind: str) -> np.ndarray:
    """float32 grey page (dark ink on light paper) -> the same page written on `kind` paper
    (BACKGROUNDS); a register cell may be widened on the left for its scanner border."""
    if kind == "ruled":
        return _rules(rng, grey, rng.uniform(1.3, 2.4) * height, None)
    if kind == "grid":
        step = rng.uniform(0.5, 1.1) * height
        return _rules(rng, grey, step, step)
    if kind == "register":
        return _register(rng, grey, height)
    if kind == "cheque":
        return _cheque(rng, grey, height)
    return grey


def _darken(grey: np.ndarray, mask: np.ndarray, depth: float) -> np.ndarray:
    """Print `mask` (0-1) under the ink: the page darkened by `depth` (0-1) where it is 1."""
    return grey * (1 - depth * np.clip(mask, 0, 1))


def _rules(rng: np.random.Generator, grey: np.ndarray, dy: float, dx: float | None) -> np.ndarray:
    h, w = grey.shape
    mask = np.zeros((h, w), np.float32)
    width = int(rng.integers(1, 3))
    for y in np.arange(rng.uniform(0, dy), h, dy):
        cv2.line(mask, (0, int(y)), (w - 1, int(y + rng.uniform(-2, 2))), 1.0, width)
    if dx is not None:
        for x in np.arange(rng.uniform(0, dx), w, dx):
            cv2.line(mask, (int(x), 0), (int(x), h - 1), 1.0, width)
    return _darken(grey, mask, rng.uniform(0.1, 0.4))


def _register(rng: np.random.Generator, grey: np.ndarray, height: float) -> np.ndarray:
    """A register cell: ruled lines above and below the row and a column line, some of them dark,
    and a black scanner border (noisy, with a ragged edge) on the left of the strip."""
    h, w = grey.shape
    mask = np.zeros((h, w), np.float32)
    pen = int(rng.integers(1, 4))
    for y in (int(rng.uniform(0, 0.15) * h), int(rng.uniform(0.85, 1.0) * h) - 1):
        if rng.random() < 0.8:
            cv2.line(mask, (0, y), (w - 1, y + int(rng.integers(-2, 3))), 1.0, pen)
    if rng.random() < 0.5:  # the column's right-hand rule
        x = w - 1 - int(rng.uniform(0, 0.1) * w)
        cv2.line(mask, (x, 0), (x, h - 1), 1.0, pen)
    grey = _darken(grey, mask, rng.uniform(0.3, 0.8))
    if rng.random() < 0.75:
        band = int(rng.uniform(0.15, 1.0) * height)
        gap = int(rng.uniform(0.0, 0.6) * height)  # paper between the border and the number
        page = np.pad(grey, ((0, 0), (band + gap, 0)), mode="edge")
        edge = band + np.cumsum(rng.normal(0, 0.7, h)).astype(int).clip(-band // 2, gap)
        dark = rng.uniform(0, 50)
        for y in range(h):
            page[y, : max(0, edge[y])] = dark + rng.normal(0, rng.uniform(2, 15), max(0, edge[y]))
        grey = page
    return grey


def _cheque(rng: np.random.Generator, grey: np.ndarray, height: float) -> np.ndarray:
    """Guilloche (overlapping fine waves, printed light) and a printed box or baseline."""
    h, w = grey.shape
    mask = np.zeros((h, w), np.float32)
    xs = np.arange(w, dtype=np.float32)
    for _ in range(int(rng.integers(4, 12))):
        period = rng.uniform(0.4, 2.0) * height
        amp = rng.uniform(0.1, 0.6) * h
        centre = rng.uniform(0, h)
        phase = rng.uniform(0, 2 * np.pi)
        ys = centre + amp * np.sin(2 * np.pi * xs / period + phase)
        points = np.stack([xs, ys], 1).astype(np.int32)[None]
        cv2.polylines(mask, points, False, 1.0, 1, cv2.LINE_AA)
    grey = _darken(grey, mask, rng.uniform(0.08, 0.3))
    box = np.zeros((h, w), np.float32)
    if rng.random() < 0.6:
        top, bottom = int(rng.uniform(0.02, 0.15) * h), int(rng.uniform(0.85, 0.98) * h)
        cv2.rectangle(
            box, (int(rng.uniform(0, 0.05) * w), top), (w - 1 - int(rng.uniform(0, 0.05) * w), bottom), 1.0, 1
        )
    else:
        y = int(rng.uniform(0.75, 0.95) * h)
        cv2.line(box, (0, y), (w - 1, y), 1.0, 1)
    return _darken(grey, box, rng.uniform(0.2, 0.5))
