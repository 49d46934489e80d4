"""The light runtime: an ONNX model on onnxruntime, fed by the OpenCV preprocessing. No torch here.

Model contract (what `digitrec export` writes and the shipped model follows):
  input  float32 (N, 1, 28, 28), values in [0, 1], ink = 1 on a black background (MNIST polarity);
  output float32 (N, 10) logits; softmax gives the probabilities.
  metadata_props["digitrec"]: the model card as a JSON string (name, accuracy, ...).
Other models are adapted (`model_adapter`): inputs (N, 28, 28), (N, 28, 28, 1) or (N, 784), other
pixel ranges, sigmoid scores or probabilities; a `.keras` file is converted once (`model_io`).
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from digitrec import doubt, paths
from digitrec.errors import DigitrecError, ModelError, without_frames
from digitrec.model_adapter import ModelAdapter
from digitrec.model_io import refuse_training_run, resolve_model
from digitrec.modelfile.read import open_model, softmax  # noqa: F401 - softmax is part of this module's API
from digitrec.preprocess import load_grey, normalize_digit
from digitrec.preprocess.debug import Stages
from digitrec.preprocess.digit import WORK_SIDE, digit_views
from digitrec.preprocess.load import ImageSource, image_files, is_open_file, mnist_form, read_capped

if TYPE_CHECKING:
    from digitrec.read import ReadBudget, Reading
    from digitrec.read.reader import NumberReader
    from digitrec.reject import Rejector

DEFAULT_MODEL = "model.onnx"
# The smallest `side` predict_paths decodes big images at: below it a photo's digit is a few pixels.
MIN_DECODE_SIDE = 64


def checked_top(top: int) -> int:
    """`top` (how many guesses an answer lists), checked before any work: a whole number >= 1."""
    if isinstance(top, bool) or not isinstance(top, numbers.Integral) or top < 1:  # numpy ints too
        raise ValueError(f"top is how many guesses to give, at least 1, not {top!r}")
    return top


def _read_open_file(stream: BinaryIO) -> bytes | DigitrecError:
    try:
        return read_capped(stream, "file")
    except DigitrecError as exc:  # that input's answer, as for a path that fails
        return without_frames(exc)


def default_model_path() -> Path:
    return paths.assets_dir() / DEFAULT_MODEL


@dataclass
class Prediction:
    """One image's answer. `digit` is None when the answer is uncertain; `reason` then says why
    (one of `digitrec.doubt.REASONS`: below min_confidence, not a digit, several digits...)."""

    digit: int | None
    confidence: float
    top: list[tuple[int, float]]
    probabilities: np.ndarray = field(repr=False)  # float32 (10,)
    image28: np.ndarray | None = field(default=None, repr=False)  # uint8 (28, 28): what the model saw
    uncertain: bool = False
    stages: Stages = field(default_factory=dict, repr=False)  # preprocessing steps, for --debug
    reason: str | None = None  # why it is uncertain: one of digitrec.doubt.REASONS; None when answered

    def to_dict(self) -> dict[str, object]:
        return {
            "digit": self.digit,
            "confidence": round(float(self.confidence), 6),
            "top": [[int(d), round(float(p), 6)] for d, p in self.top],
            "uncertain": self.uncertain,
            "reason": self.reason,
        }


class Recognizer:
    """Load a model once; predict digits from image files, bytes or arrays.

    >>> rec = Recognizer()                      # the shipped model
    >>> rec.predict("photo.jpg").digit
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        threads: int | None = None,
        min_confidence: float = doubt.DEFAULT_MIN_CONFIDENCE,
        reject: bool = True,
    ):
        """
        model: an ONNX file (.onnx) or a Keras model (.keras, converted to ONNX once and cached);
            None loads the model shipped with digitrec. Raises ModelError when it is missing, not a
            model, or not a digit model (see `model_adapter` for the inputs and outputs accepted).
        threads: onnxruntime's intra-op threads for this model and the reader's networks; None lets
            onnxruntime choose (all cores). One suits a server answering requests side by side.
        min_confidence: a probability in [0, 1]; an answer below it has `digit=None`,
            `uncertain=True` and reason "low confidence" (its `confidence` and `top` are still
            given). The default, `doubt.DEFAULT_MIN_CONFIDENCE`, was chosen on MNIST validation
            data (docs/trust.md); 0 flags none as low confidence (the rejector still flags
            what is not one digit: `reject=False` answers every image).
        reject: ask the rejector (`digitrec.reject`) whether each image is one digit at all; a
            letter, scribble, blank page or several digits then gets `digit=None`, `uncertain=True`
            and its reason (`doubt.NOT_A_DIGIT`, `SEVERAL_DIGITS`, `NO_INK`). False answers every
            image with a digit (for benchmarks, or a model trained on other inputs).

        After loading, `card` is the model card (a dict: name, accuracy, how it was trained...;
        just {"name": file stem} for a model without one) and `path` the ONNX file in use.
        """
        if isinstance(model, str) and not model.strip():  # an unset variable, not "the shipped model"
            raise ModelError("the model path is empty: name a model file, or pass None for the shipped model")
        if model:
            refuse_training_run(model)  # a checkpoint.pt: say how to export it, not "Protobuf parsing failed"
        path = resolve_model(model) if model else default_model_path()  # a .keras file -> its cached ONNX
        self.session, self.model_card = open_model(path, threads=threads)  # the card checked (ModelError if malformed)
        self.path = path
        self.input_name = self.session.get_inputs()[0].name
        self.card = self.model_card.data if self.model_card else {"name": path.stem}
        # How this model is fed and read (layout, scaling, logits or scores): see model_adapter.
        self.adapter = ModelAdapter.from_session(self.session, self.model_card, path)
        self.min_confidence = doubt.checked_min_confidence(min_confidence)
        self.threads = threads
        self.reject = reject
        self._rejector: Rejector | None = None
        self._reader: NumberReader | None = None

    @property
    def rejector(self) -> Rejector:
        """Is it one digit at all? (`digitrec.reject`), loaded on first use."""
        if self._rejector is None:
            from digitrec.reject import Rejector

            # One thread unless told: it reads one small view per input, and a second thread pool
            # spinning beside the digit model's cost more than the network (3.7 -> 9.5 ms a predict).
            self._rejector = Rejector(threads=self.threads or 1)
        return self._rejector

    def rejections(self, first_views: np.ndarray) -> list[str | None]:
        """uint8 (N, 28, 28): each input's first (as-written) view -> per input None (a digit: answer
        it) or the reason it is no single digit; all None when `reject` is off."""
        if not self.reject or not len(first_views):
            return [None] * len(first_views)
        return self.rejector.reasons(first_views)

    @property
    def reader(self) -> NumberReader:
        """The number reader `read` uses (`digitrec.read.NumberReader`: the reader's networks and
        settings, scoring its cuts with this model or the one its card names as `reader_digits`),
        made on first use; assign one to read with other parts."""
        if self._reader is None:
            from digitrec.read.reader import NumberReader

            self._reader = NumberReader(self)
        return self._reader

    @reader.setter
    def reader(self, reader: NumberReader) -> None:
        self._reader = reader

    # --- arrays already in MNIST form ---

    def predict_probabilities(
        self, digits28: np.ndarray, batch_size: int = 1024, *, calibrated: bool = True
    ) -> np.ndarray:
        """Digits in MNIST form, uint8 (N, 28, 28) with ink = 255 on black (or as `load.mnist_form`
        takes them: float 0-1, (N, 1, 28, 28), one (28, 28)) -> float32 (N, 10) probabilities, with
        the card's temperature applied; `calibrated=False`: the plain softmax (T = 1), which the
        reader's segmentation scores were tuned on."""
        digits28 = mnist_form(digits28)
        adapter = self.adapter if calibrated else replace(self.adapter, temperature=1.0)
        out = []
        for start in range(0, len(digits28), batch_size):
            out.append(adapter.probabilities(self.session, digits28[start : start + batch_size]))
        return np.concatenate(out) if out else np.zeros((0, 10), np.float32)

    def _answer(
        self, probs: np.ndarray, image28: np.ndarray | None, top: int, stages: Stages, rejected: str | None = None
    ) -> Prediction:
        """`rejected`: the rejector's reason when the input is no single digit (see `rejections`)."""
        order = np.argsort(probs)[::-1][:top]
        digit, confidence = int(order[0]), float(probs[order[0]])
        uncertain = rejected is not None or confidence < self.min_confidence
        return Prediction(
            reason=rejected or (doubt.LOW_CONFIDENCE if uncertain else None),
            digit=None if uncertain else digit,
            confidence=confidence,
            top=[(int(d), float(probs[d])) for d in order],
            probabilities=probs,
            image28=image28,
            uncertain=uncertain,
            stages=stages,
        )

    # --- any image ---

    def preprocess(self, image: ImageSource, stages: Stages | None = None) -> np.ndarray:
        """Path, file bytes or array (grey, RGB or RGBA) -> uint8 (28, 28) MNIST form.
        Raises ImageError with a message for the user (not an image, too large, no ink found...)."""
        return normalize_digit(load_grey(image, max_side=WORK_SIDE), stages)

    def views(self, image: ImageSource, stages: Stages | None = None, *, margin: bool = True) -> np.ndarray:
        """Path, bytes or array -> uint8 (V, 28, 28): the MNIST form as written and squeezed
        (see `preprocess.digit.digit_views`, also for `margin`); `predict` averages the model over them."""
        return digit_views(load_grey(image, max_side=WORK_SIDE), stages, margin=margin)

    def predict(
        self, image: ImageSource, top: int = 3, debug: bool = False
    ) -> Prediction | list[Prediction | DigitrecError]:
        """One image -> Prediction. `debug=True` keeps the preprocessing stages in `.stages`.
        A uint8 (N, 28, 28) array is N digits already in MNIST form (ink = 255 on black): it gets a
        list of N answers, as `predict_many` gives them (a Prediction, or the DigitrecError of an item
        that failed). Any other array is one image: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA."""
        checked_top(top)
        if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[1:] == (28, 28):
            return self.predict_many(list(image), top, debug=debug)
        stages: Stages | None = {} if debug else None
        views = self.views(image, stages)
        probs = self.predict_probabilities(views).mean(axis=0)
        return self._answer(probs, views[0], top, stages or {}, self.rejections(views[:1])[0])

    def predict_many(
        self, images: Iterable[ImageSource], top: int = 3, *, debug: bool = False, workers: int = 1
    ) -> list[Prediction | DigitrecError]:
        """One answer per input, in order; a bad input yields its DigitrecError, the others go on.
        All digits go through the model in one batch. `workers` > 1 decodes and preprocesses in
        that many threads (Pillow and OpenCV release the GIL)."""
        checked_top(top)

        def prepare(image: ImageSource) -> tuple[np.ndarray | DigitrecError, Stages]:
            stages: Stages | None = {} if debug else None
            try:
                return self.views(image, stages), stages or {}
            except DigitrecError as exc:
                if stages:  # with debug, what was seen before it failed ('no ink found': why?)
                    exc.stages = stages
                return without_frames(exc), stages or {}

        if workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                prepared = list(pool.map(prepare, images))
        else:
            prepared = [prepare(image) for image in images]
        return self.answer_views([views for views, _ in prepared], top, stages=[stages for _, stages in prepared])

    def predict_paths(
        self,
        sources: Iterable[ImageSource | DigitrecError],
        top: int = 3,
        *,
        side: int = WORK_SIDE,
        workers: int | None = None,
        debug: bool = False,
    ) -> Iterator[Prediction | DigitrecError]:
        """Image files (paths, or bytes; a DigitrecError stands for an input that already failed)
        -> one Prediction or DigitrecError per input, in order, lazily: a folder of thousands of
        photos at full speed (`digitrec.bulk`: worker processes, batched model calls).

        `side` is the long side (px) big images are decoded at. The default, WORK_SIDE (640), is
        what `predict` sees: the same answers as `predict(path)`. `bulk.BULK_SIDE` (320) decodes
        big JPEGs at a reduced DCT scale, about twice as fast per photo and a little less accurate
        (docs/throughput.md). Either way a file's answer depends on the file and `side` only, never
        on how many files came with it: the number of files decides only how the work is spread
        (worker processes from `bulk.MIN_FILES` files on, `workers` of them, default one per core).
        `debug=True` keeps each input's preprocessing stages (in this process, one at a time).
        One path instead of several is a folder's image files (`load.image_files`), or that file."""
        from digitrec import bulk

        checked_top(top)
        if side < MIN_DECODE_SIDE:
            raise ValueError(
                f"side is the long side big images are decoded at, at least {MIN_DECODE_SIDE} px, not {side}"
            )
        if isinstance(sources, (str, os.PathLike)):
            sources = image_files(sources) if os.path.isdir(sources) else [sources]
        elif isinstance(sources, (bytes, bytearray, memoryview, np.ndarray)) or is_open_file(sources):
            sources = [sources]  # type: ignore[list-item]  # one image, not a sequence of them
        # Open files are read here: worker processes cannot be handed them.
        sources = [_read_open_file(s) if is_open_file(s) else s for s in sources]
        if debug or len(sources) < bulk.MIN_FILES:
            workers = 1  # starting worker processes would cost more than they save
        return bulk.predict_stream(self, sources, top=top, side=side, workers=workers, debug=debug)

    def answer_views(
        self, batch: list[np.ndarray | DigitrecError], top: int = 3, *, stages: list[Stages] | None = None
    ) -> list[Prediction | DigitrecError]:
        """Views of many inputs (each uint8 (V, 28, 28), or the DigitrecError preparing it raised)
        -> their answers in order, through one model call; an input's views are averaged."""
        good = [views for views in batch if not isinstance(views, DigitrecError)]
        if not good:
            return [views for views in batch if isinstance(views, DigitrecError)]
        probs = self.predict_probabilities(np.concatenate(good))  # (sum of V, 10)
        rejected = iter(self.rejections(np.stack([views[0] for views in good])))
        answers: list[Prediction | DigitrecError] = []
        start = 0
        for i, views in enumerate(batch):
            if isinstance(views, DigitrecError):
                answers.append(views)
                continue
            mean = probs[start : start + len(views)].mean(axis=0)
            answers.append(self._answer(mean, views[0], top, stages[i] if stages else {}, next(rejected)))
            start += len(views)
        return answers

    # --- whole numbers ---

    def read(
        self,
        image: ImageSource,
        *,
        debug: bool = False,
        budget: ReadBudget | None = None,
        keep_punctuation: bool = False,
        digits: int | None = None,
        pattern: str | None = None,
    ) -> Reading:
        """Path, bytes or array of a written number -> `digitrec.read.Reading` (text, lines,
        per-digit confidences and boxes), read by `self.reader` (`digitrec.read.NumberReader`).
        Raises ImageError('no digits found') on a blank page, and `TooMuchToRead` (an ImageError)
        when reading would take more work than `budget`, a `digitrec.read.ReadBudget` (default:
        `read.DEFAULT_BUDGET`, far above what real writing needs; `read.UNLIMITED` for none).
        `keep_punctuation`: the text keeps decimal points, thousands separators and minus signs
        ("7.50", "1,250.00", "-5"); digits only by default.
        `digits` (exactly that many) and `pattern` (a regular expression over the digits, matching
        the whole line: `r"\\d{4}"`, `r"(19|20)\\d\\d"`) constrain what each line may read as; the
        search itself keeps to them (`digitrec.read.pattern`). A bad pattern raises PatternError."""
        return self.reader.read(
            image, digits=digits, pattern=pattern, keep_punctuation=keep_punctuation, debug=debug, budget=budget
        )
