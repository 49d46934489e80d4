"""Where `digitrec batch` writes: a Parquet dataset (a folder of part files), one row per image.

    results.parquet/part-000000.parquet, part-000001.parquet, ...

pyarrow, pandas, DuckDB, Polars and Spark all read the folder as one table. Each part is written to a
temporary name and renamed once complete, so a run killed at any moment (even `kill -9`) leaves only
whole parts; the rows it was collecting are the only ones lost, and the next run does them again:
it reads the paths already in the parts and skips them. Memory stays flat: at most one part of rows
is held, however many millions of files go through. One run writes a dataset at a time: a second,
started while the first goes on, would number its parts as the first does and write over them.

A path has one row, except while a run that answers failed paths again (`--retry-failed`) goes on:
its new rows are in later parts, and the row of the later part is the one that counts. When the run
ends, the superseded rows are removed from their parts (each rewritten whole, atomically), so every
reader sees one row per path; a run killed before that leaves them to the next run's end, and
`read_results` applies the rule meanwhile.
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


def parts(out: str | Path) -> list[tuple[int, Path]]:
    """The part files of the dataset `out`, oldest first, with their numbers (by number, not by
    name: part-1000000 comes after part-999999)."""
    found = [(int(m.group(1)), p) for p in Path(out).iterdir() if (m := _PART.match(p.name))]
    return sorted(found)


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
    """Rows in, part files out. `done` holds the paths earlier runs already answered; `failed`, those
    of them whose latest row is an error, each with the number of the part that holds that row."""

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
        self.failed: dict[str, int] = {}
        self._superseded: dict[int, set[str]] = {}  # part number -> paths whose row there a later part replaced
        self.next_part = 0
        self._rows: list[dict] = []
        try:
            self._resume()
        except BaseException:
            self._unlock()  # refused (another model, another task): the folder is free for the next run
            raise

    def _resume(self) -> None:
        import pyarrow.compute as pc

        for stray in self.out.glob(".part-*.part"):  # a part a killed run was writing (files.atomic_path)
            stray.unlink(missing_ok=True)
        found = parts(self.out)
        self.next_part = found[-1][0] + 1 if found else 0
        # Newest first: the first row met for a path is the one that counts, so an error row met
        # after it is one that a retry killed before its end left superseded. Only the error rows
        # are looked at one by one: a resume over millions of rows makes one pass over their paths.
        for number, part in reversed(found):
            try:
                table = self.pq.read_table(part, columns=["path", "model", "error"])
                metadata = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
                task = metadata.get("digitrec.task", "")
            except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for a bad file
                raise DataError(f"{part}: not a readable results part ({exc}); move it away to go on") from None
            if task != self.task:
                raise DataError(f"{self.out} holds results of --task {task or '?'}, not {self.task}; use another --out")
            models = set(pc.unique(table.column("model")).to_pylist())
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
            for path in table.filter(table.column("error").is_valid()).column("path").to_pylist():
                if path in self.done:  # answered again in a later part
                    self._superseded.setdefault(number, set()).add(path)
                else:
                    self.failed[path] = number
            self.done.update(table.column("path").to_pylist())

    def add(self, rows: list[dict]) -> None:
        self._rows += rows
        while len(self._rows) >= self.part_size:
            self._write(self._rows[: self.part_size])
            self._rows = self._rows[self.part_size :]

    def close(self) -> None:
        """Write the rows still held (the last, short part); drop the rows they superseded; let the
        next run in."""
        try:
            if self._rows:
                self._write(self._rows)
                self._rows = []
            self._drop_superseded()
        finally:
            self._unlock()

    def _supersede(self, path: str) -> None:
        """A later row for `path` is written: its failed row, in an earlier part, no longer counts."""
        earlier = self.failed.pop(path, None)
        if earlier is not None:
            self._superseded.setdefault(earlier, set()).add(path)

    def _note_failed(self, paths: list[str], number: int) -> None:
        self.failed.update(dict.fromkeys(paths, number))

    def _drop_superseded(self) -> None:
        """Rewrite each part that holds superseded rows without them (a part left empty is removed),
        so that pandas, DuckDB... read one row per path. Each rewrite is atomic: killed halfway, the
        rows are still superseded by the later parts, and the next run drops them."""
        import pyarrow as pa
        import pyarrow.compute as pc

        for number, paths in sorted(self._superseded.items()):
            part = self.out / f"part-{number:06d}.parquet"
            table = self.pq.read_table(part)
            kept = table.filter(pc.invert(pc.is_in(table.column("path"), value_set=pa.array(sorted(paths)))))
            if kept.num_rows:
                with atomic_path(part) as tmp:
                    self.pq.write_table(kept, tmp)
            else:
                part.unlink()
        self._superseded.clear()

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
        for row in rows:
            self._supersede(row["path"])
        self._note_failed([row["path"] for row in rows if row.get("error")], self.next_part)
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
    """The whole dataset as a pyarrow Table, one row per path (for tests and small results)."""
    pq = require_pyarrow()
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    # promote: parts written before the `reason` column existed read with it null.
    tables = [pq.read_table(p) for _, p in parts(out)]
    if not tables:
        return schema("").empty_table()
    table = pa.concat_tables(tables, promote_options="default")
    # A path has a second row only where a retry answered it again, so only a path with an error
    # row can: looking among those keeps the check small (counting the distinct paths of all the
    # rows held a hash of every path, 1.4x the table itself).
    failed = pc.unique(table.filter(table.column("error").is_valid()).column("path"))
    again = pc.is_in(table.column("path"), value_set=failed)  # (rows,) bool: the rows of those paths
    if (pc.sum(again).as_py() or 0) == len(failed):
        return table
    # A retry killed before it dropped the rows it superseded: a path's row in the latest part counts.
    mask = again.to_numpy(zero_copy_only=False)
    rows = np.arange(table.num_rows)
    candidates = pa.table({"path": table.column("path").filter(mask), "row": rows[mask]})
    keep = ~mask
    keep[candidates.group_by("path").aggregate([("row", "max")]).column("row_max").to_numpy()] = True
    return table.filter(keep)
