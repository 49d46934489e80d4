"""Checkpoint -> ONNX model with its model card, checked against PyTorch before it is written.

The ONNX file follows the runtime's contract: input `image` float32 (N, 1, 28, 28) in [0, 1],
ink = 1 on black; output `logits` (N, 10), or (N, 11) for the reader's verifier; the MNIST normalisation is inside the graph;
metadata_props["digitrec"] is the model card as JSON. The card is also written beside the model
(`model.onnx` -> `model_card.json`) for people and tools that do not open ONNX files.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from digitrec.checkpoint import load_model, make_readable, read_metrics, source_commit
from digitrec.data import FILES, load_mnist
from digitrec.errors import ModelError
from digitrec.models import count_flops, count_parameters, describe

OPSET = 17
PARITY_IMAGES = 1000
PARITY_TOLERANCE = 1e-4  # max abs difference of probabilities, ONNX vs PyTorch
CARD_KEY = "digitrec"


def card_path_for(onnx_path: Path | str) -> Path:
    """model.onnx -> model_card.json, beside it (the shipped assets use the same names)."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(f"{onnx_path.stem}_card.json")


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def build_card(model: torch.nn.Module, meta: dict, name: str, test_accuracy: float, test_images: int) -> dict:
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
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(
            model, (torch.zeros(1, 1, 28, 28),), str(path),
            input_names=["image"], output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET, do_constant_folding=True, dynamo=False,
        )


def export_onnx(checkpoint: Path | str, out: Path | str, *, name: str | None = None,
                card_path: Path | str | None = None, log: Callable[[str], None] = lambda m: None,
                test_data: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Write `out` (ONNX) and its card; return the card. Raises ModelError if ONNX and PyTorch
    disagree by more than PARITY_TOLERANCE on the first 1,000 test images."""
    import onnx
    import onnxruntime as ort

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ModelError(f"--out must end in .onnx, got {out.name}")
    model, meta = load_model(checkpoint)
    model = model.to(memory_format=torch.contiguous_format).eval()
    images, labels = test_data if test_data is not None else load_mnist("test")
    x = images.astype(np.float32)[:, None] / 255.0  # (N, 1, 28, 28), ink = 1

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        log("exporting to ONNX")
        _to_onnx(model, tmp)
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        onnx_logits = np.concatenate([session.run(None, {"image": x[i : i + 1000]})[0]
                                      for i in range(0, len(x), 1000)])
        with torch.no_grad():
            torch_logits = model(torch.from_numpy(x[:PARITY_IMAGES])).numpy()
        diff = float(np.abs(_softmax(onnx_logits[:PARITY_IMAGES]) - _softmax(torch_logits)).max())
        log(f"ONNX vs PyTorch on {len(torch_logits)} test images: max abs probability difference {diff:.2e}")
        if not diff < PARITY_TOLERANCE:
            raise ModelError(f"the ONNX model disagrees with PyTorch: max abs probability difference {diff:.2e} "
                             f"on {len(torch_logits)} test images (allowed {PARITY_TOLERANCE:.0e}); not written")
        test_accuracy = float((onnx_logits.argmax(1) == labels).mean())
        log(f"ONNX test accuracy on {len(labels):,} images: {test_accuracy:.2%}")
        card = build_card(model, meta, name or f"digitrec-{meta['recipe']}", test_accuracy, len(labels))
        card["onnx_parity_max_abs_diff"] = diff
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = CARD_KEY, json.dumps(card)
        proto.producer_name = "digitrec"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        make_readable(tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    card_file = Path(card_path) if card_path else card_path_for(out)
    card_file.write_text(json.dumps(card, indent=2) + "\n")
    card["path"], card["card_path"] = str(out), str(card_file)
    card["bytes"] = out.stat().st_size
    return card
