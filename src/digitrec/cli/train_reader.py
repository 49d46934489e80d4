"""`digitrec train --recipe line-reader|verifier`: the reader's two networks, trained by their own
trainers (`digitrec.train.line_reader`, `digitrec.train.verifier`) from the same command as the
digit recipes. Each run folder ends with its ONNX model (line_reader.onnx, verifier.onnx)."""

from __future__ import annotations

from pathlib import Path

import click

from digitrec.errors import DigitrecError

READER_RECIPES = {"line-reader": "line_reader.onnx", "verifier": "verifier.onnx"}
# The digit recipes' flags that these trainers do not take.
NOT_FOR_READER = {
    "line-reader": ("limit", "no_augment", "device"),
    "verifier": ("batch_size", "lr", "no_augment", "device"),
}


def train_reader_network(
    recipe: str,
    out: Path,
    config_file: Path | None,
    settings: dict,
    *,
    resume: bool,
    force: bool,
    given: list[str],
    epochs: int | None,
    seed: int | None,
    threads: int | None,
    limit: int | None,
    batch_size: int | None,
    lr: float | None,
) -> str:
    """Train `recipe` (a READER_RECIPES key) into `out` -> the line to print at the end. `settings`
    are --set KEY=VALUE overrides of the recipe (e.g. numbers=2000); `given` the flags on the command
    line, refused where they mean nothing here."""
    wrong = [name for name in given if name in NOT_FOR_READER[recipe]]
    if wrong:
        raise DigitrecError(f"--recipe {recipe} does not take --{wrong[0].replace('_', '-')}")
    model = out / READER_RECIPES[recipe]
    log = click.echo
    if recipe == "line-reader":
        from digitrec.train.line_reader import LineReaderConfig, default_recipe, train_line_reader

        overrides = {"epochs": epochs, "seed": seed, "batch_size": batch_size, "lr": lr, **settings}
        config = LineReaderConfig.load(config_file or default_recipe(), overrides)
        if force:  # once the recipe is known to be good, not before
            (out / "checkpoint.pt").unlink(missing_ok=True)
        summary = train_line_reader(
            config,
            out,
            threads=threads or 0,
            resume=resume,
            export_to=model,
            command=_command_line(
                recipe,
                out,
                config_file,
                settings,
                epochs=epochs,
                seed=seed,
                batch_size=batch_size,
                lr=lr,
                threads=threads,
                resume=resume,
            ),
            log=log,
        )
        return f"line-reader: held-out string accuracy {summary['test_string_accuracy']:.2%}; model {model}"
    from digitrec.train.verifier import train_verifier

    unknown = sorted(set(settings) - {"numbers", "soft"})
    if unknown:
        raise DigitrecError(f"--recipe verifier: --set takes numbers=N and soft=P only (not {', '.join(unknown)})")
    summary = train_verifier(
        out,
        numbers=int(settings.get("numbers", 5000)),
        soft=settings.get("soft", 0.0),  # checked there: a share in [0, 1]
        seed=seed or 0,
        epochs=epochs,
        threads=threads or 0,
        limit=limit or 0,
        resume=resume,
        force=force,
        export_to=model,
        config_file=config_file,
        log=log,
    )
    return f"verifier: test accuracy {summary['test_accuracy']:.2%} on held-out candidates; model {model}"


def _command_line(recipe: str, out: Path, config_file: Path | None, settings: dict, **flags) -> str:
    """The command as given (recipe, run folder, --config, each --set, the flags used), for the card:
    a run's card says how to make it again."""
    import shlex

    words = ["digitrec", "train", "--recipe", recipe, "--out", str(out)]
    if config_file:
        words += ["--config", str(config_file)]
    for key, value in settings.items():
        words += ["--set", f"{key}={value}"]
    for name, value in flags.items():
        if value is True:
            words.append(f"--{name.replace('_', '-')}")
        elif value not in (None, False):
            words += [f"--{name.replace('_', '-')}", str(value)]
    return shlex.join(words)
