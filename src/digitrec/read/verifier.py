"""The reader's segmentation verifier: is this candidate one digit? (onnxruntime only.)

A small CNN shipped beside the digit model (`assets/verifier.onnx`, trained by
`python -m digitrec.train.verifier`) with eleven outputs: the ten digits and "not one digit" (half a
digit, two touching digits, a stroke of punctuation). The reader weighs each candidate run of ink by
the verifier's probability that it is one digit at all (a power of it: `ReaderParams.verifier_weight`),
which the digit model cannot say: trained on whole digits only, it reads half a 0 as a confident 1.
Each `NumberReader` owns one, with its recognizer's thread count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from digitrec import paths
from digitrec.errors import ModelError
from digitrec.modelfile.read import open_model, softmax

NOT_ONE_DIGIT = 10


def default_verifier_path() -> Path:
    return paths.assets_dir() / "verifier.onnx"


class Verifier:
    def __init__(self, path: str | Path | None = None, threads: int | None = None):
        self.path = Path(path) if path else default_verifier_path()
        # The card says how the network is fed (input name, pixel scaling), as for any digit model.
        self.session, card = open_model(self.path, "segmentation verifier", threads, require_input=True)
        assert card is not None  # require_input: a file without a card was refused
        if (card.labels or ())[NOT_ONE_DIGIT:] != ("not one digit",):
            raise ModelError(f"{self.path} is not a segmentation verifier (its card has no 'not one digit' output)")
        self.input = card.input

    def probabilities(self, digits28: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """uint8 (N, 28, 28), ink = 255 on black -> float32 (N, 11): the digits, then not-one-digit."""
        out = []
        for start in range(0, len(digits28), batch_size):
            x = self.input.scale(digits28[start : start + batch_size])[:, None]  # (N, 1, 28, 28)
            out.append(softmax(self.session.run(None, {self.input.name: x})[0]))
        return np.concatenate(out) if out else np.zeros((0, 11), np.float32)

    def one_digit(self, digits28: np.ndarray) -> np.ndarray:
        """float32 (N,): the probability that each candidate is one digit."""
        return 1.0 - self.probabilities(digits28)[:, NOT_ONE_DIGIT]
