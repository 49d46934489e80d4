"""What `digitrec batch` reads: SOURCE arguments -> the list of image paths or URIs, in order.

A SOURCE is one of:
  * a folder: its image files, recursively, sorted;
  * a glob (`scans/**/*.jpg`, `s3://bucket/2024/*.png`);
  * a list of paths: `.txt`/`.lst` (one a line), `.csv` (a `path` column, else the first column) or
    `.parquet` (a `path` column). Relative entries are relative to the list's own folder, so a list
    travels with its archive;
  * one image file or URI.
A URI with a scheme (`s3://`, `gs://`, `https://`...) goes through fsspec, which must be installed
with the filesystem's own package (s3fs, gcsfs...); `file://` and plain paths need nothing.
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Iterable
from pathlib import Path

from digitrec.errors import DataError
from digitrec.preprocess.load import READ_FORMATS, image_files, is_image_name

LIST_SUFFIXES = {".txt", ".lst", ".csv", ".parquet"}
GLOB_CHARS = set("*?[")


def is_remote(path: str) -> bool:
    """True for a URI that fsspec must open (anything with a scheme other than file://)."""
    scheme, sep, _ = path.partition("://")
    return bool(sep) and scheme.lower() != "file" and len(scheme) > 1  # 'C:\\' is a drive, not a scheme


def local_path(path: str) -> str:
    return path[len("file://") :] if path.lower().startswith("file://") else path


def expand_sources(sources: Iterable[str]) -> list[str]:
    """SOURCE arguments -> image paths/URIs. Raises DataError for a source that holds nothing."""
    out: list[str] = []
    for source in sources:
        found = _expand_remote(source) if is_remote(source) else _expand_local(local_path(source))
        if not found:
            raise DataError(f"{source}: no images found (digitrec reads {READ_FORMATS} files)")
        out += found
    return out


def _expand_local(source: str) -> list[str]:
    path = Path(source)
    if any(c in source for c in GLOB_CHARS) and not path.exists():
        return sorted(p for p in glob.glob(source, recursive=True) if os.path.isfile(p))
    if path.is_dir():
        return image_files(path)
    if path.suffix.lower() in LIST_SUFFIXES:
        if not path.is_file():
            raise DataError(f"{source}: no such list of paths")
        base = str(path.parent)
        return [
            p if is_remote(p) or os.path.isabs(p) else os.path.join(base, p)
            for p in _read_list(source, open_file=lambda: open(path, "rb"))
        ]
    if not path.exists():  # a typo in an argument: say so now, not as a row of the results
        raise DataError(f"{source}: no such file or folder")
    return [source]  # one file: the decoder, not this function, says whether it is an image


def _expand_remote(source: str) -> list[str]:
    fs, root = _filesystem(source)

    def uri(p: str) -> str:  # one spelling per object, so a resumed run recognises it
        return p if "://" in p else fs.unstrip_protocol(p)

    if any(c in root for c in GLOB_CHARS):
        return sorted(uri(p) for p in fs.glob(root) if is_image_name(p))
    if fs.isdir(root):
        return sorted(uri(p) for p in fs.find(root) if is_image_name(p))
    if Path(root).suffix.lower() in LIST_SUFFIXES:
        base = root.rsplit("/", 1)[0]
        return [
            p if is_remote(p) else uri(fs._strip_protocol(f"{base}/{p}"))
            for p in _read_list(source, open_file=lambda: fs.open(root, "rb"))
        ]
    return [source]


def _filesystem(uri: str):
    try:
        import fsspec
    except ImportError:
        raise DataError(
            f"{uri}: reading URIs needs fsspec (pip install fsspec, plus s3fs/gcsfs/... for the store)"
        ) from None
    try:
        return fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise DataError(f"{uri}: no filesystem for this URI ({exc})") from None


def _read_list(name: str, open_file) -> list[str]:
    """A .txt/.lst/.csv/.parquet list -> its paths, as written."""
    suffix = Path(name.split("?", 1)[0]).suffix.lower()
    try:
        with open_file() as f:
            if suffix == ".parquet":
                return _parquet_paths(name, f)
            text = f.read().decode("utf-8-sig")
    except OSError as exc:
        raise DataError(f"{name}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise DataError(f"{name}: a list of paths must be UTF-8 text") from None
    lines = text.splitlines()
    if suffix != ".csv":
        return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    rows = [row for row in csv.reader(lines) if row and any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    if "path" in header:
        column = header.index("path")
        rows = rows[1:]
    else:
        column = 0  # no header naming a path column: the first column, every row
    return [row[column].strip() for row in rows if len(row) > column and row[column].strip()]


def _parquet_paths(name: str, f) -> list[str]:
    from digitrec.batch.sink import require_pyarrow

    pq = require_pyarrow()
    try:
        parquet = pq.ParquetFile(f)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"{name}: not a Parquet file ({str(exc).splitlines()[0]})") from None
    columns = parquet.schema_arrow.names
    if "path" not in columns:  # (pyarrow's own message lists its internal fields over five lines)
        raise DataError(f"{name}: a Parquet list needs a 'path' column (it has: {', '.join(columns) or 'none'})")
    column = parquet.read(columns=["path"]).column("path")
    paths = [p for p in column.to_pylist() if p]
    if not all(isinstance(p, str) for p in paths):  # numbers or bytes: a traceback further on
        raise DataError(f"{name}: the 'path' column must hold text (file paths or URIs), not {column.type}")
    return paths
