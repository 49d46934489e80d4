"""How sure the reader is of a whole reading: the evidence each line leaves, and the calibration
map that turns it into a probability that the line is right. numpy only.

A product of the digits' probabilities is no such probability: the digit model was trained with
label smoothing (a clean digit says 83-94%), the digits' errors are not independent, and it says
nothing of the errors that matter most in a string: a digit too many or too few. The reader's
other parts do: the verifier's belief that each piece is one digit, and the line reader (which
reads the line without cutting it) agreeing or not. `ReaderParams.line_confidence` is a logistic
map over that evidence (Platt 1999), fitted on generated validation strings (MNIST training
digits the digit model held out, `benchmarks/read.py --fit-confidence`), never on ../shared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from digitrec.read.line_reader import greedy_decode, string_log_prob

FEATURES = ("bias", "digit log-prob", "one-digit log-prob", "line log-prob", "line agrees", "digits")


@dataclass(frozen=True)
class Evidence:
    """What the reader knows of one line it read."""

    digit_log_prob: float  # sum over the digits of log p(digit) from the digit model (T = 1)
    one_digit_log_prob: float  # sum over the pieces read of log p(one digit) from the verifier
    line_log_prob: float  # the line reader's log P(text) (all its alignments); 0 without it
    line_agrees: bool  # the line reader's own best path reads the same digits
    digits: int

    @classmethod
    def of(
        cls, digit_probs: np.ndarray, one_digit: np.ndarray, line_log_probs: np.ndarray | None, text: str
    ) -> Evidence:
        """The chosen digits' probabilities (n,), their pieces' one-digit probabilities (n,), the
        line reader's (columns, 11) log-probabilities (None: not used) and the text read."""
        line_lp, agrees = 0.0, False
        if line_log_probs is not None:
            line_lp = max(string_log_prob(line_log_probs, text), -50.0)
            agrees = greedy_decode(line_log_probs)[0] == text
        return cls(
            float(np.log(np.maximum(digit_probs, 1e-9)).sum()),
            float(np.log(np.maximum(one_digit, 1e-6)).sum()),
            float(line_lp),
            bool(agrees),
            len(text),
        )

    def features(self) -> np.ndarray:
        """float64 (len(FEATURES),), in the order of FEATURES."""
        return np.array(
            [
                1.0,
                self.digit_log_prob,
                self.one_digit_log_prob,
                self.line_log_prob,
                float(self.line_agrees),
                self.digits,
            ]
        )


@dataclass(frozen=True)
class ReaderParams:
    """The reader's settings that were fitted rather than written down.

    `confidence_weights`: the logistic map from a line's `Evidence.features()` to the probability
    that the line reads right; one weight per FEATURES entry. Fitted by `benchmarks/read.py
    --fit-confidence --per-length 30` with the shipped line reader (refitted 2026-12-06 when the
    line reader with marks replaced the digits-only one: 1,199 generated strings of 1-8 digits from
    the 5,000 MNIST training images the digit model held out, seed 100, all groups; 90.8% of them
    read right): ECE 0.015 there (the map fitted with the old line reader: 0.025; the product of
    the digits' probabilities: 0.301). The line reader's probability of the string and its
    agreeing weigh most; the digit count adds nothing once those are known.
    """

    confidence_weights: tuple[float, ...] = (2.5328, 0.1886, 0.1668, 0.5634, 0.9584, -0.0027)
    # The page read as one digit (`reading._one_digit_page`) must be at least this probable, and
    # more than the reading it replaces.
    one_digit_page: float = 0.5

    def line_confidence(self, evidence: Evidence) -> float:
        z = float(np.dot(self.confidence_weights, evidence.features()))
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


DEFAULT_PARAMS = ReaderParams()


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 50) -> np.ndarray:
    """Logistic regression by Newton's method: (N, F) features (a bias column included), (N,)
    0/1 labels -> (F,) weights minimising the mean log-loss plus `l2` times the squared weights
    (bias included: the small ridge keeps Newton stable when the classes separate)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -50, 50)))
        grad = x.T @ (p - y) / len(y) + 2 * l2 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x / len(y) + 2 * l2 * np.eye(len(w))
        delta = np.linalg.solve(hess, grad)
        w -= delta
        if np.abs(delta).max() < 1e-8:
            break
    return w
