"""Hostile image files from issue 14, built as bytes in memory, small and fast.

Each function takes a size or count: tests use a small version (cost grows linearly with it) and
`benchmarks/hostile.py` the full one, the default, which is what the review sent. Nothing here
decodes the big images: they are built from compressed rows so that even the 13300x13300 one takes
well under a second and a few MB.
"""

from __future__ import annotations

import io
import struct
import zlib

__all__ = ["big_grey16_png", "big_rgba_png", "ico_bomb", "jpeg_scan_bomb", "png_chunk_flood"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png(
    width: int,
    height: int,
    bit_depth: int,
    colour_type: int,
    bytes_per_pixel: int,
    extra_chunks: bytes = b"",
    ink: bool = False,
) -> bytes:
    """A valid PNG of the given size, filter 0 rows of zero bytes (transparent / black), and with
    `ink` a thick opaque bar down the middle third (a '1': every byte 0xFF there, i.e. white
    opaque for RGBA; grey files are inverted so the bar is black on white).

    The IDAT stream is built by feeding the same few rows through a single compressor, so a
    13300x13300 RGBA image (700 MB of pixels) costs ~1 s and compresses to <1 MB.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    blank = b"\x00" + bytes(width * bytes_per_pixel)  # filter byte 0, then zero pixels
    if colour_type == 0 and ink:  # grey: white paper (all 0xFF), a black bar
        blank = b"\x00" + b"\xff" * (width * bytes_per_pixel)
    third = width // 3
    bar_byte = b"\x00" if colour_type == 0 else b"\xff"
    bar_row = (
        blank[: 1 + third * bytes_per_pixel]
        + bar_byte * ((width - 2 * third) * bytes_per_pixel)
        + blank[1 + (width - third) * bytes_per_pixel :]
    )
    if colour_type == 6 and ink:  # RGBA: a black opaque bar (RGB 0, alpha 255) on transparent
        pixel = b"\x00\x00\x00\xff"
        bar_row = blank[: 1 + third * 4] + pixel * (width - 2 * third) + blank[1 + (width - third) * 4 :]
    compressor = zlib.compressobj(9)
    parts = [
        compressor.compress(bar_row if ink and height // 6 <= y < height - height // 6 else blank)
        for y in range(height)
    ]
    parts.append(compressor.flush())
    return (
        _PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + extra_chunks + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")
    )


def big_rgba_png(side: int = 6300, *, ink: bool = False) -> bytes:
    """A side x side 8-bit RGBA PNG (6300: 39.7 MP, under the 40 MP limit, ~170 KB), transparent,
    with `ink` a black bar (a '1') down its middle."""
    return _png(side, side, 8, 6, 4, ink=ink)


def big_grey16_png(side: int = 6300, *, ink: bool = False) -> bytes:
    """A side x side 16-bit greyscale PNG (6300: 39.7 MP, allowed, ~80 KB), black, with `ink`
    white paper and a black bar (a '1') down its middle."""
    return _png(side, side, 16, 0, 2, ink=ink)


def ico_bomb(side: int = 13300) -> bytes:
    """An .ico whose one entry is a side x side RGBA PNG (13300: 177 MP, ~714 KB).

    The ICO directory says 0x0 (= 256) for the entry; Pillow's ICO plugin reads and decodes the
    embedded PNG inside `Image.open` to learn its real size, before any caller can check it.
    """
    png = big_rgba_png(side)
    header = struct.pack("<HHH", 0, 1, 1)  # reserved, type 1 = icon, one image
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 6 + 16)
    return header + entry + png


def png_chunk_flood(chunks: int = 1_500_000, side: int = 64) -> bytes:
    """A valid side x side grey PNG with `chunks` empty private ancillary chunks before its IDAT
    (1.5 M: ~18 MB). `teSt` is ancillary (lower-case first letter), private (lower-case second) and
    safe to copy: a decoder must skip it, and Pillow walks each one in Python."""
    flood = _chunk(b"teSt", b"") * chunks
    return _png(side, side, 8, 0, 1, extra_chunks=flood)


def jpeg_scan_bomb(scans: int = 100_000, size: tuple[int, int] = (2000, 1999)) -> bytes:
    """A grey progressive JPEG of `size` (width, height) with `scans` extra empty scans (100 k: ~1 MB).

    Built from a valid progressive JPEG from Pillow: before its EOI we insert copies of one 10-byte
    SOS segment, a DC refinement scan with no entropy-coded data. libjpeg accepts each as a real
    scan and walks every block of the image for it (~0.25 ms per scan at 2000x1999 here), so the
    cost grows with scans x pixels while the file grows by 10 bytes per scan.
    """
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", size, 128).save(buffer, "JPEG", progressive=True, quality=90)
    jpeg = buffer.getvalue()
    assert jpeg.endswith(b"\xff\xd9")
    # SOS: length 8, one component (tables 0/0), Ss=0, Se=0, Ah=1, Al=0: a DC refinement scan.
    # It needs one bit per block; with no data libjpeg's bit reader warns ("premature end of
    # data"), reads zeros and still visits every block, so each scan is a full pass over the image.
    # libjpeg tolerates the repeated pass (it only warns about the coefficient progression).
    component_id = _first_component_id(jpeg)
    sos = b"\xff\xda" + struct.pack(">HBBBBBB", 8, 1, component_id, 0x00, 0, 0, 0x10)
    return jpeg[:-2] + sos * scans + b"\xff\xd9"


def _first_component_id(jpeg: bytes) -> int:
    """The first component id of the frame (SOF2) so the extra scans name a real component."""
    at = jpeg.index(b"\xff\xc2")
    # marker(2) length(2) precision(1) height(2) width(2) count(1) -> first component id
    return jpeg[at + 10]
