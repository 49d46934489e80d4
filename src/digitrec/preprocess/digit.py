"""A grey image of one digit -> 28x28 uint8, white ink on black, the way MNIST was prepared:
crop to the ink, fit into 20x20 keeping the aspect ratio, centre by centre of mass in 28x28.

First draft (plain Otsu); the issue on 'your own images' makes it robust.
"""

from __future__ import annotations

import cv2
import numpy as np

from digitrec.errors import ImageError


def is_mnist_like(grey: np.ndarray) -> bool:
    """Already 28x28, white ink on a black background: pass through unchanged."""
    return grey.shape == (28, 28) and np.median(grey) < 40


def normalize_digit(grey: np.ndarray, stages: dict | None = None) -> np.ndarray:
    """uint8 (H, W) -> uint8 (28, 28), ink = 255. `stages` collects intermediate images for --debug."""
    if is_mnist_like(grey):
        return grey.copy()
    # Polarity: the background is the majority; make ink bright.
    ink = 255 - grey if np.median(grey) > 127 else grey.copy()
    _, mask = cv2.threshold(ink, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if stages is not None:
        stages["ink"] = ink
        stages["mask"] = mask
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ImageError("no ink found")
    crop = np.where(mask > 0, ink, 0)[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return fit_and_centre(crop, stages)


def fit_and_centre(crop: np.ndarray, stages: dict | None = None) -> np.ndarray:
    """Ink crop (ink bright) -> 28x28: longer side scaled to 20 px, then shifted so the centre of
    mass sits at the centre, as in LeCun et al.'s MNIST preparation."""
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((28, 28), np.uint8)
    top, left = (28 - nh) // 2, (28 - nw) // 2
    canvas[top : top + nh, left : left + nw] = small
    m = cv2.moments(canvas)
    if m["m00"] > 0:
        dx, dy = 14 - m["m10"] / m["m00"], 14 - m["m01"] / m["m00"]
        shift = np.float32([[1, 0, dx], [0, 1, dy]])
        canvas = cv2.warpAffine(canvas, shift, (28, 28), flags=cv2.INTER_LINEAR, borderValue=0)
    if stages is not None:
        stages["mnist"] = canvas
    return canvas
