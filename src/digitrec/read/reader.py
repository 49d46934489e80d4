"""Read a whole handwritten number: `NumberReader` composes the reader's parts.

`digitrec.preprocess.segment` cuts each text line into atoms (components, and slices of
components that may hold touching digits). Every run of consecutive atoms that may be one digit
(`candidates`) is rendered MNIST-style and goes through the digit model (the `Recognizer`) and the
segmentation verifier (`verifier`: is it one digit at all?); each whole line goes through the line
reader (`line_reader`, which reads it without cutting it). A dynamic programme (`decode`) then
walks each line left to right and decides, for every run, whether it is one digit (`scores`: the
digit model's log-probability, the verifier's, a shape prior and the costs of cuts and gaps) or -
for a small atom - punctuation to skip; the line reader's reading overrules the best path when the
path that reads as it does scores more with each string's line-reader log-probability added.
Lines that are not the number are dropped (`lines`), and a page the cuts break up is also read
as one digit, as `predict` reads it. Every setting is a field of `ReaderParams`.

Reading costs network calls per candidate run, so a page of hundreds of short strokes would cost
many seconds: each image is read within a `ReadBudget` (lines, pieces of ink, candidate runs and
seconds), counted before the networks run; past it `TooMuchToRead` is raised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from digitrec.doubt import NOT_A_DIGIT
from digitrec.errors import ImageError
from digitrec.modelfile.card import companion_path
from digitrec.preprocess import load_grey
from digitrec.preprocess.debug import Stages
from digitrec.preprocess.load import ImageSource
from digitrec.preprocess.segment import Segmentation, segment
from digitrec.read.budget import DEFAULT_BUDGET, Plan, ReadBudget
from digitrec.read.candidates import candidate_plan, render_candidates
from digitrec.read.choose import box_of, calibrated, choose_digits
from digitrec.read.line_reader import LineReader, line_image, line_reader_path_for
from digitrec.read.params import DEFAULT_PARAMS, Evidence, ReaderParams
from digitrec.read.pattern import DigitPattern, constraint
from digitrec.read.punctuation import punctuate_lines
from digitrec.read.result import ReadDigit, Reading
from digitrec.read.verifier import NOT_ONE_DIGIT, Verifier

if TYPE_CHECKING:  # for annotations only: runtime imports this module (in Recognizer.reader)
    from digitrec.runtime import Recognizer


def digit_scorer(recognizer: Recognizer) -> Recognizer:
    """The digit model the reader scores its cuts with: the one `recognizer`'s card names as
    `reader_digits` (beside it), with the same options, else `recognizer` itself. The reader's
    settings (`ReaderParams`) were chosen on one digit model's uncalibrated probabilities; the
    shipped card names that model, so a better single-digit model can ship for `predict` without
    changing how numbers read (docs/training.md). A fine-tuned model that learnt something names
    none and reads with itself; one that kept its base names a copy of the base's (`tune.scorer`)."""
    path = companion_path(recognizer.path, recognizer.card, "reader_digits", "reader's digit model")
    if path is None or path.resolve() == Path(recognizer.path).resolve():  # a card naming its own file
        return recognizer
    from digitrec.runtime import Recognizer

    return Recognizer(
        path, threads=recognizer.threads, min_confidence=recognizer.min_confidence, reject=recognizer.reject
    )


