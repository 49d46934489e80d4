"""The base model of a fine-tuning run, as a PyTorch module: from a run folder or checkpoint, or from
a digitrec ONNX file (the shipped model exists only as ONNX); the same for the line reader.

An ONNX file made by `digitrec export` holds the same network with each batch norm folded into the
convolution before it (the exporter's constant folding): Conv(W, no bias) -> BN(gamma, beta, mean,
var) became Conv(W', b'). It is loaded back as Conv(W') -> BN(gamma=1, beta=b', mean=0, var=1-eps),
which computes exactly W'x + b'; every other weight (the Normalize buffers, the linear layer) keeps
its name. The module is then checked against the ONNX file's own logits. Its batch norms must stay
in eval mode (their statistics are folded away): `freeze_batch_norm`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from digitrec.errors import ModelError
from digitrec.modelfile import open_model
from digitrec.models import build_model

PARITY = 1e-3  # max abs logit difference allowed between the rebuilt module and the ONNX file


def load_base(model: Path | str | None) -> tuple[nn.Module, dict, Path]:
    """None (the shipped model), an .onnx file made by digitrec, a run folder or a checkpoint.pt
    -> (module in eval mode, its card or checkpoint metadata, the file)."""
    from digitrec.runtime import default_model_path

    path = Path(model) if model is not None else default_model_path()
    if path.suffix.lower() == ".onnx":
        module, card = module_from_onnx(path)
        return module, card, path
    from digitrec.checkpoint import load_model, resolve_checkpoint

    module, meta = load_model(path)
    return module, meta, resolve_checkpoint(path)


def module_from_onnx(path: Path | str) -> tuple[nn.Module, dict]:
    """A digitrec ONNX model -> (the PyTorch module it was exported from, its card)."""
    session, card = open_model(path)
    data = card.data if card else {}
    if "architecture" not in data or not isinstance(data.get("config"), dict):
        raise ModelError(
            f"{path}: its card does not say which digitrec network it is (architecture, config); "
            "finetune starts from a model digitrec trained: the shipped one, a run folder or its .onnx"
        )
    try:
        module = build_model(data["architecture"], **data["config"].get("model", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: cannot build its network {data['architecture']!r}: {exc}") from None
    load_onnx_weights(module, path, data["architecture"])
    check_parity(module, session, path, (16, 1, 28, 28))
    return module, data


def line_reader_from_onnx(path: Path | str) -> tuple[nn.Module, dict]:
    """A digitrec line reader (.onnx, `digitrec.read.line_reader`) -> (its `LineCNN`, its card). The
    shipped one exists only as ONNX; its network is rebuilt as `weights` says above, the output
    width from the card's alphabet, then checked on random lines of two widths."""
    from digitrec.models import LineCNN
    from digitrec.read.line_reader import DIGITS, HEIGHT

    session, card = open_model(path, "line reader", 1, require_input=True)
    if card.kind != "line-reader":
        raise ModelError(f"{path} is not a line reader (its card says kind={card.kind!r})")
    module = LineCNN(classes=len(str(card.data.get("alphabet", DIGITS))) + 1)
    load_onnx_weights(module, path, "line reader")
    for width in (64, 160):
        check_parity(module, session, path, (1, 1, HEIGHT, width))  # its batch is 1
    return module, card.data


def load_onnx_weights(module: nn.Module, path: Path | str, network: str) -> None:
    """Load the weights of the ONNX file `path`, exported from `module`'s network, into `module`
    (see the module's docstring: batch norms folded into the convolution before them); eval mode."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    state = module.state_dict()
    modules = dict(module.named_modules())
    loaded = set()
    for name, value in weights.items():  # the weights that kept their names
        if name in state and state[name].shape == value.shape:
            state[name] = value
            loaded.add(name)
    for node in graph.node:  # the convolutions, with their batch norm folded in
        if node.op_type != "Conv":
            continue
        conv_name = node.output[0].strip("/").split("/")[-2]  # "/net/net.1/Conv_output_0" -> "net.1"
        conv = modules.get(conv_name)
        if not isinstance(conv, nn.modules.conv._ConvNd):
            raise ModelError(f"{path}: its convolution {conv_name!r} is not in the {network} network")
        try:
            state[f"{conv_name}.weight"] = weights[node.input[1]]
            bias = weights[node.input[2]] if len(node.input) > 2 else torch.zeros(conv.out_channels)
        except KeyError as name:  # computed in the graph, not stored: not an export this can read
            raise ModelError(f"{path}: the weights of its convolution {conv_name!r} are not stored ({name})") from None
        loaded.add(f"{conv_name}.weight")
        prefix, index = conv_name.rsplit(".", 1)
        norm_name = f"{prefix}.{int(index) + 1}"
        norm = modules.get(norm_name)
        if conv.bias is None and isinstance(norm, nn.modules.batchnorm._BatchNorm):
            state[f"{norm_name}.weight"] = torch.ones_like(bias)
            state[f"{norm_name}.bias"] = bias
            state[f"{norm_name}.running_mean"] = torch.zeros_like(bias)
            state[f"{norm_name}.running_var"] = torch.full_like(bias, 1.0 - norm.eps)  # sqrt(var + eps) = 1
            loaded.update(f"{norm_name}.{k}" for k in ("weight", "bias", "running_mean", "running_var"))
        elif conv.bias is not None:
            state[f"{conv_name}.bias"] = bias
            loaded.add(f"{conv_name}.bias")
    missing = [k for k, v in state.items() if k not in loaded and v.dtype.is_floating_point]
    if missing:
        raise ModelError(f"{path}: no ONNX weights found for {', '.join(missing[:4])}")
    module.load_state_dict(state)
    module.eval()


def check_parity(module: nn.Module, session, path, shape: tuple[int, ...]) -> float:
    """The rebuilt module and the ONNX file answer the same logits on random ink-like images of `shape`."""
    x = (np.random.default_rng(0).random(shape) > 0.8).astype(np.float32)
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    diff = float(np.abs(got - expected).max())
    if not diff <= PARITY:
        raise ModelError(
            f"{path}: the network rebuilt from its ONNX weights disagrees with it (max abs logit difference {diff:.1e})"
        )
    return diff


def freeze_batch_norm(module: nn.Module) -> None:
    """Batch norms in eval mode (running statistics kept): a few hundred user images are too few to
    re-estimate them, and an ONNX-loaded base has them folded to mean 0, var 1."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
