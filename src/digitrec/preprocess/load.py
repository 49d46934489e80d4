"""Any common image file (or bytes, or array) -> a grey uint8 image, ink any colour.

Decoding goes through Pillow because it reads the header lazily: the size is known before any pixel
is decoded, so a 20000x20000 image is refused in microseconds instead of filling memory. Pillow also
applies what a photo needs and OpenCV ignores: EXIF orientation, palette transparency, the first
frame of a GIF, CMYK and 16-bit files.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np

from digitrec.errors import ImageError

MAX_PIXELS = 40_000_000  # 40 MP: bigger than any phone photo; refused before decoding
MAX_BYTES = 50 * 1024 * 1024
MIN_SIDE = 8  # smaller than this holds no readable digit (MNIST's 28x28 is the smallest useful size)

# Pillow's luma weights (ITU-R 601-2), the same `Image.convert("L")` uses, so files and arrays agree.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def load_grey(source: str | Path | bytes | bytearray | np.ndarray, *, max_side: int | None = None) -> np.ndarray:
    """Path, file bytes or array -> uint8 (H, W) grey, upright, alpha composited on white.

    Arrays may be (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, of any integer, float ([0, 1]) or
    bool dtype. `max_side` lets a JPEG decode at a reduced scale (1/2, 1/4, 1/8) whose long side
    stays at or above it: a cheap way to read big photos.
    """
    if isinstance(source, np.ndarray):
        return array_to_grey(source)
    data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else read_file(Path(source))
    if not data:
        raise ImageError("empty file")
    return _decode(data, max_side)


def read_file(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ImageError(f"file too large ({size / 2**20:.0f} MiB; the limit is {MAX_BYTES // 2**20} MiB)")
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except IsADirectoryError:
        raise ImageError("is a folder, not an image") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except OSError as exc:
        raise ImageError(f"cannot read: {exc.strerror or exc}") from None


def _decode(data: bytes, max_side: int | None) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning: we check the size ourselves
        try:
            image = Image.open(io.BytesIO(data))  # reads the header only
        except UnidentifiedImageError:
            raise ImageError("not an image (unknown or unsupported format)") from None
        except Image.DecompressionBombError as exc:  # Pillow's own limit, far above ours: say how big
            found = re.search(r"\((\d+) pixels\)", str(exc))
            size = f"{int(found.group(1)) / 1e6:.0f} megapixels; " if found else ""
            raise ImageError(f"image too large ({size}the limit is {MAX_PIXELS // 1_000_000})") from None
        except Exception as exc:  # a header so broken that Pillow's plugins raise their own errors
            raise ImageError(f"not a readable image ({exc})") from None
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ImageError(f"image too large ({width}x{height} = {width * height / 1e6:.0f} megapixels; "
                             f"the limit is {MAX_PIXELS // 1_000_000})")
        if min(width, height) < MIN_SIDE:
            raise ImageError(f"image too small ({width}x{height}; a digit needs at least {MIN_SIDE}x{MIN_SIDE} pixels)")
        try:
            if image.format == "JPEG" and image.mode in ("RGB", "YCbCr", "L"):
                # Decode only the luma plane, at a reduced DCT scale when the caller allows it.
                target = (width, height)
                if max_side and max(width, height) > max_side:
                    f = max_side / max(width, height)
                    target = (max(1, round(width * f)), max(1, round(height * f)))
                image.draft("L", target)
            image.load()  # first frame only, for GIF/WebP/TIFF stacks
            image = ImageOps.exif_transpose(image) or image
            return _pil_to_grey(image)
        except ImageError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(f"truncated or corrupt image ({exc})") from None


def _pil_to_grey(image) -> np.ndarray:
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("PA", "La", "RGBa"):
        image = image.convert("RGBA")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGB")
    elif mode == "1":
        image = image.convert("L")
    return array_to_grey(np.asarray(image))


def array_to_grey(array: np.ndarray) -> np.ndarray:
    """Any (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA array -> uint8 (H, W)."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (2, 3, 4)):
        raise ImageError(f"unsupported array shape {a.shape}; expected (H, W), (H, W, 3) or (H, W, 4)")
    if min(a.shape[:2]) < MIN_SIDE:
        raise ImageError(f"image too small ({a.shape[1]}x{a.shape[0]}; a digit needs at least "
                         f"{MIN_SIDE}x{MIN_SIDE} pixels)")
    if a.ndim == 2 and a.dtype == np.uint8:  # already grey uint8 (every decoded JPEG): the float round
        return a.copy()  # trip below would give the same values, at 0.4 ms per photo (a copy: arrays may be read-only)
    x = _to_unit_float(a)  # float32 in [0, 1]
    if x.ndim == 3:
        alpha = x[..., -1:] if x.shape[2] in (2, 4) else None
        colour = x[..., :3] if x.shape[2] >= 3 else x[..., :1]
        grey = colour @ _LUMA if colour.shape[2] == 3 else colour[..., 0]
        if alpha is not None:  # composite on white: a transparent canvas is white paper
            grey = grey * alpha[..., 0] + (1.0 - alpha[..., 0])
        x = grey
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _to_unit_float(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == bool:
        return a.astype(np.float32)
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    if np.issubdtype(a.dtype, np.integer):
        # 16-bit files (Pillow's I;16 / I modes) may arrive as int32 0..65535; an int array of 8-bit values stays 8-bit.
        top = 65535.0 if a.max(initial=0) > 255 else 255.0
        return np.clip(a.astype(np.float32) / top, 0, 1)
    x = a.astype(np.float32)
    if not np.isfinite(x).all():
        raise ImageError("image holds NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0 and hi <= 1:
        return x
    if lo >= 0 and hi <= 255:
        return x / 255.0
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
