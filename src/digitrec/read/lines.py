"""Which lines of digits read are the number: the main line (the biggest confident writing) and
the lines like it; printed captions, faint second hands and lone marks beside the number (a cross,
a tick read as a 1 or a 4) are dropped. The settings are `ReaderParams`'. numpy only."""

from __future__ import annotations

import numpy as np

from digitrec.preprocess.segment import TextLine
from digitrec.read.params import DEFAULT_PARAMS, ReaderParams
from digitrec.read.result import ReadDigit


def keep_number_lines(
    lines: list[tuple[TextLine, list[ReadDigit]]], params: ReaderParams = DEFAULT_PARAMS
) -> list[list[ReadDigit]]:
    """Drop lines that are not numbers: much smaller writing than the main line (printed captions),
    no confident digit, or a lone mark beside the number (a cross, a tick) that the classifier
    reads as a 1 or a 4 with middling confidence."""
    lines = [(t, d) for t, d in lines if d and not too_unsure([x.raw for x in d], params)]
    if not lines:
        return []

    # The number is the biggest writing: the main line is the one with the biggest confident
    # digits (mean confidence times digit area, times the square root of the number of digits:
    # a long row of hatching or border texture read as small 1s does not outweigh two large
    # digits, nor a lone stroke a number).
    def size(d: list[ReadDigit]) -> float:
        return float(np.median([x.box[3] for x in d]))

    def weight(td: tuple[TextLine, list[ReadDigit]]) -> float:
        return float(np.mean([x.raw for x in td[1]])) * size(td[1]) ** 2 * float(len(td[1]) ** 0.5)

    main_line, main_digits = max(lines, key=weight)
    kept = []
    for t, d in lines:
        if t is not main_line:
            p = params
            if t.height < p.min_line_height * main_line.height or size(d) < p.min_line_height * size(main_digits):
                continue
            if len(d) == 1 and (
                d[0].raw < p.lone_digit_confidence or t.height < p.lone_digit_height * main_line.height
            ):
                continue
        kept.append(d)
    return kept


def too_unsure(confidences: list[float], params: ReaderParams = DEFAULT_PARAMS) -> bool:
    """Whether a line whose digits the classifier gives these (uncalibrated) probabilities is too
    unsure to be a number: their mean under `params.min_line_confidence`."""
    return bool(np.mean(confidences) < params.min_line_confidence)
