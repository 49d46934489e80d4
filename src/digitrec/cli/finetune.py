"""`digitrec finetune DATA... --out mine.onnx`: learn the user's handwriting (see digitrec.tune)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from digitrec.cli.output import SEED, FiniteRange


@click.command()
@click.argument("data", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the fine-tuned ONNX model (its card goes beside it).",
)
@click.option(
    "--model",
    type=click.Path(path_type=Path),
    help="Start from this model: a run folder, its checkpoint.pt or a digitrec .onnx.  [default: the shipped model]",
)
@click.option(
    "--val-share",
    type=FiniteRange(0.05, 0.5),
    default=0.2,
    show_default=True,
    help="Share of your images held out to check the model and stop training.",
)
@click.option(
    "--max-steps",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="At most this many training steps (48 views of your digits + 16 MNIST digits each; with --numbers, "
    "also of the line reader: 16 of your lines + 16 generated numbers each).",
)
@click.option(
    "--numbers",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="CSV",
    help="Also learn from labelled numbers: a CSV path,text (a strip, a form field, an amount and its "
    "digits). Their lines teach the reader's line model (written beside --out: mine.onnx -> mine.line.onnx, "
    "used by read --model mine.onnx); where the reader finds as many digits as the text has, each is cut out "
    "and learnt.",
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=0), default=0, help="torch threads (0 = all cores).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary as the last line of stdout.")
def finetune(data, out, model, val_share, max_steps, numbers, seed, threads, as_json):
    """Teach a digit model your handwriting, on your machine, from your labelled images.

    \b
    DATA is a CSV file whose first row names the columns path,label (paths relative to the CSV's
    folder or absolute; label one digit 0-9), or a folder with subfolders 0 .. 9 holding the images
    of each digit (or a manifest.csv); give several to combine them. At least 10 usable images.
    An image that cannot be read is skipped with a warning, and the others are learnt; the exit
    status is then 1, as for predict.

    --numbers CSV (path,text) teaches the reader your numbers (strips, form fields): its line
    model is fine-tuned on their lines and written beside --out (mine.line.onnx, which mine.onnx
    names: `digitrec read --model mine.onnx` reads with it), and their digits are added to DATA;
    DATA may then be left out.

    Every image is prepared exactly as `digitrec predict` prepares it. Training starts from the
    shipped model (or --model), mixes MNIST digits into every batch so that nothing is forgotten,
    distorts both a little, holds out a share of your images to pick the best step and stop early,
    refits the calibration, and writes an ONNX model with its card (base model, hash of your data,
    image counts, held-out accuracy). Nothing leaves your machine. Needs PyTorch.

    \b
    Examples:
      digitrec finetune my_digits.csv --out mine.onnx
      digitrec finetune photos/ --out mine.onnx --json
      digitrec finetune --numbers my_forms.csv --out mine.onnx
      digitrec predict --model mine.onnx digit.jpg
    """
    from digitrec.cli import output

    if not data and numbers is None:
        raise click.UsageError("give DATA (a CSV path,label or a folder 0-9) or --numbers CSV")

    from digitrec.extras import require

    require("train", "torch", "onnx")  # before anything imports torch: a one-line error without it
    from digitrec.tune import finetune as run
    from digitrec.tune.run import FinetuneConfig

    console = output.console(stderr=True)
    config = FinetuneConfig(
        val_share=val_share,
        max_steps=max_steps,
        seed=seed,
        threads=threads,
        min_steps=min(FinetuneConfig.min_steps, max_steps),
    )
    summary = run(
        list(data),
        out,
        numbers=numbers,
        model=model,
        config=config,
        log=console.print,
        warn=lambda m: console.print(f"[yellow]Warning:[/yellow] {m}", highlight=False),
    )
    if as_json:
        click.echo(json.dumps(summary))
    elif not summary["images"]:  # --numbers whose digits could not be cut: the base digit model, the line reader tuned
        also = f" and its digit scorer {summary['reader_digits']}" if summary.get("reader_digits") else ""
        click.echo(f"wrote {summary['model']}{also}: the base digit model, reading with the adapted line reader")
    else:
        click.echo(
            f"wrote {summary['model']}: {summary['images']} images ({summary['val_images']} held out), "
            f"held-out accuracy {summary['val_accuracy_before']:.1%} -> {summary['val_accuracy']:.1%}, "
            f"{summary['train_seconds']:.0f} s of training"
            + (
                f"; no step beat the base, kept with its digit scorer {summary['reader_digits']}"
                if summary.get("reader_digits")
                else ""
            )
        )
    _report_numbers(summary)
    if summary["skipped"]:
        # As predict and batch: the others are used, and the exit status says a file failed.
        n = len(summary["skipped"])
        click.echo(f"{n} image(s) skipped (named above); {summary['model']} was made from the others", err=True)
        click.get_current_context().exit(1)


def _report_numbers(summary: dict) -> None:
    if "numbers" in summary:
        n = summary["numbers"]
        click.echo(f"from --numbers: {n['digits']} digits cut from {n['used']} of {n['given']} numbers", err=True)
        line = summary.get("line_reader")
        if line:
            click.echo(
                f"line reader: {line['path']}, from {line['numbers']} numbers; held-out numbers "
                f"{line['val_accuracy_before']:.1%} -> {line['val_accuracy']:.1%}",
                err=True,
            )
