"""Any common image file (or bytes, or array) -> a grey uint8 image, ink any colour.

First draft: the issue on 'your own images' makes this robust (EXIF, alpha, 16-bit, CMYK, GIF).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from digitrec.errors import ImageError

MAX_PIXELS = 40_000_000  # refuse larger images before decoding them whole
MAX_BYTES = 50 * 1024 * 1024


def load_grey(source: str | Path | bytes | np.ndarray) -> np.ndarray:
    """-> uint8 (H, W) grey image."""
    if isinstance(source, np.ndarray):
        image = source
    else:
        data = source if isinstance(source, (bytes, bytearray)) else _read(Path(source))
        if not data:
            raise ImageError("empty file")
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ImageError("not an image, or a format OpenCV cannot decode")
    return _to_grey(image)


def _read(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ImageError(f"file too large ({path.stat().st_size} bytes; limit {MAX_BYTES})")
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except IsADirectoryError:
        raise ImageError("is a folder, not an image") from None
    except OSError as exc:
        raise ImageError(f"cannot read: {exc.strerror or exc}") from None


def _to_grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 4:  # composite alpha on white
        alpha = image[..., 3:4].astype(np.float32) / np.iinfo(image.dtype).max
        image = (image[..., :3] * alpha + np.iinfo(image.dtype).max * (1 - alpha)).astype(image.dtype)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = cv2.normalize(image.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if min(image.shape[:2]) < 2:
        raise ImageError(f"image too small ({image.shape[1]}x{image.shape[0]})")
    return image
