"""Command-line image inputs shared by the commands that take images: files, folders, '-' for stdin."""

from __future__ import annotations

from pathlib import Path

# Compared lower-cased: scans often come as `.Jpg` or `.PNG`.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".tif", ".tiff", ".webp",
                            ".gif", ".pgm", ".ppm", ".pbm", ".pnm"})
STDIN = "-"


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def expand_paths(paths: tuple[str, ...] | list[str]) -> list[str]:
    """Folders -> the image files in them, recursively and sorted; files and '-' as given (a file
    with any name is tried: the decoder, not the suffix, says whether it is an image). A folder with
    no images stays in the list so that the caller reports it."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if p != STDIN and path.is_dir():
            found = sorted(str(f) for f in path.rglob("*") if f.is_file() and is_image_name(f))
            out += found or [p]
        else:
            out.append(p)
    return out


def read_input(path: str) -> bytes | str:
    """'-' -> the bytes on standard input; anything else unchanged (the loader reads files)."""
    if path == STDIN:
        import sys

        return sys.stdin.buffer.read()
    return path
