"""The one ONNX writer: every model file digitrec makes (`digitrec export` of a checkpoint or a
`.keras` file, the verifier's and the line reader's training) is written here, the same way:

  1. the exporter writes the graph to a temporary file beside the target;
  2. onnxruntime runs it on probe inputs, and its outputs are compared with the source model's
     (PyTorch or Keras) on the same inputs: probabilities by default, max abs difference below
     PARITY_TOLERANCE, or the file is not written;
  3. the card is checked (`ModelCard`, input contract required), stamped with the format version
     and the parity measured, and stored in metadata_props["digitrec"];
  4. onnx.checker checks the whole file; then it is renamed over the target (`files.atomic_path`),
     and the card is written beside it (model.onnx -> model_card.json), also atomically.

torch is imported only by `torch_to_onnx`, keras only by its caller.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from digitrec.errors import ModelError
from digitrec.files import atomic_path, atomic_write
from digitrec.modelfile.card import CARD_KEY, FORMAT, ModelCard, card_path_for
from digitrec.modelfile.read import softmax

if TYPE_CHECKING:  # for annotations only: torch stays imported by torch_to_onnx alone
    import onnx
    import torch
    from onnxruntime import InferenceSession

OPSET = 17
PARITY_TOLERANCE = 1e-4  # max abs difference of probabilities (or of raw outputs, scaled), ONNX vs the source


def torch_to_onnx(
    model: torch.nn.Module, path: Path, example: np.ndarray, dynamic_axes: dict[str, dict[int, str]]
) -> None:
    """A PyTorch module -> ONNX at `path`: input `image`, output `logits`, the given dynamic axes."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(
            model.eval(),
            (torch.from_numpy(example),),
            str(path),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def torch_reference(model: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """What the PyTorch model answers for a float32 batch (the parity check's reference)."""
    import torch

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out: np.ndarray = model.eval()(torch.from_numpy(x)).numpy()
        return out

    return run


def write_model(
    out: Path | str,
    *,
    export: Callable[[Path], None],
    probes: Sequence[np.ndarray],
    reference: Callable[[np.ndarray], np.ndarray],
    card: dict[str, object] | Callable[[InferenceSession, list[np.ndarray]], dict[str, object]],
    compare: Callable[[np.ndarray], np.ndarray] = softmax,
    relative: bool = False,
    output_index: int = 0,
    card_path: Path | str | Literal[False] | None = None,
    source: str = "PyTorch",
    log: Callable[[str], None] = lambda m: None,
) -> dict[str, object]:
    """Write the ONNX model `out` and its card; return the card (with path, card_path, bytes).

    export(tmp)      writes the graph to the temporary path
    probes           input batches for the parity check, fed to the ONNX model as they are
    reference(x)     the source model's raw output for one probe batch
    card             the card, or card(session, outputs) -> card, called after the parity check
                     with the ONNX session and its raw outputs on the probes (e.g. to measure accuracy)
    compare          what is compared: softmax (probabilities) or the raw outputs (lambda z: z)
    relative         allow PARITY_TOLERANCE x the largest |output| when that is above 1 (raw outputs)
    card_path        where the card goes; None: beside `out`; False: nowhere
    """
    import onnx

    from digitrec.modelfile.read import open_session

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ModelError(f"--out must end in .onnx, got {out.name}")
    with atomic_path(out) as tmp:
        log(f"exporting to ONNX ({out.name})")
        export(tmp)
        session = open_session(tmp, threads=1)
        input_name = session.get_inputs()[0].name
        outputs = [session.run(None, {input_name: x})[output_index] for x in probes]
        diff, allowed = 0.0, PARITY_TOLERANCE
        for x, got in zip(probes, outputs):
            expected = np.asarray(reference(x))
            diff = max(diff, float(np.abs(compare(got.reshape(expected.shape)) - compare(expected)).max()))
            if relative:
                allowed = max(allowed, PARITY_TOLERANCE * float(np.abs(expected).max()))
        what = "probability" if compare is softmax else "output"
        log(f"ONNX vs {source} on {sum(len(x) for x in probes):,} probe inputs: max abs {what} difference {diff:.2e}")
        if not diff <= allowed:
            raise ModelError(
                f"the ONNX model disagrees with {source}: max abs {what} difference {diff:.2e} "
                f"(allowed {allowed:.0e}); not written"
            )
        data = dict(card(session, outputs) if callable(card) else card)
        data = {"format": FORMAT, **data, "onnx_parity_max_abs_diff": diff}
        ModelCard.from_dict(data, str(out), require_input=True)  # what we write, we can read
        proto = onnx.load(str(tmp))
        set_card(proto, data)
        proto.producer_name = "digitrec"
        try:
            onnx.checker.check_model(proto)
        except onnx.checker.ValidationError as exc:
            raise ModelError(f"the exported ONNX model is not valid ({exc}); not written") from None
        onnx.save(proto, str(tmp))
    result = dict(data)
    if card_path is not False:
        card_file = Path(card_path) if card_path else card_path_for(out)
        atomic_write(card_file, json.dumps(data, indent=2) + "\n")
        result["card_path"] = str(card_file)
    result["path"], result["bytes"] = str(out), out.stat().st_size
    return result


def rewrite_card(
    path: Path | str, card: dict[str, object], card_path: Path | str | Literal[False] | None = None
) -> dict[str, object]:
    """Replace only the card of the ONNX model at `path` (e.g. a refitted temperature); the graph,
    weights and every other metadata entry stay byte for byte (checked before the rename)."""
    import onnx

    path = Path(path)
    proto = onnx.load(str(path))
    graph_bytes = proto.graph.SerializeToString()
    data = {"format": FORMAT, **card}
    ModelCard.from_dict(data, str(path), require_input=True)
    set_card(proto, data)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
        if onnx.load(str(tmp)).graph.SerializeToString() != graph_bytes:
            raise ModelError(f"rewriting the card of {path} changed its graph; not written")
    if card_path is not False:
        atomic_write(Path(card_path) if card_path else card_path_for(path), json.dumps(data, indent=2) + "\n")
    return data


def set_card(proto: onnx.ModelProto, data: dict[str, object]) -> None:
    """Put the card `data` in the ONNX `proto`'s metadata_props[CARD_KEY], in place; every other
    metadata entry stays, in its order."""
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != CARD_KEY]
    del proto.metadata_props[:]
    for key, value in [*kept, (CARD_KEY, json.dumps(data))]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
