"""The slim install: a command whose extra is missing says which extra, in one line, and exits 1.
A missing module is simulated the way Python itself blocks one: sys.modules[name] = None."""

from __future__ import annotations

import sys

import pytest
from conftest import run_main

from digitrec.errors import DigitrecError
from digitrec.extras import MissingExtra, require


def block(monkeypatch, *modules: str) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_require_names_the_extra_and_the_pip_command(monkeypatch):
    require("report", "json")  # present: nothing happens
    block(monkeypatch, "fastapi")
    with pytest.raises(MissingExtra) as info:
        require("serve", "fastapi", "uvicorn")
    assert isinstance(info.value, DigitrecError)
    assert str(info.value) == (
        "digitrec serve needs the 'serve' extra (fastapi is not installed): pip install 'digitrec[serve]'"
    )


def test_a_module_that_does_not_exist_counts_as_missing():
    with pytest.raises(MissingExtra, match=r"digitrec\[ray\]"):
        require("ray", "no_such_module_for_digitrec.sub")


@pytest.mark.parametrize(
    "args, blocked, extra",
    [
        (["serve", "--port", "0"], ["fastapi"], "serve"),
        (["evaluate", "--limit", "5"], ["matplotlib"], "report"),
        (["data", "explore"], ["matplotlib"], "report"),
        (["train", "--limit", "5"], ["torch"], "train"),
        (["export", "runs/cnn"], ["torch"], "train"),
    ],
)
def test_commands_refuse_in_one_line_without_their_extra(args, blocked, extra, monkeypatch, capsys):
    block(monkeypatch, *blocked)
    code, out, err = run_main(args, capsys)
    assert code == 1
    assert out == ""
    assert err.strip().count("\n") == 0, err  # one line, no traceback
    assert err.startswith("Error: ") and f"pip install 'digitrec[{extra}]'" in err


def test_evaluating_a_checkpoint_without_torch_names_the_train_extra(monkeypatch, capsys, tmp_path):
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"not read: torch is missing first")
    block(monkeypatch, "torch")
    code, _, err = run_main(["evaluate", str(checkpoint.parent), "--limit", "5"], capsys)
    assert code == 1
    assert "pip install 'digitrec[train]'" in err and err.count("\n") == 1
