"""`digitrec train --recipe line-reader|verifier`: the reader's networks from the one training
command, their errors as messages (exit 1), and each run folder ending with its ONNX model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_main

from digitrec.read.line_reader import ALPHABET, HEIGHT, LineReader


@pytest.mark.mnist
@pytest.mark.slow
def test_train_recipe_line_reader_end_to_end(real_data, tmp_path, capsys):
    run = tmp_path / "lr"
    args = [
        "train",
        "--recipe",
        "line-reader",
        "--out",
        str(run),
        "--set",
        "numbers=40",
        "--epochs",
        "1",
        "--threads",
        "1",
    ]
    code, out, err = run_main(args, capsys)
    assert code in (0, None), err
    assert "line-reader: held-out string accuracy" in out
    reader = LineReader(run / "line_reader.onnx")
    assert reader.alphabet == ALPHABET
    assert reader.log_probs_all(np.zeros((HEIGHT, 64), np.uint8)).shape == (16, len(ALPHABET) + 1)
    assert reader.log_probs(np.zeros((HEIGHT, 64), np.uint8)).shape == (16, 11)
    saved = json.loads((run / "line_reader_config.json").read_text())
    assert saved["numbers"] == 40 and saved["epochs"] == 1 and saved["held_out_writers"] == 0.08
    # The card says how the run was made: the recipe's --set and flags, to run again as they are.
    assert (
        reader.card["command"]
        == f"digitrec train --recipe line-reader --out {run} --set numbers=40 --epochs 1 --threads 1"
    )
    # Run again into the same folder: a message, not a traceback; --resume continues it.
    code, _, err = run_main(args, capsys)
    assert code == 1 and "already exists" in err and "Traceback" not in err
    code, out, err = run_main([*args[:-4], "--epochs", "2", "--threads", "1", "--resume"], capsys)
    assert code in (0, None) and "epoch 2:" in out, err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", "bogus=1"], "unknown line-reader settings: bogus"),
        (["--set", "numbers=1", "--resume"], "nothing to resume"),
    ],
)
def test_train_recipe_line_reader_refuses_with_a_message(extra, message, tmp_path, capsys):
    code, _, err = run_main(["train", "--recipe", "line-reader", "--out", str(tmp_path / "r"), *extra], capsys)
    assert code == 1 and message in err and "Traceback" not in err


def test_train_recipe_verifier_refuses_digit_recipe_flags(tmp_path, capsys):
    code, _, err = run_main(["train", "--recipe", "verifier", "--out", str(tmp_path), "--lr", "0.1"], capsys)
    assert code == 1 and "does not take --lr" in err
    code, _, err = run_main(["train", "--recipe", "verifier", "--out", str(tmp_path), "--set", "x=1"], capsys)
    assert code == 1 and "numbers=N and soft=P only" in err
    for bad in ("2", "nan", "abc", "true"):  # TOML reads nan and true; abc stays a string
        code, _, err = run_main(
            ["train", "--recipe", "verifier", "--out", str(tmp_path), "--set", f"soft={bad}"], capsys
        )
        assert code == 1 and "verifier setting soft must be in [0, 1]" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # refused before any candidate was drawn


@pytest.mark.mnist
@pytest.mark.slow
def test_train_recipe_verifier_end_to_end(real_data, tmp_path, capsys):
    from digitrec.read.verifier import Verifier

    run = tmp_path / "v"
    args = [
        "train",
        "--recipe",
        "verifier",
        "--out",
        str(run),
        "--set",
        "numbers=20",
        "--set",
        "soft=0.5",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--limit",
        "500",
    ]
    code, out, err = run_main(args, capsys)
    assert code in (0, None), err
    assert "verifier: test accuracy" in out and (run / "verifier.onnx").is_file()
    probs = Verifier(run / "verifier.onnx").probabilities(np.zeros((2, 28, 28), np.uint8))
    assert probs.shape == (2, 11)
    with np.load(run / "candidates.npz") as made:  # the candidates say they were made with soft scans
        assert made["soft"].item() == 0.5 and made["numbers"].item() == 20
    card = json.loads((run / "verifier_card.json").read_text())  # and the model's card says so
    assert card["candidates"] == {"numbers": 20, "seed": 0, "soft": 0.5}
