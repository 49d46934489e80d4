"""Errors meant for users: the CLI prints the message and exits non-zero, the web answers 4xx."""

from __future__ import annotations

from typing import Any

from digitrec import doubt


class DigitrecError(Exception):
    """Something the user can act on; the message says what and how."""

    exit_code = 1
    # With --debug, the preprocessing stages seen before an image failed ("no ink found": why?).
    stages: dict[str, Any] | None = None
    # The doubt reason it stands for (one of digitrec.doubt.REASONS), shown beside the message. Not
    # `reason`: urllib's errors have one (a message), and code that handles both reads it.
    doubt_reason: str | None = None


class DataError(DigitrecError):
    """MNIST could not be fetched, verified or parsed."""


class ImageError(DigitrecError):
    """An input image could not be read or holds no digit."""


class NotAnImage(ImageError, TypeError):
    """What is no kind of image at all (None, a list, a number): a TypeError, as Python code expects
    of an argument of the wrong type, and an ImageError, so that one such item in a batch
    (`predict_many`) is that item's answer instead of stopping the others."""


class NoInk(ImageError):
    """A blank or noise-only image: nothing written. Its `doubt_reason` is doubt.NO_INK, which the
    JSON and CSV answers carry as `reason` beside the error message."""

    doubt_reason = doubt.NO_INK


class ModelError(DigitrecError):
    """A model file is missing, malformed or of the wrong shape."""


class TooMuchToRead(ImageError):
    """Reading an image would take more work than its budget (`digitrec.read.ReadBudget`)
    allows: far more lines, pieces of ink or candidate digits than any written number has (a
    hostile or absurd image), or more time. The message starts "too much to read: "; the server
    answers it as 422."""

    @classmethod
    def over(cls, count: int, what: str, limit: int) -> TooMuchToRead:
        return cls(f"too much to read: {count} {what} (limit {limit})")

    @classmethod
    def too_slow(cls, seconds: float, limit: float) -> TooMuchToRead:
        return cls(f"too much to read: still reading after {seconds:.2f} s (limit {limit:g} s)")


def without_frames(error: DigitrecError) -> DigitrecError:
    """`error`, to be kept as an answer while the rest of a batch is worked on, without its
    traceback and the exceptions behind it: their frames hold what the failed input was decoded
    to (a 40 MP picture is 40-160 MB), which would otherwise live until the batch is answered."""
    error.__traceback__ = None
    error.__context__ = error.__cause__ = None
    return error
