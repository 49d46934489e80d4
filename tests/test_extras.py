"""The slim install: a command whose extra is missing says which extra, in one line, and exits 1,
with a pip command that works for this install. A missing module is simulated the way Python itself
blocks one: sys.modules[name] = None."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import run_main

from digitrec.errors import DigitrecError
from digitrec.extras import MissingExtra, install_command, require


def block(monkeypatch, *modules: str) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def installed_from(monkeypatch, tmp_path, origin: dict | None) -> None:
    """digitrec's install record as pip writes it (a .dist-info folder; PEP 610's direct_url.json
    says where from), found first on sys.path."""
    record = tmp_path / "site" / "digitrec-0.1.0.dist-info"
    record.mkdir(parents=True)
    (record / "METADATA").write_text("Metadata-Version: 2.1\nName: digitrec\nVersion: 0.1.0\n")
    if origin is not None:
        (record / "direct_url.json").write_text(json.dumps(origin))
    monkeypatch.syspath_prepend(str(record.parent))


def test_require_names_the_extra_and_a_pip_command_that_works_from_a_checkout(monkeypatch, tmp_path):
    """No release is on PyPI: after `pip install .` in a checkout, `pip install 'digitrec[serve]'`
    finds nothing (or a stranger's package); the checkout's own path adds the extra."""
    installed_from(monkeypatch, tmp_path, {"url": "file:///home/ann/digit%20rec", "dir_info": {}})
    require("report", "json")  # present: nothing happens
    block(monkeypatch, "fastapi")
    with pytest.raises(MissingExtra) as info:
        require("serve", "fastapi", "uvicorn")
    assert isinstance(info.value, DigitrecError)
    assert str(info.value) == (
        "digitrec serve needs the 'serve' extra (fastapi is not installed): pip install '/home/ann/digit rec[serve]'"
    )
    block(monkeypatch, "matplotlib")
    with pytest.raises(
        MissingExtra, match=r"^drawing the evaluation report and data pictures needs the 'report' extra"
    ):
        require("report", "matplotlib")


@pytest.mark.parametrize(
    "origin, command",
    [
        ({"url": "file:///src/digitrec", "dir_info": {"editable": True}}, "pip install -e '/src/digitrec[train]'"),
        (
            {"url": "file:///dl/digitrec-0.1.0-py3-none-any.whl", "archive_info": {}},
            "pip install '/dl/digitrec-0.1.0-py3-none-any.whl[train]'",
        ),
        (
            {
                "url": "https://git.example.org/ann/digitrec.git",
                "vcs_info": {"vcs": "git", "commit_id": "7d3e171aa", "requested_revision": "main"},
            },
            "pip install 'digitrec[train] @ git+https://git.example.org/ann/digitrec.git@7d3e171aa'",
        ),  # pip install git+URL: no PyPI name to fall back on either
        (
            {"url": "https://files.example.org/digitrec-0.1.0.tar.gz", "archive_info": {}},
            "pip install 'digitrec[train] @ https://files.example.org/digitrec-0.1.0.tar.gz'",
        ),
        (None, "pip install 'digitrec[train]'"),  # from an index: by name
    ],
)
def test_the_pip_command_follows_where_digitrec_was_installed_from(origin, command, monkeypatch, tmp_path):
    installed_from(monkeypatch, tmp_path, origin)
    assert install_command("train") == command


def test_a_module_that_does_not_exist_counts_as_missing():
    with pytest.raises(MissingExtra, match=r"the 'ray' extra .*pip install .*\[ray\]"):
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
    assert err.startswith("Error: ") and install_command(extra) in err


def test_evaluating_a_checkpoint_without_torch_names_the_train_extra(monkeypatch, capsys, tmp_path):
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"not read: torch is missing first")
    block(monkeypatch, "torch")
    code, _, err = run_main(["evaluate", str(checkpoint.parent), "--limit", "5"], capsys)
    assert code == 1
    assert install_command("train") in err and err.count("\n") == 1
