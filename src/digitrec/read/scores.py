"""How well each candidate run of atoms reads as each digit: the digit model's log-probability,
the verifier's that it is one digit at all, a shape prior on its box, and the costs of the cuts
and gaps it makes (`run_scores`); and the runs sure enough that the line reader may not re-read
them (`sure_digits`). The settings are `ReaderParams`'. numpy only."""

from __future__ import annotations

import math

import numpy as np

from digitrec.preprocess.segment import Atom, TextLine
from digitrec.read.budget import Run
from digitrec.read.params import DEFAULT_PARAMS, ReaderParams


def shape_log_prior(
    width: float, height: float, line_height: float, params: ReaderParams = DEFAULT_PARAMS
) -> np.ndarray:
    """float (10,): log-prior that ink `width` x `height` px is each digit, in a line of digits
    `line_height` tall. Each digit has its own width-to-height ratio (MNIST: a 1 about 0.4, a 0
    about 0.9); runs far wider than their digit's are several digits, far narrower are slivers;
    runs much shorter than the line are fragments."""
    p = params
    mu, sd = np.array(p.aspect_mu), np.array(p.aspect_sd)
    z = (np.log(max(width, 1.0) / max(height, 1.0)) - mu) / (p.aspect_slack * sd)
    score: np.ndarray = -p.aspect_weight * 0.5 * np.maximum(np.abs(z) - 1.0, 0.0) ** 2
    w, h = width / line_height, height / line_height
    if w > p.wide:
        score = score - p.wide_cost * (w - p.wide)
    short = np.full(10, p.short)
    if p.compact_min * height <= width <= p.compact_max * height:
        short[list(p.small_digits)] = p.short_round
    score = score - p.short_cost * np.maximum(short - h, 0.0)
    if h > p.tall:
        score = score - p.tall_cost * (h - p.tall)
    return score


def _is_whole_component(atoms: list[Atom], i: int, j: int) -> bool:
    """Is the run atoms[i:j] exactly one connected component, uncut and alone?"""
    comp = atoms[i].component
    return (
        comp >= 0
        and all(a.component == comp for a in atoms[i:j])
        and (i == 0 or atoms[i - 1].component != comp)
        and (j == len(atoms) or atoms[j].component != comp)
    )


def _white_gaps(run: list[Atom]) -> float:
    """Total width of the empty columns between the atoms of a run, px: the pieces of one broken
    digit overlap or nearly touch; separate digits leave a gap."""
    if len(run) < 2:
        return 0.0
    spans = sorted((a.x, a.x + a.w) for a in run)
    gaps, reach = 0.0, spans[0][1]
    for left, right in spans[1:]:
        gaps += max(0, left - reach)
        reach = max(reach, right)
    return gaps


def run_scores(
    line: TextLine, groups: list[Run], probs: np.ndarray, one: np.ndarray, params: ReaderParams = DEFAULT_PARAMS
) -> dict[Run, np.ndarray]:
    """Score of reading each run of atoms (i, j) as each digit -> {(i, j): float (10,)}: the digit
    model's log-probability `probs` (runs, 10), the shape prior, the verifier's log-probability
    `one` (runs,) that the run is one digit, and the costs of gaps and cuts; -inf for runs that
    would break up a solid digit."""
    p = params
    atoms, n = line.atoms, len(line.atoms)
    score = {}
    for k, (i, j) in enumerate(groups):
        run = atoms[i:j]
        x0, x1 = min(a.x for a in run), max(a.x + a.w for a in run)
        y0, y1 = min(a.y for a in run), max(a.y + a.h for a in run)
        s = np.log(np.maximum(probs[k], 1e-9)) + shape_log_prior(x1 - x0, y1 - y0, line.height, p)
        s += p.verifier_weight * math.log(max(float(one[k]), 1e-6))
        s -= p.merge_gap_cost * _white_gaps(run) / line.height
        # Cuts inside the run are undone (free); the cut at its right end is paid for.
        s += p.digit_bonus - p.cut_cost * atoms[j - 1].cut_cost ** p.cut_power
        if j < n and atoms[j - 1].cut_cost == 0:
            gap = (atoms[j].x - max(a.x + a.w for a in run)) / line.height
            s -= p.gap_cost * max(0.0, p.gap_margin - gap)
        score[(i, j)] = s
    # A component that reads as one confident, well-proportioned digit and is not wide is that
    # digit: the halves of a 0 or an 8 also read confidently (as a 6 and a 1), but are not cut.
    for k, (i, j) in enumerate(groups):
        if j - i > 1 and _is_whole_component(atoms, i, j) and probs[k].max() >= p.solid_confidence:
            run = atoms[i:j]
            x0, x1 = min(a.x for a in run), max(a.x + a.w for a in run)
            y0, y1 = min(a.y for a in run), max(a.y + a.h for a in run)
            d = int(probs[k].argmax())
            z = (np.log((x1 - x0) / max(y1 - y0, 1)) - p.aspect_mu[d]) / p.aspect_sd[d]
            if x1 - x0 <= p.solid_width * line.height and abs(z) <= p.solid_shape:
                for g in score:
                    a, b = g
                    if (i < a < j or i < b < j) and g != (i, j):
                        score[g] = np.full(10, -np.inf)
    return score


def sure_digits(
    line: TextLine, groups: list[Run], probs: np.ndarray, verifier: np.ndarray, params: ReaderParams = DEFAULT_PARAMS
) -> dict[Run, int]:
    """Runs that are one whole connected component, uncut, that the digit model and the verifier
    (`verifier`: its (runs, 11) probabilities) both read as the same digit, the verifier with at
    least `params.sure_confidence` -> that digit. The line reader may not re-read or split these."""
    sure = {}
    for k, (i, j) in enumerate(groups):
        d = int(probs[k].argmax())
        agreed = verifier[k, d] >= params.sure_confidence and int(verifier[k].argmax()) == d
        if agreed and _is_whole_component(line.atoms, i, j):
            sure[(i, j)] = d
    return sure
