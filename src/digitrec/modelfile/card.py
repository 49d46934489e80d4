"""The model card: what a model file says about itself, and the one place that checks it.

A card is a JSON object stored in the ONNX file's metadata_props["digitrec"] (and, for people and
tools that do not open ONNX files, beside it: model.onnx -> model_card.json). The runtime reads
only a few fields, the *contract*; everything else (architecture, accuracy, history, commit ...)
is description, kept as written:

  format          "digitrec-card/1"; absent in cards written before it existed (the shipped models),
                  which are version 1
  name, kind      strings; kind "line-reader" marks the reader's line model
  input           name (the ONNX input), range [lo, hi] (pixel 0 -> lo, 255 -> hi), mean and std
                  (applied after the range), layout (NCHW, NHWC, NHW, NF)
  output          kind: logits, scores, probabilities, log_probabilities, sigmoid_logits (the first
                  word counts: "logits (apply softmax for probabilities)")
  labels          one string per output
  calibration     optional: {"temperature": T, ...}; probabilities = softmax(logits / T) (see
                  digitrec.calibration). Absent in older cards: T = 1, the plain softmax
  line_reader,    optional file names of the networks a digit model reads numbers with, when not
  reader_digits   the shipped ones or itself: the line reader (`finetune --numbers` writes one),
                  and the digit model `read` scores its cuts with (the shipped model's card names
                  the one the reader's settings were chosen with). A relative name is beside the
                  model (`companion_path`)

A card that breaks the contract (not JSON, not an object, a mean that is not a number, a std of 0
that would turn every pixel into NaN ...) is a ModelError when the model is opened, never a stack
trace or a NaN later. numpy only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digitrec.errors import ModelError

CARD_KEY = "digitrec"  # the ONNX metadata_props key
FORMAT = "digitrec-card/1"
VERSION = 1


def card_path_for(onnx_path: Path | str) -> Path:
    """model.onnx -> model_card.json, beside it (the shipped assets use the same names)."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(f"{onnx_path.stem}_card.json")


def companion_path(model: Path | str, card: Mapping[str, object], key: str, what: str) -> Path | None:
    """The file `card[key]` names for the model at `model` (a relative name is beside it), or None
    when the card names none. ModelError when it is named but missing, or is no file name at all:
    the files go together, and a card from elsewhere is untrusted input."""
    name = card.get(key)
    if name is None:
        return None
    if not isinstance(name, str) or not name.strip():
        raise ModelError(f"{model}: its card's {key!r} should name a file, got {json.dumps(name)[:80]}")
    try:  # `~nosuchuser/x` (RuntimeError), a name too long for the file system (OSError)
        path = Path(name).expanduser()
        path = path if path.is_absolute() else Path(model).parent / path
        found = path.is_file()
    except (OSError, RuntimeError, ValueError):
        found = False
    if not found:
        shown = name if name.isprintable() else json.dumps(name)  # no control characters on the terminal
        shown = shown if len(shown) <= 100 else shown[:100] + "..."
        raise ModelError(f"{model}: its card names the {what} {shown}, which is not there: keep the files together")
    return path


def scale_pixels(pixels: np.ndarray, range_: tuple[float, float], mean: float, std: float) -> np.ndarray:
    """uint8 pixels -> float32 as a model wants them: 0 -> lo, 255 -> hi, then (x - mean) / std."""
    x = pixels.astype(np.float32)
    lo, hi = range_
    if (lo, hi) == (0.0, 1.0):
        x /= 255.0  # the exact arithmetic of digitrec's training data: same answers, bit for bit
    else:
        x *= (hi - lo) / 255.0
        x += lo
    if (mean, std) != (0.0, 1.0):
        x -= mean
        x /= std
    return x


@dataclass(frozen=True)
class InputContract:
    """How pixels are fed: `name` None means the model's only input (cards written by hand may omit it)."""

    name: str | None = None
    range: tuple[float, float] = (0.0, 1.0)
    mean: float = 0.0
    std: float = 1.0
    layout: str | None = None

    def scale(self, pixels: np.ndarray) -> np.ndarray:
        return scale_pixels(pixels, self.range, self.mean, self.std)


