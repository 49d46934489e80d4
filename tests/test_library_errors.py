"""Library code raises DigitrecErrors and leaves printing and exiting to the commands: the trainers'
functions too, and a run folder that `digitrec export` cannot use is a message, not a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import run_main

from digitrec.errors import DataError, DigitrecError

SIX = str(Path(__file__).resolve().parent.parent / "examples" / "grid_6.jpg")


def test_trainers_data_of_other_settings_is_a_data_error(tmp_path):
    from digitrec.train import line_reader, verifier

    np.savez(tmp_path / line_reader.CACHE, numbers=np.int64(10), seed=np.int64(3))
    with pytest.raises(DataError, match="made with --numbers 10 --seed 3"):
        line_reader.cached_data(tmp_path, line_reader.LineReaderConfig(numbers=20, seed=0), workers=1)
    np.savez(tmp_path / "candidates.npz", numbers=np.int64(10), seed=np.int64(3))
    with pytest.raises(DataError, match="made with --numbers 10 --seed 3"):
        verifier._cached_data(tmp_path, numbers=20, seed=0)


@pytest.mark.parametrize("trainer", ["verifier", "line_reader"])
def test_trainers_refuse_an_existing_run_with_a_digitrec_error(trainer, tmp_path):
    import importlib

    module = importlib.import_module(f"digitrec.train.{trainer}")
    (tmp_path / "checkpoint.pt").write_bytes(b"a run already here")
    with pytest.raises(DigitrecError, match="already exists"):  # not SystemExit: callers decide
        module.main(["--out", str(tmp_path)])


def test_export_of_a_line_reader_run_says_what_to_do(tmp_path, capsys):
    from digitrec.checkpoint import save_checkpoint

    run = tmp_path / "line-reader"
    # What python -m digitrec.train.line_reader saves: weights and history, no `digitrec train` meta.
    save_checkpoint(run / "checkpoint.pt", {"model": {}, "optimizer": {}, "epoch": 1, "history": "[]"})
    code, out, err = run_main(["export", str(run), "--out", str(tmp_path / "x.onnx")], capsys)
    assert code == 1
    assert "Traceback" not in err and "KeyError" not in err
    assert "no `digitrec train` model" in err and "python -m digitrec.train.line_reader" in err
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize(
    "content", [b"garbage\n", b"hello\n", b"", b"PK\x03\x04" + b"\0" * 200]
)  # any file; a cut-off zip
def test_a_damaged_checkpoint_is_one_line_that_gives_no_unsafe_advice(content, tmp_path, capsys):
    """torch.load's own message is a paragraph that suggests weights_only=False ("arbitrary code
    execution") and filing an issue with PyTorch: a user with a damaged file needs neither."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(content)
    for args in (["evaluate", str(run), "--limit", "5"], ["export", str(run), "--out", str(tmp_path / "x.onnx")]):
        code, out, err = run_main(args, capsys)
        assert code == 1 and out == "" and err.count("\n") == 1, err
        assert err.startswith(f"Error: cannot read {run / 'checkpoint.pt'} as a digitrec checkpoint (damaged, or")
        assert "weights_only" not in err and "issue" not in err, err
        assert not err.rstrip().split(": ")[-1].isdigit(), err  # 'hello' gave torch's bare `101`


@pytest.mark.parametrize(
    "call, error, message",
    [
        # The audit: each was a bare TypeError / IndexError from deep inside, or no error at all.
        (lambda rec: rec.read(SIX, digits="4"), "PatternError", r"whole number\), not '4'"),
        (lambda rec: rec.read(SIX, pattern=5), "PatternError", r"\(a string\), not 5"),
        (lambda rec: rec.predict(SIX, top=0), "ValueError", "at least 1, not 0"),
        (lambda rec: list(rec.predict_paths([SIX], side=0)), "ValueError", "at least 64 px, not 0"),
        (lambda rec: type(rec)(min_confidence="0.9"), "TypeError", r"probability in \[0, 1\], not '0.9'"),
        (lambda rec: type(rec)(min_confidence=1.5), "ValueError", r"probability in \[0, 1\], not 1.5"),
        (lambda rec: type(rec)(""), "ModelError", "the model path is empty"),
    ],
)
def test_bad_arguments_to_the_python_api_say_which_and_why(recognizer, call, error, message):
    with pytest.raises(Exception, match=message) as raised:
        call(recognizer)
    assert type(raised.value).__name__ == error
    if error == "PatternError":  # a DigitrecError for the CLI, and a ValueError as the README says
        assert isinstance(raised.value, ValueError)


def test_a_read_budget_is_numbers_or_none():
    from digitrec.read import ReadBudget

    with pytest.raises(ValueError, match=r"ReadBudget.max_lines is a whole number >= 0 or None \(no limit\), not 'a'"):
        ReadBudget(max_lines="a")
    with pytest.raises(ValueError, match="max_seconds"):
        ReadBudget(max_seconds=-1.0)
    with pytest.raises(ValueError, match=r"max_pieces is a whole number >= 0 .*not 1.5"):
        ReadBudget(max_pieces=1.5)
    assert ReadBudget(max_lines=0, max_seconds=None, max_candidates=np.int64(9)).max_candidates == 9


@pytest.mark.parametrize(
    "args",
    [["read", "x.png", "--min-confidence", "nan"], ["predict", "x.png", "--min-confidence", "NaN"]],
)
def test_float_options_refuse_nan_by_name(args, capsys, tmp_path, monkeypatch):
    """NaN passes every bound of click's FloatRange: `--min-confidence nan` was a ValueError traceback."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(args, capsys)
    assert code == 2 and "Invalid value for '--min-confidence'" in err and "not a finite number" in err, err
    assert "Traceback" not in err and not list(tmp_path.iterdir())


def test_every_float_option_refuses_nan_and_infinity():
    """Each command's float options (an infinite --body-timeout would let a client hold the server
    forever), checked on the options themselves: a command that got as far as running would start
    a server or a training run."""
    import click

    from digitrec.cli import cli

    ctx = click.Context(cli)
    floats = []
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        for option in command.params:
            if isinstance(option.type, click.FloatRange):
                floats.append(f"{name} {option.opts[0]}")
                for bad in ("nan", "inf", "-inf"):
                    with pytest.raises(click.BadParameter):
                        option.type.convert(bad, option, ctx)
    for expected in ("read --min-confidence", "serve --body-timeout", "train --lr", "finetune --val-share"):
        assert expected in floats, floats
