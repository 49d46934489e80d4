"""The rejector: is this one digit, or not a digit, several digits, or nothing written? (onnxruntime only.)

A small CNN shipped beside the digit model (`assets/rejector.onnx`, trained by
`python -m digitrec.train.rejector`) with four outputs (`CLASSES`). It looks at the same 28x28
view the digit model reads (the first of `preprocess.digit.digit_views`) and was trained on images
of letters, symbols, scribbles, shapes, blank pages and digit pairs drawn and preprocessed exactly
as `predict` preprocesses a user's file (`digitrec.train.negatives`). The digit model cannot say
"this is no digit": trained on digits only, it calls a B an 8 at 89%.

An input is rejected when the rejector's probability that it is one digit is under the card's
`rejector.threshold`, chosen on held-out fonts and MNIST writers (never on real user data). The
reason given is then the likeliest of the reason head's three (`reasons`, a second output grafted
on by `digitrec.train.reason_head`, which learned longer numbers as *several digits* too), or, in
a rejector without that head, the likeliest of the other three classes. Each `Recognizer` owns
one, loaded on first use (`Recognizer(reject=False)` never loads it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, overload

import numpy as np

from digitrec import doubt, paths
from digitrec.errors import ModelError
from digitrec.modelfile.card import ModelCard
from digitrec.modelfile.read import open_model, softmax

DIGIT = 0
CLASSES = ("digit", doubt.NOT_A_DIGIT, doubt.SEVERAL_DIGITS, doubt.NO_INK)  # the network's outputs, in order
REASONS_OUTPUT = "reasons"  # the reason head's logits over CLASSES[1:], when the file has one


def default_rejector_path() -> Path:
    return paths.assets_dir() / "rejector.onnx"


class Rejector:
    def __init__(self, path: str | Path | None = None, threads: int | None = None):
        self.path = Path(path) if path else default_rejector_path()
        self.session, card = open_model(self.path, "rejector", threads, require_input=True)
        settings = card.data.get("rejector") if card is not None else None
        if card is None or tuple(card.labels or ()) != CLASSES or not isinstance(settings, dict):
            raise ModelError(f"{self.path} is not a digitrec rejector (its card lacks the labels {list(CLASSES)})")
        threshold = settings.get("threshold")
        if not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise ModelError(f"{self.path}: rejector.threshold should be a probability, got {threshold!r}")
        self.threshold = float(threshold)
        self.card: ModelCard = card
        self.has_reason_head = REASONS_OUTPUT in {output.name for output in self.session.get_outputs()}

    def probabilities(self, views28: np.ndarray) -> np.ndarray:
        """uint8 (N, 28, 28), ink = 255 on black -> float32 (N, 4) calibrated probabilities of CLASSES."""
        return probabilities(self.session, self.card, views28)

    def reasons(self, views28: np.ndarray) -> list[str | None]:
        """uint8 (N, 28, 28) -> per view None (one digit: answer it) or the doubt reason to flag it with."""
        if not self.has_reason_head:
            return reasons_from(self.probabilities(views28), self.threshold)
        probs, head = probabilities(self.session, self.card, views28, reasons=True)
        return reasons_from(probs, self.threshold, head)


@overload
def probabilities(
    session, card: ModelCard, views28: np.ndarray, batch_size: int = ..., *, reasons: Literal[False] = ...
) -> np.ndarray: ...
@overload
def probabilities(
    session, card: ModelCard, views28: np.ndarray, batch_size: int = ..., *, reasons: Literal[True]
) -> tuple[np.ndarray, np.ndarray]: ...
def probabilities(session, card: ModelCard, views28: np.ndarray, batch_size: int = 1024, *, reasons: bool = False):
    """A rejector's session and card, uint8 (N, 28, 28) views -> float32 (N, 4): softmax(logits / T);
    with `reasons`, also the reason head's (N, 3) logits (the file must have the head)."""
    names = ["logits", REASONS_OUTPUT] if reasons else ["logits"]
    if reasons and REASONS_OUTPUT not in {output.name for output in session.get_outputs()}:
        raise ModelError(f"{card.name or 'this rejector'} has no reason head (no output {REASONS_OUTPUT!r})")
    out, head = [], []
    for start in range(0, len(views28), batch_size):
        x = card.input.scale(views28[start : start + batch_size])[:, None]  # (N, 1, 28, 28)
        outputs = session.run(names, {card.input.name: x})
        out.append(softmax(outputs[0] / card.temperature))
        head.extend(outputs[1:])
    probs = np.concatenate(out) if out else np.zeros((0, len(CLASSES)), np.float32)
    if reasons:
        return probs, np.concatenate(head) if head else np.zeros((0, len(CLASSES) - 1), np.float32)
    return probs


def reasons_from(probabilities: np.ndarray, threshold: float, head: np.ndarray | None = None) -> list[str | None]:
    """(N, 4) probabilities of CLASSES -> None where P(digit) >= threshold, else the likeliest other
    class: by the reason head's (N, 3) logits over CLASSES[1:] when given, else by `probabilities`."""
    other = 1 + (probabilities[:, 1:] if head is None else head).argmax(axis=1)
    return [None if p[DIGIT] >= threshold else CLASSES[k] for p, k in zip(probabilities, other)]
