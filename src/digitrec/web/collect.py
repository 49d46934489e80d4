"""The corrections a user makes on the page (`digitrec serve --collect DIR`), kept as training data.

    DIR/manifest.csv    path,label,predicted     one row per corrected digit: what `digitrec finetune DIR` reads
    DIR/numbers.csv     path,text,predicted      one row per corrected number (`finetune --numbers`)
    DIR/digits/<label>/<time>-<random>.<format>  the image exactly as the page sent it (the pad's PNG,
    DIR/numbers/<time>-<random>.<format>         or the uploaded file)

The image is written first (atomically), then its row is appended, so a row never names a missing
file. A row is one `write` to a file opened for appending, under an exclusive lock (`flock`, which also
covers the processes of `serve --workers N`): concurrent corrections never interleave their rows. No
web framework here: the errors are digitrec's own, which the route turns into 4xx answers.
"""

from __future__ import annotations

import csv
import io
import os
import re
import secrets
import shutil
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from digitrec.errors import DataError, DigitrecError, ImageError
from digitrec.files import atomic_write
from digitrec.preprocess.digit import locate_digit
from digitrec.preprocess.load import load_grey

try:  # POSIX; elsewhere the in-process lock alone (one server process) keeps rows whole
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

MANIFEST = "manifest.csv"  # the name `digitrec.tune.data` reads in a folder without 0..9 subfolders
NUMBERS = "numbers.csv"
# A drawing from the page is 10-40 KB; an uploaded phone photo a few MB (a 48 MP one 10-20). A server
# passes its own request limit instead, so that any photo it read can be kept.
MAX_IMAGE_BYTES = 10 * 1024 * 1024
# Corrections stop while the disk holding DIR has less free space than this: a client flooding the
# endpoint (a LAN page with --host 0.0.0.0) fills the folder, never the user's disk. A small disk (a
# container, a CI runner) sets its own reserve in MiB with RESERVE_VARIABLE.
MIN_FREE_BYTES = 512 * 1024 * 1024
RESERVE_VARIABLE = "DIGITREC_COLLECT_RESERVE_MB"
MAX_NUMBER_DIGITS = 32  # longer than any number the reader is meant for (an account number, a date)
# The file's first bytes -> the suffix it is saved under (the loader has checked it is that format).
SUFFIXES = {
    b"\x89PNG": ".png",
    b"\xff\xd8": ".jpg",
    b"GIF8": ".gif",
    b"BM": ".bmp",
    b"RIFF": ".webp",
    b"II": ".tif",
    b"MM": ".tif",
    b"P": ".pnm",
}


class TooLarge(ImageError):
    """The correction's image is over the collector's `max_image_bytes`."""


class DiskFull(DigitrecError):
    """Less than the reserve (MIN_FREE_BYTES unless RESERVE_VARIABLE says) free where the corrections go."""


def reserve_bytes() -> int:
    """The free space corrections leave on the disk: RESERVE_VARIABLE's MiB, else MIN_FREE_BYTES."""
    text = os.environ.get(RESERVE_VARIABLE, "").strip()
    if not text:
        return MIN_FREE_BYTES
    try:
        mib = int(text)
    except ValueError:
        mib = -1
    if mib < 0:
        shown = repr(text) if len(text) <= 40 else repr(text[:40]) + "..."  # a value pasted by mistake may be long
        raise DataError(f"{RESERVE_VARIABLE}={shown}: give the free space to keep, in MiB (a whole number, 0 or more)")
    return mib * 2**20


@dataclass(frozen=True)
class Saved:
    path: str  # relative to the collect folder, as written in the CSV
    label: str
    kind: str  # "digit" or "number"

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "label": self.label, "kind": self.kind}


