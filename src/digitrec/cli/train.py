"""`digitrec train`: read a recipe, apply the flags, run `digitrec.train.train`, show progress."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from pathlib import Path

import click

from digitrec.cli.output import SEED, FiniteRange
from digitrec.errors import DigitrecError
from digitrec.paths import RECIPES  # the TOML files in src/digitrec/configs

# The reader's networks: their own trainers, same command (digitrec.cli.train_reader).
READER_RECIPES = ("line-reader", "verifier")
# Flags that change the recipe; they make no sense with --resume, which reuses the run's own config.
RECIPE_FLAGS = (
    "recipe",
    "config_file",
    "epochs",
    "seed",
    "batch_size",
    "lr",
    "threads",
    "limit",
    "no_augment",
    "settings",
)


def parse_settings(settings: tuple[str, ...]) -> dict:
    """('augment.rotate=5', 'optimizer=sgd') -> {'augment.rotate': 5, 'optimizer': 'sgd'}.
    Values are read as TOML (numbers, true/false, [lists]); anything else is a string."""
    from digitrec.train.config import tomllib

    values = {}
    for item in settings:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise DigitrecError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        values[key.strip()] = value
    return values


@click.command()
@click.option(
    "--recipe",
    type=click.Choice(RECIPES + READER_RECIPES),
    default="cnn",
    show_default=True,
    help="Which recipe (configs/NAME.toml) to start from.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run folder for checkpoint.pt, metrics.jsonl, config.json.  [default: runs/RECIPE]",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A TOML file whose settings override the recipe's.",
)
@click.option("--epochs", type=click.IntRange(min=1), help="Override the recipe's number of epochs.")
@click.option("--seed", type=SEED, help="Override the recipe's seed.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Override the batch size.")
@click.option("--lr", type=FiniteRange(min=0, min_open=True), help="Override the peak learning rate.")
@click.option(
    "--threads",
    type=click.IntRange(min=0),
    help="torch threads (default 0 = the cores no other process is busy on, looked at each epoch).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    help="Use only N training images and N test images: the real command, cheap (CI, smoke tests).",
)
@click.option("--no-augment", is_flag=True, help="Switch augmentation off.")
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override any setting, e.g. --set augment.rotate=5 --set optimizer=sgd (repeatable).",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda", "mps"]),
    default="auto",
    show_default=True,
    help="Where to train: auto = a CUDA GPU when PyTorch sees one, else the CPU.",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint, with its own config.")
@click.option("--force", is_flag=True, help="Start over, replacing the checkpoint and metrics already in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary as the last line of stdout.")
def train(
    recipe,
    out,
    config_file,
    epochs,
    seed,
    batch_size,
    lr,
    threads,
    limit,
    no_augment,
    settings,
    device,
    resume,
    force,
    as_json,
):
    """Train a model from a recipe (--recipe: the digit models' configs/NAME.toml) and save it to a run folder; or the
    reader's networks (line-reader, verifier), which end with their ONNX model in the run folder.

    \b
    Recipes are TOML files anyone can read and re-run (configs/NAME.toml); flags override the
    file. Every epoch prints a line and writes metrics.jsonl and an atomic checkpoint, so a killed
    run continues with --resume and ends with the same weights. Then:
      digitrec evaluate runs/cnn           # report on the MNIST test set
      digitrec export runs/cnn --out model.onnx

    \b
    Examples:
      digitrec train                          # the default cnn recipe into runs/cnn
      digitrec train --recipe fast --out runs/fast --json
      digitrec train --recipe cnn --epochs 3 --set augment.enabled=false
      digitrec train --out runs/cnn --resume
      digitrec train --recipe line-reader --set numbers=2000 --epochs 2

    \b
    Several GPUs (or CPU processes): DDP through torchrun; rank 0 writes the run folder.
      torchrun --nproc-per-node 4 -m digitrec train --recipe best --device cuda
    """
    import os

    from digitrec.cli import output
    from digitrec.extras import require
    from digitrec.files import refuse_a_file_in_the_way

    require("train", "torch")
    from digitrec.paths import CHECKPOINT_NAME, CONFIG_NAME, METRICS_NAME
    from digitrec.train.config import TrainConfig, load_recipe, read_toml, validate

    # In a torchrun run only rank 0 reports; the others train quietly.
    quiet = os.environ.get("RANK", "0") != "0"
    console = output.console(stderr=True, quiet=quiet)
    ctx = click.get_current_context()
    out = out or Path("runs") / recipe
    if resume and force:
        raise DigitrecError("choose one of --resume and --force")
    given = [n for n in ctx.params if ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE]
    if recipe in READER_RECIPES:
        from digitrec.cli.train_reader import train_reader_network

        options = dict(epochs=epochs, seed=seed, threads=threads, limit=limit, batch_size=batch_size, lr=lr)
        click.echo(
            train_reader_network(
                recipe, out, config_file, parse_settings(settings), resume=resume, force=force, given=given, **options
            )
        )
        return

    if resume:
        recipe_flags = [name for name in RECIPE_FLAGS if name in given]
        if recipe_flags:
            flags = ", ".join(
                "--" + n.replace("_file", "").replace("_", "-").replace("settings", "set") for n in recipe_flags
            )
            raise DigitrecError(f"--resume continues with the run's own config; drop {flags}")
        saved = out / CONFIG_NAME
        if not saved.is_file():
            raise DigitrecError(f"nothing to resume in {out}: no {CONFIG_NAME} there")
        try:
            config = TrainConfig.from_dict(json.loads(saved.read_text()))
        except ValueError as exc:
            raise DigitrecError(f"{saved} is damaged: {exc}") from None
        validate(config)
    else:
        overrides = {}
        for key, value in (
            ("epochs", epochs),
            ("seed", seed),
            ("batch_size", batch_size),
            ("lr", lr),
            ("threads", threads),
            ("limit", limit),
        ):
            if value is not None:
                overrides[key] = value
        if no_augment:
            overrides["augment.enabled"] = False
        overrides.update(parse_settings(settings))
        if config_file is not None:
            read_toml(config_file)  # a clear error for a missing or broken file, before anything else
        config = load_recipe(recipe, config_file, overrides)

    # --force: the run already in OUT is set aside, not deleted, until the new one has saved its
    # first checkpoint; a new run that fails or is stopped before that gives it back untouched.
    if not quiet:
        refuse_a_file_in_the_way(out)  # said now, not as a traceback; nothing made before the run starts
        _refuse_a_run_set_aside(out, CHECKPOINT_NAME)
    earlier: list[Path] = []
    with _terminate_as_exit():  # before anything is set aside: a SIGTERM then still gives it back
        try:
            if force and not quiet:
                _set_aside(out, (CHECKPOINT_NAME, METRICS_NAME, CONFIG_NAME), earlier)
            summary = _run(config, out, resume, console, device, kept_earlier=bool(earlier))
        finally:
            _settle(earlier, started=(out / CHECKPOINT_NAME).exists())
    if quiet:
        return
    if as_json:
        click.echo(json.dumps(summary))
    else:
        acc = summary["test_accuracy"]
        click.echo(
            f"{summary['recipe']}: test accuracy {acc:.2%} after {summary['epochs']} epoch{'s' if summary['epochs'] != 1 else ''}, "
            f"{summary['train_seconds']:.1f} s of training; checkpoint {summary['checkpoint']}"
        )


ASIDE = ".replaced"  # suffix of an earlier run's files while --force starts a new one


def _set_aside(out: Path, names: tuple[str, ...], moved: list[Path]) -> None:
    """Rename the earlier run's files in `out` to NAME.replaced, each listed in `moved` before it is
    renamed (a signal between the two then still finds it: `_settle` looks before it moves)."""
    for name in names:
        path = out / name
        if path.exists():
            moved.append(path)
            path.replace(path.with_name(name + ASIDE))


def _refuse_a_run_set_aside(out: Path, checkpoint: str) -> None:
    """A --force that was killed (SIGKILL, a power cut) before its first checkpoint leaves the
    earlier run's files as NAME.replaced: say how to get them back rather than bury them."""
    aside = out / (checkpoint + ASIDE)
    if aside.exists():
        names = " ".join(sorted(p.name for p in out.glob("*" + ASIDE)))
        raise DigitrecError(
            f"{out} holds a run set aside by a --force that did not finish ({names}): to get it back, "
            f"rename each NAME{ASIDE} to NAME in {out}; to drop it, delete them; then run this again"
        )


@contextlib.contextmanager
def _terminate_as_exit():
    """SIGTERM (timeout, a scheduler, docker stop) ends the run as Ctrl-C does, through the
    `finally` that gives back a run set aside by --force, not by killing the process on the spot."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_on_term(signum, frame):
        raise SystemExit(128 + signum)

    before = signal.signal(signal.SIGTERM, exit_on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _settle(earlier: list[Path], started: bool) -> None:
    """The new run saved a checkpoint: the earlier run's files go. It did not: they come back."""
    for path in earlier:
        aside = path.with_name(path.name + ASIDE)
        if started:
            aside.unlink(missing_ok=True)
        elif aside.exists():
            aside.replace(path)


def _run(config, out: Path, resume: bool, console, device: str, kept_earlier: bool = False) -> dict:
    """Run the training with a rich progress bar on stderr and one printed line per epoch."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from digitrec.train import Callbacks, train
    from digitrec.train.augment import describe

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:6.2%}  {task.fields[speed]:5.0f} img/s"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    state = {"task": None, "epoch": 0, "started": 0.0}

    def on_start(info):
        console.print(
            f"[bold]{config.recipe}[/]: {info['architecture']} with {info['parameters']:,} parameters, "
            f"{info['flops_per_image'] / 1e6:.1f} MFLOP/image; {info['train_images']:,} training and "
            f"{info['val_images']:,} validation images; {config.epochs} epochs of {info['steps_per_epoch']} "
            f"steps; {info['threads']} threads; augmentation: {describe(config.augment)}"
        )
        if info["start_epoch"] > 1:
            console.print(f"resuming after epoch {info['start_epoch'] - 1}")
        state["epoch"] = info["start_epoch"]
        progress.start()

    def on_batch(done, total, loss, acc):
        import time

        if state["task"] is None:
            state["started"] = time.perf_counter()
            state["task"] = progress.add_task(
                f"epoch {state['epoch']}/{config.epochs}", total=total, loss=loss, acc=acc, speed=0.0
            )
        if done % 5 == 0 or done == total:
            elapsed = max(time.perf_counter() - state["started"], 1e-9)
            progress.update(state["task"], completed=done, loss=loss, acc=acc, speed=done * config.batch_size / elapsed)

    def on_epoch(row):
        if state["task"] is not None:
            progress.remove_task(state["task"])
            state["task"] = None
        val = (
            f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.2%}"
            if row["val_accuracy"] is not None
            else "no validation split"
        )
        console.print(
            f"epoch {row['epoch']:>3}/{config.epochs}  train loss {row['train_loss']:.4f} "
            f"acc {row['train_accuracy']:.2%}  {val}  lr {row['lr']:.2e}  {row['seconds']:.1f} s"
        )
        state["epoch"] = row["epoch"] + 1

    try:
        summary = train(config, out, resume=resume, callbacks=Callbacks(on_start, on_batch, on_epoch), device=device)
    except KeyboardInterrupt:
        from digitrec.paths import CHECKPOINT_NAME

        progress.stop()
        if (out / CHECKPOINT_NAME).exists():
            console.print(f"Interrupted; continue with: digitrec train --out {escape(str(out))} --resume")
        else:  # stopped inside its first epoch: nothing of this run was saved
            earlier = "; the earlier run there is kept" if kept_earlier else ""
            console.print(f"Interrupted before the first epoch ended: nothing saved to {escape(str(out))}{earlier}")
        raise
    finally:
        progress.stop()
    # With --limit the test set is cut too: said, or export's number on all 10,000 looks like another model's.
    subset = f", on the first {config.limit:,} test images (--limit)" if 0 < config.limit < 10_000 else ""
    console.print(f"test accuracy (measured once, at the end{subset}): {summary['test_accuracy']:.2%}")
    return summary
