"""One worker's job in `digitrec batch`: a chunk of paths -> one result row per path.

The same object runs in a local worker process and in a Ray actor, so both engines give the same
answers. `predict` answers exactly as `digitrec predict` does (digitrec.bulk: big images decoded with their long
side at `side` px, as `predict` and `predict --fast` do, the same views, one model call per chunk); `read` as `digitrec read`. A file that fails is a
row with its error.
"""

from __future__ import annotations

from digitrec import doubt
from digitrec.doubt import DEFAULT_MIN_CONFIDENCE
from digitrec.errors import DigitrecError, ImageError

TASKS = ("predict", "read")


def fetch(path: str):
    """A local path as is (the loader reads it); a URI -> its bytes, through fsspec."""
    from digitrec.batch.sources import is_remote, local_path

    if not is_remote(path):
        return local_path(path)
    import fsspec

    try:
        with fsspec.open(path, "rb") as f:
            return f.read()
    except Exception as exc:  # noqa: BLE001 - every store raises its own kinds
        return ImageError(f"cannot fetch ({type(exc).__name__}: {exc})")


class Answerer:
    """Loads the model once (per process or actor); answers chunks of paths. onnxruntime runs on
    one thread: the worker processes (or actors) are the parallelism."""

    def __init__(
        self, model: str | None, task: str, min_confidence: float = DEFAULT_MIN_CONFIDENCE, side: int | None = None
    ):
        from digitrec.preprocess.digit import WORK_SIDE
        from digitrec.runtime import Recognizer

        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}")
        self.task = task
        self.side = side or WORK_SIDE  # what `predict` decodes at; bulk.BULK_SIDE for `--fast`
        self.recognizer = Recognizer(model, threads=1, min_confidence=min_confidence)

    def __call__(self, paths: list[str]) -> list[dict]:
        return self._predict(paths) if self.task == "predict" else [self._read(p) for p in paths]

    def _predict(self, paths: list[str]) -> list[dict]:
        from digitrec import bulk

        answers = self.recognizer.answer_views([bulk.prepare(fetch(p), self.side) for p in paths], top=1)
        rows = []
        for path, answer in zip(paths, answers):
            if isinstance(answer, DigitrecError):
                rows.append(_row(path, error=str(answer), reason=answer.doubt_reason))
            else:
                rows.append(
                    _row(
                        path,
                        digit=answer.digit,
                        confidence=answer.confidence,
                        uncertain=answer.uncertain,
                        reason=answer.reason,
                    )
                )
        return rows

    def _read(self, path: str) -> dict:
        source = fetch(path)
        try:
            if isinstance(source, DigitrecError):
                raise source
            reading = self.recognizer.read(source)
        except DigitrecError as exc:
            return _row(path, error=str(exc), reason=exc.doubt_reason)
        except Exception as exc:  # noqa: BLE001 - one odd file must not stop an archive
            return _row(path, error=f"cannot read this image ({type(exc).__name__}: {exc})")
        uncertain = reading.confidence < self.recognizer.min_confidence
        return _row(
            path,
            text=reading.text,
            confidence=reading.confidence,
            uncertain=uncertain,
            reason=doubt.LOW_CONFIDENCE if uncertain else None,
        )


def _row(path: str, *, digit=None, text=None, confidence=None, uncertain=False, reason=None, error=None) -> dict:
    return {
        "path": path,
        "digit": digit,
        "text": text,
        "confidence": None if confidence is None else float(confidence),
        "uncertain": bool(uncertain),
        "reason": reason,
        "error": error,
    }
