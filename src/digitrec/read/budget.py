"""How much work reading one image may take (`ReadBudget`), counted before the networks run.

Reading costs network calls per candidate run of ink, so a page of hundreds of short strokes would
cost many seconds: each image is read within a budget of lines, pieces of ink, candidate runs and
seconds; past it `TooMuchToRead` (an ImageError) is raised.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from digitrec.errors import TooMuchToRead

if TYPE_CHECKING:
    from digitrec.preprocess.segment import Segmentation

Run: TypeAlias = tuple[int, int]  # a run of atoms line.atoms[i:j], as (i, j)
Plan: TypeAlias = list[list[Run]]  # the candidate runs of each line


@dataclass(frozen=True)
class ReadBudget:
    """The most work reading one image may take; past any limit `NumberReader.read` raises
    `TooMuchToRead` ("too much to read: ..."). The counts are checked after segmentation, before
    anything is rendered or goes through a network; the time between lines (and before the
    networks run). Pass `ReadBudget(max_lines=...)` etc. to `Recognizer.read(image, budget=...)`;
    a limit of None is no limit (`UNLIMITED`: none at all).

    The defaults sit well above what real writing needs (below, and docs/read.md, "Work budget"):
    every image of `benchmarks/read.py` reads exactly as without them. A hostile image (a page of
    thousands of short strokes: tens of thousands of candidates, tens of seconds of CPU) is
    refused for about what finding its ink costs."""

    # Limits 3-6x the most any real or generated number needs. `benchmarks/read.py` (2026-12-06:
    # 1,000 generated strings of 1-8 digits and the 219 real multi-digit rows of ../shared) needed at
    # most 5 lines, 62 pieces in one line, 24 components and 68 pieces in an image, 361 candidates
    # and 1.9-3.2 s per image (0.6 s on an idle machine; 3.2 s with its 2 cores shared 4-5 ways).
    max_lines: int | None = 20  # text lines found
    max_pieces_per_line: int | None = 300  # atoms (components and their slices) in one line
    max_pieces: int | None = 400  # components before lines are formed, and atoms once cut
    max_candidates: int | None = 1500  # runs of atoms rendered and classified (verifier + classifier)
    max_seconds: float | None = 10.0  # wall clock from the start of the read (decoding included)

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            kind = numbers.Real if name == "max_seconds" else numbers.Integral  # the others are counts
            if value is not None and (isinstance(value, bool) or not isinstance(value, kind) or value < 0):
                what = "a number" if kind is numbers.Real else "a whole number"
                raise ValueError(f"ReadBudget.{name} is {what} >= 0 or None (no limit), not {value!r}")

    def check_counts(self, seg: Segmentation, plan: Plan) -> None:
        """Raise TooMuchToRead if the segmentation `seg`, with candidate runs `plan` per line,
        holds more than the budget allows (`segment` checks `max_pieces` itself, as it goes)."""
        _refuse_over(len(seg.lines), self.max_lines, "lines of writing")
        _refuse_over(
            max((len(line.atoms) for line in seg.lines), default=0),
            self.max_pieces_per_line,
            "pieces of ink in one line",
        )
        _refuse_over(sum(map(len, plan)), self.max_candidates, "candidate digits")

    def deadline(self) -> Callable[[], None]:
        """Start the clock -> a function that raises TooMuchToRead once `max_seconds` have passed."""
        if self.max_seconds is None:
            return no_deadline
        start, limit = time.monotonic(), self.max_seconds

        def check() -> None:
            spent = time.monotonic() - start
            if spent > limit:
                raise TooMuchToRead.too_slow(spent, limit)

        return check


def _refuse_over(count: int, limit: int | None, what: str) -> None:
    if limit is not None and count > limit:
        raise TooMuchToRead.over(count, what, limit)


def no_deadline() -> None:
    """The clock of no time limit: never raises."""


DEFAULT_BUDGET = ReadBudget()
UNLIMITED = ReadBudget(None, None, None, None, None)
