"""Any common image file (or bytes, or array) -> a grey uint8 image, ink any colour.

Decoding goes through Pillow because it reads the header lazily: the size is known before any pixel
is decoded, so a 20000x20000 image is refused in microseconds instead of filling memory. Only the
formats in FORMATS are opened, and their headers and structure are checked first, so that no file
makes Pillow or libjpeg work for seconds (see `probe`). Pillow also applies what a photo needs and
OpenCV ignores: EXIF orientation, palette transparency, the first frame of a GIF, CMYK and 16-bit
files.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeAlias, TypeGuard

import numpy as np

from digitrec.errors import ImageError, NotAnImage

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

MAX_PIXELS = 40_000_000  # 40 MP: bigger than any phone photo; refused before decoding
MAX_BYTES = 50 * 1024 * 1024
# What to do about it: a phone's 48-50 MP mode is over the limit, and a digit needs far fewer pixels.
SCALE_DOWN = ": save it smaller (a few megapixels are plenty for digits) or in the camera's 12 MP mode"
MIN_SIDE = 8  # smaller than this holds no readable digit (MNIST's 28x28 is the smallest useful size)

# The formats Pillow may open (MPO, a phone's JPEG with a second picture, opens through "JPEG";
# PPM covers PBM/PGM/PPM/PNM). Not ICO: Pillow decodes the PNG inside an icon while opening it,
# before its size can be checked (a 700 KB .ico held a 177 MP picture), and nobody writes digits
# in icons. Every other Pillow plugin is refused too: less parser code facing uploads.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "DIB", "TIFF", "WEBP", "PPM")
READ_FORMATS = "PNG, JPEG, GIF, BMP, TIFF, WebP and PBM/PGM/PPM"  # as messages name them
# Their file names, for finding images in a folder (compared lower-cased: scans come as `.Jpg`, `.PNG`).
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm", ".pbm", ".pnm"}
)


def is_image_name(path: Path | str) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def image_files(folder: Path | str) -> list[str]:
    """The image files in `folder`, recursively, sorted: what predict, read and batch answer for a
    folder. Linked folders are not followed (a link to `..` would loop). Nothing is dropped in
    silence, so that it gets an answer of its own, an error, instead of vanishing from a batch: a
    subfolder that cannot be listed is given as itself (the loader: "permission denied"), and a
    broken link or a pipe with an image's name as it is ("no such file", "not a regular file")."""
    found: list[str] = []

    def unlisted(error: OSError) -> None:
        found.append(str(Path(error.filename or folder)))

    for root, _, names in os.walk(folder, onerror=unlisted):
        # Path() spells each one as before (no "./" prefix): a resumed batch recognises its paths.
        found += (str(Path(root, name)) for name in names if is_image_name(name))
    return sorted(found)


# Structure no real picture needs, refused before Pillow or libjpeg walks it (see the checks).
# PNG: libpng writes 8 KB data chunks, so even a 50 MB file has ~6,400; 10,000 costs Pillow <0.1 s.
MAX_PNG_CHUNKS = 10_000
# JPEG scans: libjpeg's progressive scripts write 6 (grey) or 10 (colour), mozjpeg ~10-20; each scan
# is a full pass over the image, so 64 is room for any encoder at <= 7x a normal decode.
MAX_JPEG_SCANS = 64
# JPEG segments (tables, EXIF, ICC and XMP pieces of <= 64 KB): a photo has tens, a 50 MB file of
# 64 KB pieces ~800. Pillow reads the ones before the first scan in Python (~0.6 us each).
MAX_JPEG_SEGMENTS = 10_000
# GIF sub-blocks before the first picture (graphic control, loop count, comments: a handful).
MAX_GIF_BLOCKS = 100_000
# TIFF: fields in the first directory (real files: 10-60), and values in one numeric field (strip
# or tile offsets: a 40 MP picture in one-row strips has 6,300, in 64x64 tiles 9,700). Pillow
# handles each strip on its own in Python while decoding: 200,000 one-row strips took 0.6 s.
MAX_TIFF_TAGS = 1_000
MAX_TIFF_VALUES = 50_000
# PNM headers: "P5\n6300 6300\n255\n" and perhaps a comment line from the program that wrote it.
MAX_PNM_HEADER = 4096
# Pictures Pillow decodes pixel by pixel in Python (plain-text PNM, PNM of odd bit depths, RLE
# BMP), up to 0.7 s per megapixel: 1 MP is plenty for a digit, and PNG holds the same losslessly.
MAX_SLOW_PIXELS = 1_000_000

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_DIB_HEADERS = {struct.pack("<I", n) for n in (40, 52, 56, 64, 108, 124)}  # Pillow's DIB header sizes
_STRIP_PIXELS = 1 << 20  # float32 work on a million pixels at a time: ~20 MB of temporaries for RGBA
_PER_PIXEL_SCALE = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(bool))

