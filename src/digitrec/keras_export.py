"""A Keras 3 model (`.keras`) -> ONNX with a digitrec model card, checked against Keras before it is written.

Keras runs on its PyTorch backend here (no TensorFlow needed): the backend is chosen before Keras
is first imported, files are loaded in safe mode (no arbitrary code from the file), and the model
is called once on a batch so that Keras knows its input signature, which `Model.export` needs.
The card records how the model is fed (input layout, pixels scaled to [0, 1], as the Keras
tutorials do) and what its output is, so `digitrec.model_adapter` can use the model like any
digitrec model. A Dense head's sigmoid or softmax is left to the runtime (see `_strip_head`):
the ONNX model answers the head's inputs, `sigmoid_logits` or `logits`.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
import zipfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from digitrec.errors import ModelError
from digitrec.files import file_sha256
from digitrec.model_adapter import LAYOUTS, ModelAdapter
from digitrec.modelfile.write import PARITY_TOLERANCE, write_model

KERAS_SUFFIXES = (".keras",)
LEGACY_KERAS_SUFFIXES = (".h5", ".hdf5")
PROBE_IMAGES = 64
# Keras activation name of the last layer -> what the model answers
ACTIVATION_KINDS = {
    "softmax": "probabilities",
    "sigmoid": "scores",
    "linear": "logits",
    "log_softmax": "log_probabilities",
}


def import_keras():
    """Keras on its PyTorch backend, or a ModelError that says what to install."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError as exc:
        if os.environ["KERAS_BACKEND"] != "torch":
            raise ModelError(
                f"Keras could not start on the {os.environ['KERAS_BACKEND']!r} backend named in "
                f"KERAS_BACKEND ({exc}); unset it to use PyTorch"
            ) from None
        from digitrec.extras import install_command

        raise ModelError(
            f"converting a .keras model needs Keras and PyTorch ({exc}): {install_command('keras')}"
        ) from None
    return keras


def export_keras(
    source: Path | str,
    out: Path | str,
    *,
    name: str | None = None,
    card_path: Path | str | None = None,
    write_card: bool = True,
    log: Callable[[str], None] = lambda m: None,
) -> dict:
    """Write `out` (ONNX) from the `.keras` file `source`; return the model card.
    `write_card` also writes the card beside the model (model.onnx -> model_card.json)."""
    source, out = Path(source), Path(out)
    refuse_legacy_keras(source)
    if out.suffix.lower() != ".onnx":
        raise ModelError(f"--out must end in .onnx, got {out.name}")
    keras = import_keras()
    model = _load(keras, source)
    layout, item_shape = _input_layout(model)
    probe = np.random.default_rng(0).random((PROBE_IMAGES, *item_shape), dtype=np.float32)  # pixels in [0, 1]
    try:
        keras_out = keras.ops.convert_to_numpy(model(probe[:2]))  # the first call also fixes the signature export needs
        keras_out = np.asarray(model.predict(probe, verbose=0))  # what the model answers, its head included
    except Exception as exc:  # noqa: BLE001 - a model that cannot run on a batch of images: layers raise many kinds
        raise ModelError(f"{source.name} cannot run on a batch of {item_shape} images: {exc}") from None
    if keras_out.reshape(len(probe), -1).shape[1] != 10:
        raise ModelError(
            f"{source.name} answers {keras_out.reshape(len(probe), -1).shape[1]} values per image; "
            f"a digit model gives 10"
        )
    head_kind = _output_kind(model, keras_out)
    kind = _strip_head(keras, model, head_kind)
    keras_raw = np.asarray(model.predict(probe, verbose=0)) if kind != head_kind else keras_out
    _check_same_probabilities(keras_raw, kind, keras_out, head_kind)

    def export(tmp: Path) -> None:
        # Keras and the exporter print progress, and the tracer warns about shapes it fixes (batch stays dynamic).
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model.export(str(tmp), format="onnx", verbose=False)
            except Exception as exc:  # noqa: BLE001 - the exporters raise many kinds
                raise ModelError(f"Keras could not export {source.name} to ONNX: {exc}") from None

    def card(session, outputs) -> dict:
        input_name = session.get_inputs()[0].name
        return _card(keras, model, source, name, input_name, layout, item_shape, kind)

    # Raw outputs, not probabilities: their rounding is what the exporter is responsible for.
    return write_model(
        out,
        export=export,
        probes=[probe],
        reference=lambda x: keras_raw,
        card=card,
        compare=lambda z: z,
        relative=True,
        card_path=(card_path or None) if write_card else False,
        source="Keras",
        log=log,
    )


def refuse_legacy_keras(path: Path) -> None:
    if path.suffix.lower() in LEGACY_KERAS_SUFFIXES:
        raise ModelError(
            f"{path.name}: legacy HDF5 Keras files are not supported; load it in Keras and "
            f"save it again as .keras (model.save('model.keras')), then pass that"
        )


