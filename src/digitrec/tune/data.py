"""The user's labelled digits for `digitrec finetune`: listed from CSV files or digit folders, then
prepared exactly as `predict` prepares an image (`Recognizer.views`: the same code). No torch here.

DATA is any mix of
  a CSV file     with a header row naming `path` and `label` (other columns are ignored); a relative
                 path is relative to the CSV's folder;
  a folder       with subfolders 0 .. 9 holding the images of that digit (every file in them and
                 in their subfolders is tried), or, without such subfolders, a `manifest.csv` as above.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digitrec.errors import DataError, DigitrecError
from digitrec.files import file_sha256

MIN_IMAGES = 10  # fewer usable images than this cannot be split into training and validation
MAX_UNREADABLE_SHARE = 0.2  # more unreadable images than this: the data is wrong, not a stray file
MANIFEST = "manifest.csv"


@dataclass(frozen=True)
class Example:
    path: Path
    label: int


@dataclass
class Prepared:
    """The usable examples and what the model sees of each (uint8 (V, 28, 28), as in predict)."""

    examples: list[Example]
    views: list[np.ndarray] = field(repr=False)
    skipped: list[tuple[Path, str]]  # (file, why) of the images that could not be used
    contents: list[str]  # sha256 of each example's file: copies of one image are one image
    sha256: str  # of the labels and file contents, in a fixed order: which data made the model


def list_examples(sources: list[str | Path] | tuple) -> list[Example]:
    """DATA arguments -> examples, in order. Raises DataError for a missing source, a CSV without
    the path,label header, a label that is not one digit, or a folder with nothing to use."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    if not sources:
        raise DataError("no DATA given: pass a CSV file (path,label) or a folder with subfolders 0-9")
    examples: list[Example] = []
    for source in map(Path, sources):
        if source.is_dir():
            examples += _from_folder(source)
        elif source.is_file():
            examples += _from_csv(source)
        else:
            raise DataError(f"{source}: no such file or folder")
    _refuse_two_labels(examples)
    return examples


def _refuse_two_labels(examples: list[Example]) -> None:
    """A file listed twice with the same label is fine (it is held out whole); with two labels it
    is a slip (a row copied and its path not changed) that would teach the same digit as both."""
    labels: dict[Path, tuple[Path, set[int]]] = {}
    for e in examples:
        labels.setdefault(e.path.resolve(), (e.path, set()))[1].add(e.label)
    both = [(path, sorted(digits)) for path, digits in labels.values() if len(digits) > 1]
    if both:
        shown = "; ".join(f"{path} as {' and '.join(map(str, digits))}" for path, digits in both[:5])
        more = ", ..." if len(both) > 5 else ""
        raise DataError(
            f"{len(both)} image(s) are labelled as two different digits ({shown}{more}): give each one label"
        )


