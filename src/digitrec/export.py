"""Checkpoint -> ONNX model with its model card, checked against PyTorch before it is written.

The ONNX file follows the runtime's contract: input `image` float32 (N, 1, 28, 28) in [0, 1],
ink = 1 on black; output `logits` (N, 10), or (N, 11) for the reader's verifier; the MNIST
normalisation is inside the graph; metadata_props["digitrec"] is the model card as JSON. The card
is also written beside the model (`model.onnx` -> `model_card.json`). Its `calibration` holds the
temperature fitted on the run's own validation images (`digitrec.calibration`). `digitrec.modelfile.write`
writes the file (parity check, onnx.checker, atomic rename); this module builds the card.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from digitrec.checkpoint import load_model, read_metrics, source_commit
from digitrec.data import FILES, load_mnist
from digitrec.modelfile import card_path_for  # noqa: F401 - part of this module's API
from digitrec.modelfile.write import rewrite_card, torch_reference, torch_to_onnx, write_model

PARITY_IMAGES = 1000


def build_card(
    model: torch.nn.Module,
    meta: dict,
    name: str,
    test_accuracy: float,
    test_images: int,
    labels: list[str] | None = None,
) -> dict:
    """`labels`: one per output; default the ten digits (and "not one digit" for the reader's verifier)."""
    from digitrec.models import count_flops, count_parameters, describe

    history = read_metrics(meta["run_dir"]) or meta.get("history", [])
    classes = int(meta["config"].get("model", {}).get("classes", 10))
    if labels is None:
        labels = [str(d) for d in range(10)] + ["not one digit"] * (classes - 10)  # the reader's verifier
    return {
        "name": name,
        "recipe": meta["recipe"],
        "architecture": meta["architecture"],
        "layers": describe(model),
        "parameters": count_parameters(model),
        "flops_per_image": count_flops(model),
        "input": {
            "name": "image",
            "shape": [1, 28, 28],
            "dtype": "float32",
            "range": [0.0, 1.0],
            "polarity": "white ink on black (MNIST)",
            "normalization": "inside the model",
        },
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
        # A distilled run: the checkpoints it was taught by (path, sha256, recipe, seed).
        **({"teachers": meta["teachers"]} if meta.get("teachers") else {}),
        **_unfinished(meta),
    }


def _unfinished(meta: dict) -> dict:
    """A run stopped before its last epoch says so in its card (and `export` warns): a half-trained
    model otherwise looks like any other."""
    done, planned = meta.get("epoch"), meta["config"].get("epochs")
    if isinstance(done, int) and isinstance(planned, int) and done < planned:
        run = shlex.quote(str(meta.get("run_dir", "RUN")))
        return {"unfinished": f"trained {done} of {planned} epochs: digitrec train --out {run} --resume finishes it"}
    return {}


def _to_onnx(model: torch.nn.Module, path: Path) -> None:
    torch_to_onnx(model, path, np.zeros((1, 1, 28, 28), np.float32), {"image": {0: "batch"}, "logits": {0: "batch"}})


def validation_split(config: dict, train: tuple[np.ndarray, np.ndarray] | None = None):
    """The held-out MNIST training images a run was validated on (uint8 (N, 28, 28), labels):
    the same split `digitrec train` made, from its resolved config."""
    from digitrec.train.config import TrainConfig
    from digitrec.train.loop import split_indices

    images, labels = train if train is not None else load_mnist("train")
    settings = TrainConfig(val_size=int(config.get("val_size", 5000)), limit=int(config.get("limit", 0)))
    val_idx, _ = split_indices(settings, len(images))
    return images[val_idx], labels[val_idx]


def export_onnx(
    checkpoint: Path | str,
    out: Path | str,
    *,
    name: str | None = None,
    card_path: Path | str | None = None,
    log: Callable[[str], None] = lambda m: None,
    test_data: tuple[np.ndarray, np.ndarray] | None = None,
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    labels: list[str] | None = None,
    card_extra: dict | None = None,
) -> dict:
    """Write `out` (ONNX) and its card; return the card. Raises ModelError if ONNX and PyTorch
    disagree by more than the writer's tolerance on the first 1,000 test images. The temperature is
    fitted on `validation_data` (default: the run's own validation split of MNIST). `labels`: the
    outputs' names, for a network that does not answer digits (see `build_card`). `card_extra`:
    more fields for the card (what made a trainer's own data, say)."""
    from digitrec.calibration import calibration_card
    from digitrec.files import check_writable

    output_labels = labels
    model, meta = load_model(checkpoint)
    check_writable(out)  # before MNIST is loaded (fetched, on a first run): an --out that cannot be written fails now
    model = model.to(memory_format=torch.contiguous_format).eval()
    images, labels = test_data if test_data is not None else load_mnist("test")
    x = images.astype(np.float32)[:, None] / 255.0  # (N, 1, 28, 28), ink = 1

    def card(session, outputs: list[np.ndarray]) -> dict:
        logits = np.concatenate(
            [
                outputs[0],
                *(session.run(None, {"image": x[i : i + 1000]})[0] for i in range(PARITY_IMAGES, len(x), 1000)),
            ]
        )
        test_accuracy = float((logits.argmax(1) == labels).mean())
        log(f"ONNX test accuracy on {len(labels):,} images: {test_accuracy:.2%}")
        card = build_card(model, meta, name or f"digitrec-{meta['recipe']}", test_accuracy, len(labels), output_labels)
        card.update(card_extra or {})
        val_images, val_labels = validation_data or validation_split(meta["config"])
        if not len(val_labels):  # a run trained on all 60,000 (val_size 0): nothing held out to fit on
            log("no validation images: the card keeps temperature 1 (uncalibrated)")
            return card
        v = val_images.astype(np.float32)[:, None] / 255.0
        val_logits = np.concatenate([session.run(None, {"image": v[i : i + 1000]})[0] for i in range(0, len(v), 1000)])
        card["calibration"] = calibration_card(
            val_logits,
            val_labels,
            "the run's validation images" if validation_data is None else "the given validation images",
        )
        log(
            f"temperature {card['calibration']['temperature']:.3f} (validation NLL "
            f"{card['calibration']['nll_before']:.4f} -> {card['calibration']['nll_after']:.4f})"
        )
        return card

    return write_model(
        out,
        export=lambda tmp: _to_onnx(model, tmp),
        probes=[x[:PARITY_IMAGES]],
        reference=torch_reference(model),
        card=card,
        card_path=card_path,
        log=log,
    )


def calibrate_onnx(
    path: Path | str,
    *,
    log: Callable[[str], None] = lambda m: None,
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Fit the temperature of a digitrec ONNX model on its run's validation images (from the card's
    config) and rewrite only its card; the graph is unchanged, so the logits are too. -> the card."""
    from digitrec.calibration import calibration_card
    from digitrec.errors import ModelError
    from digitrec.modelfile import open_model

    session, card = open_model(path, require_input=True)
    if card is None or not isinstance(card.data.get("config"), dict):
        raise ModelError(f"{path}: its card has no training config, so its validation images are unknown")
    images, labels = validation_data or validation_split(card.data["config"])
    if not len(labels):
        raise ModelError(f"{path} was trained without held-out validation images: nothing to fit on")
    x = card.input.scale(images)[:, None]
    logits = np.concatenate([session.run(None, {card.input.name: x[i : i + 1000]})[0] for i in range(0, len(x), 1000)])
    data = {k: v for k, v in card.data.items() if k != "format"}
    data["calibration"] = calibration_card(
        logits, labels, "the run's validation images" if validation_data is None else "the given validation images"
    )
    log(
        f"temperature {data['calibration']['temperature']:.3f} on {len(labels):,} images (NLL "
        f"{data['calibration']['nll_before']:.4f} -> {data['calibration']['nll_after']:.4f}, ECE "
        f"{data['calibration']['ece_before']:.4f} -> {data['calibration']['ece_after']:.4f})"
    )
    return rewrite_card(path, data)
