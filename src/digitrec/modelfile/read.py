"""Opening a model file: an onnxruntime session and its checked card. No torch, no onnx package.

Used by the Recognizer (`digitrec.runtime`), the reader's verifier and line reader, and the writer's
own parity check, so every model is opened, and its outputs turned into probabilities, the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from digitrec.errors import ModelError
from digitrec.modelfile.card import CARD_KEY, ModelCard

if TYPE_CHECKING:  # imported where a model is opened: `import digitrec` stays light
    from onnxruntime import InferenceSession


def softmax(z: np.ndarray) -> np.ndarray:
    """Logits -> probabilities along the last axis (the classes)."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    probabilities: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return probabilities


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Logits -> log-probabilities along the last axis, without overflow."""
    shifted = z - z.max(axis=-1, keepdims=True)
    log_probabilities: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return log_probabilities


def open_session(path: Path | str, threads: int | None = None) -> InferenceSession:
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


def read_card(session: InferenceSession, where: str = "the model", *, require_input: bool = False) -> ModelCard | None:
    """The checked card in a session's metadata; None when the model has none (a model from elsewhere)."""
    meta = session.get_modelmeta().custom_metadata_map
    if CARD_KEY not in meta:
        if require_input:
            raise ModelError(f"{where} has no digitrec model card (metadata '{CARD_KEY}')")
        return None
    return ModelCard.from_json(meta[CARD_KEY], where, require_input=require_input)


def open_model(
    path: Path | str, what: str = "model file", threads: int | None = None, *, require_input: bool = False
) -> tuple[InferenceSession, ModelCard | None]:
    """-> (session, card or None). A missing file is a ModelError that names it as `what`;
    `require_input` for the reader's own networks, whose cards must say how they are fed."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{what} not found: {path}")
    session = open_session(path, threads)
    card = read_card(session, str(path), require_input=require_input)
    if card is not None and card.input.name is not None:
        names = [i.name for i in session.get_inputs()]
        if card.input.name not in names:
            raise ModelError(f"{path}: its card names the input {card.input.name!r}, the model takes {names}")
    return session, card
