"""`digitrec read`: whole handwritten numbers -> digit strings."""

from __future__ import annotations

from pathlib import Path

import click

from digitrec.cli.output import DebugFiles, csv_option, echo_json_lines, min_confidence_option, write_csv
from digitrec.read.pattern import MAX_REPEAT


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--model",
    "model",
    type=click.Path(dir_okay=False),
    default=None,
    help="ONNX (.onnx) or Keras (.keras) model to use (default: the model shipped with digitrec).",
)
@click.option(
    "--digits",
    type=click.IntRange(1, MAX_REPEAT),
    default=None,
    help="Each number has exactly this many digits (a 4-digit year, a 5-digit postcode): the reader "
    "searches only readings of that length.",
)
@click.option(
    "--pattern",
    default=None,
    metavar="REGEX",
    help=r"Each number matches this regular expression over the digits, whole (e.g. '(19|20)\d\d', "
    r"'[1-9]\d{3}'): the reader searches only readings that match. Digits, ., \d, [classes], "
    "( | ), and the repeats * + ? {m,n}.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON array: {path, text, confidence, uncertain, reason, digits, lines, error} per file, "
    "one per line.",
)
@csv_option
@min_confidence_option(
    "Flag a number whose calibrated confidence is below this as uncertain (reason 'low confidence'), and each digit below it."
)
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
def read(ctx, paths, model, digits, pattern, as_json, csv_path, min_confidence, debug_dir, keep_punctuation):
    """Read whole handwritten numbers (meter readings, amounts, postcodes) from images.

    PATHS are image files, folders (searched recursively) or '-' for standard input. Each number
    is split into digits, read left to right, one line of text per line of digits. The
    confidence is the probability that the whole number is right. A file that fails gets its
    own error and the others go on; the exit status is 1 if any failed.

    \b
    Examples:
      digitrec read meter.jpg
      digitrec read year.png --digits 4
      digitrec read postcode.jpg --pattern '[1-9]\\d{4}'
      digitrec read scans/ --json --min-confidence 0.9
      digitrec read cheques/ --csv amounts.csv --debug out/
      digitrec read amount.png --keep-punctuation
    """
    from digitrec.cli.inputs import expand_paths, input_or_error
    from digitrec.errors import DigitrecError
    from digitrec.read.pattern import constraint
    from digitrec.runtime import Recognizer

    constraint(digits, pattern)  # a bad pattern stops here, before any model loads
    recognizer = Recognizer(model, min_confidence=min_confidence)
    results = []
    files = expand_paths(paths)
    debug_files = DebugFiles(debug_dir, files, ".read.png") if debug_dir else None
    for path in files:
        entry = _empty_entry(path)
        try:
            source = input_or_error(path)
            if isinstance(source, DigitrecError):  # a folder without images, stdin a terminal...
                raise source
            reading = recognizer.read(
                source,
                debug=debug_dir is not None,
                digits=digits,
                pattern=pattern,
                keep_punctuation=keep_punctuation,
            )
            entry.update(reading.to_dict())
            if debug_files:
                _write_debug(debug_files.path_for(path), reading)
        except DigitrecError as exc:
            entry["error"] = str(exc)
        results.append(entry)
        if not as_json:
            _echo(entry)
    if csv_path:
        _write_csv(csv_path, results)
    if as_json:
        echo_json_lines(results)
    ctx.exit(1 if any(r["error"] for r in results) else 0)


def _empty_entry(path: str) -> dict:
    return {
        "path": path,
        "text": None,
        "confidence": None,
        "uncertain": False,
        "reason": None,
        "digits": [],
        "lines": [],
        "error": None,
    }


def _echo(entry: dict) -> None:
    if entry["error"]:
        click.secho(f"{entry['path']}: error: {entry['error']}", fg="red", err=True)
        return
    doubt = f", uncertain: {entry['reason']}" if entry["uncertain"] else ""
    checks = [str(k + 1) for k, d in enumerate(entry["digits"]) if d["uncertain"]]
    if checks and not entry["uncertain"]:
        doubt = f", check digit {', '.join(checks)}"
    click.echo(f"{entry['path']}: {' / '.join(entry['lines'])}  ({entry['confidence']:.0%}{doubt})")


def _write_debug(target: Path, reading) -> None:
    """The input with the boxes drawn, as `<name>.read.png` (a.png and a.jpg: two files)."""
    from digitrec.errors import DigitrecError
    from digitrec.preprocess.debug import write_png
    from digitrec.read.draw import draw_reading

    try:
        write_png(target, draw_reading(reading.stages["input"], reading))
    except OSError as exc:
        raise DigitrecError(f"cannot write debug images to {target.parent}: {exc}") from None


def _write_csv(csv_path: str, results: list[dict]) -> None:

    rows = []
    for r in results:
        confidence = "" if r["confidence"] is None else f"{r['confidence']:.6f}"
        digits = " ".join(f"{d['digit']}:{d['confidence']:.4f}" for d in r["digits"])
        text = " / ".join(r["lines"])  # one row per image: lines side by side, as printed
        rows.append([r["path"], text, confidence, r["uncertain"], r["reason"] or "", digits, r["error"] or ""])
    write_csv(csv_path, ["path", "text", "confidence", "uncertain", "reason", "digits", "error"], rows)
