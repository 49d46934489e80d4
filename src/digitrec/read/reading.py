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

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from digitrec.errors import ImageError
from digitrec.preprocess import load_grey
from digitrec.preprocess.debug import Stages
from digitrec.preprocess.load import ImageSource
from digitrec.preprocess.segment import Segmentation, segment
from digitrec.read.budget import DEFAULT_BUDGET, Plan, ReadBudget, no_deadline
from digitrec.read.candidates import candidate_plan, render_candidates
from digitrec.read.choose import box_of, calibrated, choose_digits
from digitrec.read.line_reader import line_image
from digitrec.read.params import DEFAULT_PARAMS, Evidence, ReaderParams
from digitrec.read.pattern import DigitPattern
from digitrec.read.punctuation import punctuate_lines
from digitrec.read.result import ReadDigit, Reading
from digitrec.read.verifier import NOT_ONE_DIGIT

if TYPE_CHECKING:  # for annotations only: runtime imports this module (in Recognizer.read)
    from digitrec.runtime import Recognizer


def classify_candidates(
    recognizer: Recognizer,
    seg: Segmentation,
    plan: Plan | None = None,
    deadline: Callable[[], None] = no_deadline,
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


def read_segmentation(
    recognizer: Recognizer,
    seg: Segmentation,
    budget: ReadBudget | None = None,
    deadline: Callable[[], None] | None = None,
    pattern: DigitPattern | None = None,
    params: ReaderParams = DEFAULT_PARAMS,
) -> list[list[ReadDigit]]:
    """The lines of digits in `seg` (each matching `pattern`, when given), read within `budget`
    (default `DEFAULT_BUDGET`). `deadline`: a clock already started (`ReadBudget.deadline`), else
    one starts here."""
    budget = DEFAULT_BUDGET if budget is None else budget
    deadline = deadline or budget.deadline()
    plan = candidate_plan(seg, params)
    budget.check_counts(seg, plan)
    return choose_digits(
        seg,
        *classify_candidates(recognizer, seg, plan, deadline),
        deadline=deadline,
        pattern=pattern,
        temperature=recognizer.adapter.temperature,
        params=params,
    )


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
    lines = read_segmentation(recognizer, seg, budget, deadline, pattern, params)
    deadline()
    lines = _one_digit_page(recognizer, grey, seg, lines, pattern, params) or lines
    if not lines:
        raise ImageError(
            "no digits found" if pattern is None or not seg.lines else f"no reading matches {pattern.text}"
        )
    reading = Reading(lines, min_confidence=recognizer.min_confidence, params=params)
    if keep_punctuation:
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
    return [[ReadDigit(d, shown, box_of(atoms, seg.scale), image[0], raw=float(probs[d]), evidence=evidence)]]
