"""Checkpoints: one file per run, `runs/NAME/checkpoint.pt`, written atomically after every epoch.

The file is a plain dict that `torch.load(..., weights_only=True)` reads (no pickled classes):
  format       "digitrec-checkpoint/1"
  model        state_dict of the model to use (the EMA weights when the recipe averages them)
  meta         JSON-able: recipe, architecture, config (resolved), seed, epoch, epochs,
               parameters, flops_per_image, train_seconds, val_accuracy, test_accuracy (set once,
               after the last epoch), commit, created, data_sha256
  train_state  what `--resume` needs: raw weights, optimizer state, EMA weights, step
The run folder (the checkpoint's parent) also holds config.json and metrics.jsonl.

`load_model(path)` is what evaluate/export use: it rebuilds the network from the stored config.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import torch

from digitrec.errors import ModelError
from digitrec.files import atomic_path
from digitrec.models import build_model
from digitrec.paths import CHECKPOINT_NAME, CONFIG_NAME, METRICS_NAME  # noqa: F401 - used as ckpt.*_NAME

FORMAT = "digitrec-checkpoint/1"


def save_checkpoint(path: Path | str, state: dict) -> None:
    """Write to a temp file in the same folder, then rename: a kill never leaves half a checkpoint."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)


def resolve_checkpoint(path: Path | str) -> Path:
    """A run folder or a checkpoint file -> the checkpoint file."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path} (pass a run folder or its checkpoint.pt)")
    return path


def read_checkpoint(path: Path | str) -> dict:
    path = resolve_checkpoint(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged or foreign file
        # Its messages run to paragraphs (the weights-only one advises loading the file unsafely and
        # filing an issue): their first sentence says what went wrong.
        first = str(exc).strip().split("\n", 1)[0].split(". ", 1)[0]
        if not any(c.isalpha() for c in first):  # a text file gave a bare `101`: not a message
            first = "not a PyTorch file"
        raise ModelError(
            f"cannot read {path} as a digitrec checkpoint (damaged, or another kind of file): {first}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ModelError(f"{path} is not a digitrec checkpoint (expected format {FORMAT})")
    return state


def load_model(path: Path | str) -> tuple[torch.nn.Module, dict]:
    """-> (model in eval mode, meta). The model takes float32 (N, 1, 28, 28) in [0, 1], ink = 1,
    and returns (N, 10) logits. meta has recipe, config, seed, epoch, ... (see the module doc);
    meta["run_dir"] is the folder holding the checkpoint, metrics.jsonl and config.json."""
    path = resolve_checkpoint(path)
    state = read_checkpoint(path)
    if not isinstance(state.get("meta"), dict):
        # The reader's line model checkpoints with the same writer but is no `digitrec train` run.
        raise ModelError(
            f"{path} holds no `digitrec train` model (no metadata): a line-reader run is exported "
            f"by its trainer (python -m digitrec.train.line_reader --out RUN --resume --export PATH)"
        )
    meta = dict(state["meta"])
    try:
        model = build_model(meta["architecture"], **meta["config"].get("model", {}))
        model.load_state_dict(state["model"])
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise ModelError(f"{path}: the stored weights do not fit the stored architecture: {exc}") from None
    model.eval()
    meta["run_dir"] = str(path.parent)
    meta["checkpoint"] = str(path)
    return model, meta


def read_metrics(run_dir: Path | str) -> list[dict]:
    """The run's metrics.jsonl rows (one per epoch), or [] when there is none."""
    path = Path(run_dir) / METRICS_NAME
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def source_commit() -> str | None:
    """The git commit of the digitrec source tree (None when it is not a git checkout)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None
