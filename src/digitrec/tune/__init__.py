"""Fine-tuning a digit model on the user's own handwriting (`digitrec finetune`, `digitrec.finetune`).

  data.py     the user's labelled images: CSV files or digit folders -> what predict sees. No torch.
  numbers.py  the user's labelled numbers -> their digits, cut where the reader finds each. No torch.
  lines.py    the user's labelled numbers -> the line images the line reader sees. No torch.
  weights.py  the base model as a PyTorch module (the shipped model is rebuilt from its ONNX weights).
  run.py      the run: replay, augmentation, early stopping, calibration, the ONNX model and card.
  line.py     the same for the reader's line model (CTC), from the numbers' lines.
  scorer.py   the base's digit scorer beside OUT when the base is kept (`reader_digits`). No torch.

Only `run`, `line` and `weights` import torch; importing this package does not.
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def finetune(data, out, *, numbers=None, line_config=None, warn=lambda m: None, **options) -> dict:
    """See `digitrec.tune.run.finetune`. Needs PyTorch (the training extra). `numbers`: a CSV
    path,text of labelled numbers: their lines teach the reader's line model (`tune.line`, written
    beside OUT: mine.onnx -> mine.line.onnx, which mine.onnx's card names, so that reading with it
    uses it), and their digits, cut out (`tune.numbers`), are added to DATA. The summary then has
    `numbers`: {given, used, digits} and `line_reader`: {numbers, val_accuracy, path, ...} (None
    when too few numbers' lines were found). `line_config`: a `tune.line.LineTuneConfig` (default:
    the digit run's seed, threads, held-out share and step limit). Any field of
    `tune.run.FinetuneConfig` may be given by name (`max_steps=40`, `seed=1`, `threads=1`): it
    overrides the `config` given, or the defaults."""
    import dataclasses

    from digitrec.extras import require

    require("train", "torch", "onnx")
    from digitrec.tune.run import FinetuneConfig
    from digitrec.tune.run import finetune as run

    fields = {f.name for f in dataclasses.fields(FinetuneConfig)}
    settings = {name: options.pop(name) for name in list(options) if name in fields}
    if settings:
        options["config"] = dataclasses.replace(options.get("config") or FinetuneConfig(), **settings)
    sources = [data] if isinstance(data, (str, Path)) else list(data or [])  # once: `data` may be a generator
    if numbers is None:
        for folder in sources:
            unused = Path(folder) / "numbers.csv"  # a `serve --collect` folder's corrected numbers
            if Path(folder).is_dir() and unused.is_file():
                warn(f"{unused} is not used: the numbers corrected there go in with --numbers {unused}")
        return run(sources, out, warn=warn, **options)
    from digitrec.errors import DataError
    from digitrec.files import check_writable
    from digitrec.runtime import Recognizer
    from digitrec.tune.data import MIN_IMAGES
    from digitrec.tune.line import LineTuneConfig, finetune_line_reader
    from digitrec.tune.lines import lines_from_numbers
    from digitrec.tune.numbers import digits_from_numbers, list_numbers
    from digitrec.tune.scorer import base_scorer

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise DataError(f"--out must end in .onnx, got {out.name}")
    check_writable(out)  # now, not after the line reader's training
    listed = list_numbers(numbers)
    model = options.get("model")
    # The reader that finds the digits: the base model where it is an ONNX file, else the shipped one.
    reader = Recognizer(model if model is not None and Path(model).suffix.lower() == ".onnx" else None, threads=1)
    base_scorer(reader.path, reader.card, out)  # now, not after the line reader's training
    digit = options.get("config") or FinetuneConfig()
    line_config = line_config or LineTuneConfig(
        val_share=digit.val_share,
        max_steps=digit.max_steps,
        min_steps=min(LineTuneConfig.min_steps, digit.max_steps),
        seed=digit.seed,
        threads=digit.threads,
    )
    # The line reader first: the digit model's card names it.
    lines = lines_from_numbers(listed, reader.read, warn)
    line_out = out.with_suffix(".line.onnx")
    try:
        line = finetune_line_reader(
            lines, line_out, reader.reader.line_reader.path, line_config, options.get("log", lambda m: None)
        )
    except DataError as exc:
        warn(f"the line reader is not adapted: {exc}")
        line = None
    with tempfile.TemporaryDirectory(prefix="digitrec-numbers-") as folder:
        cut = digits_from_numbers(listed, reader.read, Path(folder), warn)
        extra = {"line_reader": line_out.name} if line else None
        base_is_reader = model is None or Path(model).suffix.lower() == ".onnx"
        if line and not sources and cut.digits < MIN_IMAGES and base_is_reader:
            # Numbers the digit path cannot cut (a mark read as a digit beside each) are what the
            # line reader learns best: keep it, with the base digit model, rather than fail.
            warn(
                f"only {cut.digits} digit(s) could be cut from the numbers (at least {MIN_IMAGES} are needed to "
                "tune the digit model): the digit model is the base's, reading with the adapted line reader"
            )
            summary = _base_with_line_reader(reader, out, extra, options.get("log", lambda m: None), warn)
        else:
            summary = run([*sources, cut.csv], out, warn=warn, card_extra=extra, **options)
    summary["numbers"] = {"given": cut.numbers, "used": cut.used, "digits": cut.digits}
    # A number's file that cannot be read is a skipped image, as one of DATA's (the CLI exits 1).
    summary["skipped"] = [*summary["skipped"], *([str(p), why] for p, why in cut.unreadable)]
    summary["line_reader"] = line and {
        "numbers": line["numbers"],
        "val_accuracy": line["val_accuracy"],
        "path": line["path"],
        "val_accuracy_before": line["val_accuracy_before"],
        "generated_accuracy": line["generated_accuracy"],
        "generated_accuracy_before": line["generated_accuracy_before"],
        "train_seconds": line["train_seconds"],
    }
    return summary


def _base_with_line_reader(reader, out: Path, card_extra: dict, log, warn) -> dict:
    """The base digit model (`reader`'s ONNX file) copied to OUT, its card naming the adapted line
    reader and the base's digit scorer (`tune.scorer`) -> a summary with no digit images."""
    import shutil

    from digitrec.files import atomic_path
    from digitrec.modelfile.card import card_path_for
    from digitrec.modelfile.write import rewrite_card
    from digitrec.tune.scorer import base_scorer, scorer_beside

    source = base_scorer(reader.path, reader.card, out)
    card = {k: v for k, v in reader.card.items() if k not in ("format", "reader_digits")}
    with scorer_beside(source, out, card, log, warn) as copy:  # read with the same scorer as before
        with atomic_path(out) as tmp:
            shutil.copyfile(reader.path, tmp)
        rewrite_card(out, {**card, **card_extra})
    return {
        "model": str(out),
        "card_path": str(card_path_for(out)),
        "images": 0,
        "train_images": 0,
        "val_images": 0,
        "skipped": [],
        "train_seconds": 0.0,
        "val_accuracy": None,
        "val_accuracy_before": None,
        "base_model": reader.card.get("name", reader.path.stem),
        "reader_digits": copy and str(copy),  # the copy of the base's digit scorer, when it has one
    }
