"""Turn the MODEL argument of `digitrec evaluate` into something that gives probabilities.

An ONNX model runs on the onnxruntime `Recognizer` (no PyTorch imported); a PyTorch checkpoint (`.pt`)
is loaded through `digitrec.checkpoint`, importing torch only then. Either way the caller gets a
`ModelSource` whose `predict_probabilities` maps uint8 (N, 28, 28) MNIST digits to float32 (N, 10).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digitrec.errors import DigitrecError, ModelError
from digitrec.paths import CHECKPOINT_SUFFIXES, METRICS_NAME, RUN_FOLDER_MODELS

ONNX_SUFFIXES = (".onnx",)
# In a folder given as MODEL, the first of these that exists is evaluated.


@dataclass
class ModelSource:
    path: Path
    kind: str  # "onnx" or "checkpoint"
    card: dict  # the model card (ONNX metadata) or the checkpoint's metadata
    predict_probabilities: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    history: list[dict] = field(default_factory=list, repr=False)  # per-epoch training metrics
    history_source: str | None = None  # where the history came from: the model card or a metrics.jsonl

    @property
    def name(self) -> str:
        if self.card.get("name"):
            return str(self.card["name"])
        if self.kind == "checkpoint" and self.card.get("recipe"):
            return f"{self.card['recipe']} (run {self.path.parent.name})"
        return self.path.stem


def open_model(model: str | Path | None = None) -> ModelSource:
    """MODEL path (`.onnx`, `.keras`, `.pt`, or a run folder) or None for the shipped model -> ModelSource."""
    from digitrec.model_io import resolve_model
    from digitrec.runtime import default_model_path

    if model is None:
        path = default_model_path()
        if not path.is_file():
            raise ModelError(f"the shipped model is missing ({path}); name a model file: digitrec evaluate MODEL")
    else:
        path = _resolve(Path(model).expanduser())
    path = resolve_model(path)  # a Keras model (.keras) -> its cached ONNX conversion
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        source = _open_onnx(path)
    elif suffix in CHECKPOINT_SUFFIXES:
        source = _open_checkpoint(path)
    else:
        raise ModelError(
            f"{path}: unknown model type {suffix or '(no suffix)'!r}; "
            f"use an ONNX model (.onnx), a Keras model (.keras) or a PyTorch checkpoint (.pt)"
        )
    _check_contract(source)
    if source.history:
        source.history_source = "model card" if source.kind == "onnx" else "checkpoint metadata"
    else:
        source.history = read_history(path.parent / METRICS_NAME)
        source.history_source = str(path.parent / METRICS_NAME) if source.history else None
    return source


def _resolve(path: Path) -> Path:
    if path.is_dir():
        for name in RUN_FOLDER_MODELS:
            if (path / name).is_file():
                return path / name
        raise ModelError(f"{path} is a folder without a model in it (looked for {', '.join(RUN_FOLDER_MODELS)})")
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    return path


def _open_onnx(path: Path) -> ModelSource:
    from digitrec.runtime import Recognizer

    recognizer = Recognizer(path)
    card = dict(recognizer.card)
    history = card.pop("history", None) or []
    return ModelSource(path, "onnx", card, recognizer.predict_probabilities, _clean_history(history))


def _open_checkpoint(path: Path) -> ModelSource:
    from digitrec.extras import require

    require("train", "torch")
    import torch

    from digitrec.checkpoint import load_model

    try:
        module, meta = load_model(path)
    except DigitrecError:
        raise
    except Exception as exc:  # a truncated or foreign file: torch raises many kinds of errors
        raise ModelError(f"cannot load {path} as a digitrec checkpoint: {exc}") from None
    module.eval()

    def predict_probabilities(digits28: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        from digitrec.runtime import softmax

        out = []
        with torch.inference_mode():
            for start in range(0, len(digits28), batch_size):
                # (B, 1, 28, 28) float32 in [0, 1], ink = 1: the model contract
                x = digits28[start : start + batch_size].astype(np.float32)[:, None] / 255.0  # a writable copy
                logits = module(torch.from_numpy(x))
                out.append(softmax(logits.float().numpy()))
        return np.concatenate(out) if out else np.zeros((0, 10), np.float32)

    card = _json_safe(meta or {})
    history = card.pop("history", None) or []
    return ModelSource(path, "checkpoint", card, predict_probabilities, _clean_history(history))


def _check_contract(source: ModelSource) -> None:
    """One blank image through the model: a wrong input or output shape fails here, with a clear message."""
    try:
        probs = source.predict_probabilities(np.zeros((2, 28, 28), np.uint8))
    except DigitrecError:
        raise
    except Exception as exc:
        raise ModelError(
            f"{source.path} does not take MNIST digits as digitrec models do (float32 (N, 1, 28, 28) in [0, 1]): {exc}"
        ) from None
    if probs.shape != (2, 10):
        raise ModelError(
            f"{source.path} answers with shape {tuple(probs.shape[1:])} per image; a digit model gives 10 logits"
        )


def read_history(path: Path) -> list[dict]:
    """metrics.jsonl -> one dict per epoch; a missing file is no history, a torn last line is skipped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a run killed mid-write leaves half a line
        if isinstance(row, dict):
            rows.append(row)
    return _clean_history(rows)


def _clean_history(rows) -> list[dict]:
    return [r for r in rows if isinstance(r, dict) and "epoch" in r] if isinstance(rows, list) else []


def _json_safe(value):
    """Checkpoint metadata may hold tuples, paths or numpy scalars; the report and --json need plain JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
