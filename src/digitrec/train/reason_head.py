"""The rejector's reason head: *why* an input is no single digit, learned apart from *whether* it is.

The rejector's four outputs (`digitrec.reject.CLASSES`) decide whether an input is flagged
(P(digit) under the card's threshold) and, as the likeliest of the other three, the reason given.
Those reasons were learned from pairs and triples of digits: a longer number squeezed into 28x28 (a
cheque amount given to `predict`) came back "no ink" or "not a digit" where "several digits: use
read" is what the user needs.

The head is a small network (the rejector's 128 penultimate features -> 64 -> 3) trained on the
examples that are not one digit (`digitrec.train.negatives`: letters, scribbles, scrawls and shapes
-> not a digit; pairs and numbers of 4-6 digits -> several digits; blank and noise-only pages -> no
ink), the three classes weighted equally, the features' standardisation folded into its first
layer. It is grafted onto the rejector's ONNX file as a second output, `reasons` (logits over
`CLASSES[1:]`); the `logits` output and every weight before it stay as they were, so what is
flagged stays exactly what it was and only the reason given changes (`reject.Rejector.reasons`).

    python -m digitrec.train.reason_head REJECTOR.onnx [--examples runs/rejector] [--out PATH]

The examples are the rejector recipe's (`train.rejector`, cached in `--examples`/examples.npz);
the head is chosen by the share of right reasons per validation kind among those flagged (held-out
fonts and MNIST writers), written in the card's `rejector.reason_head`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from digitrec.errors import DigitrecError, ModelError
from digitrec.reject import REASONS_OUTPUT

HIDDEN = 64
EPOCHS = 30
PARITY_TOLERANCE = 1e-3  # max abs difference of the head's logits, onnxruntime vs numpy


def features_name(proto) -> str:
    """The tensor the rejector's last layer reads: the input of the node that writes `logits`."""
    for node in proto.graph.node:
        if "logits" in node.output and node.op_type in ("Gemm", "MatMul"):
            return str(node.input[0])
    raise ModelError("not a digitrec rejector: no final Gemm writes 'logits'")


def open_rejector(path: Path):
    """-> (the ONNX proto, the card) of the rejector at `path`, or a ModelError the user can act on:
    the file is missing, is no ONNX model, or is no digitrec rejector (a card with the rejector's
    labels and `rejector` section, a final Gemm writing `logits`). Checked before any other work."""
    import onnx

    from digitrec.modelfile.read import open_model
    from digitrec.reject import CLASSES

    _, card = open_model(path, "rejector", threads=1, require_input=True)
    assert card is not None  # require_input: a file without a card raised ModelError
    if tuple(card.labels or ()) != CLASSES or not isinstance(card.data.get("rejector"), dict):
        raise ModelError(
            f"{path} is not a digitrec rejector: its card has labels {card.labels} and no `rejector` section "
            "(make one with python -m digitrec.train.rejector --export)"
        )
    proto = onnx.load(str(path))
    features_name(proto)
    return proto, card


