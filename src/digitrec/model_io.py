"""Which ONNX file a `--model` argument means, and opening one. One function each for predict,
read, serve and evaluate (and the reader's verifier).

`.onnx` files are used as they are. A Keras model (`.keras`) is converted to ONNX once, on first
use, and the result is cached under the digitrec cache, keyed by the file's SHA-256: a later run
(or a server worker) loads the cached ONNX without Keras or PyTorch. Only the conversion needs the
`keras` extra. The light runtime imports this module, so nothing heavy is imported at the top.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from digitrec import paths
from digitrec.errors import ModelError

KERAS_SUFFIXES = (".keras",)
LEGACY_KERAS_SUFFIXES = (".h5", ".hdf5")


def open_session(path: Path, threads: int | None = None):
    """An onnxruntime CPU session for `path` (at most 4 threads by default). Raises ModelError with
    a message for the user when the file is not a model onnxruntime can load."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ModelError(f"cannot load {path} as an ONNX model: {exc}") from None


def open_shipped(path: Path, what: str, threads: int | None = None):
    """One of the reader's own networks (the verifier, the line reader) -> (session, its card from
    the ONNX metadata). A missing file is a ModelError that names it as `what`."""
    if not path.is_file():
        raise ModelError(f"{what} not found: {path} (reinstall digitrec)")
    session = open_session(path, threads)
    return session, json.loads(session.get_modelmeta().custom_metadata_map.get("digitrec", "{}"))


def resolve_model(model: str | Path) -> Path:
    """A model path as the user gave it -> the ONNX file to load. Converts (and caches) `.keras`."""
    path = Path(model).expanduser()
    refuse_legacy_keras(path)
    if path.suffix.lower() not in KERAS_SUFFIXES:
        return path
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    cached = converted_path(path)
    if not cached.is_file():
        from digitrec.keras_export import export_keras

        print(f"digitrec: converting {path.name} to ONNX (once; cached as {cached})", file=sys.stderr)
        export_keras(path, cached, write_card=False)
    return cached


def refuse_legacy_keras(path: Path) -> None:
    if path.suffix.lower() in LEGACY_KERAS_SUFFIXES:
        raise ModelError(f"{path.name}: legacy HDF5 Keras files are not supported; load it in Keras and "
                         f"save it again as .keras (model.save('model.keras')), then pass that")


def converted_path(keras_file: Path) -> Path:
    """Where the ONNX conversion of this exact file lives: <cache>/converted/<stem>-<sha256[:16]>.onnx."""
    return paths.cache_root() / "converted" / f"{keras_file.stem}-{file_sha256(keras_file)[:16]}.onnx"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    return digest.hexdigest()
