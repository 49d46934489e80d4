"""`digitrec batch`: whole archives of images -> a Parquet dataset of answers (digitrec.batch)."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from digitrec.batch.local import default_workers
from digitrec.cli import output
from digitrec.cli.output import min_confidence_option


@click.command()
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--out",
    required=True,
    type=click.Path(),
    help="Folder of Parquet parts to write (one table: path, digit, text, confidence, uncertain, "
    "reason, error, model). Run again to go on where a stopped run ended.",
)
@click.option(
    "--task",
    type=click.Choice(["predict", "read"]),
    default="predict",
    show_default=True,
    help="predict: one digit per image; read: a whole written number per image.",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: worker processes on this machine; ray: Ray Data actors (the 'ray' extra).",
)
@click.option(
    "--address",
    default=None,
    help="Ray cluster to use (e.g. auto, ray://head:10001; default: RAY_ADDRESS, else Ray started here).",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    help=f"Worker processes or actors (default: the cores available, {default_workers()} here; "
    f"with Ray, the cluster's CPUs).",
)
@click.option(
    "--model",
    type=click.Path(dir_okay=False),
    default=None,
    help="ONNX or Keras model (default: the model shipped with digitrec).",
)
@min_confidence_option(
    "Below this calibrated probability the answer is marked uncertain, with reason 'low confidence' (and the digit left empty), as predict does."
)
@click.option(
    "--fast",
    is_flag=True,
    help="Decode big photos at 320 px instead of 640 (about twice as fast, a little less accurate; as predict --fast).",
)
@click.option(
    "--part-size",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Rows per Parquet part; a killed run redoes at most the part it was filling.",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Answer again the files whose row in --out is an error (unreadable, cut short, still being "
    "copied); their new rows replace the old. Nothing answered is redone; the settings must be the run's.",
)
@click.pass_context
def batch(ctx, sources, out, task, engine, address, workers, model, min_confidence, fast, part_size, retry_failed):
    """Answer every image in an archive; write the answers to Parquet as it goes.

    SOURCES are folders (searched recursively), globs ('scans/**/*.jpg'), lists of paths
    (.txt one a line, .csv with a 'path' column, .parquet with a 'path' column) or URIs
    (s3://, gs://, ... through fsspec). A file that fails is a row with its error; the others go on.
    The exit status is 1 if any file of this run failed. Run the same command again to go on
    where it stopped; add --retry-failed to answer the failed files again.

    \b
    Examples:
      digitrec batch scans/ --out results.parquet
      digitrec batch scans/ --out results.parquet --retry-failed
      digitrec batch list.csv --task read --out numbers.parquet
      digitrec batch 's3://bucket/forms/*.png' --engine ray --address auto --out s3.parquet
    """
    from digitrec.batch import run_batch
    from digitrec.bulk import BULK_SIDE

    bar = _Bar()
    try:
        summary = run_batch(
            sources,
            out,
            task=task,
            engine=engine,
            model=model,
            min_confidence=min_confidence,
            side=BULK_SIDE if fast else None,
            workers=workers,
            address=address,
            part_size=part_size,
            retry_failed=retry_failed,
            on_start=bar.start,
            on_progress=bar.advance,
        )
    except KeyboardInterrupt:  # Ctrl+C: say that nothing answered is lost (click would say "Aborted.")
        listing = bar.progress is None  # still finding the inputs: nothing was answered yet
        bar.stop()
        bar.console.print(
            "Interrupted while listing the inputs: nothing answered yet; run the same command again."
            if listing
            else f"Interrupted: the answers so far are kept in {escape(out)}; run the same command again to go on."
        )
        ctx.exit(130)
    finally:
        bar.stop()
    rate = summary.answered / summary.seconds if summary.seconds else 0.0
    failed = f", [red]{summary.errors:,} failed[/]" if summary.errors else ""
    skipped = f", {summary.skipped:,} already done" if summary.skipped else ""
    if summary.skipped_failed:  # a rerun does not try them again unless asked: say how
        skipped += f" ({summary.skipped_failed:,} of them failed: --retry-failed answers them again)"
    if retry_failed:
        skipped += f", {summary.retried:,} retried ({summary.still_failing:,} still failing)"
    bar.console.print(
        f"{summary.answered:,} images answered in {summary.seconds:.1f} s ({rate:,.0f}/s){failed}{skipped} -> "
        f"{escape(out)}",  # a folder named 'scans [final]' is a path, not rich markup
        highlight=False,
    )
    ctx.exit(1 if summary.errors else 0)


class _Bar:
    """A rich progress bar on stderr: done/total, rate, time left."""

    def __init__(self):
        self.console = output.console(stderr=True)  # piped or logged, a line stays one line
        self.progress = None

    def start(self, todo: int, skipped: int) -> None:
        if skipped:
            self.console.print(f"{skipped:,} images already in the output: skipped", highlight=False)
        self.progress = Progress(
            TextColumn("answering"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            _Rate(),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,  # in a log, a bar is no help (and left a blank line)
        )
        self.progress.start()
        self.task = self.progress.add_task("answering", total=todo)

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


class _Rate(ProgressColumn):
    def render(self, task):
        return Text(f"{task.speed:,.0f} img/s" if task.speed else "- img/s")