def rejector_outputs(proto, card, images: np.ndarray, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The rejector `proto` (its card) on uint8 (N, 28, 28) -> (logits (N, 4), features (N, F))."""
    import onnx
    import onnxruntime as ort

    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    name = features_name(copy)
    del copy.graph.output[1:]  # a head grafted before is replaced, not fed
    copy.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(copy.SerializeToString(), options, providers=["CPUExecutionProvider"])
    logits, features = [], []
    for start in range(0, len(images), 2048):
        x = card.input.scale(images[start : start + 2048])[:, None]
        z, f = session.run(["logits", name], {card.input.name: x})
        logits.append(z)
        features.append(f.reshape(len(f), -1))
    return np.concatenate(logits), np.concatenate(features)


def fit_head(
    features: np.ndarray, reasons: np.ndarray, hidden: int = HIDDEN, epochs: int = EPOCHS, seed: int = 0
) -> dict[str, np.ndarray]:
    """Features (N, F) and reasons 0..2 (indices into CLASSES[1:]) -> the head's weights, with the
    standardisation folded in: {"w1" (F, hidden), "b1", "w2" (hidden, 3), "b2"}. Classes weighted
    equally (there are three times as many 'not a digit' examples as 'several digits')."""
    import torch

    # A feature constant over these examples (a ReLU unit they never wake) is left unscaled: divided
    # by its ~0 spread, its first-layer weights would be ~1e5 once folded in, and an input that does
    # wake it would swamp the head. (The shipped head had none: its largest |w1| is 1.5.)
    mean, std = features.mean(axis=0), features.std(axis=0)
    std = np.where(std > 1e-4, std + 1e-6, 1.0)
    x = torch.tensor((features - mean) / std, dtype=torch.float32)
    y = torch.tensor(reasons, dtype=torch.long)
    counts = np.bincount(reasons, minlength=3)
    weight = torch.tensor(len(reasons) / (3 * np.maximum(counts, 1)), dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 3))
    optimizer = torch.optim.AdamW(net.parameters(), 3e-3, weight_decay=1e-2)
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), 256):
            batch = order[start : start + 256]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(x[batch]), y[batch], weight=weight).backward()
            optimizer.step()
    w1 = net[0].weight.detach().numpy().T / std[:, None]  # (x - mean) / std @ W = x @ (W / std) - ...
    b1 = net[0].bias.detach().numpy() - mean @ w1
    return {
        "w1": w1.astype(np.float32),
        "b1": b1.astype(np.float32),
        "w2": net[2].weight.detach().numpy().T.astype(np.float32),
        "b2": net[2].bias.detach().numpy().astype(np.float32),
    }


def head_logits(weights: dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
    """The head in numpy (the reference the grafted graph is checked against)."""
    hidden = np.maximum(features @ weights["w1"] + weights["b1"], 0.0)
    out: np.ndarray = hidden @ weights["w2"] + weights["b2"]
    return out


def graft(proto, weights: dict[str, np.ndarray]):
    """A copy of the rejector `proto` with the head as a second output, `reasons` (N, 3); a head
    grafted before is removed first."""
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(proto)
    graph = out.graph
    prefix = "reason_head/"
    keep = [n for n in graph.node if not n.name.startswith(prefix)]
    del graph.node[:]
    graph.node.extend(keep)
    keep_init = [t for t in graph.initializer if not t.name.startswith(prefix)]
    del graph.initializer[:]
    graph.initializer.extend(keep_init)
    del graph.output[1:]
    features = features_name(out)
    for key in ("w1", "b1", "w2", "b2"):
        graph.initializer.append(numpy_helper.from_array(weights[key], prefix + key))
    graph.node.extend(
        [
            helper.make_node(
                "Gemm", [features, prefix + "w1", prefix + "b1"], [prefix + "hidden"], name=prefix + "fc1"
            ),
            helper.make_node("Relu", [prefix + "hidden"], [prefix + "relu"], name=prefix + "relu"),
            helper.make_node(
                "Gemm", [prefix + "relu", prefix + "w2", prefix + "b2"], [REASONS_OUTPUT], name=prefix + "fc2"
            ),
        ]
    )
    graph.output.append(helper.make_tensor_value_info(REASONS_OUTPUT, onnx.TensorProto.FLOAT, ["batch", 3]))
    onnx.checker.check_model(out)
    return out


def reason_accuracy(
    p_digit: np.ndarray, threshold: float, predicted: np.ndarray, labels: np.ndarray, kinds: np.ndarray
) -> dict[str, float]:
    """Per kind of example that is not one digit: the share of right reasons among those flagged."""
    flagged = p_digit < threshold
    out = {}
    for kind in sorted(set(kinds[labels > 0].tolist())):
        rows = (kinds == kind) & flagged
        if rows.any():
            out[str(kind)] = round(float(np.mean(predicted[rows] == labels[rows])), 4)
    return out


def add_reason_head(path: Path, data: dict, out: Path | None = None, seed: int = 0, log=print) -> dict:
    """Fit the head on `data` (`train.rejector`'s examples: "train", "test", "test_kinds") with the
    rejector at `path`, graft it, and write the file to `out` (default: `path`, replaced) with the
    card's `rejector.reason_head`: what it was trained on and its right reasons per validation kind,
    beside the four-output argmax's. -> the new card."""
    import onnx

    from digitrec.files import atomic_path, atomic_write
    from digitrec.modelfile.card import FORMAT, ModelCard, card_path_for
    from digitrec.modelfile.read import open_session, softmax
    from digitrec.modelfile.write import set_card
    from digitrec.reject import CLASSES, DIGIT

    out = out or path
    proto, card = open_rejector(path)
    (x, y), (xv, yv), kinds = data["train"], data["test"], np.asarray(data["test_kinds"])
    not_one = y != DIGIT
    _, features = rejector_outputs(proto, card, x[not_one])
    log(f"reason head: {int(not_one.sum()):,} training examples that are not one digit")
    weights = fit_head(features, y[not_one] - 1, seed=seed)
    grafted = graft(proto, weights)

    logits, val_features = rejector_outputs(proto, card, xv)
    threshold = float(card.data["rejector"]["threshold"])
    p_digit = softmax(logits / card.temperature)[:, DIGIT]
    before = reason_accuracy(p_digit, threshold, 1 + softmax(logits)[:, 1:].argmax(axis=1), yv, kinds)
    reference = head_logits(weights, val_features)
    after = reason_accuracy(p_digit, threshold, 1 + reference.argmax(axis=1), yv, kinds)
    head_card: dict[str, object] = {
        "output": REASONS_OUTPUT,
        "classes": list(CLASSES[1:]),
        "design": f"penultimate features -> {HIDDEN} -> 3, classes weighted equally, {EPOCHS} epochs, seed {seed}",
        "training_examples": {CLASSES[k]: int((y == k).sum()) for k in range(1, len(CLASSES))},
        "validation_right_reasons": after,
        "validation_right_reasons_without": before,
    }
    data_card = {"format": FORMAT, **{k: v for k, v in card.data.items() if k != "format"}}
    data_card["rejector"] = {**card.data["rejector"], "reason_head": head_card}
    # One write of the file, graph and card together (as `modelfile.write` writes every model): the
    # target is never left with a head its card does not describe.
    with atomic_path(out) as tmp:
        onnx.save(grafted, str(tmp))
        check = open_session(tmp, threads=1)
        probe = card.input.scale(xv[:256])[:, None]
        z, reasons = check.run(["logits", REASONS_OUTPUT], {card.input.name: probe})
        if not np.array_equal(z, logits[:256]):
            gap = float(np.abs(z - logits[:256]).max())
            raise ModelError(f"grafting the head changed the rejector's logits (by up to {gap:g}); not written")
        gap = float(np.abs(reasons - reference[:256]).max())
        if not gap <= PARITY_TOLERANCE:
            raise ModelError(f"the grafted head differs from its numpy reference by {gap:g}; not written")
        head_card["parity_max_abs_diff"] = gap
        ModelCard.from_dict(data_card, str(out), require_input=True)  # what we write, we can read
        set_card(grafted, data_card)
        onnx.save(grafted, str(tmp))
    atomic_write(card_path_for(out), json.dumps(data_card, indent=2) + "\n")
    log("right reasons among the flagged validation examples (without the head -> with it):")
    for kind in after:
        log(f"  {kind:12s} {before[kind]:7.1%} -> {after[kind]:7.1%}")
    return data_card


def main(argv: list[str] | None = None) -> None:
    from digitrec.files import check_writable
    from digitrec.train.rejector import WRITERS_FILE, _cached_data

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rejector", type=Path, help="the rejector's ONNX file")
    parser.add_argument("--examples", type=Path, default=Path("runs/rejector"), help="where examples.npz is (or goes)")
    parser.add_argument("--scale", type=float, default=1.0, help="the rejector recipe's --scale of the examples")
    parser.add_argument(
        "--examples-seed", type=int, default=0, help="the rejector recipe's --seed the examples were drawn with"
    )
    parser.add_argument("--out", type=Path, default=None, help="write here instead of replacing the rejector")
    parser.add_argument("--seed", type=int, default=0, help="the head's own seed (its initial weights and order)")
    args = parser.parse_args(argv)
    # What would fail at the end fails now, before minutes (at --scale 1, half an hour) of drawing.
    open_rejector(args.rejector)
    if args.out is not None and args.out.suffix.lower() != ".onnx":
        raise ModelError(f"--out must end in .onnx, got {args.out.name}")
    check_writable(args.out or args.rejector)
    data = _cached_data(args.examples, args.scale, args.examples_seed, WRITERS_FILE)
    add_reason_head(args.rejector, data, args.out, seed=args.seed)


if __name__ == "__main__":
    try:
        main()
    except DigitrecError as exc:
        sys.exit(f"Error: {exc}")