class NumberReader:
    """Reads written numbers with a digit model, the segmentation verifier, a line reader, the
    reader's settings and a work budget.

    >>> reader = NumberReader(Recognizer())     # or Recognizer().reader, which `Recognizer.read` uses
    >>> reader.read("meter.jpg", digits=4).text
    """

    def __init__(
        self,
        recognizer: Recognizer,
        *,
        verifier: Verifier | None = None,
        line_reader: LineReader | None = None,
        params: ReaderParams = DEFAULT_PARAMS,
        budget: ReadBudget = DEFAULT_BUDGET,
    ):
        """
        recognizer: the digit model (its uncalibrated probabilities score the candidates; its
            `views` read a page as one digit; its temperature and `min_confidence` shape the answer),
            or the one its card names as `reader_digits` (`digit_scorer`); its rejector (`reject`)
            tells letters and pages that are no one digit.
        verifier, line_reader: the reader's networks; None loads the shipped verifier and the line
            reader that goes with the recognizer's model (`line_reader_path_for`), with its threads
            (one when it leaves them to onnxruntime: their inputs, a line strip and a handful of
            28x28 runs, are too small to share; one thread read photos in 43 ms, the default two
            in 64 ms, `docs/read.md`).
        params: every setting of the reader (`ReaderParams`); budget: the most work an image may
            take unless `read` is given its own (`ReadBudget`).
        """
        self.recognizer = digit_scorer(recognizer)
        # `predict`'s model: the reader asks its rejector (so a process that predicts and reads loads
        # one) and, once a reading is chosen, its word on the digits (`_second_opinion`).
        self.given = recognizer
        threads = recognizer.threads or 1
        self.verifier = verifier or Verifier(threads=threads)
        self.line_reader = line_reader or LineReader(
            line_reader_path_for(recognizer.path, recognizer.card), threads=threads
        )
        self.params = params
        self.budget = budget

    def network_files(self) -> list[Path]:
        """Every network file a reading depends on: `predict`'s model, the reader's digit scorer, the
        verifier, the line reader and (when asked) the rejector. A cache or a resumed batch of
        readings is keyed by their bytes: a file replaced in place changes the answers."""
        files = [Path(self.given.path), Path(self.recognizer.path), self.verifier.path, self.line_reader.path]
        return files + ([self.given.rejector.path] if self.given.reject else [])

    def read(
        self,
        image: ImageSource,
        *,
        digits: int | None = None,
        pattern: str | None = None,
        keep_punctuation: bool = False,
        debug: bool = False,
        budget: ReadBudget | None = None,
    ) -> Reading:
        """Path, bytes or array -> Reading. `digits` (exactly that many) and `pattern` (a regular
        expression over the digits, matching the whole line) constrain what each line may read as;
        the search itself keeps to them (`digitrec.read.pattern`; a bad one raises PatternError).
        `keep_punctuation`: the text keeps decimal points, separators and minus signs
        (`digitrec.read.punctuation`). `debug`: the stages are kept in `Reading.stages`.
        Raises ImageError('no digits found') when nothing in the image reads as a digit (or, with a
        constraint, 'no reading matches ...' when nothing that matches it does), and TooMuchToRead
        (an ImageError) when reading it would take more work than `budget` (default: this
        reader's; `UNLIMITED` for no limit)."""
        wanted = constraint(digits, pattern)
        budget = self.budget if budget is None else budget
        deadline = budget.deadline()
        grey = load_grey(image)
        stages: Stages | None = {} if debug else None
        seg = segment(grey, stages, max_pieces=budget.max_pieces, deadline=deadline)
        deadline()
        lines = self._read_lines(seg, budget, deadline, wanted)
        deadline()
        lines, letters = self._without_letters(lines)
        if not letters:  # a page of letters is not one digit either
            lines = self._one_digit_page(grey, seg, lines, wanted) or lines
        if not lines:
            raise ImageError(
                "no digits found" if wanted is None or not seg.lines else f"no reading matches {wanted.text}"
            )
        self._second_opinion(lines)
        reading = Reading(lines, min_confidence=self.recognizer.min_confidence, params=self.params)
        if keep_punctuation:
            reading.punctuated = punctuate_lines(self.line_reader, seg, lines)
        if debug:
            reading.stages = dict(stages or {}, input=grey)
        return reading

    def classify_candidates(
        self, seg: Segmentation, plan: Plan, deadline: Callable[[], None]
    ) -> tuple[Plan, np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
        """The candidates `plan` of `seg` rendered and classified in one batch -> (runs per line,
        images, float32 (N, 10) digit probabilities, float32 (N, 11) the verifier's (the digits,
        then "not one digit"), and per line the line reader's (columns, 11) log-probabilities).
        `deadline` is called before each line and before the batch."""
        plan, images = render_candidates(seg, plan, deadline)
        line_log_probs = []
        for line in seg.lines:
            deadline()
            line_log_probs.append(self.line_reader.log_probs(line_image(line.atoms, seg.ink, seg.stroke, line.height)))
        deadline()
        if not len(images):
            return plan, images, np.zeros((0, 10), np.float32), np.zeros((0, 11), np.float32), line_log_probs
        # Uncalibrated (T = 1): the path scores and thresholds were tuned on these probabilities.
        return (
            plan,
            images,
            self.recognizer.predict_probabilities(images, calibrated=False),
            self.verifier.probabilities(images),
            line_log_probs,
        )

    def _read_lines(
        self, seg: Segmentation, budget: ReadBudget, deadline: Callable[[], None], pattern: DigitPattern | None
    ) -> list[list[ReadDigit]]:
        """The lines of digits in `seg` (each matching `pattern`, when given), read within
        `budget`, whose clock `deadline` has started."""
        plan = candidate_plan(seg, self.params)
        budget.check_counts(seg, plan)
        return choose_digits(
            seg,
            *self.classify_candidates(seg, plan, deadline),
            deadline=deadline,
            pattern=pattern,
            temperature=self.recognizer.adapter.temperature,
            params=self.params,
        )

    def _second_opinion(self, lines: list[list[ReadDigit]]) -> None:
        """Add `predict`'s digit model's word on the digits read to each line's evidence
        (`Evidence.second_log_prob`; the same model as the scorer's, unless the card names one).
        After the reading is chosen: it shapes the confidence only. (The one-digit page weighs both
        readings without it.)"""
        if not any(lines):
            return
        if self.given is self.recognizer:  # one model: its word is the weakest digit's, already known
            for line in lines:
                if line and line[0].evidence is not None:
                    line[0].evidence = replace(line[0].evidence, second_log_prob=line[0].evidence.min_digit_log_prob)
            return
        digits = [d for line in lines for d in line]
        probs = self.given.predict_probabilities(np.stack([d.image28 for d in digits]), calibrated=False)
        said = iter(np.log(np.maximum(probs[np.arange(len(digits)), [d.digit for d in digits]], 1e-9)))
        for line in lines:
            lowest = min((float(next(said)) for _ in line), default=0.0)
            if line and line[0].evidence is not None:
                line[0].evidence = replace(line[0].evidence, second_log_prob=lowest)

    def _without_letters(self, lines: list[list[ReadDigit]]) -> tuple[list[list[ReadDigit]], bool]:
        """`lines` without the lines of letters the cuts read as digits (the rejector calls enough
        of their digits other than 1 "not a digit": `ReaderParams.letters_min`, `letters_share`),
        and whether any line was dropped."""
        params, given = self.params, self.given
        asked = [[d for d in line if d.digit != 1] for line in lines]
        if not given.reject or sum(len(a) for a in asked) < params.letters_min:
            return lines, False
        reasons = iter(given.rejections(np.stack([d.image28 for a in asked for d in a])))
        kept = []
        for line, digits in zip(lines, asked):
            letters = sum(next(reasons) == NOT_A_DIGIT for _ in digits)
            if not (letters >= params.letters_min and letters > params.letters_share * len(digits)):
                kept.append(line)
        return kept, len(kept) < len(lines)

    def _one_digit_page(
        self, grey: np.ndarray, seg: Segmentation, lines: list[list[ReadDigit]], pattern: DigitPattern | None
    ) -> list[list[ReadDigit]] | None:
        """A page the segmentation reads as no number, or as several lines, read as one digit when
        that is the more probable reading; None otherwise. The page is read in `predict`'s views
        (`Recognizer.views`) by the reader's digit scorer, and its whole ink as one line by the
        line reader; that reading's calibrated confidence (`ReaderParams.line_confidence`, the map every reading's confidence
        comes from) must be at least `params.one_digit_page` and above the segmentation's. An odd
        lone digit the cuts break up (a bare 28x28 MNIST 2 enlarged 14x read "2 / 64", or dropped)
        is then read whole. A reading of one line is replaced only when the rejector takes the page
        for one digit: on register rows that are a number beside marks and hatching, predict's one
        digit (a 1 of "39", the 5 of "15") won on confidence where the segmentation was right."""
        params, recognizer = self.params, self.recognizer
        atoms = [a for line in seg.lines for a in line.atoms]
        if not atoms:
            return None
        height = max(a.y + a.h for a in atoms) - min(a.y for a in atoms)
        width = max(a.x + a.w for a in atoms) - min(a.x for a in atoms)
        if len(lines) == 1 and width > params.max_run_width * height:
            return None  # one line wider than any one digit (the candidates' own limit): no need to look
        try:
            # What `predict` sees: the digit as written and squeezed; but with a scanner's margin
            # left in, as when this check was chosen: trimmed, one validation document more was
            # misread (a 1 beside a tick on a register strip: "15"; session 13, docs/read.md).
            views = recognizer.views(grey, margin=False)
        except ImageError:
            return None
        # One line read stays unless the rejector, which learned what one digit and several
        # digits look like, says the page is one digit (a register row's number beside marks
        # is "several digits" to it); without the rejector it always stays.
        if len(lines) == 1 and not (self.given.reject and self.given.rejections(views[:1])[0] is None):
            return None
        probs = recognizer.predict_probabilities(views, calibrated=False).mean(axis=0)
        image = views[:1]
        d = int(probs.argmax())
        if pattern is not None and not pattern.matches(str(d)):
            return None
        verifier = self.verifier.probabilities(image)[0]
        log_probs = self.line_reader.log_probs(line_image(atoms, seg.ink, seg.stroke, height))
        evidence = Evidence.of(probs[[d]], 1.0 - verifier[[NOT_ONE_DIGIT]], log_probs, str(d))
        confidence = params.line_confidence(evidence)
        if confidence < params.one_digit_page or (lines and confidence <= Reading(lines, params=params).confidence):
            return None
        shown = float(calibrated(probs, recognizer.adapter.temperature)[d])
        return [[ReadDigit(d, shown, box_of(atoms, seg.scale), image[0], raw=float(probs[d]), evidence=evidence)]]
