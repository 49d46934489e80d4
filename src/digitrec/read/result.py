"""What reading an image gives: `Reading` (its lines of `ReadDigit`s, text and confidence) and the
JSON it answers with (`--json`, the server's `POST /v1/read`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np

from digitrec import doubt
from digitrec.preprocess.debug import Stages
from digitrec.read.params import DEFAULT_PARAMS, Evidence, ReaderParams


# The JSON `to_dict` gives (--json, the server's answers).
class DigitJSON(TypedDict):
    digit: int
    confidence: float
    box: list[int]  # x, y, w, h
    uncertain: bool  # its confidence is under min_confidence: check this digit
    line: int  # which line (of `lines`, from 0) it is in


class ReadingJSON(TypedDict):
    text: str
    confidence: float
    digits: list[DigitJSON]
    lines: list[str]
    uncertain: bool  # the string's confidence is under min_confidence
    reason: str | None  # doubt.LOW_CONFIDENCE when uncertain, else None


@dataclass
class ReadDigit:
    digit: int
    confidence: float  # the digit model's calibrated probability (or the line reader's, when it overruled it)
    box: tuple[int, int, int, int]  # x, y, w, h in the input image's pixels
    image28: np.ndarray = field(repr=False)  # what the model saw
    raw: float = -1.0  # the uncalibrated (T = 1) probability the line decisions were tuned on; -1: = confidence
    evidence: Evidence | None = field(default=None, repr=False)  # on a line's first digit: the line's

    def __post_init__(self) -> None:
        if self.raw < 0:
            self.raw = self.confidence

    def to_dict(self, min_confidence: float = 0.0, line: int = 0) -> DigitJSON:
        return {
            "digit": self.digit,
            "confidence": round(float(self.confidence), 6),
            "box": [int(v) for v in self.box],
            "uncertain": bool(self.confidence < min_confidence),
            "line": line,
        }


@dataclass
class Reading:
    """Digits read from one image, line by line (top to bottom). `min_confidence`: the string, and
    each digit, under it is marked uncertain (`to_dict`)."""

    lines: list[list[ReadDigit]]
    stages: Stages = field(default_factory=dict, repr=False)  # for --debug
    # keep_punctuation: each line's text with its marks ('7.50'); None: digits only
    punctuated: list[str] | None = None
    min_confidence: float = 0.0
    params: ReaderParams = field(default=DEFAULT_PARAMS, repr=False)

    @property
    def digits(self) -> list[ReadDigit]:
        return [d for line in self.lines for d in line]

    @property
    def line_texts(self) -> list[str]:
        if self.punctuated is not None:
            return list(self.punctuated)
        return ["".join(str(d.digit) for d in line) for line in self.lines]

    @property
    def text(self) -> str:
        """The digits read; lines separated by a newline."""
        return "\n".join(self.line_texts)

    @property
    def confidence(self) -> float:
        """Probability that the whole string is right: each line's calibrated confidence
        (`ReaderParams.line_confidence` of the line's evidence), multiplied over the lines; for
        digits without evidence (built by hand), the product of their confidences."""
        if not self.digits:
            return 0.0
        per_line = [
            self.params.line_confidence(line[0].evidence)
            if line[0].evidence is not None
            else float(np.prod([d.confidence for d in line]))
            for line in self.lines
            if line
        ]
        return float(np.prod(per_line))

    @property
    def uncertain(self) -> bool:
        return self.confidence < self.min_confidence

    def to_dict(self) -> ReadingJSON:
        uncertain = self.uncertain
        return {
            "text": self.text,
            "confidence": round(self.confidence, 6),
            "digits": [d.to_dict(self.min_confidence, n) for n, line in enumerate(self.lines) for d in line],
            "lines": self.line_texts,
            "uncertain": uncertain,
            "reason": doubt.LOW_CONFIDENCE if uncertain else None,
        }
