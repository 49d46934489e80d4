"""Recipes and overrides, batched augmentation, a short real training run, resume equivalence,
and `digitrec train --json` as users run it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import run_main

from digitrec.checkpoint import load_model, read_metrics
from digitrec.errors import DigitrecError
from digitrec.train import Callbacks, TrainConfig, load_recipe, train
from digitrec.train.augment import add_glyph_variants, augment_batch, change_stroke_width, fill_box_affine
from digitrec.train.config import AugmentConfig
from digitrec.train.loop import learning_rate

# --- config ----------------------------------------------------------------------------------


def test_defaults_are_the_cnn_recipe():
    assert load_recipe("cnn").to_dict() == {**TrainConfig().to_dict(), "recipe": "cnn"}


def test_file_overrides_recipe_and_flags_override_file(tmp_path):
    extra = tmp_path / "mine.toml"
    extra.write_text("epochs = 4\nlr = 0.01\n[augment]\nrotate = 3.0\n")
    config = load_recipe("fast", extra, {"epochs": 7, "augment.enabled": True})
    assert config.recipe == "fast" and config.architecture == "fastcnn"
    assert config.epochs == 7 and config.lr == 0.01  # flag beats file, file beats recipe
    assert config.augment.rotate == 3.0 and config.augment.enabled is True


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epoch": 3}, "unknown setting 'epoch'"),
        ({"augment.spin": 3}, "unknown setting 'augment.spin'"),
        ({"epochs": "many"}, "epochs must be a whole number"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"optimizer": "lbfgs"}, "optimizer must be"),
        ({"seed": 2**64}, "seed must be between 0 and 4,294,967,295"),  # was torch's traceback
        ({"mix.seed": -1}, "mix.seed must be between 0 and 4,294,967,295"),
        # torch refused these mid-run with a traceback, or took them without a word (warmup -1
        # trained; augment p=3, scale=5 trained a model to 20% accuracy)
        ({"lr": float("nan")}, "lr must be a number above 0, got nan"),
        ({"lr": -1}, "lr must be a number above 0, got -1.0"),
        ({"label_smoothing": 1.5}, r"label_smoothing must be in \[0, 1\), got 1.5"),
        ({"threads": -3}, r"threads must be in \[0, 4096\], got -3"),
        ({"warmup": -1}, r"warmup must be in \[0, 1\), got -1.0"),
        ({"augment.p": 3.0}, r"augment.p must be in \[0, 1\], got 3.0"),
        ({"augment.scale": 5}, r"augment.scale must be in \[0, 1\), got 5.0"),
        ({"model": {"chanels": [8, 8]}}, "does not fit architecture 'cnn' .*unexpected keyword argument 'chanels'"),
        ({"model": {"channels": []}}, "does not fit architecture 'cnn'"),
        ({"architecture": "mlp"}, "does not fit architecture 'mlp'"),  # the cnn's channels given to the mlp
    ],
)
def test_bad_settings_are_clear_errors(overrides, message):
    with pytest.raises(DigitrecError, match=message):
        load_recipe("cnn", overrides=overrides)


def test_one_cycle_rises_then_falls():
    config = TrainConfig(epochs=2, lr=1.0, warmup=0.25)
    lrs = [learning_rate(config, step, 50) for step in range(100)]
    assert lrs[0] == pytest.approx(0.04) and max(lrs) == pytest.approx(1.0, abs=0.01)
    assert lrs.index(max(lrs)) == 25 and lrs[-1] < 0.01


# --- augmentation ----------------------------------------------------------------------------


def _bar(height=16, width=3):
    x = torch.zeros(1, 1, 28, 28)
    x[..., 14 - height // 2 : 14 + height // 2, 13 : 13 + width] = 1.0
    return x


def test_augmentation_is_seeded_and_keeps_the_contract(mnist):
    images = torch.tensor(mnist["train"][0][:64]).float().div(255).unsqueeze(1)
    cfg = AugmentConfig(stroke_p=0.5, fill_p=0.3, elastic_p=0.5)
    a = augment_batch(images, cfg, torch.Generator().manual_seed(1))
    b = augment_batch(images, cfg, torch.Generator().manual_seed(1))
    c = augment_batch(images, cfg, torch.Generator().manual_seed(2))
    assert a.shape == images.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    # Distorted, not destroyed: every digit keeps most of its ink.
    ratio = a.sum((1, 2, 3)) / images.sum((1, 2, 3))
    assert ratio.min() > 0.25 and ratio.max() < 3
    assert torch.equal(augment_batch(images, AugmentConfig(enabled=False), torch.Generator()), images)


def test_fill_box_stretches_a_thin_one_to_the_20x20_box():
    bar = _bar(height=16, width=3)
    forward = fill_box_affine(bar, torch.tensor([True]), max_stretch=10)
    grid = torch.nn.functional.affine_grid(
        torch.cat([torch.linalg.inv(forward[:, :, :2]), -torch.linalg.inv(forward[:, :, :2]) @ forward[:, :, 2:]], 2),
        [1, 1, 28, 28],
        align_corners=False,
    )
    out = torch.nn.functional.grid_sample(bar, grid, align_corners=False)[0, 0] > 0.5
    rows, cols = out.any(1).nonzero(), out.any(0).nonzero()
    assert rows.max() - rows.min() + 1 == pytest.approx(20, abs=1)
    assert cols.max() - cols.min() + 1 == pytest.approx(20, abs=1)
    # Not chosen: left alone.
    assert torch.allclose(fill_box_affine(bar, torch.tensor([False])), torch.tensor([[[1.0, 0, 0], [0, 1, 0]]]))


def test_stroke_width_grows_and_shrinks_by_about_a_pixel():
    bar = _bar(height=16, width=3)
    thick = change_stroke_width(bar, torch.tensor([1]))
    thin = change_stroke_width(bar, torch.tensor([-1]))
    same = change_stroke_width(bar, torch.tensor([0]))
    width = lambda x: x[0, 0, 14].sum().item()  # ink across the middle row, in pixels
    assert width(same) == pytest.approx(3, abs=0.01)
    assert width(thick) == pytest.approx(4, abs=0.3) and width(thin) == pytest.approx(2, abs=0.3)


def test_glyph_variants_add_a_crossbar_to_sevens_and_leave_other_digits_alone():
    sevens = torch.zeros(2, 1, 28, 28)
    sevens[:, :, 4:6, 8:20] = 1.0  # the top bar
    sevens[:, :, 6:24, 17:19] = 1.0  # a vertical stem at x = 17-18
    labels = torch.tensor([7, 3])
    out = add_glyph_variants(sevens, labels, 1.0, torch.Generator().manual_seed(0))
    added = (out - sevens)[0, 0]
    rows = added.sum(1).nonzero().flatten()
    assert added.sum() > 6 and 11 <= rows.float().mean() <= 18  # a bar across the middle of the stem
    cols = added.sum(0).nonzero().flatten()
    assert cols.min() < 17 and cols.max() > 18  # on both sides of the stem
    assert torch.equal(out[1], sevens[1])  # a '3' gets nothing


@pytest.mark.mnist
def test_writers_forms_redraw_only_their_classes_and_stay_mnist_shaped(mnist):
    """`augment.forms`: the chosen 1/2/4/7/9 redrawn (and prepared as predict prepares a crop),
    every other digit and the labels untouched, the same for the same seed."""
    from digitrec.glyph_forms import FORMS, mnist_with_forms
    from digitrec.train.augment import describe
    from digitrec.train.config import AugmentConfig

    images, labels = mnist["train"][0][:300], mnist["train"][1][:300]
    redrawn = mnist_with_forms(images, labels, 1.0, seed=0)
    changed = np.array([not np.array_equal(a, b) for a, b in zip(images, redrawn)])
    assert not changed[~np.isin(labels, list(FORMS))].any()
    assert changed[np.isin(labels, list(FORMS))].mean() > 0.6
    assert redrawn.shape == images.shape and redrawn.dtype == np.uint8
    assert np.array_equal(redrawn, mnist_with_forms(images, labels, 1.0, seed=0))
    assert np.array_equal(mnist_with_forms(images, labels, 0.0, seed=0), images)
    assert "forms of 1/2/4/7/9 p=0.2" in describe(AugmentConfig(forms=0.2))
    from digitrec.train.config import validate

    with pytest.raises(DigitrecError, match="augment.forms must be in"):
        validate(load_recipe("cnn", overrides={"augment.forms": 1.5}))


# --- training runs ---------------------------------------------------------------------------


def small(recipe="fast", **overrides) -> TrainConfig:
    return load_recipe(recipe, overrides={"threads": 2, **overrides})


def test_a_short_run_on_real_mnist_clearly_beats_chance(mnist, tmp_path):
    config = small(limit=4000, epochs=2)
    summary = train(config, tmp_path / "run", data=mnist)
    assert summary["test_accuracy"] > 0.90  # chance is 0.10; on 3,600 images this recipe gets ~0.94
    model, meta = load_model(tmp_path / "run")
    assert not model.training and meta["epoch"] == 2 and meta["recipe"] == "fast"
    assert meta["config"] == config.to_dict() and meta["seed"] == 0
    assert meta["run_dir"] == str(tmp_path / "run")
    rows = read_metrics(tmp_path / "run")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert set(rows[0]) == {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert rows[1]["seconds"] > rows[0]["seconds"] > 0
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == config.to_dict()


class Killed(Exception):
    pass


def test_resume_after_a_kill_ends_with_the_same_weights(mnist, tmp_path):
    # Augmentation, EMA and a one-cycle schedule on: everything that could drift on resume.
    config = small(
        limit=1200,
        epochs=3,
        ema=0.9,
        **{"augment.enabled": True, "augment.stroke_p": 0.3, "augment.fill_p": 0.2, "augment.elastic_p": 0.3},
    )
    whole = train(config, tmp_path / "whole", data=mnist)

    def kill_after_epoch_2(row):
        if row["epoch"] == 2:
            raise Killed

    with pytest.raises(Killed):
        train(config, tmp_path / "split", data=mnist, callbacks=Callbacks(on_epoch=kill_after_epoch_2))
    assert [r["epoch"] for r in read_metrics(tmp_path / "split")] == [1, 2]
    with pytest.raises(DigitrecError, match="already exists"):
        train(config, tmp_path / "split", data=mnist)
    resumed = train(config, tmp_path / "split", data=mnist, resume=True)

    a, _ = load_model(tmp_path / "whole")
    b, _ = load_model(tmp_path / "split")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    assert resumed["test_accuracy"] == whole["test_accuracy"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert strip(read_metrics(tmp_path / "split")) == strip(read_metrics(tmp_path / "whole"))


# --- the command -----------------------------------------------------------------------------


def test_cli_train_prints_a_json_summary_last(real_data, tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "train",
        "--recipe",
        "fast",
        "--out",
        str(out),
        "--limit",
        "1000",
        "--epochs",
        "1",
        "--set",
        "batch_size=64",
        "--threads",
        "2",
        "--json",
    ]
    code, stdout, err = run_main(args, capsys)
    assert code == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert {"recipe", "epochs", "seed", "train_seconds", "test_accuracy", "checkpoint"} <= set(summary)
    assert summary["recipe"] == "fast" and summary["epochs"] == 1 and summary["seed"] == 0
    assert summary["checkpoint"] == str(out / "checkpoint.pt") and 0.3 < summary["test_accuracy"] <= 1
    assert "epoch   1/1" in err and "val loss" in err
    # --limit cuts the test set too; said, since export then measures all 10,000 (another number).
    assert (
        f"test accuracy (measured once, at the end, on the first 1,000 test images (--limit)): {summary['test_accuracy']:.2%}"
        in err
    )
    assert json.loads((out / "config.json").read_text())["batch_size"] == 64

    # Same folder again: refused, with the way out in the message; --resume of a finished run is a no-op.
    code, _, err = run_main(args, capsys)
    assert code == 1 and "already exists" in err and "--resume" in err
    code, _, err = run_main(["train", "--out", str(out), "--resume", "--epochs", "3"], capsys)
    assert code == 1 and "drop --epochs" in err
    code, stdout, err = run_main(["train", "--out", str(out), "--resume", "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout.strip().splitlines()[-1])["test_accuracy"] == summary["test_accuracy"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--recipe", "huge"], "Invalid value for '--recipe'"),
        (["--config", "missing.toml"], "config file not found"),
        (["--set", "epochs"], "--set expects KEY=VALUE"),
        (["--set", "augment.spin=2"], "unknown setting 'augment.spin'"),
        (["--resume"], "nothing to resume"),
    ],
)
def test_cli_train_bad_input_is_a_clear_error(args, message, tmp_path, capsys):
    code, _, err = run_main(["train", "--out", str(tmp_path / "run"), *args], capsys)
    assert code in (1, 2) and message in err and "Traceback" not in err


def test_force_keeps_the_earlier_run_until_the_new_one_has_saved_a_checkpoint(real_data, tmp_path, capsys):
    """--force deleted the run in --out first: a new run that then failed (a teacher not found, a
    setting torch refused) left the folder empty and the trained model lost."""
    out = tmp_path / "run"
    quick = ["train", "--recipe", "fast", "--limit", "300", "--epochs", "1", "--threads", "1", "--out", str(out)]
    code, _, err = run_main(quick, capsys)
    assert code == 0, err
    before = {name: (out / name).read_bytes() for name in ("checkpoint.pt", "config.json", "metrics.jsonl")}
    code, _, err = run_main([*quick, "--force", "--set", 'distill.teachers=["no-such-run"]'], capsys)
    assert code == 1 and "distill teacher not found" in err
    assert {name: (out / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in out.iterdir()) == sorted(before)  # nothing set aside is left behind
    code, _, err = run_main([*quick, "--force", "--seed", "1"], capsys)
    assert code == 0, err
    assert (out / "checkpoint.pt").read_bytes() != before["checkpoint.pt"]
    assert json.loads((out / "config.json").read_text())["seed"] == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(before)


def _quick_run(out, capsys) -> dict[str, bytes]:
    quick = ["train", "--recipe", "fast", "--limit", "300", "--epochs", "1", "--threads", "1", "--out", str(out)]
    code, _, err = run_main(quick, capsys)
    assert code == 0, err
    return {name: (out / name).read_bytes() for name in ("checkpoint.pt", "config.json", "metrics.jsonl")}


def test_force_stopped_in_its_first_epoch_gives_the_earlier_run_back(real_data, tmp_path, capsys, monkeypatch):
    """Ctrl-C after the new run had written its config: the earlier run's three files come back as
    they were, and the message says nothing of this run was saved (not "continue with --resume")."""
    out = tmp_path / "run"
    before = _quick_run(out, capsys)

    def stopped(config, out_dir, **_):
        (out_dir / "config.json").write_text("{}")  # the new run had begun
        (out_dir / "metrics.jsonl").write_text("")
        raise KeyboardInterrupt

    monkeypatch.setattr("digitrec.train.train", stopped)
    code, _, err = run_main(["train", "--recipe", "fast", "--out", str(out), "--force"], capsys)
    assert code != 0 and "Interrupted before the first epoch ended: nothing saved" in err
    assert "the earlier run there is kept" in err and "--resume" not in err
    assert {name: (out / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in out.iterdir()) == sorted(before)


@pytest.mark.slow
def test_force_terminated_gives_the_earlier_run_back_and_a_leftover_is_named(
    real_data, real_mnist_env, tmp_path, capsys
):
    """SIGTERM (timeout, a scheduler) killed the process on the spot, past the `finally` that gives
    the earlier run back; a run left set aside by a hard kill was then overwritten by the next --force."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    before = _quick_run(out, capsys)
    command = [sys.executable, "-m", "digitrec", "train", "--recipe", "fast", "--epochs", "3", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([*command, "--out", str(out), "--force"], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt.replaced").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0 and "Traceback" not in err, err
    assert {name: (out / name).read_bytes() for name in before} == before, err
    assert sorted(p.name for p in out.iterdir()) == sorted(before), err
    # What a SIGKILL leaves: the earlier run set aside. The next run says how to get it back.
    for name in before:
        (out / name).rename(out / (name + ".replaced"))
    code, _, err = run_main(["train", "--recipe", "fast", "--out", str(out), "--force"], capsys)
    assert code == 1 and "holds a run set aside by a --force that did not finish" in err
    assert "checkpoint.pt.replaced" in err and "rename each NAME.replaced to NAME" in err
    assert {name: (out / (name + ".replaced")).read_bytes() for name in before} == before


def test_out_under_a_file_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    for args in (
        ["train", "--recipe", "fast", "--out", str(blocker / "run")],
        ["data", "explore", "--out", str(blocker / "x")],
    ):
        code, _, err = run_main(args, capsys)
        assert code == 1 and "taken is a file, not a folder" in err and "Traceback" not in err, err


def test_a_model_with_fewer_outputs_than_the_labels_need_is_a_clear_error(mnist, tmp_path):
    """`[model] classes = 5` for the ten digits failed mid-batch with torch's IndexError (the rejector's
    4 outputs for its 4 labels are fine: the check is against the labels, not against 10)."""
    config = load_recipe("cnn", overrides={"limit": 300, "epochs": 1, "threads": 1, "model": {"classes": 5}})
    with pytest.raises(DigitrecError, match="the model gives 5 outputs but the labels go up to 9"):
        train(config, tmp_path / "run", data=mnist)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
