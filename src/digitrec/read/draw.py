"""A reading drawn on its image, for `--debug`."""

from __future__ import annotations

import math

import numpy as np

from digitrec.preprocess.segment import WORK_MIN_SIDE
from digitrec.read.result import Reading


def draw_reading(grey: np.ndarray, reading: Reading) -> np.ndarray:
    """The input with each digit's box and its prediction drawn on it (BGR uint8), for --debug.
    A small input is enlarged (pixels kept sharp) to at least WORK_MIN_SIDE px, as the reader
    enlarged it to read it: on a 28x28 digit the labels would not fit. Uncertain digits (under the
    reading's min_confidence) are drawn in red with a '?'."""
    import cv2

    zoom = max(1, math.ceil(WORK_MIN_SIDE / max(grey.shape))) if max(grey.shape) < WORK_MIN_SIDE else 1
    if zoom > 1:
        grey = cv2.resize(grey, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    canvas = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    thickness = max(1, round(max(grey.shape) / 500))
    for d in reading.digits:
        x, y, w, h = (v * zoom for v in d.box)
        doubtful = d.confidence < reading.min_confidence
        colour = (0, 170, 0) if d.confidence >= 0.9 else (0, 140, 255) if d.confidence >= 0.5 else (0, 0, 230)
        colour = (0, 0, 230) if doubtful else colour
        cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), colour, thickness)
        font = max(0.4, h / 60)
        cv2.putText(
            canvas,
            f"{d.digit}{'?' if doubtful else ''} {d.confidence:.0%}",
            (x, max(12, y - 3)),
            cv2.FONT_HERSHEY_SIMPLEX,
            font * 0.6,
            colour,
            thickness,
            cv2.LINE_AA,
        )
    return canvas
