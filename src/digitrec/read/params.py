"""The reader's settings (`ReaderParams`: every tunable, documented), and how sure it is of a whole
reading: the evidence each line leaves, and the calibration map that turns it into a probability
that the line is right. numpy only.

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

# What the confidence map weighs: a bias, then `Evidence` fields by name (one weight each in
# `ReaderParams.confidence_weights`).
FEATURES = (
    "bias",
    "digit_log_prob",
    "one_digit_log_prob",
    "line_log_prob",
    "line_agrees",
    "digits",
    "line_margin",
    "second_log_prob",
    "min_one_digit_log_prob",
)


@dataclass(frozen=True)
class Evidence:
    """What the reader knows of one line it read."""

    digit_log_prob: float  # sum over the digits of log p(digit) from the digit model (T = 1)
    one_digit_log_prob: float  # sum over the pieces read of log p(one digit) from the verifier
    line_log_prob: float  # the line reader's log P(text) (all its alignments); 0 without it
    line_agrees: bool  # the line reader's own best path reads the same digits
    digits: int
    # Signs that a reading may be wrong, for the map to weigh (`benchmarks/read.py --fit-confidence`
    # measures which help): the least sure digit, the least sure piece, and how far the line
    # reader's own reading is from this one (0 when it agrees or is not used).
    min_digit_log_prob: float = 0.0  # min over the digits of log p(digit)
    min_one_digit_log_prob: float = 0.0  # min over the pieces of log p(one digit)
    line_margin: float = 0.0  # log P(the line reader's own reading) - log P(text), >= 0
    length_gap: int = 0  # |digits in the line reader's own reading - digits read|
    # min over the digits of log p(digit) from `predict`'s digit model (`NumberReader._second_opinion`;
    # the shipped one is not the reader's scorer: two models trained apart disagree where a digit
    # is hard); 0 until the reading is chosen.
    second_log_prob: float = 0.0

    @classmethod
    def of(
        cls, digit_probs: np.ndarray, one_digit: np.ndarray, line_log_probs: np.ndarray | None, text: str
    ) -> Evidence:
        """The chosen digits' probabilities (n,), their pieces' one-digit probabilities (n,), the
        line reader's (columns, 11) log-probabilities (None: not used) and the text read."""
        line_lp, agrees, margin, gap = 0.0, False, 0.0, 0
        if line_log_probs is not None:
            line_lp = max(string_log_prob(line_log_probs, text), -50.0)
            own = greedy_decode(line_log_probs)[0]
            agrees = own == text
            if not agrees:
                margin = max(0.0, max(string_log_prob(line_log_probs, own), -50.0) - line_lp)
                gap = abs(len(own) - len(text))
        digit_lp = np.log(np.maximum(digit_probs, 1e-9))
        one_lp = np.log(np.maximum(one_digit, 1e-6))
        return cls(
            float(digit_lp.sum()),
            float(one_lp.sum()),
            float(line_lp),
            bool(agrees),
            len(text),
            float(digit_lp.min(initial=0.0)),
            float(one_lp.min(initial=0.0)),
            float(margin),
            int(gap),
        )

    def features(self) -> np.ndarray:
        """float64 (len(FEATURES),), in the order of FEATURES."""
        return np.array([1.0] + [float(getattr(self, name)) for name in FEATURES[1:]])


