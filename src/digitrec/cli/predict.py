"""`digitrec predict`: the digit in each of your own images (photos, scans, drawings).

Only the light runtime is imported (onnxruntime, OpenCV, Pillow), and only once the command runs:
no PyTorch, no matplotlib, so one image answers in well under a second from a cold start.
"""

from __future__ import annotations

from pathlib import Path

import click

from digitrec.cli.output import DebugFiles, csv_option, echo_json_lines, min_confidence_option, write_csv
from digitrec.errors import DigitrecError


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--model",
    type=click.Path(dir_okay=False),
    default=None,
    help="ONNX (.onnx) or Keras (.keras) model to use (default: the model shipped with digitrec).",
)
@click.option(
    "--top",
    type=click.IntRange(1, 10),
    default=3,
    show_default=True,
    help="How many candidate digits to list per image.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON array: {path, digit, confidence, top, uncertain, reason, error} per image.",
)
@csv_option
@click.option(
    "--debug",
    "debug_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write a PNG strip of the preprocessing stages per image to this folder.",
)
@min_confidence_option(
    "Below this calibrated probability answer '?' (digit null, uncertain, reason 'low confidence') instead of guessing."
)
@click.option(
    "--no-reject",
    is_flag=True,
    help="Answer a digit for every image, even for what looks like a letter, a scribble, a blank "
    "page or several digits (flagged by default: digit null, with the reason).",
)
@click.option(
    "--fast",
    is_flag=True,
    help="Decode big photos at a reduced size (long side 320 px instead of 640): about twice as "
    "fast on big folders of phone photos, a little less accurate.",
)
@click.pass_context
def predict(ctx, paths, model, top, as_json, csv_path, debug_dir, min_confidence, no_reject, fast):
    """Predict the handwritten digit in each image.

    PATHS are image files (PNG, JPEG, BMP, TIFF, WebP, GIF...), folders (searched recursively)
    or '-' for an image on standard input. Each image is cleaned up the way MNIST was prepared
    (lighting, polarity, ink, crop, 20x20 fit, centre of mass) before the model sees it.
    A file that fails gets its own error and the others go on; the exit status is 1 if any failed.
    From 16 files on, the images are prepared in one process per core and the model sees them in
    batches; a file gets the same answer alone or in a folder of thousands.

    \b
    Examples:
      digitrec predict photo.jpg
      digitrec predict scans/ --json
      digitrec predict digit.png --debug out/   # see what the model saw
      digitrec predict photos/ --fast --csv answers.csv
      cat digit.png | digitrec predict -
    """
    import sys

    from digitrec.bulk import BULK_SIDE
    from digitrec.cli.inputs import expand_paths, input_or_error
    from digitrec.preprocess.digit import WORK_SIDE
    from digitrec.runtime import Recognizer

    recognizer = Recognizer(model, min_confidence=min_confidence, reject=not no_reject)
    files = expand_paths(paths)
    results: list[dict] = []
    debug_files = DebugFiles(debug_dir, files, ".png") if debug_dir else None
    progress = _progress(len(files)) if not as_json and len(files) > 50 and sys.stderr.isatty() else None
    inputs = [input_or_error(p) for p in files]
    answers = recognizer.predict_paths(inputs, top, side=BULK_SIDE if fast else WORK_SIDE, debug=debug_dir is not None)
    for path, answer in zip(files, answers):
        results.append(_entry(path, answer))
        if debug_files and getattr(answer, "stages", None):
            _write_debug(debug_files.path_for(path), path, answer)
        if progress:
            progress.update(1)
    if progress:
        progress.close()

    if csv_path:
        _write_csv(csv_path, results)
    if as_json:
        echo_json_lines(results)
    else:
        _print_table(results, top)
    ctx.exit(1 if any(r["error"] for r in results) else 0)


def _entry(path: str, answer) -> dict:
    if isinstance(answer, DigitrecError):
        return {
            "path": path,
            "digit": None,
            "confidence": None,
            "top": [],
            "uncertain": False,
            "reason": answer.doubt_reason,  # "no ink" for a blank image; None for other errors
            "error": str(answer),
        }
    return {"path": path, **answer.to_dict(), "error": None}


def _write_debug(target: Path, path: str, prediction) -> None:
    """A strip of the stages; for an image that failed, the stages it got through."""
    from digitrec.preprocess.debug import write_strip

    if isinstance(prediction, DigitrecError):
        caption = f"{path}: error: {prediction}"
    else:
        shown = "?" if prediction.digit is None else prediction.digit
        caption = f"{path}: {shown} ({prediction.confidence:.1%})"
    try:
        write_strip(target, prediction.stages, caption)
    except OSError as exc:
        raise DigitrecError(f"cannot write debug images to {target.parent}: {exc}") from None


def _write_csv(csv_path: str, results: list[dict]) -> None:

    rows = []
    for r in results:
        top = " ".join(f"{d}:{p:.4f}" for d, p in r["top"])
        confidence = "" if r["confidence"] is None else f"{r['confidence']:.6f}"
        digit = "" if r["digit"] is None else r["digit"]
        rows.append([r["path"], digit, confidence, top, r["uncertain"], r["reason"] or "", r["error"] or ""])
    write_csv(csv_path, ["path", "digit", "confidence", "top", "uncertain", "reason", "error"], rows)


def _doubt(reason: str | None) -> str:
    """What the table says of a flagged answer: its reason ('low confidence', 'not a digit'...), and
    what to do about several digits."""
    from digitrec import doubt

    if reason == doubt.SEVERAL_DIGITS:
        return "several digits: use read"
    return reason or "uncertain"


def _print_table(results: list[dict], top: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    table.add_column("file", overflow="fold")
    table.add_column("digit", justify="center")
    table.add_column("confidence", justify="right")
    table.add_column(f"top {top}")
    for r in results:
        if r["error"]:
            table.add_row(r["path"], "[red]-[/]", "", f"[red]error: {r['error']}[/]")
            continue
        digit = "[yellow]?[/]" if r["uncertain"] else f"[bold]{r['digit']}[/]"
        confidence = f"{r['confidence']:.1%}" + (f" [yellow]({_doubt(r['reason'])})[/]" if r["uncertain"] else "")
        table.add_row(r["path"], digit, confidence, "  ".join(f"{d} {p:.1%}" for d, p in r["top"]))
    console = Console()
    if not console.is_terminal:  # piped: no terminal width to respect, keep each row on one line
        longest = max((len(r["path"]) + len(r["error"] or "") for r in results), default=0)
        console = Console(width=min(400, max(100, longest + 70)))
    console.print(table)


class _progress:
    """A rich progress bar on stderr, for big folders."""

    def __init__(self, total: int):
        from rich.console import Console
        from rich.progress import Progress

        self.bar = Progress(console=Console(stderr=True), transient=True)
        self.bar.start()
        self.task = self.bar.add_task("predicting", total=total)

    def update(self, n: int) -> None:
        self.bar.advance(self.task, n)

    def close(self) -> None:
        self.bar.stop()
