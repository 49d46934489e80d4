"""How long loading takes: the MNIST training split from the cache, and refusing a 400-megapixel
image from its header. Timings that used to be unit-test asserts; here they are measured, not judged.

    .venv/bin/python benchmarks/data_load.py [--repeat 5]

Prints the best and median of --repeat runs. On a quiet 2-core machine: ~0.15 s and well under 10 ms.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time
import zlib


def header_only_png(width: int, height: int) -> bytes:
    """A PNG that declares width x height and holds almost no pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from digitrec import data
    from digitrec.errors import ImageError
    from digitrec.preprocess import load_grey

    huge = header_only_png(20000, 20000)

    def refuse():
        try:
            load_grey(huge)
        except ImageError:
            return
        raise SystemExit("the 400-megapixel image was not refused")

    data.fetch_mnist()  # the cache filled first: what is timed is loading, not downloading
    for what, fn in (
        ("load_mnist('train') from the cache", lambda: data.load_mnist("train")),
        ("refuse a 400-megapixel PNG", refuse),
    ):
        times = timed(fn, args.repeat)
        print(f"{what:40s} best {min(times) * 1e3:8.1f} ms   median {statistics.median(times) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