@dataclass(frozen=True)
class ReaderParams:
    """Every setting of the reader, in one place: the costs of its dynamic programme, how much
    each network's word counts, which lines are kept, and the confidence map. Scores are natural-log
    probabilities; lengths are in line heights (the height of the line's digits) unless said.
    The defaults are what the shipped reader uses (docs/read.md gives their evidence); pass
    `NumberReader(..., params=replace(DEFAULT_PARAMS, ...))` to try others."""

    # --- candidates: which runs of atoms may be one digit (`candidates.candidate_groups`) ---
    max_atoms_per_digit: int = 6
    # A run of several atoms wider than this is several digits: not a candidate.
    max_run_width: float = 1.6

    # --- a run read as a digit: its score (`scores.run_scores`) ---
    # Weight of the verifier's log-probability that a run of atoms is one digit (`verifier`).
    verifier_weight: float = 0.5
    # Each digit read earns this much. Every digit adds a log-probability (<= 0) to a path, so
    # without it a path of fewer digits wins by default: two touching digits read as one, a small
    # digit skipped.
    digit_bonus: float = 0.5
    # Charged per stroke width of ink that a chosen cut goes through (times cut_cost, to
    # cut_power): cutting strokes is the exception (touching digits), not the rule.
    cut_cost: float = 0.25
    cut_power: float = 1.0
    # Ending a digit where the next piece of ink overlaps it horizontally (a natural gap, not a
    # cut) costs gap_cost per line height of overlap (plus a margin of gap_margin): separate digits
    # rarely overlap, the loose pieces of one broken digit often do.
    gap_cost: float = 0.0
    gap_margin: float = 0.05
    # Reading ink separated by empty columns as one digit costs this per line height of gap.
    merge_gap_cost: float = 10.0
    # A connected component no wider than solid_width that reads as one digit with at least
    # solid_confidence, its log aspect within solid_shape standard deviations of that digit's
    # (aspect_sd, not widened), is never cut: the halves of a 0 or an 8 also read confidently.
    solid_confidence: float = 0.9
    solid_width: float = 1.0
    solid_shape: float = 1.5

    # --- the shape prior on a run's box (`scores.shape_log_prior`) ---
    # log(width / height) of each digit's ink box in MNIST's training set: mean and standard
    # deviation (from `load_mnist("train")`, ink > 60). Real writers vary more: the spread is
    # widened by aspect_slack, and within one (widened) standard deviation a shape costs nothing.
    aspect_mu: tuple[float, ...] = (-0.104, -0.925, -0.07, -0.232, -0.239, -0.073, -0.323, -0.262, -0.279, -0.392)
    aspect_sd: tuple[float, ...] = (0.194, 0.458, 0.216, 0.211, 0.211, 0.256, 0.216, 0.214, 0.22, 0.205)
    aspect_slack: float = 2.0
    aspect_weight: float = 0.5
    # Runs shorter than `short` are fragments or punctuation: short_cost per line height.
    short: float = 0.7
    short_cost: float = 12.0
    # ...except that a compact run (width compact_min to compact_max times its height) read as one of
    # small_digits (not a 1 or a 7) may be as short as short_round: trailing digits written smaller
    # (the zeros of a cheque's amount, often joined by a ligature). A dash is flat, a dot far
    # shorter, and any piece of a stroke reads as a 1 or a 7, so those keep the stricter limit.
    short_round: float = 0.5
    compact_min: float = 0.6
    compact_max: float = 2.0
    small_digits: tuple[int, ...] = (0, 2, 3, 4, 5, 6, 8, 9)
    # Digits wider than `wide` are penalised by wide_cost per extra line height; taller than
    # `tall`, by tall_cost per extra line height (two lines taken for one).
    wide: float = 1.3
    wide_cost: float = 2.0
    tall: float = 1.5
    tall_cost: float = 3.0

    # --- the path (`decode.best_path`) ---
    # Skipping a small atom (a dot, a dash, a speck) scores skip_small; reading it as a digit
    # scores log p(digit) + verifier_weight log p(one digit) + digit_bonus (+ shape prior and cut
    # cost), so a small atom is read when p(digit) x sqrt(p(one digit)) is above ~0.37. (Before
    # the verifier skipping scored -0.1, to skip punctuation readily; the verifier now says
    # punctuation is not a digit, and that made small digits get dropped.)
    skip_small: float = -0.5
    skippable: float = 0.8  # atoms shorter than this may be skipped
    # Held to the line reader's reading (`second_opinion`), any atom or whole component, however
    # tall, may be skipped for this score (-inf: never): a cross, a tick or a lead-in stroke
    # beside the number, which the line reader (trained on numbers with such marks) does not read
    # and the classifier reads as a 1 (a run both networks are sure is one digit: skip_sure). Chosen
    # on `benchmarks/read.py --only validation` (400 document-like numbers of unseen writers:
    # -inf 64.0%, -2 73.8, -3 73.8, -5 73.2; the 400 plain strings the same at every value).
    skip_held: float = -3.0
    # ... and a run both networks are sure is one digit may be skipped whole for this much more
    # (-inf: never): the side of a box drawn round the number, or the edge of a black border
    # beside it, is a sure 1 to them and nothing to the line reader. Chosen on the same 400
    # validation documents: -inf 78.8%, -6 79.2, -3 80.0, -1 80.0, 0 80.0 (five gained, none lost
    # at -3; the 400 plain strings the same at every value).
    skip_sure: float = -3.0

    # --- the line reader's second opinion (`decode.second_opinion`) ---
    # Weight of the line reader's log-probability of a line's string. The line reader is better at
    # telling how many digits touching ink holds than at telling digits apart, so when both
    # readings have as many digits its word counts less; and it never re-reads, splits or merges a
    # whole, uncut component that the digit model and the verifier read alike, the verifier at
    # least sure_confidence (a small one may still be dropped as punctuation).
    line_weight: float = 1.0
    line_weight_same_count: float = 0.25
    sure_confidence: float = 0.9

    # --- which lines are numbers (`lines.keep_number_lines`) ---
    # A line is dropped when its digits are much smaller than the main line's (printed captions,
    # a faint second hand: under min_line_height of it) or when the classifier finds no confident
    # digit in it (mean probability under min_line_confidence).
    min_line_height: float = 0.55
    min_line_confidence: float = 0.5
    # A second line of one digit (a cross, a tick beside the number) must be read at least this
    # surely, and be at least lone_digit_height of the main line's height.
    lone_digit_confidence: float = 0.95
    lone_digit_height: float = 0.8
    # A line of letters read as digits ("KEW" as 188111) is dropped when the rejector
    # (`digitrec.reject`) calls at least `letters_min` of its digits other than 1 (a lone stroke
    # is no digit to it) "not a digit", and more than `letters_share` of them. One odd digit is not
    # enough: a register row's lone 2 was "not a digit" to it. Without the rejector (reject=False)
    # no line is dropped this way.
    letters_share: float = 0.5
    letters_min: int = 2

    # --- how sure: the confidence of a reading ---
    # `confidence_weights`: the logistic map from a line's `Evidence.features()` to the
    # probability that the line reads right; one weight per FEATURES entry. Fitted by
    # `benchmarks/read.py --fit-confidence --per-length 30` (default --documents 1600; session 9,
    # when predict's digit model became another than the reader's scorer; refitted in session 20
    # for the line reader trained on soft scans, the same inputs chosen): 1,200 generated strings
    # of 1-8 digits from the 5,000 MNIST training images the digit model held out (seed 100) and
    # 1,600 document-like numbers of the 43 writers the line reader held out; the inputs beyond the
    # first five chosen by forward selection on 14 held-out writers (held-out log-loss 0.304 ->
    # 0.273 in session 9, 0.298 -> 0.261 in session 20: the line reader's margin, predict's
    # model's word, the weakest piece). Never ../shared.
    # The line reader's probability of the string, its margin and agreeing weigh most.
    confidence_weights: tuple[float, ...] = (2.4810, -0.0775, -0.0252, 1.8548, 0.7501, 0.0708, 1.2944, 0.6858, 0.1916)
    # The page read as one digit (`NumberReader`'s one-digit page) must be at least this
    # probable, and more than the reading it replaces.
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