# Pillow's luma weights (ITU-R 601-2), the same `Image.convert("L")` uses, so files and arrays agree.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


# What digitrec takes as an image: a file's path, its bytes, an open binary file (read to its end),
# an array (grey, RGB or RGBA), or a picture already opened with Pillow.
ImageSource: TypeAlias = "str | Path | bytes | bytearray | BinaryIO | np.ndarray | PILImage"


def load_grey(source: ImageSource, *, max_side: int | None = None) -> np.ndarray:
    """Path, file bytes, open binary file, array or Pillow image -> uint8 (H, W) grey, upright, alpha composited on white
    (on black when all that is opaque is one light colour: white strokes on a transparent canvas).

    Arrays may be (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, of any integer, float ([0, 1]) or
    bool dtype. `max_side` lets a JPEG decode at a reduced scale (1/2, 1/4, 1/8) whose long side
    stays at or above it: a cheap way to read big photos.
    """
    if isinstance(source, np.ndarray):
        return array_to_grey(source)
    if _is_pillow_image(source):
        return pillow_to_grey(source)
    if is_open_file(source):  # an open file, io.BytesIO, a web framework's upload
        data = read_capped(source, "file")
    elif isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else read_file(Path(source))
    else:
        raise NotAnImage(
            f"an image is a file's path, its bytes, an open binary file, a numpy array or a Pillow image, "
            f"not {type(source).__name__}"
        )
    if not data:
        raise ImageError("empty file")
    return _decode(data, max_side)


def read_file(path: Path) -> bytes:
    """A regular file's bytes, up to MAX_BYTES. Devices, pipes and sockets are refused: /dev/zero
    reports size 0 and never ends, and opening a FIFO waits for a writer forever."""
    import stat

    try:
        # O_NONBLOCK: opening a FIFO returns at once instead of waiting; no effect on files.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with open(fd, "rb") as file:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise ImageError("is a folder, not an image")
            if not stat.S_ISREG(info.st_mode):
                raise ImageError("not a regular file (a device, pipe or socket): give an image file")
            if info.st_size > MAX_BYTES:
                raise ImageError(
                    f"file too large ({info.st_size / 2**20:.0f} MiB; the limit is {MAX_BYTES // 2**20} MiB)"
                )
            return read_capped(file, "file")  # capped again: the file may grow while we read
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except IsADirectoryError:
        raise ImageError("is a folder, not an image") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except OSError as exc:
        raise ImageError(f"cannot read: {exc.strerror or exc}") from None


def is_open_file(source: object) -> TypeGuard[BinaryIO]:
    return callable(getattr(source, "read", None))


