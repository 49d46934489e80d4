"""`--engine local`: a pool of worker processes on this machine, the model loaded once in each.

Processes, not threads: the preprocessing is many small numpy/OpenCV steps that would queue on the
GIL. Each worker runs onnxruntime and OpenCV on one thread, so N workers use N cores and no more.
Chunks go out in order with a bounded number in flight, so memory stays flat whatever the archive's
size, and the answers come back in input order.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator

from digitrec.batch.answer import Answerer
from digitrec.doubt import DEFAULT_MIN_CONFIDENCE
from digitrec.errors import DigitrecError
from digitrec.lifetime import die_with_parent

CHUNK = 64  # paths per task: one model call each; small enough to keep every worker busy
IN_FLIGHT = 3  # chunks queued per worker: it never waits for the next, memory stays bounded

_answerer: Answerer | None = None  # one per worker process, made by _init_worker


def default_workers() -> int:
    """The cores this process may run on (a container's or taskset's share, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def answer_local(
    paths: list[str],
    *,
    model: str,
    task: str,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    side: int | None = None,
    workers: int | None = None,
    chunk: int = CHUNK,
) -> Iterator[list[dict]]:
    """Paths -> lists of result rows, chunk by chunk, in input order. `workers` = 1 answers in this
    process (no start-up cost: the right choice for a few files)."""
    workers = max(1, min(workers or default_workers(), -(-len(paths) // chunk)))
    chunks = (paths[i : i + chunk] for i in range(0, len(paths), chunk))
    if workers == 1:
        answerer = Answerer(model, task, min_confidence, side)
        for c in chunks:
            yield answerer(c)
        return

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from digitrec.bulk import _main_script_hidden

    # spawn, not fork: this process may hold onnxruntime and OpenCV thread pools a fork would copy.
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(model, task, min_confidence, side),
    )
    pending: deque = deque()
    try:
        with _main_script_hidden():  # the workers start on the first submissions
            for c in chunks:
                pending.append(pool.submit(_answer, c))
                if len(pending) >= workers * IN_FLIGHT:
                    break
        for c in chunks:
            yield pending.popleft().result()
            pending.append(pool.submit(_answer, c))
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool:
        raise DigitrecError(
            "a worker process died (out of memory?); the parts written so far are kept: "
            "run the same command again to go on"
        ) from None
    finally:
        # Ctrl+C or a caller that stops reading: drop the queued chunks instead of finishing them.
        pool.shutdown(wait=True, cancel_futures=True)


def _init_worker(model: str, task: str, min_confidence: float, side: int | None) -> None:
    global _answerer
    from digitrec.bulk import _init_worker as bulk_init

    bulk_init()  # single-threaded OpenCV, Ctrl+C left to the parent
    die_with_parent()
    _answerer = Answerer(model, task, min_confidence, side)


def _answer(paths: list[str]) -> list[dict]:
    return _answerer(paths)
