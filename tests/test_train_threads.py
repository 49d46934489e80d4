"""Training threads that survive a busy machine (digitrec.train.threads)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from digitrec.train import threads


def test_an_idle_machine_keeps_every_core(monkeypatch):
    monkeypatch.setattr(threads, "busy_elsewhere", lambda samples=10: 0.0)
    cores = len(os.sched_getaffinity(0))
    assert threads.default_threads() == cores
    assert threads.default_threads(world=2) == max(1, cores // 2)


def test_a_busy_neighbour_gets_its_core_and_the_run_records_it(mnist, tmp_path):
    """A process spinning on one core: the default leaves that core to it (the old default took
    every core, and 2 threads then trained 5-55x slower than 1 on this 2-core machine)."""
    from digitrec.checkpoint import load_model
    from digitrec.train import train
    from digitrec.train.config import load_recipe

    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        pytest.skip("needs 2 cores")
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert threads.busy_elsewhere() >= 1
        assert threads.default_threads() <= cores - 1
        config = load_recipe("fast", overrides={"limit": 600, "epochs": 1, "batch_size": 64})  # threads = 0
        train(config, tmp_path / "run", data=mnist, device="cpu")
    finally:
        neighbour.kill()
        neighbour.wait()
    _, meta = load_model(tmp_path / "run")
    assert 1 <= meta["threads"] <= cores - 1


def test_a_wait_policy_already_chosen_is_left_alone(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setattr(threads, "busy_elsewhere", lambda samples=10: 5.0)
    assert threads.prefer_passive_waiting() is False and os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
