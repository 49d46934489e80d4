"""Many image files at full speed: what `digitrec predict` uses for a folder.

Three things make a folder of phone photos fast, and none changes what the model is asked:
  1. decoding at a reduced size: a JPEG is decoded at 1/2, 1/4 or 1/8 scale straight from its DCT
     coefficients (Pillow's `draft`), then area-resized so its long side is `side` px, the size
     the preprocessing would work at anyway (a digit ends up 20x20 px);
  2. decoding and preprocessing in worker processes, one per core (the preprocessing is many small
     numpy/OpenCV steps, so threads would queue on the GIL); each worker runs single-threaded OpenCV;
  3. one batched model call per chunk, in this process, while the workers prepare the next ones.
Answers come back in input order and are exactly `Recognizer.predict(decode_reduced(file, side))`
for each file: the per-file path on the same reduced image.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from digitrec.errors import DigitrecError, ImageError, without_frames

# Long side (px) big photos are decoded at. The single-image path analyses up to
# preprocess.digit.WORK_SIDE (640); see docs/throughput.md for speed and accuracy at both.
BULK_SIDE = 320
MIN_FILES = 16  # fewer files than this: starting worker processes (~0.3 s) costs more than it saves
CHUNK = 256  # images per model call; bounds memory on huge folders


def decode_reduced(source, side: int = BULK_SIDE) -> np.ndarray:
    """Path, bytes or array -> uint8 grey with its long side at most `side` (JPEGs decoded at a
    reduced DCT scale first)."""
    import cv2

    from digitrec.preprocess import load_grey

    grey = load_grey(source, max_side=side)
    h, w = grey.shape
    if max(h, w) > side:
        f = side / max(h, w)
        grey = cv2.resize(grey, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    return grey


def prepare(source, side: int = BULK_SIDE, stages: dict | None = None) -> np.ndarray | DigitrecError:
    """One input -> uint8 (V, 28, 28) views for the model, or the error that stops it (runs in a
    worker). `stages` (a dict) collects the preprocessing steps, for --debug."""
    if isinstance(source, DigitrecError):
        return source
    from digitrec.preprocess.digit import digit_views

    try:
        return digit_views(decode_reduced(source, side), stages)
    except DigitrecError as exc:
        if stages:  # what was seen before it failed ('no ink found': why?)
            exc.stages = stages
        return without_frames(exc)  # its frames hold the decoded picture until the batch ends
    except Exception as exc:  # noqa: BLE001 - one odd file must not stop a folder of thousands
        return ImageError(f"cannot process this image ({type(exc).__name__}: {exc})")


def predict_stream(
    recognizer,
    inputs: Iterable,
    *,
    top: int = 3,
    side: int = BULK_SIDE,
    workers: int | None = None,
    chunk: int = CHUNK,
    debug: bool = False,
) -> Iterator:
    """Paths or bytes (or a DigitrecError standing for an input that already failed) -> one
    Prediction or DigitrecError per input, in order, lazily. `workers` processes (default: one per
    core); 1 prepares in this process, as `debug` (keep each input's preprocessing stages) does."""
    inputs = list(inputs)
    workers = min(workers or os.cpu_count() or 1, max(1, len(inputs) // 4))
    if workers <= 1 or debug:

        def prepared_here():
            for source in inputs:
                stages: dict | None = {} if debug else None
                yield prepare(source, side, stages), stages or {}

        yield from _answer_chunks(recognizer, prepared_here(), top, chunk)
        return
    import multiprocessing
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: this process has onnxruntime and OpenCV thread pools that a fork would copy mid-flight.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker)
    try:
        per_task = max(1, min(16, len(inputs) // (workers * 8)))  # fewer round trips, still balanced
        with _main_script_hidden():  # the workers start during map()
            prepared = pool.map(prepare, inputs, [side] * len(inputs), chunksize=per_task)
        yield from _answer_chunks(recognizer, ((views, {}) for views in prepared), top, chunk)
    except BrokenProcessPool:
        raise DigitrecError(
            "a worker process preparing the images died (out of memory?); try fewer files at a time"
        ) from None
    finally:
        # Ctrl+C or a caller that stops reading: drop the queued files instead of finishing them.
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _main_script_hidden():
    """A spawned worker runs the parent's __main__ script again (as `__mp_main__`) unless the script
    cannot be found. The workers need only digitrec, and a caller's script without an
    `if __name__ == "__main__"` guard would otherwise start its work over in every worker."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
    try:
        for k in saved:
            setattr(main, k, None) if k == "__spec__" else delattr(main, k)
        yield
    finally:
        for k, v in saved.items():
            setattr(main, k, v)


def _init_worker() -> None:
    import signal

    import cv2

    from digitrec.allocator import keep_freed_memory

    cv2.setNumThreads(1)  # the processes are the parallelism; OpenCV's own threads would oversubscribe
    keep_freed_memory()  # a worker prepares thousands of images: reuse their freed arrays
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle (it stops the pool)


def _answer_chunks(recognizer, prepared: Iterator, top: int, chunk: int) -> Iterator:
    """(views or error, stages) pairs -> answers, one model call per `chunk` inputs."""
    batch: list = []
    stages: list = []
    for views, seen in prepared:
        batch.append(views)
        stages.append(seen)
        if len(batch) == chunk:
            yield from recognizer.answer_views(batch, top, stages=stages)
            batch, stages = [], []
    yield from recognizer.answer_views(batch, top, stages=stages)