def read_capped(stream: BinaryIO, what: str) -> bytes:
    """All of a binary stream, refused as soon as it holds more than MAX_BYTES: never more than
    the limit (and one byte) in memory, whatever the stream's size says. A stream that is not
    binary (a file opened as text, an async upload) is a NotAnImage that says what to pass."""
    import inspect

    data = stream.read(MAX_BYTES + 1)
    if inspect.isawaitable(data):
        getattr(data, "close", lambda: None)()  # never awaited: no "coroutine was never awaited" warning
        raise NotAnImage("an async upload (its read() must be awaited): pass its .file, or await its read()")
    if not isinstance(data, bytes):
        raise NotAnImage(f"an open {what} is read as bytes: open it with 'rb', not as text")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{what} too large (over {MAX_BYTES // 2**20} MiB, the limit)")
    return data


def probe(data: bytes) -> tuple[int, int]:
    """(width, height) of an image file's bytes, from its headers alone: no pixel is decoded and
    the work is bounded whatever the file holds. Raises ImageError for what `load_grey` refuses
    before decoding (unsupported format, too large, too small, too many chunks or scans)."""
    with _opened(data) as image:
        return image.size


@contextlib.contextmanager
def _opened(data: bytes) -> Iterator[PILImage]:
    """The Pillow image of `data`, its header read and checked, its pixels not yet decoded."""
    from PIL import Image, UnidentifiedImageError

    if data.startswith(_PNG_SIGNATURE):
        _check_png_chunks(data)
    elif data.startswith(b"\xff\xd8"):
        _check_jpeg_segments(data)
    elif data[:6] in (b"GIF87a", b"GIF89a"):
        _check_gif_blocks(data)
    elif data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        _check_tiff_tags(data)
    elif data[:1] == b"P" and data[1:2] in (b"1", b"2", b"3", b"4", b"5", b"6", b"f", b"y"):
        _check_pnm_header(data)
    elif data[:2] == b"BM":
        _check_bmp(data, 14)
    elif data[:4] in _DIB_HEADERS:  # a BMP without its file header (.dib)
        _check_bmp(data, 0)
    with warnings.catch_warnings(), _pillow_pixel_limit():
        warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning: we check the size ourselves
        try:
            image = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
        except UnidentifiedImageError:
            raise ImageError(f"not an image (unknown or unsupported format; digitrec reads {READ_FORMATS})") from None
        except Image.DecompressionBombError as exc:  # twice our limit: Pillow says how big
            found = re.search(r"\((\d+) pixels\)", str(exc))
            size = f"{int(found.group(1)) / 1e6:.0f} megapixels; " if found else ""
            raise ImageError(f"image too large ({size}the limit is {MAX_PIXELS // 1_000_000}){SCALE_DOWN}") from None
        except Exception as exc:  # a header so broken that Pillow's plugins raise their own errors
            raise ImageError(f"not a readable image ({exc})") from None
        with image:
            _check_size(*image.size)
            yield image  # decoded by the caller inside the same pixel limit and warning filter


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"image too large ({width}x{height} = {width * height / 1e6:.0f} megapixels; "
            f"the limit is {MAX_PIXELS // 1_000_000}){SCALE_DOWN}"
        )
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"image too small ({width}x{height}; a digit needs at least {MIN_SIDE}x{MIN_SIDE} pixels)")


def _check_png_chunks(data: bytes) -> None:
    """Walk the chunk headers (12 bytes each, jumping over their bodies) as far as Pillow will read
    for the first frame, and refuse a file with more than MAX_PNG_CHUNKS: Pillow handles each
    chunk in Python (~7 us), so 1.5 million empty chunks took 11 s before a pixel was decoded."""
    at, count, seen_data = len(_PNG_SIGNATURE), 0, False
    while at + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, at)
        count += 1
        if count > MAX_PNG_CHUNKS:
            raise ImageError(f"not a usable PNG (over {MAX_PNG_CHUNKS} chunks; real images have a few dozen)")
        if kind == b"IEND" or (kind == b"fcTL" and seen_data):  # the end, or an APNG's second frame
            return
        seen_data = seen_data or kind == b"IDAT"
        at += 12 + length  # length, type, body, CRC; a length past the end ends the walk (truncated)


