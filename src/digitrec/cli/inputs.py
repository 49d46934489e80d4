"""Command-line image inputs shared by the commands that take images: files, folders, '-' for stdin."""

from __future__ import annotations

import os
from pathlib import Path

from digitrec.errors import ImageError
from digitrec.preprocess.load import READ_FORMATS, image_files

STDIN = "-"


def expand_paths(paths: tuple[str, ...] | list[str]) -> list[str]:
    """Folders -> the image files in them, recursively and sorted; files and '-' as given (a file
    with any name is tried: the decoder, not the suffix, says whether it is an image). A folder with
    no images stays in the list so that the caller reports it."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if p != STDIN and path.is_dir():
            found = image_files(path)
            out += found or [p]
        else:
            out.append(p)
    return out


def read_input(path: str) -> bytes | str:
    """'-' -> the bytes on standard input, refused past the loader's file limit while reading
    (`cat /dev/zero | digitrec predict -` stops at 50 MiB) and refused when it is a terminal (`-`
    with nothing piped in); anything else unchanged (the loader reads files and refuses what is not
    a regular file). Raises ImageError."""
    if path == STDIN:
        import sys

        from digitrec.preprocess.load import read_capped

        if sys.stdin is None:  # no file descriptor 0 at all (`<&-`): Python leaves sys.stdin None
            raise ImageError("standard input is closed: pipe an image in (cat digit.png | digitrec ... -)")
        if sys.stdin.isatty():  # nothing piped in: reading would wait for the keyboard, silently
            raise ImageError("standard input is a terminal, not an image: pipe one in (cat digit.png | digitrec ... -)")
        return read_capped(sys.stdin.buffer, "standard input")
    return path


def input_or_error(path: str) -> bytes | str | ImageError:
    """What to hand the recognizer for one command-line input, or the ImageError that answers it
    at once (a folder with no images, standard input too large), so the other inputs go on."""
    if path != STDIN and Path(path).is_dir():
        try:
            os.scandir(path).close()
        except OSError as exc:  # a (sub)folder this user may not list: its images went unanswered
            return ImageError(f"cannot list this folder ({exc.strerror or exc}): its images were not answered")
        # A folder of phone photos in HEIC, or PDFs of scans: say what would have been found.
        return ImageError(f"folder holds no images digitrec reads ({READ_FORMATS} files)")
    try:
        return read_input(path)
    except ImageError as exc:
        return exc
