"""The digit scorer beside a fine-tuned model: `read` scores its cuts with the model a card names as
`reader_digits` (`read.reader.digit_scorer`). A finetune that keeps the base's weights (no step beat
it, or `--numbers` cut too few digits) reads numbers as the base did, with a copy of the base's
scorer beside OUT (mine.onnx -> mine.reader_digits.onnx); one that learnt something scores its own
cuts, and a copy an earlier run left beside OUT is removed with the model it went with. No torch.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from digitrec.errors import DataError
from digitrec.files import atomic_path
from digitrec.modelfile.card import companion_path


def scorer_copy_path(out: Path) -> Path:
    """mine.onnx -> mine.reader_digits.onnx: the one name every finetune path writes."""
    return out.with_name(f"{out.stem}.reader_digits.onnx")


def base_scorer(base_path: Path, base_card: dict, out: Path) -> Path | None:
    """The digit scorer the base's card names (None: the base is no ONNX file, or its card names none
    or itself), checked before any training: a named one that is missing is the ModelError `read`
    would raise (else a run that keeps the base failed at its end, one that learnt did not), and an
    OUT whose copy would go over the base itself is refused."""
    copy = scorer_copy_path(out)
    if copy.resolve() == base_path.resolve():
        raise DataError(
            f"--out {out.name} would write its digit scorer {copy.name} over the base model: choose another --out"
        )
    if base_path.suffix.lower() != ".onnx":
        return None
    source = companion_path(base_path, base_card, "reader_digits", "reader's digit model")
    return None if source is None or source.resolve() == base_path.resolve() else source


@contextmanager
def scorer_beside(
    source: Path | None, out: Path, card: dict, log: Callable[[str], None], warn: Callable[[str], None]
) -> Iterator[Path | None]:
    """Around writing OUT with `card`: with the base's scorer `source` (the base kept), a copy of it
    beside OUT, named in `card` before OUT is written (so the card never names a missing file);
    without, once OUT is written, the copy an earlier run left there is removed (it belonged to the
    model just replaced, and left there it says OUT reads with it). Yields the copy, or None."""
    copy = scorer_copy_path(out)
    if source is not None:
        with atomic_path(copy) as tmp:
            shutil.copyfile(source, tmp)
        card["reader_digits"] = copy.name
        yield copy
        return
    yield None
    if not copy.is_file():
        return
    try:
        copy.unlink()
    except OSError as exc:
        warn(
            f"{copy} (an earlier run's digit scorer) could not be removed: {exc.strerror or exc}; {out.name} does not use it"
        )
        return
    log(f"removed {copy.name}, the digit scorer of the model {out.name} replaced: this one scores its own cuts")
