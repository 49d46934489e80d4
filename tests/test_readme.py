"""The README's Python snippets run as written, from a folder that holds the examples as a checkout
does (`examples/...`): a renamed method or a changed answer shows up here, not in a user's terminal."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SNIPPETS = re.findall(r"^```python\n(.*?)^```", README, re.M | re.S)


def test_the_readme_has_python_snippets():
    assert len(SNIPPETS) >= 2


@pytest.mark.parametrize("number", range(len(SNIPPETS)))
def test_readme_snippet_runs(number, tmp_path, monkeypatch, capsys):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    exec(compile(SNIPPETS[number], f"README.md python snippet {number + 1}", "exec"), {"__name__": "readme"})


def test_the_values_the_readme_shows_are_what_the_shipped_model_answers():
    """The comments beside the snippets are what a new user compares their screen with."""
    from digitrec import Recognizer

    lines = README.splitlines()

    def shown(code: str) -> str:  # the comment beside the README's line of code
        return next(line for line in lines if line.startswith(code)).split("#", 1)[1].strip()

    rec = Recognizer()
    answer = rec.predict(ROOT / "examples" / "photo_7.jpg")
    top = ", ".join(f"({d}, {p:.4f})" if i == 0 else f"({d}, {p:.1f})" for i, (d, p) in enumerate(answer.top))
    assert shown("answer.digit, answer.confidence, answer.top") == f"{answer.digit}, {answer.confidence:.4f}, [{top}]"
    reading = rec.read(ROOT / "examples" / "grid_6.jpg")
    assert shown("reading.text, reading.confidence, reading.line_texts").startswith(
        f'"{reading.text}", {reading.confidence:.2f}, {reading.line_texts}'.replace("'", '"')
    )


@pytest.mark.parametrize("command", ["predict", "read"])
def test_the_json_fields_the_readme_lists_are_the_ones_printed(command, capsys):
    """`digitrec predict|read ... --json  # one JSON array: path, ..., error`: every field, in order."""
    import json

    from conftest import run_main

    line = next(line for line in README.splitlines() if line.startswith(f"digitrec {command} ") and "--json" in line)
    listed = line.split("one JSON array:", 1)[1].strip()
    code, out, _ = run_main([command, str(ROOT / "examples" / "grid_6.jpg"), "--json"], capsys)
    assert code == 0
    answer = json.loads(out)[0]
    fields = [f"{key} ({', '.join(answer[key][0])})" if key == "digits" else key for key in answer]
    assert listed == ", ".join(fields)
