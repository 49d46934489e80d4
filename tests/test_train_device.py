"""`digitrec train --device` and DDP through torchrun (2 gloo processes on the CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import run_main


def test_auto_is_the_cpu_without_a_gpu_and_a_missing_device_is_a_clear_error(tmp_path, capsys):
    from digitrec.train.device import resolve_device

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert resolve_device("auto") == torch.device("cpu")
    code, _, err = run_main(
        ["train", "--recipe", "fast", "--limit", "200", "--device", "cuda", "--out", str(tmp_path / "run")], capsys
    )
    assert code == 1 and "--device cuda: no CUDA GPU" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_the_checkpoint_records_where_it_trained_and_loads_on_the_cpu(mnist, tmp_path):
    from digitrec.checkpoint import load_model
    from digitrec.train import train
    from digitrec.train.config import load_recipe

    config = load_recipe("fast", None, {"limit": 600, "epochs": 1, "batch_size": 64})
    train(config, tmp_path / "run", data=mnist, device="cpu")
    model, meta = load_model(tmp_path / "run")
    assert meta["device"] == "cpu" and meta["processes"] == 1
    assert next(model.parameters()).device == torch.device("cpu")


def _train_command(out, *extra) -> list[str]:
    return [
        "train",
        "--recipe",
        "fast",
        "--limit",
        "4000",
        "--epochs",
        "2",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--json",
        *extra,
    ]


@pytest.mark.slow
def test_ddp_two_gloo_processes_write_one_run_and_match_one_process(real_data, tmp_path, capsys):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "digitrec"]
    out = tmp_path / "ddp"
    done = subprocess.run(torchrun + _train_command(out), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summaries = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1  # rank 0 alone reports
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.json", "metrics.jsonl"]
    assert [json.loads(r)["epoch"] for r in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    meta = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)["meta"]
    assert meta["processes"] == 2 and meta["epoch"] == 2

    # One process, same recipe: the same accuracy within noise (3,600 training images, 2 epochs).
    code, stdout, err = run_main(_train_command(tmp_path / "one"), capsys)
    assert code == 0, err
    one = json.loads(stdout.strip().splitlines()[-1])
    assert one["test_accuracy"] > 0.9 and summaries[0]["test_accuracy"] > 0.9
    assert abs(one["test_accuracy"] - summaries[0]["test_accuracy"]) < 0.02

    # Resume under torchrun: the finished run is read back by both processes, nothing retrained.
    again = subprocess.run(
        torchrun + ["train", "--out", str(out), "--resume", "--device", "cpu", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["test_accuracy"] == summaries[0]["test_accuracy"]
