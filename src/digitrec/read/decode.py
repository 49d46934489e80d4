"""The decoder: the best reading of a line of atoms. A dynamic programme over atom boundaries
(`best_path`) in which each step is one digit (a candidate run, scored by `scores.run_scores`) or
skipped punctuation, held to a `--digits`/`--pattern` automaton when given; then the line
reader's second opinion (`second_opinion`): when it reads the line otherwise, the best path that
reads as it does is taken if it scores more once each string's line-reader log-probability is
added. No network runs here: it takes their outputs."""

from __future__ import annotations

import math
from typing import TypeAlias

import numpy as np

from digitrec.preprocess.segment import TextLine
from digitrec.read.budget import Run
from digitrec.read.line_reader import constrained_decode, greedy_decode, string_log_prob
from digitrec.read.params import DEFAULT_PARAMS, ReaderParams
from digitrec.read.pattern import DigitPattern, exactly

ReadPath: TypeAlias = list[tuple[int, int, int]]  # a line read: (first atom, end atom, digit), left to right

# No constraint: one state that every digit keeps, and that accepts (`best_path`).
ANY_DIGITS = DigitPattern(np.zeros((1, 10), np.int32), np.ones(1, bool), "any digits")


def best_path(
    line: TextLine,
    scores: dict[Run, np.ndarray],
    text: str | None = None,
    sure: dict[Run, int] | None = None,
    pattern: DigitPattern | None = None,
    params: ReaderParams = DEFAULT_PARAMS,
) -> tuple[float, ReadPath]:
    """Viterbi over atom boundaries: each step is one digit (a run of atoms) or skipped
    punctuation (`_skips`). With `pattern` (`digitrec.read.pattern`: --digits, --pattern) the
    search steps its automaton with every digit read and keeps only paths that can still match,
    so the answer is the best path that matches. With `text`, only paths that read exactly those
    digits count (each run scored as the digit it must be; a run in `sure` only as its sure digit,
    never split or merged with a neighbour, though a small one may still be skipped as
    punctuation: forbidding that read worse on the strings that choose). -> (the path's score,
    [(first atom, end atom, digit)] left to right); (-inf, []) when no path reads `text` or
    matches `pattern`."""
    held = text is not None
    automaton = pattern or ANY_DIGITS
    if text is not None:
        automaton = exactly(text) if pattern is None else exactly(text) & pattern
    step, accept = automaton.step, automaton.accept
    # Per state: each state it can go to, and the digits that go there (a digit's best run wins).
    moves = [[(int(t), np.nonzero(row == t)[0]) for t in np.unique(row[row >= 0])] for row in step]
    sure = (sure or {}) if held else {}
    # Runs that hold part of a sure run, or it and more: not allowed when held to `text`.
    broken = {g for g in scores for r in sure if g != r and g[0] < r[1] and r[0] < g[1]}
    n = len(line.atoms)
    best = np.full((len(accept), n + 1), -np.inf)
    if len(accept):
        best[0, 0] = 0.0
    back: dict[tuple[int, int], tuple[int, int, int | None]] = {}
    by_start: dict[int, list[Run]] = {}
    for g in scores:
        by_start.setdefault(g[0], []).append(g)
    skips = _skips(line, params.skippable, params.skip_small)
    if held and params.skip_held > -np.inf:
        for i, tall in _skips(line, math.inf, params.skip_held).items():
            for j, cost in tall:
                covered = [(a, b) for a, b in sure if a < j and i < b]
                if not covered:
                    skips.setdefault(i, []).append((j, cost))
                elif all(i <= a and b <= j for a, b in covered):  # whole sure runs, none broken
                    skips.setdefault(i, []).append((j, cost + params.skip_sure))
    for i in range(n):
        for m in range(len(accept)):
            here = best[m, i]
            if here == -np.inf:
                continue
            for j, cost in skips.get(i, []):
                if here + cost > best[m, j]:
                    best[m, j], back[(m, j)] = here + cost, (m, i, None)
            for a, b in by_start.get(i, []):
                if (a, b) in broken:
                    continue
                run = scores[(a, b)]
                for to, digits in moves[m]:
                    if (a, b) in sure:
                        digits = digits[digits == sure[(a, b)]]
                        if not len(digits):
                            continue
                    d = int(digits[run[digits].argmax()])
                    s = here + float(run[d])
                    if s > best[to, b]:
                        best[to, b], back[(to, b)] = s, (m, a, d)
    ends = np.where(accept, best[:, n], -np.inf) if len(accept) else np.zeros(0)
    if not len(ends) or ends.max() == -np.inf:
        return -np.inf, []
    m, k = int(ends.argmax()), n
    total = float(best[m, k])
    path = []
    while k > 0:
        m_prev, a, digit = back[(m, k)]
        if digit is not None:
            path.append((a, k, digit))
        m, k = m_prev, a
    return total, path[::-1]