def _load(keras, source: Path):
    if not source.is_file():
        raise ModelError(f"model file not found: {source}")
    if not zipfile.is_zipfile(source):  # Keras would say "file not found" about a damaged file
        raise ModelError(f"{source} is not a Keras model (a .keras file is a zip archive saved by model.save)")
    try:
        return keras.models.load_model(source, safe_mode=True, compile=False)
    except Exception as exc:  # noqa: BLE001 - a foreign, damaged or unsafe file: Keras raises many kinds
        raise ModelError(f"cannot load {source} as a Keras model: {exc}") from None


def _input_layout(model) -> tuple[str, tuple[int, ...]]:
    """The Keras input shape (None, 28, 28), (None, 784), ... -> (layout name, one image's shape)."""
    try:
        shape = tuple(model.inputs[0].shape) if getattr(model, "inputs", None) else tuple(model.input_shape)
    except (AttributeError, ValueError, TypeError):
        raise ModelError("the Keras model has no declared input shape; build it with keras.Input((28, 28))") from None
    if len(getattr(model, "inputs", None) or [None]) != 1:
        raise ModelError("the Keras model takes several inputs; a digit model takes one batch of images")
    for layout, item in LAYOUTS.items():
        if tuple(shape[1:]) == item:
            return layout, item
    raise ModelError(
        f"the Keras model takes input of shape {shape}; digitrec feeds 28x28 digits as "
        f"(N, 28, 28), (N, 28, 28, 1), (N, 1, 28, 28) or (N, 784)"
    )


def _output_kind(model, outputs: np.ndarray) -> str:
    """From the last layer's activation; a model ending in a custom activation is judged by its values."""
    activation = getattr(model.layers[-1], "activation", None) if model.layers else None
    kind = ACTIVATION_KINDS.get(getattr(activation, "__name__", ""))
    if kind:
        return kind
    if type(model.layers[-1]).__name__ == "Softmax":
        return "probabilities"
    return "scores" if outputs.min() >= 0 and outputs.max() <= 1 else "logits"


def _strip_head(keras, model, kind: str) -> str:
    """A Dense layer ending in sigmoid or softmax is exported without that activation: the ONNX model
    answers the pre-activations z and the runtime applies the head in float64. onnxruntime's Sigmoid
    is accurate to ~1e-7 absolute only (0 below z = -18), and a tutorial network trained with a
    sigmoid head often answers scores that are all that small: dividing them by their sum would
    give probabilities far from Keras's. Returns the kind of output the exported model gives."""
    last = model.layers[-1] if model.layers else None
    name = getattr(getattr(last, "activation", None), "__name__", "")
    if type(last).__name__ != "Dense" or name not in ("sigmoid", "softmax"):
        return kind
    last.activation = keras.activations.linear
    return "sigmoid_logits" if name == "sigmoid" else "logits"


def _check_same_probabilities(raw: np.ndarray, kind: str, head_out: np.ndarray, head_kind: str) -> None:
    """The runtime's probabilities from the exported output = the Keras head's output, normalised."""
    if kind == head_kind:
        return
    ours = ModelAdapter("x", output_kind=kind).to_probabilities(raw)
    theirs = ModelAdapter("x", output_kind=head_kind).to_probabilities(head_out)
    rows = head_out.sum(axis=1) > 1e-6  # below that, Keras's own float32 scores have lost their digits
    diff = float(np.abs(ours[rows] - theirs[rows]).max()) if rows.any() else 0.0
    if not diff < PARITY_TOLERANCE:
        raise ModelError(f"internal check failed: the {kind} head differs from Keras's {head_kind} by {diff:.2e}")


def _card(keras, model, source: Path, name, input_name: str, layout: str, item_shape: tuple, kind: str) -> dict:
    return {
        "name": name or source.stem,
        "architecture": f"keras {type(model).__name__}",
        "layers": [f"{type(layer).__name__}{_layer_detail(layer)}" for layer in model.layers],
        "parameters": int(model.count_params()),
        "flops_per_image": _dense_flops(model),
        "input": {
            "name": input_name,
            "shape": list(item_shape),
            "layout": layout,
            "dtype": "float32",
            "range": [0.0, 1.0],
            "polarity": "white ink on black (MNIST)",
        },
        "output": {
            "shape": [10],
            "kind": {
                "logits": "logits (apply softmax for probabilities)",
                "scores": "scores (independent sigmoids; divided by their sum)",
                "sigmoid_logits": "sigmoid_logits (the sigmoid head's inputs z; "
                "probabilities = sigmoid(z) / their sum)",
                "probabilities": "probabilities (softmax)",
                "log_probabilities": "log_probabilities (log softmax)",
            }[kind],
        },
        "labels": [str(d) for d in range(10)],
        "source": {
            "format": "keras",
            "file": source.name,
            "sha256": file_sha256(source),
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _layer_detail(layer) -> str:
    units, activation = getattr(layer, "units", None), getattr(getattr(layer, "activation", None), "__name__", None)
    parts = [str(units)] if units else []
    if activation and activation != "linear":
        parts.append(activation)
    return f"({', '.join(parts)})" if parts else ""


def _dense_flops(model) -> int | None:
    """2 x multiply-accumulates of the Dense layers; None when other weighted layers (convolutions) are present."""
    flops = 0
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if type(layer).__name__ != "Dense":
            return None
        flops += 2 * int(np.prod(weights[0].shape))
    return flops
