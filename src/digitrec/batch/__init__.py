"""Archives of images -> one Parquet dataset of answers: what `digitrec batch` runs.

    sources (folders, globs, lists, URIs) -> paths not yet done -> engine (local processes or Ray
    actors, the model loaded once in each) -> rows -> Parquet parts, written as they fill

Resumable: the paths already in the output are skipped (however a local one is spelled), so a run stopped for any reason (Ctrl+C,
`kill -9`, a lost node) goes on where it stopped when started again with the same command. A file
that failed is answered too (a row with its error); `retry_failed` answers those again, and their new
rows replace the old (digitrec.batch.sink).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from digitrec.batch.answer import TASKS
from digitrec.batch.sink import PART_SIZE, ResultSink, parts
from digitrec.batch.sources import expand_sources, is_remote
from digitrec.doubt import DEFAULT_MIN_CONFIDENCE
from digitrec.errors import DataError

ENGINES = ("local", "ray")


@dataclass
class BatchSummary:
    found: int  # paths the sources named
    skipped: int  # already in the output from an earlier run
    answered: int  # answered in this run
    errors: int  # of those, files that failed (each a row with its error)
    seconds: float
    retried: int = 0  # of the answered, paths whose earlier row was an error (retry_failed)
    still_failing: int = 0  # of the retried, those that failed again
    skipped_failed: int = 0  # of the skipped, paths whose row is an error (retry_failed would answer them)


def run_batch(
    sources: Iterable[str],
    out: str,
    *,
    task: str = "predict",
    engine: str = "local",
    model: str | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    side: int | None = None,
    workers: int | None = None,
    address: str | None = None,
    part_size: int = PART_SIZE,
    retry_failed: bool = False,
    on_start: Callable[[int, int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> BatchSummary:
    """Answer every image the sources name, writing rows to the Parquet dataset `out` as it goes.
    `side`: the long side big images are decoded at (default `predict`'s; `bulk.BULK_SIDE` is
    `--fast`). `retry_failed`: answer again the paths whose row in `out` is an error, with the same
    settings (a resume with others is refused); nothing answered is redone. `on_start(todo, skipped)`
    and `on_progress(n_rows)` let a caller draw progress."""
    from digitrec.files import file_sha256
    from digitrec.runtime import Recognizer

    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}")
    if "://" in str(out):  # s3://bucket/r.parquet made a local folder named "s3:", and said nothing
        raise DataError(
            f"--out {out}: must be a local folder (the driver writes the parts): write it here, or on "
            "a mounted store, and copy it"
        )
    if retry_failed and not (Path(out).is_dir() and parts(out)):
        raise DataError(f"{out} holds no results of an earlier run to retry: run without --retry-failed first")
    start = time.perf_counter()
    recognizer = Recognizer(model, threads=1)  # checks the model here, before any worker starts
    model_path = str(recognizer.path)
    answers_from = file_sha256(model_path)
    if task == "read":
        # ...and the files its card names (the reader's digit model, its line reader) and the
        # reader's other networks: one missing would otherwise be an error row for every image, each
        # one done for the next run. Readings depend on them all, so a resume must find the same files.
        networks = [file_sha256(path) for path in recognizer.reader.network_files()]
        answers_from = hashlib.sha256("|".join(networks).encode()).hexdigest()
    paths = expand_sources(sources)
    settings = {"min_confidence": f"{min_confidence:g}", "side": str(side or "default")}
    sink = ResultSink(out, task, answers_from, part_size, settings)
    try:
        # A path named twice is answered once; a file an earlier run named another way (`scans/a.png`
        # then `$PWD/scans/a.png`) keeps the earlier spelling, so that it is not answered twice.
        named = dict.fromkeys(_as_done(paths, sink.done))
        failed = {p for p in sink.failed if p in named}  # the few failed, not the millions named
        retry = failed if retry_failed else set()
        todo = [p for p in named if p not in sink.done or p in retry]
        skipped = len(paths) - len(todo)
        if on_start:
            on_start(len(todo), skipped)
        answered = errors = still_failing = 0
        if todo:
            if engine == "local":
                from digitrec.batch.local import answer_local

                chunks = answer_local(
                    todo, model=model_path, task=task, min_confidence=min_confidence, side=side, workers=workers
                )
            else:
                from digitrec.batch.ray_engine import answer_ray

                chunks = answer_ray(
                    todo,
                    model=model_path,
                    task=task,
                    min_confidence=min_confidence,
                    side=side,
                    workers=workers,
                    address=address,
                )
            try:
                for rows in chunks:
                    sink.add(rows)
                    answered += len(rows)
                    errors += sum(1 for r in rows if r["error"])
                    still_failing += sum(1 for r in rows if r["error"] and r["path"] in retry)
                    if on_progress:
                        on_progress(len(rows))
            finally:
                chunks.close()  # stops the workers at once on Ctrl+C
    finally:
        sink.close()  # the rows answered so far are kept, whatever stopped the run; the lock let go
    seconds = time.perf_counter() - start
    return BatchSummary(len(paths), skipped, answered, errors, seconds, len(retry), still_failing, len(failed - retry))


def _as_done(paths: list[str], done: set[str]) -> list[str]:
    """`paths`, each local one that an earlier run wrote in the output under another spelling of the
    same file (relative or absolute, `./`, `..`) as it wrote it there. Only when none of `paths` is
    in `done` as given (the same command run again matches as given, at no cost)."""
    if not done or any(p in done for p in paths):
        return paths
    by_file = {os.path.abspath(d): d for d in done if not is_remote(d)}
    return [p if is_remote(p) else by_file.get(os.path.abspath(p), p) for p in paths]
