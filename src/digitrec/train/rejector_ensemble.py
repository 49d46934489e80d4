"""Several rejectors as one ONNX file: their temperature-scaled logits averaged.

    python -m digitrec.train.rejector_ensemble OUT.onnx FIRST.onnx SECOND.onnx [...] [--examples runs/rejector]

Each retrained rejector moves the real sources' flagged shares by a few images either way (one
flags more cheque digits, another more Semeion scans: docs/trust.md, Limits); their average keeps
what they agree on. The members' graphs are merged into one (`average`), each member's logits
divided by its own temperature and the mean taken, so the file is a rejector like any other: the
runtime (`digitrec.reject`) reads its `logits` with temperature 1 from its card. The first member's
reason head (`reasons`, `train.reason_head`) stays: why an input is flagged is its word.

The threshold is chosen as `train.rejector` chooses it, by its rule (`DIGITS_FLAGGED` of the
validation digits), on the rejector recipe's validation examples (held-out fonts and MNIST writers;
cached in --examples as `train.rejector` caches them), never on real user data. The card says
which members, with their SHA-256 and temperatures.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

from digitrec.errors import DigitrecError


def average(protos: list, temperatures: list[float]):
    """ONNX rejector protos (input `image`, output `logits`; the first may have `reasons`) and their
    temperatures -> one proto whose `logits` are mean_i(logits_i / T_i). The first proto is changed
    in place and returned; the others' names get a prefix of their own."""
    import onnx
    from onnx import helper, numpy_helper

    first = protos[0]
    graph = first.graph
    for node in graph.node:
        node.input[:] = ["m0_logits" if name == "logits" else name for name in node.input]
        node.output[:] = ["m0_logits" if name == "logits" else name for name in node.output]
    for k, proto in enumerate(protos[1:], 1):
        prefix = f"m{k}_"
        for node in proto.graph.node:
            node.input[:] = [name if name == "image" else prefix + name for name in node.input]
            node.output[:] = [prefix + name for name in node.output]
            node.name = prefix + node.name
        for tensor in proto.graph.initializer:
            tensor.name = prefix + tensor.name
        graph.node.extend(proto.graph.node)
        graph.initializer.extend(proto.graph.initializer)
    terms = []
    for k, temperature in enumerate(temperatures):
        weight = np.array(1.0 / (temperature * len(temperatures)), np.float32)
        graph.initializer.append(numpy_helper.from_array(weight, f"m{k}_weight"))
        graph.node.append(helper.make_node("Mul", [f"m{k}_logits", f"m{k}_weight"], [f"m{k}_scaled"]))
        terms.append(f"m{k}_scaled")
    graph.node.append(helper.make_node("Sum", terms, ["logits"]))
    onnx.checker.check_model(first)
    return first


def build(out: Path, members: list[Path], examples: Path, log=print) -> dict:
    """Write the averaged rejector of `members` to `out` with its card and threshold -> the card."""
    import onnx

    from digitrec.files import atomic_path
    from digitrec.modelfile.write import rewrite_card, set_card
    from digitrec.train.reason_head import open_rejector
    from digitrec.train.rejector import WRITERS_FILE, _cached_data, readable_digits, threshold_section

    if len(members) < 2:
        raise DigitrecError("an ensemble needs at least two rejectors")
    protos, cards = zip(*(open_rejector(path) for path in members))  # each checked before any work
    data = readable_digits(_cached_data(examples, 1.0, 0, WRITERS_FILE))
    proto = average(list(protos), [c.temperature for c in cards])
    card = dict(cards[0].data)
    card["name"] = "digitrec-rejector-ensemble"
    card["calibration"] = {
        "method": "temperature",
        "temperature": 1.0,
        "note": "each member's logits are divided by its own temperature inside the graph",
    }
    card["ensemble"] = [
        {
            "file": path.name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "temperature": c.temperature,
            "trained": c.data.get("trained"),
            "config": c.data.get("config"),
        }
        for path, c in zip(members, cards)
    ]
    set_card(proto, card)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))
    # The threshold from the file itself, as the runtime computes its probabilities.
    card["rejector"] = {**card["rejector"], **threshold_section(out, data, log)}
    return rewrite_card(out, {k: v for k, v in card.items() if k != "format"})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument(
        "members", type=Path, nargs="+", help="rejector ONNX files; the first one's reason head is kept"
    )
    parser.add_argument(
        "--examples",
        type=Path,
        default=Path("runs/rejector"),
        help="run folder of the recipe's examples (examples.npz)",
    )
    args = parser.parse_args(argv)
    build(args.out, args.members, args.examples)


if __name__ == "__main__":
    try:
        main()
    except DigitrecError as exc:
        sys.exit(f"Error: {exc}")
