"""Slow work (reading, and requests with many pixels) in worker processes of its own.

Threads were not enough: reading is mostly Python, so a thread reading a hostile page holds the
interpreter lock, and at a lower OS priority it holds it longer (the scheduler runs it seldom, and
the lock is only handed over when it runs). Every 28x28 drawing then waits for it. A process has
its own interpreter: the drawings keep the server's, and the OS priority (nice 10) of the workers
leaves the cores to them too. Each worker loads its own copy of the model, once, at start.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import CancelledError, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import HTTPException

from digitrec.lifetime import die_with_parent

log = logging.getLogger("digitrec.web")

# Under Linux's scheduler a task at nice 10 gets ~1/10 of the CPU of one at nice 0 when both want
# it, so reading hostile or heavy images leaves the cores to the drawings.
SLOW_NICENESS = 10

# The model the worker process answers with (set by `_start_worker`, once per process).
_recognizer: Any = None


@dataclass(frozen=True)
class Refusal:
    """An HTTPException raised in a worker, sent back as data (exceptions with keyword-only
    state do not survive pickling) and raised again in the server."""

    status_code: int
    detail: str


def lower_priority() -> None:
    """Run the calling thread (or, in a worker process, the process) after the others: SLOW_NICENESS
    above its own niceness, not at it, so that a server started with `nice` (or a service's Nice=)
    still reads after it draws (at nice 10 both ran at 10); the OS caps it at 19."""
    try:
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + SLOW_NICENESS))
    except (AttributeError, OSError):  # not Linux, or refused: the same priority as the rest
        pass


def _start_worker(model_path: str, min_confidence: float) -> None:
    global _recognizer
    from digitrec.allocator import keep_freed_memory
    from digitrec.runtime import Recognizer

    die_with_parent()
    lower_priority()
    keep_freed_memory()
    _recognizer = Recognizer(model_path, threads=1, min_confidence=min_confidence)
    _ = _recognizer.reader  # the reader's networks, loaded now


def _answer_in_worker(task: str, uploads: list, image28: bool, options: dict | None = None) -> list[dict] | Refusal:
    from digitrec.web.app import answer_task

    try:
        return answer_task(_recognizer, task, uploads, image28, options)
    except HTTPException as exc:
        return Refusal(exc.status_code, str(exc.detail))


def _ready() -> int:
    time.sleep(0.05)  # long enough that a worker still loading gets a turn before the others loop
    return os.getpid()


class SlowWorkers:
    """`count` worker processes for slow work. `answer` blocks the calling thread until a worker
    has answered; a pool whose worker died (killed, out of memory) is started again, and the
    request that met it gets a 503. Workers a reload replaced hand new requests to their successor."""

    def __init__(self, model_path: Path, min_confidence: float, count: int):
        self._args = (str(model_path), min_confidence)
        self._count = count
        self._lock = threading.Lock()
        self._closed = False
        self._successor: SlowWorkers | None = None  # the workers a reload replaced these with
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: forking a server that runs threads copies locks held by them; and not
        # forkserver, whose server process outlives a killed parent. Called from a thread that
        # lives as long as the server (the event loop's, or a slow-pool thread), as `die_with_parent`
        # needs.
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(self._count, mp_context=context, initializer=_start_worker, initargs=self._args)
        # Start every worker now (each loads the model), not on the first slow request: until each
        # has answered once, one that loads quickly may answer for one still loading.
        ready: set[int] = set()
        deadline = time.monotonic() + 120
        while len(ready) < self._count:
            if time.monotonic() > deadline:
                raise RuntimeError("the slow-work processes did not start within 120 s")
            ready |= {future.result(timeout=120) for future in [pool.submit(_ready) for _ in range(self._count)]}
        return pool

    def answer(self, task: str, uploads: list, image28: bool, options: dict | None = None) -> list[dict]:
        pool = self._pool
        try:
            result = pool.submit(_answer_in_worker, task, uploads, image28, options).result()
        except BrokenProcessPool:  # (a RuntimeError: caught before the clause below)
            log.error("a slow-work process died; starting the pool again")
            with self._lock:
                if self._pool is pool and not self._closed:
                    self._pool = self._start()
            raise HTTPException(503, "the server lost a worker for large images or reading; retry") from None
        except (RuntimeError, CancelledError):
            if not self._closed:
                raise
            if self._successor is not None:  # replaced under this request by a reload: the new workers answer
                return self._successor.answer(task, uploads, image28, options)
            raise HTTPException(503, "the server is stopping; retry") from None
        if isinstance(result, Refusal):
            raise HTTPException(result.status_code, result.detail)
        return result

    def close(self, wait: bool = False, successor: SlowWorkers | None = None) -> None:
        """Stop the workers; `wait` until they have exited, as the server does when it stops: the
        pool's queues are then freed at once. uvicorn ends a SIGTERM'd server by raising the signal
        again, which kills the process before any exit handler: queues still held then leave their
        semaphores to Python's resource tracker, which warns about "leaked semaphore objects".
        `successor`: the workers a reload starts in their place. Work already queued here is then
        finished by these (the old model, as serve.md says), and a request that comes after the
        close goes to the successor; without one, queued work is cancelled (a 503)."""
        self._successor = successor
        self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=successor is None)
