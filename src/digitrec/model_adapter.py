"""Feed any ONNX digit classifier the way it wants, and turn what it answers into probabilities.

digitrec's own models take float32 (N, 1, 28, 28) in [0, 1] and answer logits, but a model
brought from elsewhere (the Keras tutorial's MLP, a PyTorch export) may take (N, 28, 28),
(N, 28, 28, 1) or (N, 784), expect pixels in [0, 255] or normalised by a mean and std, and answer
sigmoid scores or softmax probabilities. The adapter reads that from the model itself:

  input layout  from the input's declared shape (the card's input.layout settles ambiguous cases);
  scaling       from the card (`input.range` [lo, hi]: pixel 0 -> lo, 255 -> hi; optional
                `input.mean` / `input.std` applied after), else [0, 1];
  temperature   from the card (`calibration.temperature`, default 1): probabilities =
                softmax(logits / T), see `digitrec.calibration`;
  output kind   from the card (`output.kind`: logits, scores, probabilities, log_probabilities,
                sigmoid_logits),
                else from the graph's last operator (Softmax, LogSoftmax, Sigmoid; needs the
                `onnx` package, imported only then), else from the values of each batch.

The card is `digitrec.modelfile.ModelCard` (the JSON in metadata_props["digitrec"], checked when the
model is opened). numpy only: this module is on the light predict path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from digitrec.errors import ModelError
from digitrec.modelfile.card import ModelCard, scale_pixels
from digitrec.modelfile.read import softmax

if TYPE_CHECKING:  # for annotations only: this module stays numpy only
    from onnxruntime import InferenceSession

# An ONNX input's or output's declared shape: a size, or a name (or None) for a dynamic axis.
Shape: TypeAlias = list[int | str | None]

SIDE = 28
# layout -> the shape of one image as the model takes it
LAYOUTS = {"NCHW": (1, SIDE, SIDE), "NHWC": (SIDE, SIDE, 1), "NHW": (SIDE, SIDE), "NF": (SIDE * SIDE,)}
# logits: softmax gives probabilities; scores: non-negative (sigmoids), divided by their sum;
# sigmoid_logits: the inputs z of a sigmoid head, probabilities = sigmoid(z) / sum, computed in log space
OUTPUT_KINDS = ("logits", "scores", "probabilities", "log_probabilities", "sigmoid_logits")
# What ONNX's last operator says about the output. Shape-only operators are looked through.
_FINAL_OPS = {"Softmax": "probabilities", "LogSoftmax": "log_probabilities", "Sigmoid": "scores"}
_SHAPE_OPS = {"Identity", "Cast", "Reshape", "Flatten", "Squeeze", "Unsqueeze"}
_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}


def normalise_scores(scores: np.ndarray) -> np.ndarray:
    """Non-negative scores (independent sigmoids) -> rows that sum to 1; an all-zero row -> uniform."""
    scores = np.clip(scores, 0.0, None)
    total = scores.sum(axis=1, keepdims=True)
    out = np.full_like(scores, 1.0 / scores.shape[1])
    np.divide(scores, total, out=out, where=total > 0)
    return out


@dataclass(frozen=True)
class ModelAdapter:
    """How one ONNX model is fed and read. `from_session` works it out; `probabilities` uses it."""

    input_name: str
    layout: str = "NCHW"  # a key of LAYOUTS
    dtype: type = np.float32
    range: tuple[float, float] = (0.0, 1.0)  # pixel 0 -> range[0], 255 -> range[1]
    mean: float = 0.0
    std: float = 1.0
    output_kind: str = "logits"  # one of OUTPUT_KINDS, or "auto": decided per batch from the values
    output_index: int = 0
    fixed_batch: int | None = None  # the model declares a fixed batch size (often 1): fed in pieces
    temperature: float = 1.0  # the card's calibration: probabilities = softmax(logits / T)

    @classmethod
    def from_session(
        cls, session: InferenceSession, card: ModelCard | dict[str, object] | None = None, path: Path | None = None
    ) -> ModelAdapter:
        """An onnxruntime InferenceSession (+ its model card, + the file for graph inspection)."""
        if not isinstance(card, ModelCard):
            card = ModelCard.from_dict(card or {}, str(path or "the model"))
        spec = card.input
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"the model takes {len(inputs)} inputs; a digit model takes one batch of images")
        given = inputs[0]
        dtype = _DTYPES.get(given.type)
        if dtype is None:
            raise ModelError(f"the model's input is {given.type}; digitrec feeds float images")
        layout = _layout(list(given.shape), spec.layout)
        batch = given.shape[0] if given.shape else None
        output_index = _output_index(session)
        kind = _kind_from_card(card.output_kind)
        if kind is None:
            kind = _kind_from_graph(path, session.get_outputs()[output_index].name) if path else None
        return cls(
            input_name=given.name,
            layout=layout,
            dtype=dtype,
            range=spec.range,
            mean=spec.mean,
            std=spec.std,
            output_kind=kind or "auto",
            output_index=output_index,
            fixed_batch=batch if isinstance(batch, int) and batch > 0 else None,
            temperature=card.temperature,
        )

    # --- feeding ---

    def to_input(self, digits28: np.ndarray) -> np.ndarray:
        """uint8 (N, 28, 28), ink = 255 on black -> the model's input array."""
        x = scale_pixels(digits28, self.range, self.mean, self.std)
        x = x.reshape((len(x), *LAYOUTS[self.layout]))
        return x if self.dtype is np.float32 else x.astype(self.dtype)

    # --- reading ---

    def to_probabilities(self, output: np.ndarray) -> np.ndarray:
        """The model's (N, 10) answer -> float32 (N, 10) probabilities that sum to 1."""
        output = np.asarray(output)
        if output.ndim < 2:
            raise ModelError(
                f"the model answers with shape {output.shape}; a digit model gives (N, 10): "
                "10 values (logits, scores or probabilities) per image"
            )
        out = output.astype(np.float32, copy=False).reshape(len(output), -1)
        if out.shape[1] != 10:
            raise ModelError(
                f"the model answers with shape {tuple(output.shape[1:])} per image; "
                f"a digit model gives 10 values (logits, scores or probabilities)"
            )
        kind = self.output_kind
        if kind == "auto":  # no card, no graph to read: scores in [0, 1] are normalised, anything else is logits
            kind = "scores" if out.size and out.min() >= 0.0 and out.max() <= 1.0 else "logits"
        if not np.isfinite(out).all():  # a broken model: NaN would read as the digit 9, infinity as anything
            raise ModelError(
                "the model answered NaN or infinity; it cannot be used (was it exported from a diverged training run?)"
            )
        t = self.temperature
        if kind in ("logits", "log_probabilities"):
            return softmax(out / t if t != 1.0 else out)
        if kind == "sigmoid_logits":  # softmax(log sigmoid(z)) = sigmoid(z) / sum, exact even when every sigmoid is ~0
            return softmax(-np.logaddexp(0.0, -out.astype(np.float64)) / t).astype(np.float32)
        probs = normalise_scores(out)
        if t == 1.0:
            return probs
        # softmax(log p / T): the same scaling as for logits, since log p = logits + a constant per row
        return softmax(np.log(np.maximum(probs, 1e-30)) / t).astype(np.float32)

    def probabilities(self, session: InferenceSession, digits28: np.ndarray) -> np.ndarray:
        """uint8 (N, 28, 28) -> float32 (N, 10), through the model."""
        x = self.to_input(digits28)
        step = self.fixed_batch or len(x)
        outputs = [
            session.run(None, {self.input_name: x[i : i + step]})[self.output_index]
            for i in range(0, len(x), max(step, 1))
        ]
        return self.to_probabilities(np.concatenate(outputs) if len(outputs) != 1 else outputs[0])

    def describe(self) -> dict[str, object]:
        """For model cards and --json: what the model is fed and how its output is read."""
        return {
            "layout": self.layout,
            "shape": list(LAYOUTS[self.layout]),
            "range": list(self.range),
            "mean": self.mean,
            "std": self.std,
            "output_kind": self.output_kind,
        }