class Collector:
    """Saves corrections in `folder` (made if missing), images of at most `max_image_bytes`.
    Thread-safe; safe across processes."""

    def __init__(self, folder: Path | str, max_image_bytes: int = MAX_IMAGE_BYTES):
        self.max_image_bytes = max_image_bytes
        self.folder = Path(folder).expanduser()
        if self.folder.exists() and not self.folder.is_dir():
            raise DataError(f"--collect {self.folder}: is a file, not a folder")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"--collect {self.folder}: cannot create it: {exc.strerror or exc}") from None
        self.reserve = reserve_bytes()  # read once: a bad value fails the server's start, not a save
        self._lock = threading.Lock()

    def add(self, image: bytes, label: str, kind: str = "digit", predicted: str | None = None) -> Saved:
        """Save one correction: `image` (file bytes) shows `label` (one digit for kind "digit", the
        digits of a number for kind "number"); `predicted` is what the model had said. Raises
        DataError for a bad label or kind, ImageError for bytes that are not a readable image or
        hold no ink (NoInk)."""
        label = check_label(label, kind)
        if len(image) > self.max_image_bytes:
            raise TooLarge(f"the image is too large to keep ({len(image)} bytes; the limit is {self.max_image_bytes})")
        # Decoded within the loader's limits, and its ink found as predict finds it: only a file
        # finetune can learn from is kept (a blank pad saved as a 7 made finetune skip it and exit 1).
        locate_digit(load_grey(image))
        try:
            # Made again if removed while serving; only the folder itself: a missing parent may be
            # an unmounted disk, and corrections must not go to the disk under its mount point.
            self.folder.mkdir(exist_ok=True)
            free = shutil.disk_usage(self.folder).free
        except OSError as exc:
            raise DigitrecError(f"cannot use the collect folder {self.folder}: {exc.strerror or exc}") from None
        if free < self.reserve:
            raise DiskFull(
                f"the disk holding the collect folder has {free // 2**20} MiB free; corrections stop below "
                f"{self.reserve // 2**20} MiB ({RESERVE_VARIABLE} sets this)"
            )
        if free - len(image) < self.reserve:  # over the reserve, but not by this image's size
            raise DiskFull(
                f"the disk holding the collect folder has {free / 2**20:.1f} MiB free: this image's "
                f"{len(image):,} bytes would leave less than the {self.reserve // 2**20} MiB corrections keep free "
                f"({RESERVE_VARIABLE} sets this)"
            )
        suffix = next((s for magic, s in SUFFIXES.items() if image.startswith(magic)), ".img")
        name = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}-{secrets.token_hex(4)}{suffix}"
        relative = Path("digits", label, name) if kind == "digit" else Path("numbers", name)
        atomic_write(self.folder / relative, image)
        predicted = "" if predicted is None else plain_answer(predicted)
        if kind == "digit":
            self._append(MANIFEST, ("path", "label", "predicted"), (relative.as_posix(), label, predicted))
        else:
            self._append(NUMBERS, ("path", "text", "predicted"), (relative.as_posix(), label, predicted))
        return Saved(relative.as_posix(), label, kind)

    def counts(self) -> dict[str, int]:
        """Rows in each CSV: {"digits": n, "numbers": m}."""
        return {"digits": _rows(self.folder / MANIFEST), "numbers": _rows(self.folder / NUMBERS)}

    def _append(self, name: str, header: tuple[str, ...], row: tuple[str, ...]) -> None:
        path = self.folder / name
        line = _csv_line(row)
        with self._lock:
            try:
                fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)  # read: its last byte
            except OSError as exc:
                raise DigitrecError(f"cannot write {name}: {exc.strerror or exc}") from None
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                size = os.fstat(fd).st_size
                if size == 0:
                    line = _csv_line(header) + line
                elif os.pread(fd, 1, size - 1) != b"\n":  # a file edited by hand without a last newline
                    line = "\n" + line
                _write_all(fd, line.encode("utf-8"))
                os.fsync(fd)
            except OSError as exc:
                raise DigitrecError(f"cannot write {name}: {exc.strerror or exc}") from None
            finally:
                os.close(fd)  # releases the flock too


def check_label(label: str, kind: str) -> str:
    """The label, stripped, if it is one digit (kind "digit") or 1..MAX_NUMBER_DIGITS digits
    (kind "number"); else DataError. Only ASCII digits: `str.isdigit` would take '²' or '٣'."""
    if kind not in ("digit", "number"):
        raise DataError(f"kind must be 'digit' or 'number', not {kind!r}")
    label = str(label).strip()
    longest = 1 if kind == "digit" else MAX_NUMBER_DIGITS
    if not (1 <= len(label) <= longest and all(c in "0123456789" for c in label)):
        wanted = "one digit 0-9" if kind == "digit" else f"the digits of the number (1 to {longest} of 0-9)"
        raise DataError(f"the label must be {wanted}, not {label[:40]!r}")
    return label


def _csv_line(row: tuple[str, ...]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(row)
    return out.getvalue()


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _rows(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            lines = sum(1 for line in f if line.strip())
    except FileNotFoundError:
        return 0
    return max(0, lines - 1)


def plain_answer(predicted: str) -> str:
    """What the model had said, as a note in the CSV: the digits and the marks a reading keeps
    (`.`, `,`, `-`), lines joined by a space, at most 64 characters; nothing when no digit is left.
    Anything else is dropped, so that no cell starts a spreadsheet formula (`=HYPERLINK(...)`: CSV
    injection) or breaks a row."""
    kept = " ".join(re.sub(r"[^0-9.,\- ]", " ", str(predicted)).split())[:64]
    return kept if any(c.isdigit() for c in kept) else ""
