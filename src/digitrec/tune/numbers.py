"""`digitrec finetune --numbers CSV`: the user's labelled numbers (strips, form fields, cheque
amounts) -> labelled single digits for the digit classifier, where the digits' boxes can be found.

Each image is read by the product's reader (`Recognizer.read`, the base model's); when it finds as
many digits as the label has, in one line, each digit's box is cut out of the image (with a margin)
and saved as a PNG labelled with the label's digit at that place; the digit classifier is then
fine-tuned on them as on any digit images (`tune.run`). An image whose digit count differs (digits
touching, or a stroke read as two) is skipped and counted: there, nothing says which ink is which
digit. The reader's line model itself is not adapted here (see docs/finetune.md). No torch here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from digitrec.errors import DataError, DigitrecError, ImageError
from digitrec.files import atomic_write, file_sha256
from digitrec.preprocess.load import load_grey
from digitrec.tune.data import two_labels

T = TypeVar("T")

MARGIN = 0.15  # of the box's height, added on each side: the ink's edges, never the next digit's middle


@dataclass
class DigitsFromNumbers:
    csv: Path  # path,label of the cut digits (what `finetune` reads)
    numbers: int  # labelled numbers given
    used: int  # whose digits were found and cut
    digits: int
    skipped: list[tuple[Path, str]]  # (image, why)

    @property
    def unreadable(self) -> list[tuple[Path, str]]:
        """The skipped files that could not be read at all (missing, not an image), as against
        numbers whose digits could not be told apart: those are a failure of the data, as in DATA."""
        return [(path, why) for path, why in self.skipped if why.startswith(CANNOT_READ)]


CANNOT_READ = "cannot read: "


def list_numbers(path: Path | str) -> list[tuple[Path, str]]:
    """A CSV whose first row names `path` and `text` (or `label`) -> [(image, digits)]; relative paths
    are relative to the CSV's folder. Raises DataError for a missing header or a text that is not
    digits (spaces are dropped: "1 250" is 1250)."""
    path = Path(path)
    from digitrec.tune.data import read_rows

    rows, text_column = read_rows(path, ("text", "label"))
    numbers, bad = [], []
    for line, row in rows:
        text = "".join(row[text_column].split())
        if not text or any(c not in "0123456789" for c in text) or not row["path"]:
            bad.append((line, row[text_column]))
            continue
        image = Path(row["path"]).expanduser()
        numbers.append((image if image.is_absolute() else path.parent / image, text))
    if bad:
        shown = ", ".join(f"line {line}: {text!r}" for line, text in bad[:5])
        raise DataError(f"{path}: {len(bad)} row(s) without a path or a text of digits 0-9 ({shown})")
    _refuse_two_texts(path, numbers)
    return numbers


def _refuse_two_texts(path: Path, numbers: list[tuple[Path, str]]) -> None:
    """One image given two numbers is a slip (a row copied, its path not changed; or one photo
    corrected twice on the page, saved under two names): its digits would be cut and learnt as
    both. As `finetune`'s digit CSVs refuse one image with two labels. Copies are found by their
    bytes, now, before any training (a file that cannot be read is skipped later, by name)."""
    count, shown = two_labels(((_content(image), text, image) for image, text in numbers), shown=5)
    if count:
        raise DataError(f"{path}: {count} image(s) are given two different numbers ({shown}): give each one")


def _content(image: Path) -> str:
    """The file's SHA-256, or its resolved path when it cannot be read."""
    try:
        return file_sha256(image)
    except OSError:
        return str(image.resolve())


def attempt(path: Path, work: Callable[[], T], skipped: list[tuple[Path, str]]) -> T | None:
    """work() for the labelled number at `path`, or None with the reason added to `skipped`: a
    digitrec error (no ink, not an image ...) or a file that cannot be read skips one number, not all."""
    try:
        return work()
    except DigitrecError as exc:
        skipped.append((path, str(exc)))
    except OSError as exc:
        skipped.append((path, f"{CANNOT_READ}{exc.strerror or exc}"))
    return None


def digits_from_numbers(
    numbers: list[tuple[Path, str]],
    read: Callable[[np.ndarray], object],
    out: Path,
    warn: Callable[[str], None] = lambda m: None,
) -> DigitsFromNumbers:
    """Cut the digits of each (image, text) whose reading (`read`: a Recognizer's) finds exactly
    len(text) digits in one line; write them under `out` with `out/digits.csv`."""
    rows, skipped = ["path,label\n"], []
    for image_path, text in numbers:

        def load_and_read(path: Path = image_path):
            try:
                grey = load_grey(path)
            except ImageError as exc:
                raise ImageError(f"{CANNOT_READ}{exc}") from None
            return grey, read(grey)

        loaded = attempt(image_path, load_and_read, skipped)
        if loaded is None:
            continue
        grey, reading = loaded
        found = "".join(reading.line_texts)
        if len(reading.lines) != 1 or len(found) != len(text):
            skipped.append((image_path, f"read {found or 'nothing'!r} ({len(found)} digits), labelled {text!r}"))
            continue
        for k, (digit, label) in enumerate(zip(reading.lines[0], text)):
            crop = cut(grey, digit.box)
            name = f"{len(rows):06d}-{image_path.stem[:40]}-{k}.png"
            atomic_write(out / name, cv2.imencode(".png", crop)[1].tobytes())
            rows.append(f"{name},{label}\n")
    if skipped:
        shown = "; ".join(f"{path.name}: {why}" for path, why in skipped[:5])
        warn(f"{len(skipped)} of {len(numbers)} numbers not used (their digits could not be told apart): {shown}")
    table = atomic_write(out / "digits.csv", "".join(rows))
    used = len(numbers) - len(skipped)
    return DigitsFromNumbers(table, len(numbers), used, len(rows) - 1, skipped)


def cut(grey: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The box (x, y, w, h) of `grey` widened by MARGIN of its height on each side, within the image."""
    x, y, w, h = box
    pad = int(round(MARGIN * h))
    top, left = max(0, y - pad), max(0, x - pad)
    return grey[top : y + h + pad, left : x + w + pad]