# After a scan header, its entropy-coded data runs to the next 0xFF that is neither stuffing (FF 00)
# nor a restart marker (FF D0-D7): the standard stuffs every FF byte of the data, so this is exact.
_END_OF_SCAN = re.compile(rb"\xff(?=[^\x00\xd0-\xd7])")
_MARKER = re.compile(rb"\xff+([^\x00\xff])")  # a marker after any fill bytes (FF FF ...)


def _check_jpeg_segments(data: bytes) -> None:
    """Walk the JPEG's markers up to its first EOI (an MPO's second picture is never decoded),
    jumping over segment bodies and scan data, and refuse more than MAX_JPEG_SCANS scans or
    MAX_JPEG_SEGMENTS segments. libjpeg walks every block of the image once per scan, even an
    empty one: 100,000 empty scans in a 1 MB 2000x1999 file took 28 s to decode. Pillow reads each
    segment before the first scan in Python. Each step here is one regex search in C."""
    at, segments, scans = 2, 0, 0
    while True:
        marker = _MARKER.match(data, at)
        if marker is None:  # truncated or not a marker: libjpeg will say what is wrong
            return
        code, at = marker.group(1)[0], marker.end()
        if code == 0xD9:  # EOI
            return
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise ImageError(f"not a usable JPEG (over {MAX_JPEG_SEGMENTS} segments)")
        if 0xD0 <= code <= 0xD8 or code == 0x01:  # RSTn, SOI, TEM: no length, no body
            continue
        if at + 2 > len(data):
            return
        at += int.from_bytes(data[at : at + 2], "big")
        if code == 0xDA:  # SOS: a scan header, then its entropy-coded data
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise ImageError(f"not a usable JPEG (over {MAX_JPEG_SCANS} scans; progressive photos have about 10)")
            end = _END_OF_SCAN.search(data, at)
            if end is None:
                return
            at = end.start()


def _check_gif_blocks(data: bytes) -> None:
    """Walk the extension blocks before the first picture, which Pillow reads one by one in
    Python while opening (7 million empty ones, 21 MB, took 1.5 s), and refuse more than
    MAX_GIF_BLOCKS sub-blocks. Real files have a handful; a comment of 25 MB fits in 100,000."""
    at, blocks = 13, 0  # header (6), logical screen descriptor (7)
    if len(data) > 10 and data[10] & 0x80:  # a global colour table follows
        at += 3 << ((data[10] & 7) + 1)
    while at < len(data) and data[at] == 0x21:  # "!": an extension, its label, then sub-blocks
        at += 2
        while at < len(data):
            blocks += 1
            if blocks > MAX_GIF_BLOCKS:
                raise ImageError(f"not a usable GIF (over {MAX_GIF_BLOCKS} blocks before its picture)")
            size = data[at]
            at += 1 + size
            if size == 0:  # the terminator
                break


# A PNM header's tokens (width, height, maxval), skipping whitespace and "#" comments to line ends.
# A comment must end in its newline, so there is one way to split the gap and no backtracking blow-up.
_PNM_TOKEN = re.compile(rb"(?:\s|#[^\r\n]*[\r\n])*([^\s#]+)")


def _check_pnm_header(data: bytes) -> None:
    """Refuse a PBM/PGM/PPM whose header does not end within MAX_PNM_HEADER bytes (Pillow reads
    it a byte at a time in Python: 2 MB of comment or spaces took 0.9 s), and one that Pillow
    decodes pixel by pixel in Python when it is over MAX_SLOW_PIXELS: plain-text P2/P3 (0.35 s per
    megapixel here) and binary P5/P6 whose maxval is not 255 or 65535 (0.7 s per megapixel)."""
    magic, head, at, tokens = data[:2], data[2:MAX_PNM_HEADER], 0, []
    for _ in range(2 if magic in (b"P1", b"P4") else 3):  # bitmaps have no maxval
        token = _PNM_TOKEN.match(head, at)
        if token is None or token.end() >= len(head):  # the header runs past what we hold
            if len(data) > MAX_PNM_HEADER:
                raise ImageError(f"not a usable PNM (its header is over {MAX_PNM_HEADER} bytes)")
            return  # a short file: Pillow will say what is wrong
        tokens.append(token.group(1))
        at = token.end()
    if len(tokens) < 3 or not all(t.isdigit() for t in tokens):
        return
    width, height, maxval = (int(t) for t in tokens)
    if magic in (b"P2", b"P3"):
        kind = f"a plain-text {magic.decode()} file"
    elif magic in (b"P5", b"P6") and maxval != 255 and not (magic == b"P5" and maxval == 65535):
        kind = f"a {magic.decode()} file of maxval {maxval}"
    else:
        return
    if width * height > MAX_SLOW_PIXELS:
        raise ImageError(
            f"{kind} over {MAX_SLOW_PIXELS // 1_000_000} MP is too slow to decode "
            "(Pillow reads it pixel by pixel): save it as PNG"
        )


