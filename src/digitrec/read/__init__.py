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

from digitrec.read.budget import DEFAULT_BUDGET, UNLIMITED, ReadBudget
from digitrec.read.params import DEFAULT_PARAMS, ReaderParams
from digitrec.read.pattern import PatternError
from digitrec.read.reader import NumberReader
from digitrec.read.result import ReadDigit, Reading

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_PARAMS",
    "NumberReader",
    "UNLIMITED",
    "PatternError",
    "ReadBudget",
    "ReadDigit",
    "ReaderParams",
    "Reading",
]
