"""Fine-tuning a digit model on the user's own handwriting (`digitrec finetune`, `digitrec.finetune`).

  data.py     the user's labelled images: CSV files or digit folders -> what predict sees. No torch.
  numbers.py  the user's labelled numbers -> their digits, cut where the reader finds each. No torch.
  weights.py  the base model as a PyTorch module (the shipped model is rebuilt from its ONNX weights).
  run.py      the run: replay, augmentation, early stopping, calibration, the ONNX model and card.

Only `run` and `weights` import torch; importing this package does not.
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def finetune(data, out, *, numbers=None, warn=lambda m: None, **options) -> dict:
    """See `digitrec.tune.run.finetune`. Needs PyTorch (the training extra). `numbers`: a CSV
    path,text of labelled numbers, whose digits are cut out (`tune.numbers`) and added to DATA;
    the summary then has `numbers`: {given, used, digits}."""
    from digitrec.extras import require

    require("train", "torch", "onnx")
    from digitrec.tune.run import finetune as run

    if numbers is None:
        return run(data, out, warn=warn, **options)
    from digitrec.runtime import Recognizer
    from digitrec.tune.numbers import digits_from_numbers, list_numbers

    sources = [data] if isinstance(data, (str, Path)) else list(data or [])
    listed = list_numbers(numbers)
    model = options.get("model")
    # The reader that finds the digits: the base model where it is an ONNX file, else the shipped one.
    reader = Recognizer(model if model is not None and Path(model).suffix.lower() == ".onnx" else None, threads=1)
    with tempfile.TemporaryDirectory(prefix="digitrec-numbers-") as folder:
        cut = digits_from_numbers(listed, reader.read, Path(folder), warn)
        summary = run([*sources, cut.csv], out, warn=warn, **options)
    summary["numbers"] = {"given": cut.numbers, "used": cut.used, "digits": cut.digits}
    return summary
