"""What the commands share: the compact JSON array, the CSV file written whole, debug file names
that never overwrite one another nor an input, the one `--min-confidence` option, the `--seed` range,
and the console their lines go to."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from digitrec.doubt import DEFAULT_MIN_CONFIDENCE


def console(stderr: bool = False, **options):
    """A rich Console for a command's lines. Piped or logged (no terminal: `make demo`'s log, CI),
    rich would break every line at 80 columns, mid-phrase ("78 flagged (63" / "right, 15 wrong)"):
    there a line stays one line. Tables keep their width."""
    from rich.console import Console

    lines = Console(stderr=stderr, **options)
    lines.soft_wrap = not lines.is_terminal
    return lines


# `--seed` of every command: numpy's generators take no negative seed and torch's overflow past
# 2**64, each with a traceback; 32 bits are more seeds than anyone types.
SEED = click.IntRange(0, 2**32 - 1)


class FiniteRange(click.FloatRange):
    """click.FloatRange that also refuses NaN, which passes every bound (`--min-confidence nan`
    was a ValueError traceback), and infinity (`--body-timeout inf`: a client that never
    finishes its upload, which the server's timeouts exist to stop). Every float option uses it."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def min_confidence_option(what: str):
    """`--min-confidence`, the same threshold with the same default (`doubt.DEFAULT_MIN_CONFIDENCE`,
    chosen on MNIST validation data: docs/trust.md) on every command; `what` says what it does there."""
    return click.option(
        "--min-confidence",
        type=FiniteRange(0, 1),
        default=DEFAULT_MIN_CONFIDENCE,
        show_default=True,
        help=f"{what} The default was chosen on MNIST validation data (docs/trust.md); 0 flags none as low confidence.",
    )


def _not_an_image(ctx, param, value: str | None) -> str | None:
    """`--csv` is no flag: `predict --csv a.png b.png` took a.png for the CSV file and wrote the
    table over that picture. No one means to write a CSV into an image file's name."""
    if value is None:
        return None
    from digitrec.preprocess.load import is_image_name

    if is_image_name(value):
        raise click.BadParameter(f"{value} is an image file's name; name the CSV file to write, e.g. --csv answers.csv")
    return value


# `--csv FILE` of predict and read: the answers also written as a table, whole or not at all.
csv_option = click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    callback=_not_an_image,
    help="Also write the answers to this CSV file.",
)


def echo_json_lines(results: list[dict]) -> None:
    """One JSON array, one object per line: valid JSON that still reads well and greps well."""
    click.echo("[\n" + ",\n".join("  " + json.dumps(r) for r in results) + "\n]" if results else "[]")


def write_csv(csv_path: str, header: list[str], rows: list[list]) -> None:
    """The rows under `header`, written whole or not at all: a full disk leaves no empty CSV."""
    import csv
    import io

    from digitrec.files import atomic_write

    f = io.StringIO(newline="")
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write(csv_path, f.getvalue())


class DebugFiles:
    """Where each input's debug picture goes in `folder`: its stem ('-': 'stdin') and `suffix`, made
    unique among this run's (a.png and a.jpg, or one name in two folders: 'a', 'a-2'), and never one
    of the inputs itself: `predict scans/ --debug scans/` must not write over the user's pictures
    (nor over an input not yet read). Nor over any other file there that an earlier `--debug` did
    not write (`predict scans/a.jpg --debug scans/` beside the user's a.png, or A.PNG on a
    case-insensitive disk): those take the next free name; an earlier run's pictures are replaced."""

    def __init__(self, folder: Path | str, inputs: list[str], suffix: str):
        """Raises DigitrecError, before any work, when a file stands where `folder` would be made
        (`read` gave every input that error in place of its reading)."""
        import os

        from digitrec.files import refuse_a_file_in_the_way

        refuse_a_file_in_the_way(folder)
        self.folder, self.suffix = Path(folder), suffix
        self.used: set[str] = set()
        self._inputs = {os.path.realpath(p) for p in inputs if p != "-"}

    def path_for(self, path: str) -> Path:
        name = "stdin" if path == "-" else Path(path).stem
        unique, n = name, 1
        while unique in self.used or self._taken(self.folder / f"{unique}{self.suffix}"):
            n += 1
            unique = f"{name}-{n}"
        self.used.add(unique)
        return self.folder / f"{unique}{self.suffix}"

    def _taken(self, target: Path) -> bool:
        import os

        from digitrec.preprocess.debug import is_debug_png

        if os.path.realpath(target) in self._inputs:
            return True
        # Only a regular file is opened to look: a FIFO of that name would wait for a writer forever.
        return os.path.lexists(target) and not (os.path.isfile(target) and is_debug_png(target))