def _check_bmp(data: bytes, header: int) -> None:
    """Refuse a run-length compressed BMP over MAX_SLOW_PIXELS: Pillow decodes RLE in Python, and
    a 26 KB RLE8 file of 6300x6300 (one pixel, then end of line, per row) took 3 s."""
    try:
        width, height, _planes, _bits, compression = struct.unpack_from("<iiHHI", data, header + 4)
    except struct.error:
        return
    rle = struct.unpack_from("<I", data, header)[0] >= 40 and compression in (1, 2)  # RLE8, RLE4
    if rle and abs(width * height) > MAX_SLOW_PIXELS:
        raise ImageError(
            f"run-length compressed BMP over {MAX_SLOW_PIXELS // 1_000_000} MP is too slow "
            "to decode (Pillow reads it in Python): save it as PNG"
        )


# TIFF field types whose values Pillow turns into Python numbers, one object each.
_TIFF_NUMBER_TYPES = frozenset({3, 4, 5, 8, 9, 10, 11, 12, 13, 16, 17, 18})


def _check_tiff_tags(data: bytes) -> None:
    """Read the first directory's entries (the one Pillow reads while opening) and refuse more
    than MAX_TIFF_TAGS of them, or a numeric field of more than MAX_TIFF_VALUES values: Pillow
    turns each value into a Python object (4 million strip offsets, 16 MB: 0.6 s, 100 MB) and
    then handles each strip or tile on its own while decoding."""
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")  # BigTIFF: 8-byte counts and offsets
    try:
        if big:
            (start,) = struct.unpack_from(order + "Q", data, 8)
            (count,) = struct.unpack_from(order + "Q", data, start)
            first, size, entry = start + 8, 20, order + "HHQ"
        else:
            (start,) = struct.unpack_from(order + "I", data, 4)
            (count,) = struct.unpack_from(order + "H", data, start)
            first, size, entry = start + 2, 12, order + "HHI"
        if count > MAX_TIFF_TAGS:
            raise ImageError(f"not a usable TIFF (over {MAX_TIFF_TAGS} fields in its directory)")
        for i in range(count):
            _tag, kind, values = struct.unpack_from(entry, data, first + i * size)
            if kind in _TIFF_NUMBER_TYPES and values > MAX_TIFF_VALUES:
                raise ImageError(f"not a usable TIFF (a field of over {MAX_TIFF_VALUES} values)")
    except struct.error:  # truncated: Pillow will say what is wrong
        return


_limit_lock = threading.Lock()
_limit_users = 0
_limit_saved: int | None = None


@contextlib.contextmanager
def _pillow_pixel_limit() -> Iterator[None]:
    """Pillow's own pixel limit lowered to ours while digitrec decodes, and put back after.

    It is one process-wide setting: changing it for good would surprise an application that uses
    Pillow beside digitrec. It matters inside Pillow where our size check cannot reach: the
    frames of a GIF and the tiles of a TIFF, which Pillow checks against it while decoding
    (an error past twice the limit, 80 MP). Counted, so that decodes in parallel threads keep it
    set until the last one ends."""
    from PIL import Image

    global _limit_users, _limit_saved
    with _limit_lock:
        if _limit_users == 0:
            _limit_saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        _limit_users += 1
    try:
        yield
    finally:
        with _limit_lock:
            _limit_users -= 1
            if _limit_users == 0:
                Image.MAX_IMAGE_PIXELS = _limit_saved


