"""Where `digitrec batch` writes: a Parquet dataset (a folder of part files), one row per image.

    results.parquet/part-000000.parquet, part-000001.parquet, ...

pyarrow, pandas, DuckDB, Polars and Spark all read the folder as one table. Each part is written to a
temporary name and renamed once complete, so a run killed at any moment (even `kill -9`) leaves only
whole parts; the rows it was collecting are the only ones lost, and the next run does them again:
it reads the paths already in the parts and skips them. Memory stays flat: at most one part of rows
is held, however many millions of files go through. One run writes a dataset at a time: a second,
started while the first goes on, would number its parts as the first does and write over them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from digitrec.bulk import BULK_SIDE
from digitrec.errors import DataError
from digitrec.files import atomic_path

PART_SIZE = 1000  # rows per part file: ~1,000 files of results per million images
COLUMNS = ("path", "digit", "text", "confidence", "uncertain", "reason", "error", "model")
_PART = re.compile(r"^part-(\d{6,})\.parquet$")


def require_pyarrow():
    """pyarrow.parquet, or a DataError saying which extra brings it."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        from digitrec.extras import install_command

        raise DataError(f"Parquet needs pyarrow: {install_command('batch')}") from None
    return pq


def schema(task: str, settings: dict[str, str] | None = None):
    """The table's columns; its metadata names the task and the `settings` the rows were answered with."""
    import pyarrow as pa

    return pa.schema(
        [
            ("path", pa.string()),
            ("digit", pa.int8()),  # predict: the digit (null when uncertain or failed)
            ("text", pa.string()),  # read: the digits read, lines joined by '\n'
            ("confidence", pa.float64()),
            ("uncertain", pa.bool_()),
            ("reason", pa.string()),  # why uncertain or failed (digitrec.doubt.REASONS); null when answered
            ("error", pa.string()),  # null when the file was answered
            ("model", pa.string()),  # SHA-256 of the model file that answered
        ],
        metadata={"digitrec.task": task, **{f"digitrec.{k}": v for k, v in (settings or {}).items()}},
    )


def _setting(key: str, value: str) -> str:
    """A stored setting as the command line says it."""
    if key == "side":
        return "--fast" if value == str(BULK_SIDE) else "no --fast" if value == "default" else f"side {value} px"
    return f"--{key.replace('_', '-')} {value}"


class ResultSink:
    """Rows in, part files out. `done` holds the paths earlier runs already answered."""

    def __init__(
        self,
        out: str | Path,
        task: str,
        model_hash: str,
        part_size: int = PART_SIZE,
        settings: dict[str, str] | None = None,
    ):
        """`settings`: what else the answers depend on ({"min_confidence": "0.93", "side": "320"});
        a resume with other values is refused, as one with another model is."""
        self.pq = require_pyarrow()
        self.out = Path(out)
        self.task, self.model_hash, self.part_size = task, model_hash, part_size
        self.settings = settings or {}
        self.schema = schema(task, self.settings)
        if self.out.exists() and not self.out.is_dir():
            raise DataError(f"{self.out} is a file; --out names a folder of Parquet parts (a dataset)")
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create {self.out}: {exc.strerror or exc}") from None
        self._lock = _lock(self.out)  # before _resume, which removes the temporary files of a killed run
        self.done: set[str] = set()
        self.next_part = 0
        self._rows: list[dict] = []
        try:
            self._resume()
        except BaseException:
            self._unlock()  # refused (another model, another task): the folder is free for the next run
            raise

    def _resume(self) -> None:
        for stray in self.out.glob(".part-*.part"):  # a part a killed run was writing (files.atomic_path)
            stray.unlink(missing_ok=True)
        for part in sorted(self.out.iterdir()):
            match = _PART.match(part.name)
            if not match:
                continue
            self.next_part = max(self.next_part, int(match.group(1)) + 1)
            try:
                table = self.pq.read_table(part, columns=["path", "model"])
                metadata = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
                task = metadata.get("digitrec.task", "")
            except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for a bad file
                raise DataError(f"{part}: not a readable results part ({exc}); move it away to go on") from None
            if task != self.task:
                raise DataError(f"{self.out} holds results of --task {task or '?'}, not {self.task}; use another --out")
            models = set(table.column("model").to_pylist())
            if models - {self.model_hash}:
                raise DataError(
                    f"{self.out} holds answers from another model ({', '.join(sorted(models))[:16]}...); "
                    f"use another --out, or the same --model to resume"
                )
            for key, value in self.settings.items():
                # A threshold changed halfway would leave "uncertain" (and the digits it empties)
                # meaning two things in one table. Parts from before settings were kept pass.
                earlier = metadata.get(f"digitrec.{key}", value)
                if earlier != value:
                    raise DataError(
                        f"{self.out} holds answers given with {_setting(key, earlier)}, not "
                        f"{_setting(key, value)}: resume as the run began, or use another --out"
                    )
            self.done.update(table.column("path").to_pylist())

    def add(self, rows: list[dict]) -> None:
        self._rows += rows
        while len(self._rows) >= self.part_size:
            self._write(self._rows[: self.part_size])
            self._rows = self._rows[self.part_size :]

    def close(self) -> None:
        """Write the rows still held (the last, short part); let the next run in."""
        try:
            if self._rows:
                self._write(self._rows)
                self._rows = []
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor lets go of its lock
            self._lock = None

    def _write(self, rows: list[dict]) -> None:
        import pyarrow as pa

        for row in rows:
            row["model"] = self.model_hash
        table = pa.Table.from_pylist(rows, schema=self.schema)
        with atomic_path(self.out / f"part-{self.next_part:06d}.parquet") as tmp:
            self.pq.write_table(table, tmp)
        self.next_part += 1


def _lock(out: Path) -> int | None:
    """An exclusive lock on the folder `out` for this run (its descriptor, held open), let go when
    the run ends, however it ends: the kernel drops it with the process. None where there is no
    fcntl (Windows), or where the folder's file system takes no such lock (NFS emulates flock with
    a byte-range lock that a folder, opened read-only, cannot take: EBADF; ENOLCK, EOPNOTSUPP)."""
    try:
        import fcntl
    except ImportError:
        return None
    try:
        lock = os.open(out, os.O_RDONLY)
    except OSError as exc:
        raise DataError(f"cannot open {out}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # EWOULDBLOCK: another run holds it
        os.close(lock)
        raise DataError(
            f"{out} is being written by another digitrec batch run right now: let it finish (run the "
            "same command again then, to answer what it did not) or give this one another --out"
        ) from None
    except OSError:  # no locks here: every run on an NFS --out was refused as if another held it
        os.close(lock)
        return None
    return lock


def read_results(out: str | Path):
    """The whole dataset as a pyarrow Table (for tests and small results)."""
    pq = require_pyarrow()
    parts = sorted(p for p in Path(out).iterdir() if _PART.match(p.name))
    import pyarrow as pa

    # promote: parts written before the `reason` column existed read with it null.
    tables = [pq.read_table(p) for p in parts]
    return pa.concat_tables(tables, promote_options="default") if parts else schema("").empty_table()
