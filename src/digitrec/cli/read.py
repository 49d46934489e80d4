"""`digitrec read`: whole handwritten numbers -> digit strings."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--model",
    "model",
    type=click.Path(dir_okay=False),
    default=None,
    help="ONNX (.onnx) or Keras (.keras) model to use (default: the model shipped with digitrec).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array with an object per file.")
@click.option(
    "--debug",
    "debug_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write each image with the digits' boxes and predictions drawn on it to this folder.",
)
@click.option(
    "--keep-punctuation",
    is_flag=True,
    help="Keep decimal points, separators and minus signs in the text (7.50, 1,250.00, -5).",
)
@click.pass_context
def read(ctx, paths, model, as_json, debug_dir, keep_punctuation):
    """Read whole handwritten numbers (meter readings, amounts, postcodes) from images.

    PATHS are image files, folders (searched recursively) or '-' for standard input. Each number
    is split into digits, read left to right, one line of text per line of digits.

    \b
    Examples:
      digitrec read meter.jpg
      digitrec read scans/ --json
      digitrec read cheque.png --debug out/
      digitrec read amount.png --keep-punctuation
    """
    from digitrec.cli.inputs import expand_paths, read_input
    from digitrec.errors import DigitrecError
    from digitrec.preprocess.debug import write_png
    from digitrec.reading import draw_reading
    from digitrec.runtime import Recognizer

    recognizer = Recognizer(model)
    results = []
    for path in expand_paths(paths):
        entry = {"path": path, "text": None, "confidence": None, "digits": [], "lines": [], "error": None}
        try:
            reading = recognizer.read(read_input(path), debug=debug_dir is not None, keep_punctuation=keep_punctuation)
            entry.update(reading.to_dict())
            if debug_dir:
                name = "stdin" if path == "-" else Path(path).stem
                write_png(Path(debug_dir) / f"{name}.read.png", draw_reading(reading.stages["input"], reading))
        except DigitrecError as exc:
            entry["error"] = str(exc)
        results.append(entry)
        if not as_json:
            if entry["error"]:
                click.secho(f"{path}: error: {entry['error']}", fg="red", err=True)
            else:
                text = " / ".join(entry["lines"])
                click.echo(f"{path}: {text}  ({entry['confidence']:.0%})")
    if as_json:
        click.echo(json.dumps(results, indent=2))
    ctx.exit(1 if any(r["error"] for r in results) else 0)