def read_rows(path: Path, columns: tuple[str, ...]) -> tuple[list[tuple[int, dict[str, str]]], str]:
    """A labelled CSV (`path` and the first of `columns` that it has, e.g. ("label",) or ("text",
    "label")) -> its rows as (line number in the file, row: keys lower-cased, values stripped) and
    the label column found. Rows with nothing in them (blank lines, a spreadsheet's trailing `,,`)
    are left out. Read as a spreadsheet may save it: UTF-8 (with or without a BOM), UTF-16 with its
    BOM, or Windows' single-byte encoding; commas, semicolons or tabs (the one whose reading of the
    header names the columns). A missing header or a file that is no CSV text is a DataError naming
    what was expected."""
    expected = f"path,{columns[0]}"
    try:
        data = path.read_bytes()
        text = _decoded(data)
    except UnicodeDecodeError as exc:
        if _UTF8_LETTER.search(data):  # UTF-8 elsewhere in it: one bad line, not another encoding
            line = data[: exc.start].count(b"\n") + 1
            raise DataError(f"{path}: line {line} is not UTF-8 text like the rest of the file") from None
        raise DataError(f"{path}: not a CSV text file ({expected})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    header = re.split(r"\r\n|\r|\n", text, maxsplit=1)[0]
    # The delimiter is the one whose reading of the header names both columns.
    delimiter = next((d for d in (",", ";", "\t") if _names(_header(header, d), columns)), ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    fields = next(reader, [])
    names = [name.strip().lower() for name in fields]
    column = next((c for c in columns if c in names), None)
    if "path" not in names or column is None:
        raise DataError(
            f"{path}: the first row must name the columns path and {columns[0]} (got "
            f"{delimiter.join(fields) or 'an empty file'})"
        )
    rows = []
    end = reader.line_num  # the row's first line is the one after the last one read before it
    for values in reader:
        first, end = end + 1, reader.line_num
        values += [""] * (len(names) - len(values))  # a short row: its missing columns are empty
        row = {name: value.strip() for name, value in zip(names, values) if name}
        if any(row.values()):
            rows.append((first, row))
    return rows, column


def _header(line: str, delimiter: str) -> list[str]:
    return [name.strip().lower() for name in next(csv.reader([line], delimiter=delimiter), [])]


def _names(header: list[str], columns: tuple[str, ...]) -> bool:
    return "path" in header and any(column in header for column in columns)


# A letter written in UTF-8 (two to four bytes): a file holding one is UTF-8, not Windows-1252.
_UTF8_LETTER = re.compile(rb"[\xc2-\xf4][\x80-\xbf]+")


def _decoded(data: bytes) -> str:
    """CSV bytes -> text: UTF-8 (BOM or not), UTF-16 with a BOM, else Windows-1252 as Excel writes
    it on Windows. UnicodeDecodeError for no text (a NUL, a byte Windows-1252 cannot map) and for
    UTF-8 with a bad byte (decoded as Windows-1252, its café.png would become cafÃ©.png)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        if b"\0" in data or _UTF8_LETTER.search(data):
            raise
        return data.decode("cp1252")


def _from_csv(path: Path) -> list[Example]:
    rows, _ = read_rows(path, ("label",))
    bad = [(line, row["label"]) for line, row in rows if not _is_digit(row["label"])]
    if bad:
        shown = ", ".join(f"line {line}: {label!r}" for line, label in bad[:5])
        raise DataError(f"{path}: {len(bad)} label(s) are not one digit 0-9 ({shown}{', ...' if len(bad) > 5 else ''})")
    missing = [line for line, row in rows if not row["path"]]
    if missing:
        raise DataError(f"{path}: line {missing[0]} has no path")
    return [Example(_resolve(path.parent, row["path"]), int(row["label"])) for _, row in rows]


def _from_folder(folder: Path) -> list[Example]:
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not _system_file(p.name))
    digits = [p for p in subfolders if _is_digit(p.name)]
    if not digits:
        if (folder / MANIFEST).is_file():
            return _from_csv(folder / MANIFEST)
        # A `serve --collect` folder where only numbers were corrected so far.
        numbers = (
            f"; its numbers go in with --numbers {folder / 'numbers.csv'}" if (folder / "numbers.csv").is_file() else ""
        )
        raise DataError(
            f"{folder}: expected subfolders 0 .. 9 holding the images of each digit (or a {MANIFEST} with "
            f"path,label){numbers}"
        )
    others = [p.name for p in subfolders if not _is_digit(p.name)]
    if others:
        raise DataError(
            f"{folder}: subfolder(s) {', '.join(others[:5])} are not a digit 0-9: "
            "name each subfolder after the digit its images show"
        )
    return [Example(f, int(sub.name)) for sub in digits for f in _files_under(sub)]


def _files_under(folder: Path) -> list[Path]:
    """The files in a digit's folder, recursively, sorted: 7/phone/ and 7/scans/ are sevens too (they
    were left out, and the user was told "only 0 usable images"). Hidden files and folders
    (.DS_Store, .thumbnails/) and what operating systems leave (Thumbs.db, __MACOSX/) are not
    images; linked folders are not followed. A subfolder that cannot be listed is refused by name:
    its images would be left out in silence."""

    def unlisted(error: OSError) -> None:
        raise DataError(
            f"{error.filename or folder}: cannot list this folder ({error.strerror or error}): "
            "its images would be left out; make it readable or move it away"
        )

    found: list[Path] = []
    for root, subfolders, names in os.walk(folder, onerror=unlisted):
        subfolders[:] = [d for d in subfolders if not _system_file(d)]
        found += (Path(root, name) for name in names if not _system_file(name))
    return sorted(f for f in found if f.is_file())


# What Windows, macOS and unzip leave in folders: never a user's image (Thumbs.db in each digit's
# folder copied from Windows made every such set fail the unreadable-share rule).
SYSTEM_FILES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini", "__macosx", "$recycle.bin", "icon\r"})


def _system_file(name: str) -> bool:
    """Hidden (.DS_Store, ._a.png, .thumbnails/) or one of SYSTEM_FILES."""
    return name.startswith(".") or name.lower() in SYSTEM_FILES


def _is_digit(text: str) -> bool:
    return len(text) == 1 and text in "0123456789"


def _resolve(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def prepare(
    examples: list[Example], views: Callable[[Path], np.ndarray], warn: Callable[[str], None] = lambda m: None
) -> Prepared:
    """Every example through `views` (the Recognizer's: what predict would see). An image that
    cannot be read or holds no digit is skipped and reported through `warn`; more than
    MAX_UNREADABLE_SHARE of them, or fewer than MIN_IMAGES usable, is a DataError."""
    kept, seen, skipped, contents = [], [], [], []
    digest = hashlib.sha256()
    for example in examples:
        try:
            prepared = views(example.path)
            content = file_sha256(example.path)
        except DigitrecError as exc:
            skipped.append((example.path, str(exc)))
            continue
        except OSError as exc:
            skipped.append((example.path, "cannot read: " + (exc.strerror or str(exc))))
            continue
        kept.append(example)
        seen.append(prepared)
        contents.append(content)
        digest.update(f"{example.label}:{content}\n".encode())
    if skipped:
        listed = "; ".join(f"{path}: {why}" for path, why in skipped[:10])
        more = f" (and {len(skipped) - 10} more)" if len(skipped) > 10 else ""
        if len(skipped) > MAX_UNREADABLE_SHARE * len(examples):
            raise DataError(f"{len(skipped)} of {len(examples)} images cannot be used: {listed}{more}")
        warn(f"skipped {len(skipped)} of {len(examples)} images: {listed}{more}")
    _refuse_copies_with_two_labels(kept, contents)
    if len(kept) < MIN_IMAGES:
        raise DataError(
            f"only {len(kept)} usable image(s); finetune needs at least {MIN_IMAGES} "
            "(some to learn from, some held out to check it)"
        )
    return Prepared(kept, seen, skipped, contents, digest.hexdigest())


def _refuse_copies_with_two_labels(examples: list[Example], contents: list[str]) -> None:
    """Two files with the same bytes and different labels: one drawing corrected twice on the
    page, or flooded with every label (1,000 such corrections made a model that learnt nothing and
    flagged every answer). Which label is right cannot be known, so none is learnt."""
    count, shown = two_labels((c, e.label, e.path) for e, c in zip(examples, contents))
    if count:
        raise DataError(
            f"{count} image(s) are copies of one another with different labels ({shown}): "
            "remove the wrong copies (or their rows) so that each image has one label"
        )


def two_labels(items: Iterable[tuple[str, object, Path]], shown: int = 3) -> tuple[int, str]:
    """(content, label, path) -> how many contents are given two labels or more, and the first
    `shown` of them as 'a.png as 3 and b.png as 5; ...' (each label with the first file giving it)."""
    labels: dict[str, dict[str, Path]] = {}
    for content, label, path in items:
        labels.setdefault(content, {}).setdefault(str(label), path)
    both = [given for given in labels.values() if len(given) > 1]
    text = "; ".join(
        " and ".join(f"{path} as {label}" for label, path in sorted(given.items())[:3]) for given in both[:shown]
    )
    return len(both), text + (", ..." if len(both) > shown else "")


def held_out(content: dict[Path, str], share: float, at_least: int, seed: int) -> tuple[int, set[str]]:
    """{file: its content's hash} -> (how many different images, the contents held out): `share`
    of the images, at least `at_least`, drawn by `seed`. A file listed twice, and copies of one image
    under other names (the same drawing corrected twice on the page), fall on one side."""
    first: dict[str, Path] = {}
    for path in sorted(content):  # each image by its first file, in a fixed order
        first.setdefault(content[path], path)
    files = sorted(first.values())
    order = np.random.default_rng(seed).permutation(len(files))
    return len(files), {content[files[k]] for k in order[: max(at_least, round(share * len(files)))]}
