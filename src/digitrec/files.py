"""Writing the files users keep: whole or not at all. Every file digitrec writes for a user (the MNIST
cache, checkpoints, ONNX models and cards, reports, CSVs, debug images) goes through `atomic_path`:
the bytes go to a temporary file in the same folder, are flushed to disk, and only then renamed over
the target, so a full disk, a kill or Ctrl-C never leaves half a file (or an empty one) behind. A
failure to write is a DigitrecError that names the file and the reason (the CLI: "Error: ...", exit 1).
Standard library only: the light runtime imports this.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from digitrec.errors import DigitrecError


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to (by name: torch.save, onnx.save, savefig ...);
    when the block ends without an error, it is synced and renamed to `path`; otherwise removed."""
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # what the writer left in the page cache must reach the disk first
            os.fsync(f.fileno())
        make_readable(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise write_error(path, exc) from None
    finally:
        tmp.unlink(missing_ok=True)


def check_writable(path: Path | str) -> None:
    """Before minutes of work whose result goes to `path`: the DigitrecError that writing it would
    raise at the end (its folder cannot be made, or not written to), now."""
    _temp_beside(Path(path)).unlink()


def _temp_beside(path: Path) -> Path:
    """A new empty temporary file in `path`'s folder (made first if needed)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise write_error(path, exc) from None
    return Path(name)


def atomic_write(path: Path | str, data: bytes | str) -> Path:
    """Write `data` (text is UTF-8) to `path` atomically; -> path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def refuse_a_file_in_the_way(folder: Path | str) -> None:
    """A folder to be made that a file stands in the way of (`--out taken/run` where `taken` is a
    file): the DigitrecError that making it would raise later as a traceback, now, making nothing."""
    folder = Path(folder)
    blocked = _file_in_the_way(folder)
    if blocked is not None:
        raise DigitrecError(f"cannot write {folder}: {blocked} is a file, not a folder")


def _file_in_the_way(folder: Path) -> Path | None:
    """The nearest of `folder` and the folders above it that exists and is a file, if any."""
    return next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)


def write_error(path: Path, exc: OSError) -> DigitrecError:
    """An OSError while writing `path` -> a message for the user."""
    blocked = _file_in_the_way(path.parent)
    if blocked is not None:
        return DigitrecError(f"cannot write {path}: {blocked} is a file, not a folder")
    return DigitrecError(f"cannot write {path}: {exc.strerror or exc}")


def make_readable(path: Path | str) -> None:
    """mkstemp creates files only the owner can read; give them the usual mode (0666 minus umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def file_sha256(path: Path | str) -> str:
    """SHA-256 of a file, read in 1 MiB blocks. An unreadable file raises OSError."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