def _decode(data: bytes, max_side: int | None) -> np.ndarray:
    from PIL import ImageOps

    with _opened(data) as image:  # still inside Pillow's lowered pixel limit and warning filter
        width, height = image.size
        try:
            if image.format == "JPEG" and image.mode in ("RGB", "YCbCr", "L"):
                # Decode only the luma plane, at a reduced DCT scale when the caller allows it.
                target = (width, height)
                if max_side and max(width, height) > max_side:
                    f = max_side / max(width, height)
                    target = (max(1, round(width * f)), max(1, round(height * f)))
                image.draft("L", target)
            image.load()  # first frame only, for GIF/WebP/TIFF stacks
            ImageOps.exif_transpose(image, in_place=True)  # not a copy: that is 160 MB at 40 MP RGBA
            return _pil_to_grey(image)
        except ImageError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(f"truncated or corrupt image ({exc})") from None


def _is_pillow_image(source: object) -> TypeGuard[PILImage]:
    """Without importing Pillow: whoever holds a Pillow image has imported it. While another thread
    is still importing it, `PIL.Image` is in sys.modules without its `Image` class yet (the first
    calls of a new Recognizer shared by threads failed on that)."""
    import sys

    image_class = getattr(sys.modules.get("PIL.Image"), "Image", None)
    return image_class is not None and isinstance(source, image_class)


def pillow_to_grey(image: PILImage) -> np.ndarray:
    """A picture opened with Pillow (`Image.open`, a canvas, a screenshot) -> what its file would
    give: upright by its EXIF orientation, within the same size limits. The caller's image is not
    changed. (np.asarray of it would give palette indices for a GIF, and ignore the orientation.)"""
    from PIL import ImageOps

    _check_size(*image.size)
    with warnings.catch_warnings(), _pillow_pixel_limit():
        warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning: the size is checked above
        try:
            image.load()  # a lazily opened file is decoded now
            return _pil_to_grey(ImageOps.exif_transpose(image))  # a copy, upright
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(f"truncated or corrupt image ({exc})") from None
        except AssertionError:  # Pillow's bare `assert self.fp is not None`: its file is closed, unread
            raise ImageError(
                "the Pillow image's file was closed before its pixels were read (used after its "
                "`with Image.open(...)` block): pass it inside the block, or call its .load() there"
            ) from None


def _pil_to_grey(image: PILImage) -> np.ndarray:
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("PA", "La", "RGBa"):
        image = image.convert("RGBA")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGB")
    elif mode == "1":
        image = image.convert("L")
    if image.mode == "L":  # every decoded JPEG: already grey uint8, which the strips would give back
        grey: np.ndarray = np.array(image)
        return descreened(grey)
    width, height = image.size
    dtype = np.asarray(image.crop((0, 0, width, 1))).dtype
    # Strip by strip straight from Pillow's buffer (a crop copies only its rows): a 40 MP RGBA
    # picture never exists as one numpy copy, nor as float32 (640 MB), and the grey is the same.
    return descreened(_grey_in_strips(lambda y0, y1: np.asarray(image.crop((0, y0, width, y1))), height, width, dtype))


DITHERED_SHARE = 0.05  # pixels unlike all four neighbours, beyond which a black-and-white image is dithered
DESCREEN_SIGMA = 1.5  # px: the blur that turns a dither (a pattern of 2-4 px) back into grey


