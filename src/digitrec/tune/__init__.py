"""Fine-tuning a digit model on the user's own handwriting (`digitrec finetune`, `digitrec.finetune`).

  data.py     the user's labelled images: CSV files or digit folders -> what predict sees. No torch.
  weights.py  the base model as a PyTorch module (the shipped model is rebuilt from its ONNX weights).
  run.py      the run: replay, augmentation, early stopping, calibration, the ONNX model and card.

Only `run` and `weights` import torch; importing this package does not.
"""


def finetune(data, out, **options) -> dict:
    """See `digitrec.tune.run.finetune`. Needs PyTorch (the training extra)."""
    from digitrec.extras import require

    require("train", "torch", "onnx")
    from digitrec.tune.run import finetune as run

    return run(data, out, **options)
