"""`digitrec evaluate [MODEL] --out DIR [--json]`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from digitrec.cli.data import data_dir_option
from digitrec.cli.output import min_confidence_option


@click.command()
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for report.html, the CSVs and the PNGs.  [default: out/evaluate for the shipped "
    "model, out/evaluate-NAME for MODEL (NAME: its run folder or file name)]",
)
@data_dir_option
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate only the first N test images (a quick look).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary (the last line of output).")
@click.option("--force", is_flag=True, help="Replace the report of another model already in --out.")
@min_confidence_option(
    "The threshold whose effect the report's doubt section shows: the share answered, their accuracy and what was flagged."
)
def evaluate(model, out, data_dir, limit, as_json, force, min_confidence):
    """Evaluate MODEL on the 10,000 MNIST test images and write a report.

    MODEL is an ONNX model (.onnx), a Keras model (.keras), a PyTorch checkpoint (.pt) or a run folder from
    `digitrec train`; without it, the model shipped with digitrec. OUT gets report.html (open it in a
    browser), summary.json, predictions.csv, confusion.csv and PNGs of the confusion matrix, the most
    confident mistakes, the reliability diagram and, when the model has a training history, its curves.

    \b
    Examples:
      digitrec evaluate                           # the shipped model, into out/evaluate
      digitrec evaluate runs/cnn                  # a run folder (checkpoint.pt), into out/evaluate-cnn
      digitrec evaluate model.onnx --json --limit 1000
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from digitrec.cli import output
    from digitrec.evaluate import evaluate_model
    from digitrec.extras import require

    require("report", "matplotlib", "seaborn")

    console = output.console(stderr=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:  # no bar residue in pipes and logs
        task = bar.add_task("Evaluating", total=None)

        def progress(done, total):
            bar.update(task, completed=done, total=total)

        summary = evaluate_model(
            model,
            out or default_out(model),
            data_dir=data_dir,
            limit=limit,
            progress=progress,
            replace=force,
            min_confidence=min_confidence,
        )
    if as_json:
        click.echo(json.dumps(summary))
        return
    _print_summary(summary)


def default_out(model: Path | None) -> Path:
    """out/evaluate for the shipped model; out/evaluate-NAME for another, so that evaluating it never
    overwrites the shipped model's report. NAME is a run folder's name (runs/cnn, runs/cnn/checkpoint.pt
    -> cnn) or the file's stem (tutorial.keras -> tutorial, ./model.onnx -> model)."""
    if model is None:
        return Path("out/evaluate")
    from digitrec.paths import CHECKPOINT_NAME, CONFIG_NAME, METRICS_NAME, RUN_FOLDER_MODELS

    # `export runs/cnn --out model.onnx` leaves model.onnx in the working folder: named after the
    # folder only where that folder is a run (train wrote its files there), not after the checkout.
    run_files = (CHECKPOINT_NAME, CONFIG_NAME, METRICS_NAME)
    in_run = model.name in RUN_FOLDER_MODELS and any((model.parent / f).is_file() for f in run_files)
    name = model.resolve().name if model.is_dir() else model.resolve().parent.name if in_run else model.stem
    return Path("out") / f"evaluate-{name}"


def _print_summary(summary: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    from digitrec.cli import output

    console = output.console()
    n, errors = summary["n"], summary["errors"]
    console.print(f"[bold]{escape(summary['model']['name'])}[/bold]  ({escape(str(summary['model']['path']))})")
    console.print(
        f"accuracy [bold]{summary['accuracy']:.2%}[/bold]   errors {errors:,} of {n:,}   "
        f"loss {summary['loss']:.4f}   ECE {summary['ece']:.4f}"
    )
    console.print(f"inference {summary['seconds']:.2f} s ({summary['images_per_second']:,.0f} images/s)")
    at = summary["doubt"]["at_threshold"]
    console.print(
        f"at min_confidence {at['min_confidence']:g}: {at['coverage']:.2%} answered, {at['accuracy']:.2%} of them "
        f"right; {at['flagged']:,} flagged ({at['flagged_right']:,} right, {at['flagged_wrong']:,} wrong)"
    )
    table = Table("digit", "precision", "recall", "F1", "support", box=None, pad_edge=False)
    for digit, m in enumerate(summary["per_class"]):
        table.add_row(str(digit), f"{m['precision']:.2%}", f"{m['recall']:.2%}", f"{m['f1']:.2%}", f"{m['support']:,}")
    console.print(table)
    console.print(f"Report: {escape(str(summary['files']['report']))}")