def descreened(grey: np.ndarray) -> np.ndarray:
    """A dithered black-and-white image (a 1-bit "document mode" scan or fax of a photo: grey paper
    drawn as a scatter of black dots) -> grey again, by a blur over the dither's period; any other
    image unchanged. Left as dots, the paper's scatter is as dark as the ink: "no ink found". A clean
    black-and-white drawing or scan has few pixels unlike all four neighbours; a dither, many."""
    if min(grey.shape) < 64:  # a normalised scan (Semeion's 16x16 is binary): its thin strokes are no dither
        return grey
    sample = grey[:: max(1, grey.shape[0] // 64), :: max(1, grey.shape[1] // 64)]
    if np.any((sample != 0) & (sample != 255)) or np.any((grey != 0) & (grey != 255)):
        return grey
    core = grey[1:-1, 1:-1]
    lonely = (core != grey[:-2, 1:-1]) & (core != grey[2:, 1:-1]) & (core != grey[1:-1, :-2]) & (core != grey[1:-1, 2:])
    if lonely.mean() < DITHERED_SHARE:
        return grey
    import cv2

    blurred: np.ndarray = cv2.GaussianBlur(grey, (0, 0), DESCREEN_SIGMA)
    return blurred


def array_to_grey(array: np.ndarray) -> np.ndarray:
    """Any (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA array -> uint8 (H, W)."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (2, 3, 4)):
        raise ImageError(f"unsupported array shape {a.shape}; expected (H, W), (H, W, 3) or (H, W, 4)")
    if _looks_like_flattened_digits(a):  # MNIST as many loaders give it
        raise ImageError(
            f"a {a.shape} array looks like flattened 28x28 digits: reshape it to ({a.shape[0]}, 28, 28) "
            "(ink 255 on black) to predict each one"
        )
    if min(a.shape[:2]) < MIN_SIDE:
        raise ImageError(
            f"image too small ({a.shape[1]}x{a.shape[0]}; a digit needs at least {MIN_SIDE}x{MIN_SIDE} pixels)"
        )
    if a.ndim == 2 and a.dtype == np.uint8:  # already grey uint8 (every decoded JPEG): the float round
        copy: np.ndarray = a.copy()  # trip below would give the same values, at 0.4 ms per photo
        return descreened(copy)  # (a copy: arrays may be read-only)
    return descreened(_grey_in_strips(lambda y0, y1: a[y0:y1], a.shape[0], a.shape[1], a.dtype))


def mnist_form(digits28: np.ndarray) -> np.ndarray:
    """Digits already in MNIST form (28x28, ink bright on black) as a model takes them: (28, 28),
    (N, 28, 28), (N, 1, 28, 28) or (N, 28, 28, 1), integers 0-255 or float 0-1 or 0-255 (as torchvision and Keras give
    MNIST) or bool -> uint8 (N, 28, 28). Any other shape is an ImageError that says what is wanted."""
    a = np.asarray(digits28)
    if a.size == 0:
        return np.zeros((0, 28, 28), np.uint8)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    elif a.ndim == 4 and a.shape[3] == 1:  # Keras' layout
        a = a[..., 0]
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[1:] != (28, 28):
        raise ImageError(
            f"digits in MNIST form are (N, 28, 28) arrays (ink bright on black), not {np.shape(digits28)}: "
            + ("reshape it to (N, 28, 28)" if np.shape(digits28)[-1:] == (28 * 28,) else "use predict for other images")
        )
    if a.dtype == np.uint8:
        return a
    if np.issubdtype(a.dtype, np.integer) and 0 <= a.min() and a.max() <= 255:  # 0-255 in a wider type
        return a.astype(np.uint8)
    return np.clip(_to_unit_float(a) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _looks_like_flattened_digits(a: np.ndarray) -> bool:
    """(N, 784) rows that are 28x28 digits, not a picture 784 px wide. A digit leaves the outer ring
    of its 28x28 at the background (98.6% of MNIST's training digits); a picture's strokes, cut
    into rows of 28, cross that ring's columns (every 28th) in most rows that hold ink."""
    if a.ndim != 2 or a.shape[1] != 28 * 28 or a.shape[0] == 28 * 28:
        return False
    digits = a.reshape(-1, 28, 28)
    ring = np.concatenate([digits[:, 0], digits[:, -1], digits[:, :, 0], digits[:, :, -1]], axis=1)
    background = np.median(ring)  # 0, 255 for black on white, a normalising loader's negative
    inked = (digits != background).any(axis=(1, 2))
    if not inked.any():  # blank rows: digits or picture, nothing to read either way
        return True
    return bool((ring[inked] == background).all(axis=1).mean() >= 0.9)


def _grey_in_strips(
    rows: Callable[[int, int], np.ndarray], height: int, width: int, dtype: np.dtype | type
) -> np.ndarray:
    """rows(y0, y1) -> those rows of the picture; -> uint8 (H, W) grey. uint8, uint16 and bool
    scale each pixel on its own, so they go through float32 a strip of rows at a time (the
    same values, a bounded amount of memory); other dtypes scale by the whole picture's range."""
    if np.dtype(dtype) not in _PER_PIXEL_SCALE:
        whole = _to_unit_float(rows(0, height))
        return _unit_to_grey(whole, _paper_under_alpha(whole))
    step = max(1, _STRIP_PIXELS // width)
    paper = 1.0
    first = rows(0, 1)
    if first.ndim == 3 and first.shape[2] in (2, 4):  # transparency: what is under it, from 256 rows
        sample = np.concatenate([rows(y, y + 1) for y in range(0, height, max(1, height // 256))])
        paper = _paper_under_alpha(_to_unit_float(sample))
    out = np.empty((height, width), np.uint8)
    for y0 in range(0, height, step):
        y1 = min(height, y0 + step)
        out[y0:y1] = _unit_to_grey(_to_unit_float(rows(y0, y1)), paper)
    return out


DARK_OPAQUE_SHARE = 0.002  # opaque pixels darker than mid-grey beyond which something dark is drawn on them


def _paper_under_alpha(x: np.ndarray) -> float:
    """What a transparent image is composited on, from (some of) its float pixels: white paper,
    unless everything opaque is light (white strokes saved from a dark-themed canvas: on white
    they would vanish), then black. Strokes of a dark colour, or a note of paper with ink on it
    (however little: thin pen digits are under 3% of a cut-out note), keep white."""
    if x.ndim != 3 or x.shape[2] not in (2, 4):
        return 1.0
    opaque = x[..., -1] > 0.5
    if not opaque.any() or opaque.mean() > 0.98:
        return 1.0
    colour = x[..., :3] @ _LUMA if x.shape[2] == 4 else x[..., 0]
    ink = colour[opaque]
    return 0.0 if ink.mean() > 0.5 and (ink < 0.5).mean() < DARK_OPAQUE_SHARE else 1.0


def _unit_to_grey(x: np.ndarray, paper: float = 1.0) -> np.ndarray:
    """float32 in [0, 1], (H, W) or (H, W, C) -> uint8 (H, W): luma, alpha composited on `paper`
    (1.0 white; `_paper_under_alpha` chooses)."""
    if x.ndim == 3:
        alpha = x[..., -1:] if x.shape[2] in (2, 4) else None
        colour = x[..., :3] if x.shape[2] >= 3 else x[..., :1]
        grey = colour @ _LUMA if colour.shape[2] == 3 else colour[..., 0]
        if alpha is not None:  # composite: a transparent canvas is paper
            grey = grey * alpha[..., 0] + paper * (1.0 - alpha[..., 0])
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
        scaled: np.ndarray = np.clip(a.astype(np.float32) / top, 0, 1)
        return scaled
    if not np.issubdtype(a.dtype, np.floating):  # complex, strings, objects: no grey level to read
        raise ImageError(f"unsupported array type {a.dtype}; expected whole numbers, floats or bools")
    x = a.astype(np.float32)
    if not np.isfinite(x).all():
        raise ImageError("image holds NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0 and hi <= 1:
        return x
    if lo >= 0 and hi <= 255:
        return x / 255.0
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
