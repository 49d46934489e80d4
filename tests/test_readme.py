"""The README's Python snippets run as written, from a folder that holds the examples as a checkout
does (`examples/...`): a renamed method or a changed answer shows up here, not in a user's terminal."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SNIPPETS = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(encoding="utf-8"), re.M | re.S)


def test_the_readme_has_python_snippets():
    assert len(SNIPPETS) >= 2


@pytest.mark.parametrize("number", range(len(SNIPPETS)))
def test_readme_snippet_runs(number, tmp_path, monkeypatch, capsys):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    exec(compile(SNIPPETS[number], f"README.md python snippet {number + 1}", "exec"), {"__name__": "readme"})
