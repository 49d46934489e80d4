"""Which ONNX file a `--model` argument means. One function for predict, read, serve and evaluate.

`.onnx` files are used as they are. A Keras model (`.keras`) is converted to ONNX once, on first
use, and the result is cached under the digitrec cache (`converted/`), keyed by the file's SHA-256
and the digitrec and Keras versions that converted it (a new converter may convert differently). The
cached file's own SHA-256 is kept beside it (`.onnx.sha256`) and checked on every use: a cached file
that was swapped, truncated or half-written is converted again, never trusted. A later run (or a
server worker) loads the cached ONNX without importing Keras or PyTorch; only the conversion needs
the `keras` extra. Opening a model file is `digitrec.modelfile.read`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from digitrec import paths
from digitrec.errors import ModelError
from digitrec.files import atomic_write, file_sha256
from digitrec.keras_export import KERAS_SUFFIXES, refuse_legacy_keras

HASH_SUFFIX = ".sha256"  # beside a cached conversion: the SHA-256 of its bytes


def resolve_model(model: str | Path) -> Path:
    """A model path as the user gave it -> the ONNX file to load. Converts (and caches) `.keras`."""
    path = Path(model).expanduser()
    refuse_legacy_keras(path)
    if path.suffix.lower() not in KERAS_SUFFIXES:
        return path
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    cached = converted_path(path)
    if cached_is_intact(cached):
        return cached
    from digitrec.keras_export import export_keras, import_keras

    import_keras()  # without Keras, its error alone: no line about a conversion that cannot start
    again = " again: the cached copy does not match its hash" if cached.exists() else ""
    print(f"digitrec: converting {path.name} to ONNX{again} (once; cached as {cached})", file=sys.stderr)
    export_keras(path, cached, write_card=False)
    atomic_write(_hash_path(cached), file_sha256(cached) + "\n")
    return cached


def refuse_training_run(model: str | Path) -> None:
    """A training run (its folder or checkpoint.pt) given where an ONNX model runs: a ModelError that
    says how to export it. `digitrec train` ends with a checkpoint, so a new user's next step is often
    `predict --model runs/NAME/checkpoint.pt`, and onnxruntime would only say "Protobuf parsing failed"."""
    path = Path(model).expanduser()
    if path.is_dir():
        run = path if (path / paths.CHECKPOINT_NAME).is_file() else None
        what = "a folder, not a model file (.onnx or .keras)"
    elif path.suffix.lower() in paths.CHECKPOINT_SUFFIXES and path.is_file():
        run = path.parent if path.name == paths.CHECKPOINT_NAME else path
        what = "a PyTorch training checkpoint, not an ONNX or Keras model"
    else:
        return
    export = f"; export it first: digitrec export {run} --out model.onnx" if run is not None else ""
    raise ModelError(f"{path} is {what}{export}")


def converted_path(keras_file: Path) -> Path:
    """Where the ONNX conversion of this exact file, by these versions, lives:
    <cache>/converted/<stem>-<sha256[:16]>-digitrec<version>-keras<version>.onnx."""
    from digitrec import __version__

    try:
        digest = file_sha256(keras_file)
    except OSError as exc:
        raise ModelError(f"cannot read {keras_file}: {exc.strerror or exc}") from None
    key = f"{digest[:16]}-digitrec{__version__}-keras{_keras_version()}"
    return paths.cache_root() / "converted" / f"{keras_file.stem}-{key}.onnx"


def cached_is_intact(cached: Path) -> bool:
    """The cached conversion exists and its bytes have the SHA-256 written beside it when it was made."""
    try:
        return _hash_path(cached).read_text().strip() == file_sha256(cached)
    except OSError:
        return False


def _hash_path(cached: Path) -> Path:
    return cached.with_name(cached.name + HASH_SUFFIX)


def _keras_version() -> str:
    """From the installed package's metadata: importing Keras here would cost seconds on every run
    (and importlib.metadata itself 16 ms, so it too is imported only when a .keras file is given)."""
    from importlib import metadata

    try:
        return metadata.version("keras")
    except metadata.PackageNotFoundError:
        return "none"
