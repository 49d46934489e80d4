"""`digitrec export CHECKPOINT --out model.onnx`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from digitrec.errors import DigitrecError


@click.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("model.onnx"),
    show_default=True,
    help="Where to write the ONNX model.",
)
@click.option("--name", help="Model name for the card.  [default: digitrec-RECIPE]")
@click.option(
    "--card",
    "card_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the model card JSON.  [default: beside --out, model.onnx -> model_card.json]",
)
@click.option("--json", "as_json", is_flag=True, help="Print the model card (without history) as one JSON line.")
@click.option(
    "--calibrate",
    is_flag=True,
    help="CHECKPOINT is a digitrec .onnx model: refit its temperature on its run's validation "
    "images and rewrite only its card, in place (the graph is unchanged).",
)
def export(checkpoint, out, name, card_path, as_json, calibrate):
    """Export a trained checkpoint to ONNX, with a model card.

    \b
    CHECKPOINT is a run folder (runs/cnn) or its checkpoint.pt, or a Keras 3 model (.keras,
    converted on Keras's PyTorch backend: the 'keras' extra). The ONNX model takes
    `image` float32 (N, 1, 28, 28) in [0, 1], white ink on black, and returns `logits` (N, 10);
    its metadata holds the model card (architecture, parameters, FLOPs, test accuracy, training
    time, seed, config, MNIST hashes, source commit, training history, and the calibration: the
    temperature T fitted on the run's 5,000 validation images, so that the runtime's probabilities
    softmax(logits / T) are as sure as the model is right). Before writing, the ONNX model is checked
    against PyTorch on 1,000 test images (max abs probability difference < 1e-4).

    \b
    Example:
      digitrec export runs/cnn --out model.onnx
      digitrec predict --model model.onnx digit.png
      digitrec export tutorial.keras --out tutorial.onnx
      digitrec export old.onnx --calibrate
    """
    suffix = checkpoint.suffix.lower()
    if calibrate:
        return _calibrate(checkpoint, as_json)
    if suffix in (".keras", ".h5", ".hdf5"):
        return _export_keras(checkpoint, out, name, card_path, as_json)
    if checkpoint.is_file() and suffix not in (".pt", ".pth"):
        raise DigitrecError(f"cannot export {checkpoint.name}: pass a digitrec run folder or its checkpoint.pt")

    from digitrec.extras import require

    require("train", "torch", "onnx")
    from digitrec.cli import output
    from digitrec.export import export_onnx

    console = output.console(stderr=True)
    card = export_onnx(checkpoint, out, name=name, card_path=card_path, log=console.print)
    if card.get("unfinished"):
        from rich.markup import escape

        console.print(f"[yellow]Warning:[/yellow] the run is unfinished: {escape(card['unfinished'])}", highlight=False)
    if as_json:
        click.echo(json.dumps({k: v for k, v in card.items() if k not in ("history", "layers")}))
    else:
        click.echo(
            f"wrote {card['path']} ({card['bytes'] / 1e6:.2f} MB, {card['parameters']:,} parameters, "
            f"test accuracy {card['test_accuracy']:.2%}) and {card['card_path']}"
        )


def _export_keras(source: Path, out: Path, name, card_path, as_json: bool) -> None:
    """A Keras model -> ONNX with a card saying how to feed it and read its output (see digitrec.keras_export)."""
    from digitrec.cli import output
    from digitrec.keras_export import export_keras

    card = export_keras(source, out, name=name, card_path=card_path, log=output.console(stderr=True).print)
    if as_json:
        click.echo(json.dumps({k: v for k, v in card.items() if k != "layers"}))
    else:
        click.echo(
            f"wrote {card['path']} ({card['bytes'] / 1e6:.2f} MB, {card['parameters']:,} parameters, "
            f"output: {card['output']['kind'].split()[0]}) and {card['card_path']}"
        )


def _calibrate(model: Path, as_json: bool) -> None:
    from digitrec.cli import output

    if model.suffix.lower() != ".onnx":
        raise DigitrecError(f"--calibrate rewrites a digitrec .onnx model in place; got {model.name}")
    from digitrec.extras import require

    require("train", "torch", "onnx")  # the run's validation split comes from the training code
    from digitrec.export import calibrate_onnx

    card = calibrate_onnx(model, log=output.console(stderr=True).print)
    if as_json:
        click.echo(json.dumps(card["calibration"]))
    else:
        click.echo(f"calibrated {model}: temperature {card['calibration']['temperature']:.4f}")
