"""The digits of each line: the candidates' probabilities (digit model, verifier, line reader)
through the decoder (`decode`), each chosen run a `ReadDigit` with its box and shown confidence,
each line's `Evidence` on its first digit; then only the lines that are numbers
(`lines.keep_number_lines`). No network runs here: it takes their outputs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from digitrec.preprocess.segment import Atom, Segmentation, TextLine
from digitrec.read.budget import Plan, no_deadline
from digitrec.read.decode import best_path, second_opinion
from digitrec.read.line_reader import greedy_decode
from digitrec.read.lines import keep_number_lines, too_unsure
from digitrec.read.params import DEFAULT_PARAMS, Evidence, ReaderParams
from digitrec.read.pattern import DigitPattern
from digitrec.read.result import ReadDigit
from digitrec.read.scores import run_scores, sure_digits
from digitrec.read.verifier import NOT_ONE_DIGIT


def choose_digits(
    seg: Segmentation,
    plan: Plan,
    images: np.ndarray,
    probs: np.ndarray,
    verifier: np.ndarray,
    line_log_probs: list[np.ndarray] | None = None,
    deadline: Callable[[], None] = no_deadline,
    pattern: DigitPattern | None = None,
    temperature: float = 1.0,
    params: ReaderParams = DEFAULT_PARAMS,
) -> list[list[ReadDigit]]:
    """The best path through each line's candidates (matching `pattern` when one is given),
    checked against the line reader's reading when one is given -> the digits of the lines that
    read as numbers, each line's `Evidence` on its first digit (`ReadDigit.evidence`). `deadline`
    is called before each line; `temperature`: the digit model's calibration, for the digits'
    shown confidences; `params`: the reader's settings."""
    lines, offset = [], 0
    fits: list[bool] = []  # under a pattern: each line, read without it, matches it
    for n, (line, groups) in enumerate(zip(seg.lines, plan)):
        deadline()
        index = {g: offset + k for k, g in enumerate(groups)}
        part = slice(offset, offset + len(groups))
        offset += len(groups)
        scores = run_scores(line, groups, probs[part], 1.0 - verifier[part, NOT_ONE_DIGIT], params)
        score, path = best_path(line, scores, pattern=pattern, params=params)
        if pattern is not None:
            fits.append(_fits(line, scores, pattern, None if line_log_probs is None else line_log_probs[n], params))
        line_says = 0.0  # the line reader's own certainty per digit, when its reading was taken
        if line_log_probs is not None and path:
            sure = sure_digits(line, groups, probs[part], verifier[part], params)
            # A line the cuts read this unsurely is dropped (`keep_number_lines`): the line reader may have it.
            unsure = too_unsure([float(probs[index[(i, j)]][d]) for i, j, d in path], params)
            path, line_says = second_opinion(
                line, scores, sure, score, path, line_log_probs[n], pattern, params, unsure
            )
        digits = []
        for i, j, d in path:
            k = index[(i, j)]
            raw = max(float(probs[k][d]), line_says)
            shown = max(float(calibrated(probs[k], temperature)[d]), line_says)
            digits.append(ReadDigit(d, shown, box_of(line.atoms[i:j], seg.scale), images[k], raw=raw))
        if digits:
            ks = [index[(i, j)] for i, j, _ in path]
            text = "".join(str(d) for _, _, d in path)
            digits[0].evidence = Evidence.of(
                probs[ks, [d for _, _, d in path]],
                1.0 - verifier[ks, NOT_ONE_DIGIT],
                None if line_log_probs is None else line_log_probs[n],
                text,
            )
        lines.append((line, digits))
    if pattern is not None:
        # Under a constraint each line reads as its best reading that matches, on a line of another
        # count a forced one (`123 / 4567 / 89` with --digits 4 read `1223 / 4567 / 2179`). The
        # lines that match it read freely are the number asked for: the others go, before the
        # biggest line is chosen (a forced big line made a small one that fits look like a caption).
        # None fits: every line stays, its forced reading flagged by its confidence.
        lines = [(t, d) for (t, d), ok in zip(lines, fits) if ok and d] or lines
    return keep_number_lines(lines, params)


def _fits(
    line: TextLine,
    scores: dict[tuple[int, int], np.ndarray],
    pattern: DigitPattern,
    log_probs: np.ndarray | None,
    params: ReaderParams,
) -> bool:
    """Whether `line`, read without the constraint, matches `pattern`: by the cuts' own best path,
    or the line reader's own reading. A line of another count is then read as the best reading that
    matches, a forced one (`123` with --digits 4: `1223`)."""
    free = "".join(str(d) for _, _, d in best_path(line, scores, params=params)[1])
    return pattern.matches(free) or (log_probs is not None and pattern.matches(greedy_decode(log_probs)[0]))


def calibrated(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities (T = 1) -> softmax(logits / temperature): log p differs from the logits by a
    constant per row, so the temperature can be applied to it."""
    z = np.log(np.maximum(probs, 1e-12)) / temperature
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


def box_of(run: list[Atom], scale: float) -> tuple[int, int, int, int]:
    """The box (x, y, w, h) of the atoms `run` in the input image's pixels (working px / `scale`)."""
    x0, y0 = min(a.x for a in run), min(a.y for a in run)
    x1, y1 = max(a.x + a.w for a in run), max(a.y + a.h for a in run)
    return (int(x0 / scale), int(y0 / scale), max(1, round((x1 - x0) / scale)), max(1, round((y1 - y0) / scale)))
