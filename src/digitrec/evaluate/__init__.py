"""Evaluate a model on the MNIST test set and write the report.

    >>> from digitrec.evaluate import evaluate_model
    >>> summary = evaluate_model("runs/cnn/checkpoint.pt", out="out/evaluate")
    >>> summary["accuracy"], summary["files"]["report"]

`metrics` holds the numbers (numpy only), `sources` turns a model path into probabilities (torch only for
checkpoints), `plots` draws the figures and `report` writes the CSVs and report.html.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from digitrec.doubt import DEFAULT_MIN_CONFIDENCE

CHUNK = 1000  # images per inference call: small enough for a smooth progress bar, big enough to stay fast


def evaluate_model(
    model: str | Path | None = None,
    out: str | Path = "out/evaluate",
    data_dir: str | Path | None = None,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    replace: bool = False,
    min_confidence: float | None = None,
) -> dict:
    """Evaluate MODEL (.onnx, .pt, run folder; None = the shipped model) on the MNIST test set, write every
    artefact to OUT and return the summary (also written as summary.json). `limit` keeps the first N images;
    `progress(done, total)` is called after each chunk of inference. A report of another model already in
    OUT is replaced only with `replace=True` (the same model's report is refreshed). `min_confidence`: the
    threshold whose effect the report's doubt section shows (default: doubt.DEFAULT_MIN_CONFIDENCE)."""
    from digitrec import __version__
    from digitrec.data import load_mnist
    from digitrec.errors import DigitrecError
    from digitrec.evaluate import metrics, report
    from digitrec.evaluate.sources import open_model
    from digitrec.files import atomic_write

    if min_confidence is None:
        min_confidence = DEFAULT_MIN_CONFIDENCE
    if limit is not None and limit < 1:
        raise DigitrecError(f"--limit must be at least 1, got {limit}")
    source = open_model(model)
    out = Path(out)
    previous = _reported_model(out)
    if previous and previous != str(source.path) and not replace:
        raise DigitrecError(
            f"{out} holds the report of another model ({previous}): pass --force to replace it, or choose another --out"
        )
    try:  # before the work, so a bad --out fails at once
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DigitrecError(f"cannot create the output folder {out}: {exc.strerror}") from None
    images, labels = load_mnist("test", data_dir)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]

    start = time.perf_counter()
    chunks = []
    for begin in range(0, len(images), CHUNK):
        chunks.append(source.predict_probabilities(images[begin : begin + CHUNK]))
        if progress:
            progress(min(begin + CHUNK, len(images)), len(images))
    probs = np.concatenate(chunks).astype(np.float32)
    seconds = time.perf_counter() - start
    # What the shipped rejector would flag before any model answers (the report's "what was flagged").
    from digitrec.reject import Rejector

    rejected = Rejector(threads=1).reasons(images)

    summary = {
        "model": {"path": str(source.path), "kind": source.kind, "name": source.name, "card": source.card},
        **metrics.summarize(labels, probs),
        "doubt": metrics.doubt_summary(images, labels, probs, min_confidence, rejected),
        "limit": limit,
        "seconds": round(seconds, 4),
        "images_per_second": len(labels) / max(seconds, 1e-9),
        "history_source": source.history_source,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "digitrec_version": __version__,
        "out": str(out),
    }
    files = {
        "predictions": report.write_predictions_csv(labels, probs, out / report.FILES["predictions"]),
        "confusion_csv": report.write_confusion_csv(
            np.array(summary["confusion"]), out / report.FILES["confusion_csv"]
        ),
    }
    figures = report.write_figures(out, images, labels, probs, summary, source.history)
    files.update(figures)
    files["summary"] = out / report.FILES["summary"]
    files["report"] = out / report.FILES["report"]
    summary["files"] = {key: str(path) for key, path in files.items()}
    html_text = report.render_html(summary, figures, source.card, files)
    atomic_write(files["report"], html_text)  # whole or not at all, as every file here
    summary["report_seconds"] = round(time.perf_counter() - start - seconds, 4)  # CSVs, figures, page
    atomic_write(files["summary"], json.dumps(summary, indent=2) + "\n")
    return summary


def _reported_model(out: Path) -> str | None:
    """The model path in OUT's summary.json, or None when OUT holds no readable report."""
    from digitrec.evaluate.report import FILES

    try:
        return str(json.loads((out / FILES["summary"]).read_text(encoding="utf-8"))["model"]["path"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
