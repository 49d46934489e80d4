"""Optional parts of digitrec and the pip extras that bring them.

The core install predicts and reads (numpy, OpenCV, Pillow, onnxruntime); the report, the server,
training and Keras conversion each need an extra. A command checks before it starts, so a missing
one is a one-line message with the command to run, not an ImportError traceback halfway through.
"""

from __future__ import annotations

import importlib.util

from digitrec.errors import DigitrecError

# extra -> what it is for, as the message's subject
USES = {
    "report": "the evaluation report and data pictures",
    "serve": "digitrec serve",
    "train": "training and exporting PyTorch models",
    "keras": "Keras models",
    "ray": "running on a Ray cluster",
}


class MissingExtra(DigitrecError):
    """A module that only an optional extra installs is missing."""


def require(extra: str, *modules: str) -> None:
    """Raise MissingExtra naming `extra` unless every module in `modules` can be imported.
    Nothing is imported here: the check is a lookup, so it costs nothing when all is installed."""
    for module in modules:
        if not _importable(module):
            raise MissingExtra(
                f"{USES.get(extra, extra)} needs the '{extra}' extra ({module} is not installed): "
                f"pip install 'digitrec[{extra}]'"
            )


def _importable(module: str) -> bool:
    import sys

    if module in sys.modules:  # imported already, or set to None to block it (as the tests do)
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken half-installed one
        return False
