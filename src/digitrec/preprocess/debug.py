"""`--debug DIR`: the preprocessing stages side by side in one PNG, so a user sees what the model saw."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import TypeAlias

import cv2
import numpy as np

# The preprocessing steps collected for --debug: {stage name: uint8 (H, W) image}, in order.
Stages: TypeAlias = dict[str, np.ndarray]

TILE = 160  # px: the height of every stage in the strip
LABEL = 18  # px: the caption band under each stage


def stage_strip(stages: Stages, caption: str | None = None) -> np.ndarray:
    """{name: uint8 (H, W) image} -> uint8 (H, W, 3) BGR strip: each stage scaled to TILE px high
    (small ones without smoothing, so 28x28 pixels stay visible), its name under it."""
    tiles = []
    for name, image in stages.items():
        if not isinstance(image, np.ndarray) or image.ndim != 2 or image.size == 0:
            continue
        h, w = image.shape
        scale = TILE / h
        width = max(1, min(4 * TILE, round(w * scale)))
        method = cv2.INTER_NEAREST if scale >= 2 else cv2.INTER_AREA
        tile = cv2.resize(image.astype(np.uint8), (width, TILE), interpolation=method)
        tile = cv2.cvtColor(tile, cv2.COLOR_GRAY2BGR)
        band = np.full((LABEL, max(width, 8 * len(name) + 8), 3), 40, np.uint8)
        cv2.putText(band, name, (4, LABEL - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        tile = np.pad(tile, ((0, 0), (0, band.shape[1] - width), (0, 0)), constant_values=40)
        tiles.append(np.vstack([tile, band]))
        tiles.append(np.full((TILE + LABEL, 4, 3), (0, 160, 255), np.uint8))  # separator
    if not tiles:
        tiles = [np.zeros((TILE + LABEL, TILE, 3), np.uint8)]
    strip = np.hstack(tiles[:-1] if len(tiles) > 1 else tiles)
    if caption:
        (text_width, _), _ = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        if text_width + 8 > strip.shape[1]:  # a short strip (a failed image): room for the caption
            strip = np.pad(strip, ((0, 0), (0, text_width + 8 - strip.shape[1]), (0, 0)), constant_values=40)
        head = np.full((24, strip.shape[1], 3), 255, np.uint8)
        cv2.putText(head, caption, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        strip = np.vstack([head, strip])
    return strip


def write_strip(path: str | Path, stages: Stages, caption: str | None = None) -> Path:
    return write_png(path, stage_strip(stages, caption))


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """A PNG written whole or not at all (a full disk is a DigitrecError, never a silent False),
    marked as digitrec's own (`is_debug_png`)."""
    from digitrec.errors import DigitrecError
    from digitrec.files import atomic_write

    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise DigitrecError(f"cannot encode {path} as PNG")
    data = encoded.tobytes()
    # The mark goes right after IHDR (8 bytes of signature + its 25), where `is_debug_png` looks.
    return atomic_write(path, data[:_AFTER_IHDR] + _MARK + data[_AFTER_IHDR:])


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


_AFTER_IHDR = 33
# A tEXt chunk that says who wrote the file: `--debug` pictures are replaced by the next run, any
# other file of the same name (the user's own a.png beside a.jpg) never is.
_MARK = _png_chunk(b"tEXt", b"Software\0digitrec --debug")


def is_debug_png(path: str | Path) -> bool:
    """Whether `path` is a picture `write_png` wrote (and so may be replaced by another)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_AFTER_IHDR + len(_MARK))
    except OSError:
        return False
    return head[_AFTER_IHDR:] == _MARK
