"""Read a whole handwritten number: segmentation chosen by the classifier.

`digitrec.preprocess.segment` cuts each text line into atoms (components, and slices of
components that may hold touching digits). Here a dynamic programme walks each line left to right
and decides, for every run of consecutive atoms, whether it is one digit (score: the classifier's
log-probability of its best digit, plus the segmentation verifier's log-probability that the run is
one digit at all (`digitrec.read.verifier`), plus a shape prior on the run's width and height relative to
the line), or - for a small atom - punctuation to skip. The best-scoring path is the reading,
unless the line reader (`digitrec.read.line_reader`, which reads the whole line without cutting it)
reads the line otherwise and the best path that reads as it does scores more once each string's
line-reader log-probability is added (`_second_opinion`).

Reading costs network calls per candidate run, so a page of hundreds of short strokes would cost
many seconds: each image is read within a `ReadBudget` (lines, pieces of ink, candidate runs and
seconds), counted before the networks run; past it `TooMuchToRead` is raised.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias, TypedDict

import numpy as np

from digitrec import doubt
from digitrec.errors import ImageError, TooMuchToRead
from digitrec.preprocess import load_grey
from digitrec.preprocess.debug import Stages
from digitrec.preprocess.digit import fit_and_centre
from digitrec.preprocess.load import ImageSource
from digitrec.preprocess.segment import WORK_MIN_SIDE, Atom, Segmentation, TextLine, render_group, segment
from digitrec.read.line_reader import constrained_decode, greedy_decode, line_image, string_log_prob
from digitrec.read.params import DEFAULT_PARAMS, Evidence, ReaderParams
from digitrec.read.pattern import DigitPattern, exactly
from digitrec.read.verifier import NOT_ONE_DIGIT

if TYPE_CHECKING:  # for annotations only: runtime imports this module (in Recognizer.read)
    from digitrec.runtime import Recognizer

Run: TypeAlias = tuple[int, int]  # a run of atoms line.atoms[i:j], as (i, j)
Plan: TypeAlias = list[list[Run]]  # the candidate runs of each line
ReadPath: TypeAlias = list[tuple[int, int, int]]  # a line read: (first atom, end atom, digit), left to right

MAX_ATOMS_PER_DIGIT = 6
# No constraint: one state that every digit keeps, and that accepts (`best_path`).
ANY_DIGITS = DigitPattern(np.zeros((1, 10), np.int32), np.ones(1, bool), "any digits")
# Weight of the verifier's log-probability that a run of atoms is one digit (see digitrec.read.verifier).
VERIFIER_WEIGHT = 0.5
# Weight of the line reader's log-probability of a line's string (see `_second_opinion`). The line
# reader is better at telling how many digits touching ink holds than at telling digits apart, so
# when both readings have as many digits its word counts less; and it never re-reads, splits or
# merges a whole, uncut component that the digit model and the verifier read alike, the verifier
# this surely (a small one may still be dropped as punctuation).
LINE_WEIGHT, LINE_WEIGHT_SAME_COUNT = 1.0, 0.25
SURE_CONFIDENCE = 0.9
# Scores are natural-log probabilities. Skipping a small atom (a dot, a dash, a speck) scores
# SKIP_SMALL; reading it as a digit scores log p(digit) + VERIFIER_WEIGHT log p(one digit) +
# DIGIT_BONUS (+ shape prior and cut cost), so a small atom is read when p(digit) x sqrt(p(one digit))
# is above ~0.37. (Before the verifier skipping scored -0.1, to skip punctuation readily; the
# verifier now says punctuation is not a digit, and that made small digits get dropped.)
SKIP_SMALL = -0.5
SKIPPABLE = 0.8  # atoms shorter than this many line heights may be skipped
# Charged per stroke width of ink that a chosen cut goes through: cutting strokes is the
# exception (touching digits), not the rule.
CUT_COST, CUT_POWER = 0.25, 1.0
# log(width / height) of each digit's ink box in MNIST's training set: mean and standard deviation
# (from `load_mnist("train")`, ink > 60). Real writers vary more: the spread is widened by
# ASPECT_SLACK, and within one (widened) standard deviation a shape costs nothing.
ASPECT_MU = np.array([-0.104, -0.925, -0.07, -0.232, -0.239, -0.073, -0.323, -0.262, -0.279, -0.392])
ASPECT_SD = np.array([0.194, 0.458, 0.216, 0.211, 0.211, 0.256, 0.216, 0.214, 0.22, 0.205])
ASPECT_SLACK, ASPECT_WEIGHT = 2.0, 0.5
# Runs shorter than SHORT line heights are fragments or punctuation: SHORT_COST per line height.
SHORT, SHORT_COST = 0.7, 12.0
# ...except that a compact run (width ROUND-FLAT times its height) read as a digit other than a
# 1 or a 7 may be as short as SHORT_ROUND: trailing digits written smaller (the zeros of a
# cheque's amount, often joined by a ligature). A dash is flat, a dot far shorter, and any
# piece of a stroke reads as a 1 or a 7, so those keep the stricter limit.
SHORT_ROUND, ROUND, FLAT = 0.5, 0.6, 2.0
SMALL_DIGITS = [0, 2, 3, 4, 5, 6, 8, 9]
# Digits wider than WIDE line heights are penalised by WIDE_COST per extra line height.
WIDE, WIDE_COST = 1.3, 2.0
# Ending a digit where the next piece of ink overlaps it horizontally (a natural gap, not a cut)
# costs GAP_COST per line height of overlap (plus a margin of GAP_MARGIN): separate digits
# rarely overlap, the loose pieces of one broken digit often do.
GAP_COST, GAP_MARGIN = 0.0, 0.05
# Reading ink separated by empty columns as one digit costs MERGE_GAP_COST per line height of gap.
MERGE_GAP_COST = 10.0
# Each digit read earns this much. Every digit adds a log-probability (<= 0) to a path, so without
# it a path of fewer digits wins by default: two touching digits read as one, a small digit skipped.
DIGIT_BONUS = 0.5
# A connected component no wider than SOLID_WIDTH line heights that reads as one digit with at
# least SOLID_CONFIDENCE, in a shape usual for that digit, is never cut.
SOLID_CONFIDENCE, SOLID_WIDTH = 0.9, 1.0
# A line is dropped when its digits are much smaller than the main line's (printed captions,
# a faint second hand) or when the classifier finds no confident digit in it.
MIN_LINE_HEIGHT = 0.55
MIN_LINE_CONFIDENCE = 0.5
LONE_DIGIT_CONFIDENCE = 0.95  # a second line of one digit must be read at least this surely


@dataclass(frozen=True)
class ReadBudget:
    """The most work reading one image may take; past any limit `read_number` raises
    `TooMuchToRead` ("too much to read: ..."). The counts are checked after segmentation, before
    anything is rendered or goes through a network; the time between lines (and before the
    networks run). Pass `ReadBudget(max_lines=...)` etc. to `Recognizer.read(image, budget=...)`;
    a limit of None is no limit (`UNLIMITED`: none at all).

    The defaults sit well above what real writing needs (below, and docs/read.md, "Work budget"):
    every image of `benchmarks/read.py` reads exactly as without them. A hostile image (a page of
    thousands of short strokes: tens of thousands of candidates, tens of seconds of CPU) is
    refused for about what finding its ink costs."""

    # Limits 3-6x the most any real or generated number needs. `benchmarks/read.py` (2026-12-06:
    # 1,000 generated strings of 1-8 digits and the 219 real multi-digit rows of ../shared) needed at
    # most 5 lines, 62 pieces in one line, 24 components and 68 pieces in an image, 361 candidates
    # and 1.9-3.2 s per image (0.6 s on an idle machine; 3.2 s with its 2 cores shared 4-5 ways).
    max_lines: int | None = 20  # text lines found
    max_pieces_per_line: int | None = 300  # atoms (components and their slices) in one line
    max_pieces: int | None = 400  # components before lines are formed, and atoms once cut
    max_candidates: int | None = 1500  # runs of atoms rendered and classified (verifier + classifier)
    max_seconds: float | None = 10.0  # wall clock from the start of the read (decoding included)

    def check_counts(self, seg: Segmentation, plan: Plan) -> None:
        """Raise TooMuchToRead if the segmentation `seg`, with candidate runs `plan` per line,
        holds more than the budget allows (`segment` checks `max_pieces` itself, as it goes)."""
        _refuse_over(len(seg.lines), self.max_lines, "lines of writing")
        _refuse_over(
            max((len(line.atoms) for line in seg.lines), default=0),
            self.max_pieces_per_line,
            "pieces of ink in one line",
        )
        _refuse_over(sum(map(len, plan)), self.max_candidates, "candidate digits")

    def deadline(self) -> Callable[[], None]:
        """Start the clock -> a function that raises TooMuchToRead once `max_seconds` have passed."""
        if self.max_seconds is None:
            return _no_deadline
        start, limit = time.monotonic(), self.max_seconds

        def check() -> None:
            spent = time.monotonic() - start
            if spent > limit:
                raise TooMuchToRead.too_slow(spent, limit)

        return check


def _refuse_over(count: int, limit: int | None, what: str) -> None:
    if limit is not None and count > limit:
        raise TooMuchToRead.over(count, what, limit)


def _no_deadline() -> None:
    pass


DEFAULT_BUDGET = ReadBudget()
UNLIMITED = ReadBudget(None, None, None, None, None)


# The JSON `to_dict` gives (--json, the server's answers).
class DigitJSON(TypedDict):
    digit: int
    confidence: float
    box: list[int]  # x, y, w, h
    uncertain: bool  # its confidence is under min_confidence: check this digit


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

    def to_dict(self, min_confidence: float = 0.0) -> DigitJSON:
        return {
            "digit": self.digit,
            "confidence": round(float(self.confidence), 6),
            "box": [int(v) for v in self.box],
            "uncertain": bool(self.confidence < min_confidence),
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
            "digits": [d.to_dict(self.min_confidence) for d in self.digits],
            "lines": self.line_texts,
            "uncertain": uncertain,
            "reason": doubt.LOW_CONFIDENCE if uncertain else None,
        }


def shape_log_prior(width: float, height: float, line_height: float) -> np.ndarray:
    """float (10,): log-prior that ink `width` x `height` px is each digit, in a line of digits
    `line_height` tall. Each digit has its own width-to-height ratio (MNIST: a 1 about 0.4, a 0
    about 0.9); runs far wider than their digit's are several digits, far narrower are slivers;
    runs much shorter than the line are fragments."""
    z = (np.log(max(width, 1.0) / max(height, 1.0)) - ASPECT_MU) / (ASPECT_SLACK * ASPECT_SD)
    score: np.ndarray = -ASPECT_WEIGHT * 0.5 * np.maximum(np.abs(z) - 1.0, 0.0) ** 2
    w, h = width / line_height, height / line_height
    if w > WIDE:
        score = score - WIDE_COST * (w - WIDE)
    short = np.full(10, SHORT)
    if ROUND * height <= width <= FLAT * height:
        short[SMALL_DIGITS] = SHORT_ROUND
    score = score - SHORT_COST * np.maximum(short - h, 0.0)
    if h > 1.5:
        score = score - 3.0 * (h - 1.5)
    return score


def candidate_groups(line: TextLine) -> list[Run]:
    atoms, n = line.atoms, len(line.atoms)
    groups = []
    for i in range(n):
        x0, x1 = atoms[i].x, atoms[i].x + atoms[i].w
        for j in range(i + 1, min(n, i + MAX_ATOMS_PER_DIGIT) + 1):
            x0, x1 = min(x0, atoms[j - 1].x), max(x1, atoms[j - 1].x + atoms[j - 1].w)
            if j > i + 1 and x1 - x0 > 1.6 * line.height:
                break
            groups.append((i, j))
    return groups


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


def run_scores(line: TextLine, groups: list[Run], probs: np.ndarray, one: np.ndarray) -> dict[Run, np.ndarray]:
    """Score of reading each run of atoms (i, j) as each digit -> {(i, j): float (10,)}: the digit
    model's log-probability `probs` (runs, 10), the shape prior, the verifier's log-probability
    `one` (runs,) that the run is one digit, and the costs of gaps and cuts; -inf for runs that
    would break up a solid digit."""
    atoms, n = line.atoms, len(line.atoms)
    score = {}
    for k, (i, j) in enumerate(groups):
        run = atoms[i:j]
        x0, x1 = min(a.x for a in run), max(a.x + a.w for a in run)
        y0, y1 = min(a.y for a in run), max(a.y + a.h for a in run)
        s = np.log(np.maximum(probs[k], 1e-9)) + shape_log_prior(x1 - x0, y1 - y0, line.height)
        s += VERIFIER_WEIGHT * math.log(max(float(one[k]), 1e-6))
        s -= MERGE_GAP_COST * _white_gaps(run) / line.height
        # Cuts inside the run are undone (free); the cut at its right end is paid for.
        s += DIGIT_BONUS - CUT_COST * atoms[j - 1].cut_cost ** CUT_POWER
        if j < n and atoms[j - 1].cut_cost == 0:
            gap = (atoms[j].x - max(a.x + a.w for a in run)) / line.height
            s -= GAP_COST * max(0.0, GAP_MARGIN - gap)
        score[(i, j)] = s
    # A component that reads as one confident, well-proportioned digit and is not wide is that
    # digit: the halves of a 0 or an 8 also read confidently (as a 6 and a 1), but are not cut.
    for k, (i, j) in enumerate(groups):
        if j - i > 1 and _is_whole_component(atoms, i, j) and probs[k].max() >= SOLID_CONFIDENCE:
            run = atoms[i:j]
            x0, x1 = min(a.x for a in run), max(a.x + a.w for a in run)
            y0, y1 = min(a.y for a in run), max(a.y + a.h for a in run)
            d = int(probs[k].argmax())
            z = (np.log((x1 - x0) / max(y1 - y0, 1)) - ASPECT_MU[d]) / ASPECT_SD[d]
            if x1 - x0 <= SOLID_WIDTH * line.height and abs(z) <= 1.5:
                for g in score:
                    a, b = g
                    if (i < a < j or i < b < j) and g != (i, j):
                        score[g] = np.full(10, -np.inf)
    return score


def sure_digits(line: TextLine, groups: list[Run], probs: np.ndarray, verifier: np.ndarray) -> dict[Run, int]:
    """Runs that are one whole connected component, uncut, that the digit model and the verifier
    (`verifier`: its (runs, 11) probabilities) both read as the same digit, the verifier with at
    least SURE_CONFIDENCE -> that digit. The line reader may not re-read or split these."""
    sure = {}
    for k, (i, j) in enumerate(groups):
        d = int(probs[k].argmax())
        agreed = verifier[k, d] >= SURE_CONFIDENCE and int(verifier[k].argmax()) == d
        if agreed and _is_whole_component(line.atoms, i, j):
            sure[(i, j)] = d
    return sure


def best_path(
    line: TextLine,
    scores: dict[Run, np.ndarray],
    text: str | None = None,
    sure: dict[Run, int] | None = None,
    pattern: DigitPattern | None = None,
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
    skips = _skips(line)
    for i in range(n):
        for m in range(len(accept)):
            here = best[m, i]
            if here == -np.inf:
                continue
            for j in skips.get(i, []):
                if here + SKIP_SMALL > best[m, j]:
                    best[m, j], back[(m, j)] = here + SKIP_SMALL, (m, i, None)
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


def _skips(line: TextLine) -> dict[int, list[int]]:
    """What may be skipped as punctuation, as {first atom: [end atoms]}: one small atom, or a whole
    small component that the segmenter cut into several (a slash or a dash wide enough to look like
    touching digits), for the price of one: a mark costs the same to skip however it was cut."""
    atoms, limit = line.atoms, SKIPPABLE * line.height
    skips: dict[int, list[int]] = {}
    for i, a in enumerate(atoms):
        if a.h < limit:
            skips.setdefault(i, []).append(i + 1)
        if a.component >= 0 and (i == 0 or atoms[i - 1].component != a.component):
            j = i
            while j < len(atoms) and atoms[j].component == a.component:
                j += 1
            if j - i > 1 and max(b.y + b.h for b in atoms[i:j]) - min(b.y for b in atoms[i:j]) < limit:
                skips.setdefault(i, []).append(j)
    return skips


def candidate_plan(seg: Segmentation) -> Plan:
    """The candidate runs of atoms of every line (`candidate_groups`): cheap, no rendering."""
    return [candidate_groups(line) for line in seg.lines]


def render_candidates(
    seg: Segmentation, plan: Plan | None = None, deadline: Callable[[], None] = _no_deadline
) -> tuple[Plan, np.ndarray]:
    """Every candidate run of atoms of every line (`plan`, default `candidate_plan(seg)`), rendered
    MNIST-style -> (runs per line, uint8 (N, 28, 28) images, line by line). The verifier is
    trained on exactly these renderings. `deadline` is called before each line."""
    plan = candidate_plan(seg) if plan is None else plan
    images = []
    for line, groups in zip(seg.lines, plan):
        deadline()
        images += [fit_and_centre(render_group(line.atoms[i:j], seg.ink, seg.stroke)) for i, j in groups]
    return plan, np.stack(images) if images else np.zeros((0, 28, 28), np.uint8)


def classify_candidates(
    recognizer: Recognizer,
    seg: Segmentation,
    plan: Plan | None = None,
    deadline: Callable[[], None] = _no_deadline,
) -> tuple[Plan, np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """The candidates of `render_candidates`, classified in one batch -> (runs per line, images,
    float32 (N, 10) digit probabilities, float32 (N, 11) the verifier's (the digits, then "not one
    digit"), and per line the line reader's (columns, 11) log-probabilities). `deadline` is called
    before each line and before the batch."""
    plan, images = render_candidates(seg, plan, deadline)
    line_log_probs = []
    for line in seg.lines:
        deadline()
        line_log_probs.append(
            recognizer.line_reader.log_probs(line_image(line.atoms, seg.ink, seg.stroke, line.height))
        )
    deadline()
    if not len(images):
        return plan, images, np.zeros((0, 10), np.float32), np.zeros((0, 11), np.float32), line_log_probs
    # Uncalibrated (T = 1): the path scores and thresholds below were tuned on these probabilities.
    return (
        plan,
        images,
        recognizer.predict_probabilities(images, calibrated=False),
        recognizer.verifier.probabilities(images),
        line_log_probs,
    )


def choose_digits(
    seg: Segmentation,
    plan: Plan,
    images: np.ndarray,
    probs: np.ndarray,
    verifier: np.ndarray,
    line_log_probs: list[np.ndarray] | None = None,
    deadline: Callable[[], None] = _no_deadline,
    pattern: DigitPattern | None = None,
    temperature: float = 1.0,
) -> list[list[ReadDigit]]:
    """The best path through each line's candidates (matching `pattern` when one is given),
    checked against the line reader's reading when one is given -> the digits of the lines that
    read as numbers, each line's `Evidence` on its first digit (`ReadDigit.evidence`). `deadline`
    is called before each line; `temperature`: the digit model's calibration, for the digits'
    shown confidences."""
    lines, offset = [], 0
    for n, (line, groups) in enumerate(zip(seg.lines, plan)):
        deadline()
        index = {g: offset + k for k, g in enumerate(groups)}
        part = slice(offset, offset + len(groups))
        offset += len(groups)
        scores = run_scores(line, groups, probs[part], 1.0 - verifier[part, NOT_ONE_DIGIT])
        score, path = best_path(line, scores, pattern=pattern)
        line_says = 0.0  # the line reader's own certainty per digit, when its reading was taken
        if line_log_probs is not None and path:
            sure = sure_digits(line, groups, probs[part], verifier[part])
            path, line_says = _second_opinion(line, scores, sure, score, path, line_log_probs[n], pattern)
        digits = []
        for i, j, d in path:
            k = index[(i, j)]
            raw = max(float(probs[k][d]), line_says)
            shown = max(float(calibrated(probs[k], temperature)[d]), line_says)
            digits.append(ReadDigit(d, shown, _box(line.atoms[i:j], seg.scale), images[k], raw=raw))
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
    return _keep_number_lines(lines)


def calibrated(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities (T = 1) -> softmax(logits / temperature): log p differs from the logits by a
    constant per row, so the temperature can be applied to it."""
    z = np.log(np.maximum(probs, 1e-12)) / temperature
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


def _second_opinion(
    line: TextLine,
    scores: dict[Run, np.ndarray],
    sure: dict[Run, int],
    score: float,
    path: ReadPath,
    log_probs: np.ndarray,
    pattern: DigitPattern | None = None,
) -> tuple[ReadPath, float]:
    """The segmentation's best path, or - when the line reader reads the line otherwise - the
    best path that reads as the line reader does, whichever scores more with the line reader's
    log-probability of its string (times LINE_WEIGHT) added. The boxes always come from a path.
    -> (path, the line reader's probability of its string per digit (geometric mean) when its
    reading was taken, else 0): the classifier alone is unsure of a digit it was overruled on.
    With `pattern`, the line reader's reading is the best of its paths that matches it."""
    text = "".join(str(d) for _, _, d in path)
    other, _ = greedy_decode(log_probs) if pattern is None else constrained_decode(log_probs, pattern)
    if other == text or not other:
        return path, 0.0
    other_score, other_path = best_path(line, scores, other, sure, pattern)
    if not other_path:
        return path, 0.0
    weight = LINE_WEIGHT if len(other) != len(text) else LINE_WEIGHT_SAME_COUNT
    mine = score + weight * string_log_prob(log_probs, text)
    theirs_line = string_log_prob(log_probs, other)
    if other_score + weight * theirs_line <= mine:
        return path, 0.0
    return other_path, math.exp(theirs_line / len(other))


def read_segmentation(
    recognizer: Recognizer,
    seg: Segmentation,
    budget: ReadBudget | None = None,
    deadline: Callable[[], None] | None = None,
    pattern: DigitPattern | None = None,
) -> list[list[ReadDigit]]:
    """The lines of digits in `seg` (each matching `pattern`, when given), read within `budget`
    (default `DEFAULT_BUDGET`). `deadline`: a clock already started (`ReadBudget.deadline`), else
    one starts here."""
    budget = DEFAULT_BUDGET if budget is None else budget
    deadline = deadline or budget.deadline()
    plan = candidate_plan(seg)
    budget.check_counts(seg, plan)
    return choose_digits(
        seg,
        *classify_candidates(recognizer, seg, plan, deadline),
        deadline=deadline,
        pattern=pattern,
        temperature=recognizer.adapter.temperature,
    )


def _keep_number_lines(lines: list[tuple[TextLine, list[ReadDigit]]]) -> list[list[ReadDigit]]:
    """Drop lines that are not numbers: much smaller writing than the main line (printed captions),
    no confident digit, or a lone mark beside the number (a cross, a tick) that the classifier
    reads as a 1 or a 4 with middling confidence."""
    lines = [(t, d) for t, d in lines if d and np.mean([x.raw for x in d]) >= MIN_LINE_CONFIDENCE]
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
            if t.height < MIN_LINE_HEIGHT * main_line.height or size(d) < MIN_LINE_HEIGHT * size(main_digits):
                continue
            if len(d) == 1 and (d[0].raw < LONE_DIGIT_CONFIDENCE or t.height < 0.8 * main_line.height):
                continue
        kept.append(d)
    return kept


def _box(run: list[Atom], scale: float) -> tuple[int, int, int, int]:
    x0, y0 = min(a.x for a in run), min(a.y for a in run)
    x1, y1 = max(a.x + a.w for a in run), max(a.y + a.h for a in run)
    return (int(x0 / scale), int(y0 / scale), max(1, round((x1 - x0) / scale)), max(1, round((y1 - y0) / scale)))


def read_number(
    recognizer: Recognizer,
    image: ImageSource,
    *,
    debug: bool = False,
    budget: ReadBudget | None = None,
    keep_punctuation: bool = False,
    pattern: DigitPattern | None = None,
    params: ReaderParams = DEFAULT_PARAMS,
) -> Reading:
    """Path, bytes or array -> Reading. Raises ImageError('no digits found') when nothing in the
    image reads as a digit (or, with `pattern`, 'no reading matches ...' when nothing that
    matches it does), and TooMuchToRead (an ImageError) when reading it would take more work than
    `budget` (default `DEFAULT_BUDGET`; `UNLIMITED` for no limit). `keep_punctuation`: the text
    keeps decimal points, separators and minus signs (`digitrec.read.punctuation`)."""
    budget = DEFAULT_BUDGET if budget is None else budget
    deadline = budget.deadline()
    grey = load_grey(image)
    stages: Stages | None = {} if debug else None
    seg = segment(grey, stages, max_pieces=budget.max_pieces, deadline=deadline)
    deadline()
    lines = read_segmentation(recognizer, seg, budget, deadline, pattern)
    deadline()
    lines = _one_digit_page(recognizer, grey, seg, lines, pattern, params) or lines
    if not lines:
        raise ImageError(
            "no digits found" if pattern is None or not seg.lines else f"no reading matches {pattern.text}"
        )
    reading = Reading(lines, min_confidence=recognizer.min_confidence, params=params)
    if keep_punctuation:
        from digitrec.read.punctuation import punctuate_lines

        reading.punctuated = punctuate_lines(recognizer, seg, lines)
    if debug:
        reading.stages = dict(stages or {}, input=grey)
    return reading


def _one_digit_page(
    recognizer: Recognizer,
    grey: np.ndarray,
    seg: Segmentation,
    lines: list[list[ReadDigit]],
    pattern: DigitPattern | None,
    params: ReaderParams,
) -> list[list[ReadDigit]] | None:
    """A page the segmentation reads as no number, or as several lines, read as one digit when
    that is the more probable reading; None otherwise. The page is read as `predict` reads it
    (`Recognizer.views`), and its whole ink as one line by the line reader; that reading's
    calibrated confidence (`ReaderParams.line_confidence`, the map every reading's confidence
    comes from) must be at least `params.one_digit_page` and above the segmentation's. An odd lone
    digit the cuts break up (a bare 28x28 MNIST 2 enlarged 14x read "2 / 64", or dropped) is then
    read whole. A reading of one line is never replaced: on register rows that are a number beside
    marks and hatching, predict's one digit (a 1 of "39", the 5 of "15") won on confidence where
    the segmentation was right."""
    atoms = [a for line in seg.lines for a in line.atoms]
    if not atoms or len(lines) == 1:
        return None
    try:
        views = recognizer.views(grey)  # what `predict` sees: the digit as written and squeezed
    except ImageError:
        return None
    probs = recognizer.predict_probabilities(views, calibrated=False).mean(axis=0)
    image = views[:1]
    d = int(probs.argmax())
    if pattern is not None and not pattern.matches(str(d)):
        return None
    verifier = recognizer.verifier.probabilities(image)[0]
    height = max(a.y + a.h for a in atoms) - min(a.y for a in atoms)
    log_probs = recognizer.line_reader.log_probs(line_image(atoms, seg.ink, seg.stroke, height))
    evidence = Evidence.of(probs[[d]], 1.0 - verifier[[NOT_ONE_DIGIT]], log_probs, str(d))
    confidence = params.line_confidence(evidence)
    if confidence < params.one_digit_page or (lines and confidence <= Reading(lines, params=params).confidence):
        return None
    shown = float(calibrated(probs, recognizer.adapter.temperature)[d])
    return [[ReadDigit(d, shown, _box(atoms, seg.scale), image[0], raw=float(probs[d]), evidence=evidence)]]


def draw_reading(grey: np.ndarray, reading: Reading) -> np.ndarray:
    """The input with each digit's box and its prediction drawn on it (BGR uint8), for --debug.
    A small input is enlarged (pixels kept sharp) to at least WORK_MIN_SIDE px, as the reader
    enlarged it to read it: on a 28x28 digit the labels would not fit. Uncertain digits (under the
    reading's min_confidence) are drawn in red with a '?'."""
    import cv2

    zoom = max(1, math.ceil(WORK_MIN_SIDE / max(grey.shape))) if max(grey.shape) < WORK_MIN_SIDE else 1
    if zoom > 1:
        grey = cv2.resize(grey, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    canvas = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    thickness = max(1, round(max(grey.shape) / 500))
    for d in reading.digits:
        x, y, w, h = (v * zoom for v in d.box)
        doubtful = d.confidence < reading.min_confidence
        colour = (0, 170, 0) if d.confidence >= 0.9 else (0, 140, 255) if d.confidence >= 0.5 else (0, 0, 230)
        colour = (0, 0, 230) if doubtful else colour
        cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), colour, thickness)
        font = max(0.4, h / 60)
        cv2.putText(
            canvas,
            f"{d.digit}{'?' if doubtful else ''} {d.confidence:.0%}",
            (x, max(12, y - 3)),
            cv2.FONT_HERSHEY_SIMPLEX,
            font * 0.6,
            colour,
            thickness,
            cv2.LINE_AA,
        )
    return canvas