@dataclass(frozen=True)
class ModelCard:
    """A checked card. `data` is the whole card as written (for display and --json)."""

    version: int = VERSION
    name: str | None = None
    kind: str | None = None
    input: InputContract = InputContract()
    output_kind: str | None = None
    labels: tuple[str, ...] | None = None
    temperature: float = 1.0  # card["calibration"]["temperature"]; 1.0 when the card has none
    data: dict[str, object] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "the model", *, require_input: bool = False) -> ModelCard:
        try:
            data = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise ModelError(f"{where}: its model card (metadata '{CARD_KEY}') is not JSON: {exc}") from None
        return cls.from_dict(data, where, require_input=require_input)

    @classmethod
    def from_dict(cls, data: object, where: str = "the model", *, require_input: bool = False) -> ModelCard:
        def bad(what: str) -> ModelError:
            return ModelError(f"{where}: its model card is malformed: {what}")

        if not isinstance(data, dict):
            raise bad(f"expected a JSON object, got {type(data).__name__}")
        version = _version(data.get("format"), bad)
        name, kind = _string(data, "name", bad), _string(data, "kind", bad)
        spec = data.get("input")
        if spec is None:
            if require_input:
                raise bad("no 'input' (the input name and pixel scaling the model was trained with)")
            spec = {}
        if not isinstance(spec, dict):
            raise bad(f"'input' should be an object, got {type(spec).__name__}")
        out = data.get("output", {})
        if not isinstance(out, dict):
            raise bad(f"'output' should be an object, got {type(out).__name__}")
        range_ = _range(spec.get("range"), bad)
        std = _number(spec, "std", 1.0, bad)
        if std <= 0:
            raise bad(f"input.std is {std:g}; it divides the pixels, so it must be above 0")
        contract = InputContract(
            name=_string(spec, "name", bad, "input."),
            range=range_,
            mean=_number(spec, "mean", 0.0, bad),
            std=std,
            layout=_string(spec, "layout", bad, "input."),
        )
        if require_input and contract.name is None:
            raise bad("input.name is missing (the ONNX input the pixels go to)")
        labels = data.get("labels")
        if labels is not None and not (isinstance(labels, list) and all(isinstance(s, str) for s in labels)):
            raise bad("'labels' should be a list of strings")
        output_kind = out.get("kind")
        if output_kind is not None and not isinstance(output_kind, str):
            raise bad("output.kind should be a string")
        return cls(
            version=version,
            name=name,
            kind=kind,
            input=contract,
            output_kind=output_kind,
            labels=tuple(labels) if labels is not None else None,
            temperature=_temperature(data.get("calibration"), bad),
            data=data,
        )

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.data, indent=indent)


def _version(value: object, bad: Callable[[str], ModelError]) -> int:
    if value is None:
        return VERSION  # cards from before the format key (the shipped models) are version 1
    prefix = FORMAT.rsplit("/", 1)[0] + "/"
    if not isinstance(value, str) or not value.startswith(prefix) or not value[len(prefix) :].isdigit():
        raise bad(f"unknown format {value!r} (expected {FORMAT})")
    version = int(value[len(prefix) :])
    if version > VERSION:
        raise ModelError(
            f"the model card is format {value}, newer than this digitrec reads ({FORMAT}): upgrade digitrec"
        )
    return version


def _temperature(calibration: object, bad: Callable[[str], ModelError]) -> float:
    if calibration is None:
        return 1.0
    if not isinstance(calibration, dict):
        raise bad(f"'calibration' should be an object, got {type(calibration).__name__}")
    value = calibration.get("temperature", 1.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise bad(f"calibration.temperature should be a number above 0, got {value!r}")
    return float(value)


def _string(spec: dict[str, object], key: str, bad: Callable[[str], ModelError], prefix: str = "") -> str | None:
    value = spec.get(key)
    if value is not None and not isinstance(value, str):
        raise bad(f"{prefix}{key} should be a string, got {value!r}")
    return value


def _number(spec: dict[str, object], key: str, default: float, bad: Callable[[str], ModelError]) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad(f"input.{key} should be a finite number, got {value!r}")
    return float(value)


def _range(value: object, bad: Callable[[str], ModelError]) -> tuple[float, float]:
    if value is None:
        return (0.0, 1.0)
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    ):
        raise bad(f"input.range should be two numbers, like [0, 1]; got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if lo == hi:
        raise bad(f"input.range {value!r} maps every pixel to the same value")
    return lo, hi
