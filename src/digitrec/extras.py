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
    "report": "drawing the evaluation report and data pictures",
    "serve": "digitrec serve",
    "train": "training and exporting PyTorch models",
    "keras": "converting Keras models",
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
                f"{install_command(extra)}"
            )


def install_command(extra: str) -> str:
    """The pip command that adds `extra` to this very install. There is no release on PyPI yet, so
    `pip install 'digitrec[EXTRA]'` finds nothing there (or a stranger's package of that name): an
    install from a checkout or a wheel file is named by the path pip recorded for it (PEP 610's
    direct_url.json), `-e` kept for an editable one; one from a git repository or an archive's URL
    by that URL (the repository at the installed commit)."""
    import json
    import shlex
    from importlib import metadata
    from urllib.parse import unquote, urlparse

    try:
        origin = json.loads(metadata.distribution("digitrec").read_text("direct_url.json") or "{}")
    except (metadata.PackageNotFoundError, ValueError):  # not installed (a bare PYTHONPATH), or a broken record
        origin = {}
    url = urlparse(str(origin.get("url", "")))
    if url.scheme == "file" and url.path:
        editable = "-e " if origin.get("dir_info", {}).get("editable") else ""
        return f"pip install {editable}{shlex.quote(f'{unquote(url.path)}[{extra}]')}"
    vcs = origin.get("vcs_info")
    if url.scheme and url.netloc and isinstance(vcs, dict) and vcs.get("vcs"):
        # `pip install git+https://...`: the same repository at the very commit installed
        pinned = "@" + str(vcs["commit_id"]) if vcs.get("commit_id") else ""
        requirement = f"digitrec[{extra}] @ {vcs['vcs']}+{url.geturl()}{pinned}"
        return f"pip install {shlex.quote(requirement)}"
    if url.scheme and url.netloc and "archive_info" in origin:  # a wheel or sdist by its URL
        return f"pip install {shlex.quote(f'digitrec[{extra}] @ {url.geturl()}')}"
    return f"pip install 'digitrec[{extra}]'"  # from an index: the name is what pip knows it by


def _importable(module: str) -> bool:
    import sys

    if module in sys.modules:  # imported already, or set to None to block it (as the tests do)
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken half-installed one
        return False
