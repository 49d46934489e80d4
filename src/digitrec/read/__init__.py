"""Reading whole written numbers (`digitrec read`, `Recognizer.read`): `NumberReader`.

One module per job; data flows down the list:
  pattern.py      --digits / --pattern as one automaton over digits
  budget.py       ReadBudget: the most work one image may take
  params.py       ReaderParams (every tunable, documented) and a line's Evidence
  candidates.py   the runs of atoms that may be one digit, rendered MNIST-style
  verifier.py     the segmentation verifier's network: is this one digit?
  line_reader.py  the line reader's network (CTC): a whole line read without cutting it
  scores.py       how well each candidate reads as each digit
  decode.py       the best path through a line, and the line reader's second opinion
  lines.py        which lines are the number
  choose.py       the digits of each line, from the networks' outputs
  punctuation.py  decimal points, separators and minus signs placed between those digits
  result.py       Reading, ReadDigit and their JSON
  draw.py         a reading drawn on its image (--debug)
  reader.py       NumberReader: the parts composed, image -> Reading
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from digitrec.read.budget import DEFAULT_BUDGET, UNLIMITED, ReadBudget
    from digitrec.read.params import DEFAULT_PARAMS, ReaderParams
    from digitrec.read.pattern import PatternError
    from digitrec.read.reader import NumberReader
    from digitrec.read.result import ReadDigit, Reading

# The public names and their modules, imported on first use: importing one module of the package
# (`digitrec.read.pattern`, numpy only, for the CLI's and the server's option checks) does not
# load the others (OpenCV, onnxruntime).
_HOMES = {
    "DEFAULT_BUDGET": "budget",
    "UNLIMITED": "budget",
    "ReadBudget": "budget",
    "DEFAULT_PARAMS": "params",
    "ReaderParams": "params",
    "PatternError": "pattern",
    "NumberReader": "reader",
    "ReadDigit": "result",
    "Reading": "result",
}


def __getattr__(name: str) -> object:
    if name in _HOMES:
        return getattr(import_module(f"digitrec.read.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'digitrec.read' has no attribute {name!r}")


__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_PARAMS",
    "UNLIMITED",
    "NumberReader",
    "PatternError",
    "ReadBudget",
    "ReadDigit",
    "ReaderParams",
    "Reading",
]
