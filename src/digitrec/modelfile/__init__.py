"""Model files: the contract between training and the runtime, in one place.

card.py   `ModelCard`: the JSON in an ONNX file's metadata_props["digitrec"] (and beside it,
          model.onnx -> model_card.json), with a format version and validation. numpy only.
read.py   opening a model (onnxruntime) and reading its card; softmax / log-softmax of its
          outputs. Used by the Recognizer, the verifier and the line reader. No torch.
write.py  the one ONNX writer: export, parity check against the source model, card, onnx.checker,
          atomic rename. Used by `digitrec export` (PyTorch and Keras) and every training script.
"""

from digitrec.modelfile.card import CARD_KEY, FORMAT, InputContract, ModelCard, card_path_for
from digitrec.modelfile.read import log_softmax, open_model, open_session, read_card, softmax

__all__ = [
    "CARD_KEY",
    "FORMAT",
    "InputContract",
    "ModelCard",
    "card_path_for",
    "log_softmax",
    "open_model",
    "open_session",
    "read_card",
    "softmax",
]
