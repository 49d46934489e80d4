"""The CLI skeleton and `digitrec data`, run as a user runs them."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

from digitrec.cli import cli


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "digitrec", *args], capture_output=True, text=True, env=env)


def test_every_command_has_help():
    runner = CliRunner()
    for name in ("data", "train", "evaluate", "export", "predict", "read", "serve"):
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


@pytest.mark.parametrize("name", ["data", "train", "evaluate", "export", "predict", "read", "serve"])
def test_help_examples_stay_one_command_per_line(name):
    """click rewraps a paragraph unless it starts with a \\b line: examples run together otherwise."""
    command = cli.get_command(None, name)
    examples = [
        line.strip()
        for line in (command.help or "").splitlines()
        if line.strip().startswith(("digitrec ", "curl ", "cat "))
    ]
    shown = [line.strip() for line in CliRunner().invoke(cli, [name, "--help"], terminal_width=80).output.splitlines()]
    for example in examples:
        assert example in shown, f"{name} --help mangles: {example}"


def test_unknown_command_fails_cleanly():
    result = run("frobnicate")
    assert result.returncode != 0
    assert "No such command" in result.stderr and "Traceback" not in result.stderr


def test_fetch_with_no_source_fails_cleanly(tmp_path):
    import os

    env = dict(
        os.environ, XDG_CACHE_HOME=str(tmp_path), DIGITREC_MNIST_MIRRORS="http://127.0.0.1:9/", PATH="/usr/bin/none"
    )
    result = subprocess.run(
        [sys.executable, "-m", "digitrec", "data", "fetch"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 1
    assert "Error: could not get a verified copy" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.mnist
def test_info_and_explore_on_real_mnist(real_data, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["data", "info", "--json"])
    assert result.exit_code == 0, result.output
    import json

    info = json.loads(result.output)
    assert info["splits"]["train"]["per_class"][1] == 6742
    result = runner.invoke(cli, ["data", "explore", "--out", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    import cv2

    for name in ("samples.png", "class_balance.png", "mean_images.png", "pixel_stats.png"):
        image = cv2.imread(str(tmp_path / "x" / name))
        assert image is not None and image.shape[0] > 100 and image.std() > 5, name


@pytest.mark.parametrize("command", [["data", "fetch"], ["data", "info"], ["evaluate"]])
def test_a_data_dir_typed_that_does_not_exist_is_said(command, tmp_path):
    """`--data-dir ~/Downloads/mnst` (a typo): MNIST used to come quietly from the cache or the
    network, and the user believed their files were used."""
    missing = tmp_path / "mnst"
    result = run(*command, "--data-dir", str(missing))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"Invalid value for '--data-dir': {missing}: no such folder" in result.stderr


@pytest.mark.parametrize(
    "args, option",
    [
        (["data", "explore", "--per-class", "0"], "--per-class"),  # an empty grid, written as a picture
        (["data", "explore", "--per-class", "-3"], "--per-class"),  # matplotlib's traceback
        (["data", "explore", "--per-class", "100000"], "--per-class"),  # 24 GB of memory, then a picture
        (["data", "explore", "--seed", "-1"], "--seed"),  # numpy's traceback
        (["finetune", "mine.csv", "--out", "m.onnx", "--seed", "-1"], "--seed"),
        (["train", "--seed", str(2**64)], "--seed"),  # torch: "Overflow when unpacking long long"
    ],
)
def test_out_of_range_sizes_and_seeds_are_refused_before_any_work(args, option, monkeypatch):
    """Each of these reached MNIST (and then a traceback, or a picture of nothing); now the option
    is refused as it is parsed, exit 2, as click refuses any other bad value."""
    from digitrec import data

    def reached(*_, **__):
        raise AssertionError("MNIST was loaded: the option was not checked")

    monkeypatch.setattr(data, "load_mnist", reached)
    monkeypatch.setattr(data, "fetch_mnist", reached)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, (result.output, result.exception)
    assert f"Invalid value for '{option}'" in result.output