def _skips(line: TextLine, skippable: float, cost: float) -> dict[int, list[tuple[int, float]]]:
    """What may be skipped as punctuation (shorter than `skippable` line heights), as {first atom:
    [(end atom, cost)]}: one small atom, or a whole small component that the segmenter cut into
    several (a slash or a dash wide enough to look like touching digits), for the price of one: a
    mark costs the same to skip however it was cut."""
    atoms, limit = line.atoms, skippable * line.height
    skips: dict[int, list[tuple[int, float]]] = {}
    for i, a in enumerate(atoms):
        if a.h < limit:
            skips.setdefault(i, []).append((i + 1, cost))
        if a.component >= 0 and (i == 0 or atoms[i - 1].component != a.component):
            j = i
            while j < len(atoms) and atoms[j].component == a.component:
                j += 1
            if j - i > 1 and max(b.y + b.h for b in atoms[i:j]) - min(b.y for b in atoms[i:j]) < limit:
                skips.setdefault(i, []).append((j, cost))
    return skips


def second_opinion(
    line: TextLine,
    scores: dict[Run, np.ndarray],
    sure: dict[Run, int],
    score: float,
    path: ReadPath,
    log_probs: np.ndarray,
    pattern: DigitPattern | None = None,
    params: ReaderParams = DEFAULT_PARAMS,
    unsure: bool = False,
) -> tuple[ReadPath, float]:
    """The segmentation's best path, or - when the line reader reads the line otherwise - the
    best path that reads as the line reader does, whichever scores more with the line reader's
    log-probability of its string (times `params.line_weight`) added. The boxes always come from a path.
    -> (path, the line reader's probability of its string per digit (geometric mean) when its
    reading was taken, else 0): the classifier alone is unsure of a digit it was overruled on.
    With `pattern`, the line reader's reading is the best of its paths that matches it. `unsure`:
    the cuts' digits are too unsure for the line to be kept (`lines.keep_number_lines`), so the line
    reader's reading is taken whenever a path reads it and the line reader is itself at least
    `params.sure_confidence` sure of each digit (a 7 in a printed box, the box's side in its run,
    read as a 2 at 48%: the page read nothing)."""
    text = "".join(str(d) for _, _, d in path)
    other, _ = greedy_decode(log_probs) if pattern is None else constrained_decode(log_probs, pattern)
    if other == text or not other:
        return path, 0.0
    other_score, other_path = best_path(line, scores, other, sure, pattern, params)
    if not other_path:
        return path, 0.0
    weight = params.line_weight if len(other) != len(text) else params.line_weight_same_count
    mine = score + weight * string_log_prob(log_probs, text)
    theirs_line = string_log_prob(log_probs, other)
    certainty = math.exp(theirs_line / len(other))
    # Unsure cuts give way to a line reader that is sure itself (not to its reading of a scribble).
    forced = unsure and certainty >= params.sure_confidence
    if not forced and other_score + weight * theirs_line <= mine:
        return path, 0.0
    return other_path, certainty
