"""The `digitrec` command. Each command group lives in its own module and is imported only when
that command runs, so `digitrec predict` never pays for PyTorch or matplotlib."""

from __future__ import annotations

import importlib
import sys

import click

from digitrec import __version__
from digitrec.errors import DigitrecError
from digitrec.paths import RECIPES

# command name -> (module under digitrec.cli, attribute, one-line help shown in `digitrec --help`)
COMMANDS = {
    "data": ("data", "data", "Fetch, verify, describe and explore MNIST."),
    "train": ("train", "train", f"Train a model from a recipe ({', '.join(RECIPES)})."),
    "evaluate": ("evaluate", "evaluate", "Evaluate a model on the MNIST test set and write a report."),
    "export": ("export", "export", "Export a checkpoint (or a .keras file) to ONNX with a model card."),
    "finetune": ("finetune", "finetune", "Teach a model your handwriting from your labelled digit images."),
    "predict": ("predict", "predict", "Predict the digit in your own images (photos, scans, drawings)."),
    "read": ("read", "read", "Read whole handwritten numbers from images."),
    "batch": ("batch", "batch", "Answer whole archives of images into Parquet (local processes or Ray)."),
    "serve": ("serve", "serve", "Serve the HTTP API and the drawing page."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module_name, attribute, _ = COMMANDS[name]
        module = importlib.import_module(f"digitrec.cli.{module_name}")
        return getattr(module, attribute)

    def format_commands(self, ctx, formatter):
        # Listing help from the table keeps `digitrec --help` from importing every command.
        rows = [(name, summary) for name, (_, _, summary) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="digitrec")
def cli():
    """digitrec: recognise handwritten digits, from MNIST to your own photos.

    Start with `digitrec predict IMAGE` (a model ships with the package), or
    `digitrec data fetch` and `digitrec train` to train your own.
    """


def main(argv: list[str] | None = None) -> None:
    from digitrec.allocator import keep_freed_memory

    keep_freed_memory()  # this process is digitrec's own: reuse freed arrays (digitrec.allocator)
    try:
        # standalone_mode=False lets DigitrecError reach us; ctx.exit(code) comes back as the code.
        code = cli.main(args=argv, prog_name="digitrec", standalone_mode=False)
    except DigitrecError as exc:
        click.secho(f"Error: {exc}", fg="red", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