def _layout(shape: Shape, declared: str | None) -> str:
    """The input's declared shape (ints, or names/None for dynamic axes) -> a key of LAYOUTS."""
    if declared:
        if declared not in LAYOUTS:
            raise ModelError(f"the model card's input.layout {declared!r} is not one of {', '.join(LAYOUTS)}")
        return declared
    dims = shape[1:]

    def fits(want: tuple[int, ...]) -> bool:
        return len(dims) == len(want) and all(not isinstance(d, int) or d == w for d, w in zip(dims, want))

    matches = [name for name, want in LAYOUTS.items() if fits(want)]
    if not matches:
        raise ModelError(
            f"the model takes input of shape {_show(shape)}; digitrec feeds 28x28 digits as "
            f"(N, 1, 28, 28), (N, 28, 28, 1), (N, 28, 28) or (N, 784)"
        )
    # With dynamic sizes, (N, ?, ?, ?) fits both 4-D layouts: channels first, as PyTorch and ONNX use.
    return matches[0]


def _output_index(session: InferenceSession) -> int:
    """The output to read: the first one with 10 values per image (a model may also answer features)."""
    outputs = session.get_outputs()
    for i, o in enumerate(outputs):
        if o.shape and o.shape[-1] == 10:
            return i
    return 0


def _kind_from_card(kind: str | None) -> str | None:
    """'logits (apply softmax for probabilities)' -> 'logits'. Unknown words -> None (look further)."""
    if not isinstance(kind, str) or not kind.strip():
        return None
    word = kind.strip().split()[0].lower().replace("-", "_")
    return word if word in OUTPUT_KINDS else None


def _kind_from_graph(path: Path, output_name: str) -> str | None:
    """The operator that produces the output, looking through casts and reshapes -> its kind.
    None when `onnx` is not installed (the runtime does not need it) or the file cannot be read."""
    try:
        import onnx
    except ImportError:
        return None
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # noqa: BLE001 - onnxruntime already loaded the file; a parse quirk is not fatal
        return None
    producers = {out: node for node in graph.node for out in node.output}
    name = output_name
    for _ in range(len(graph.node)):
        node = producers.get(name)
        if node is None:
            return "logits"  # the output is an input or an initializer: nothing to learn
        if node.op_type in _FINAL_OPS:
            return _FINAL_OPS[node.op_type]
        if node.op_type not in _SHAPE_OPS or not node.input:
            return "logits"
        name = node.input[0]
    return "logits"


def _show(shape: Shape) -> str:
    return "(" + ", ".join(str(d) if isinstance(d, int) else "N" if i == 0 else "?" for i, d in enumerate(shape)) + ")"
