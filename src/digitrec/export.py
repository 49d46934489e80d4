"""Checkpoint -> ONNX model with its model card, checked against PyTorch before it is written.

The ONNX file follows the runtime's contract: input `image` float32 (N, 1, 28, 28) in [0, 1],
ink = 1 on black; output `logits` (N, 10), or (N, 11) for the reader's verifier; the MNIST
normalisation is inside the graph; metadata_props["digitrec"] is the model card as JSON. The card
is also written beside the model (`model.onnx` -> `model_card.json`). `digitrec.modelfile.write`
writes the file (parity check, onnx.checker, atomic rename); this module builds the card.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from digitrec.checkpoint import load_model, read_metrics, source_commit
from digitrec.data import FILES, load_mnist
from digitrec.modelfile import card_path_for  # noqa: F401 - part of this module's API
from digitrec.modelfile.write import torch_reference, torch_to_onnx, write_model

PARITY_IMAGES = 1000


def build_card(model: torch.nn.Module, meta: dict, name: str, test_accuracy: float, test_images: int) -> dict:
    from digitrec.models import count_flops, count_parameters, describe

    history = read_metrics(meta["run_dir"]) or meta.get("history", [])
    classes = int(meta["config"].get("model", {}).get("classes", 10))
    labels = [str(d) for d in range(10)] + ["not one digit"] * (classes - 10)  # the reader's verifier
    return {
        "name": name,
        "recipe": meta["recipe"],
        "architecture": meta["architecture"],
        "layers": describe(model),
        "parameters": count_parameters(model),
        "flops_per_image": count_flops(model),
        "input": {"name": "image", "shape": [1, 28, 28], "dtype": "float32", "range": [0.0, 1.0],
                  "polarity": "white ink on black (MNIST)", "normalization": "inside the model"},
        "output": {"name": "logits", "shape": [classes], "kind": "logits (apply softmax for probabilities)"},
        "labels": labels,
        "test_accuracy": test_accuracy,
        "test_images": test_images,
        "val_accuracy": meta.get("val_accuracy"),
        "train_seconds": meta.get("train_seconds"),
        "train_images": meta.get("train_images"),
        "epochs": meta.get("epoch"),
        "seed": meta["seed"],
        "config": meta["config"],
        "data_sha256": {spec.name: spec.sha256 for spec in FILES.values()},
        "commit": meta.get("commit") or source_commit(),
        "trained": meta.get("created"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": str(torch.__version__),
        "history": history,
    }


def _to_onnx(model: torch.nn.Module, path: Path) -> None:
    torch_to_onnx(model, path, np.zeros((1, 1, 28, 28), np.float32),
                  {"image": {0: "batch"}, "logits": {0: "batch"}})


def export_onnx(checkpoint: Path | str, out: Path | str, *, name: str | None = None,
                card_path: Path | str | None = None, log: Callable[[str], None] = lambda m: None,
                test_data: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Write `out` (ONNX) and its card; return the card. Raises ModelError if ONNX and PyTorch
    disagree by more than the writer's tolerance on the first 1,000 test images."""
    model, meta = load_model(checkpoint)
    model = model.to(memory_format=torch.contiguous_format).eval()
    images, labels = test_data if test_data is not None else load_mnist("test")
    x = images.astype(np.float32)[:, None] / 255.0  # (N, 1, 28, 28), ink = 1

    def card(session, outputs: list[np.ndarray]) -> dict:
        logits = np.concatenate([outputs[0], *(session.run(None, {"image": x[i : i + 1000]})[0]
                                               for i in range(PARITY_IMAGES, len(x), 1000))])
        test_accuracy = float((logits.argmax(1) == labels).mean())
        log(f"ONNX test accuracy on {len(labels):,} images: {test_accuracy:.2%}")
        return build_card(model, meta, name or f"digitrec-{meta['recipe']}", test_accuracy, len(labels))

    return write_model(out, export=lambda tmp: _to_onnx(model, tmp), probes=[x[:PARITY_IMAGES]],
                       reference=torch_reference(model), card=card, card_path=card_path, log=log)
