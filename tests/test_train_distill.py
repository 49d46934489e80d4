"""The `[distill]` recipe option: a network taught by finished runs (digitrec.train.distill)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import plain_digits, run_main

from digitrec.checkpoint import load_model, save_checkpoint
from digitrec.errors import DigitrecError, ModelError
from digitrec.files import file_sha256
from digitrec.models import build_model
from digitrec.train import Callbacks, load_recipe, train
from digitrec.train.distill import Teachers, distill_loss


def teacher_of(tmp_path, digit: int, name: str | None = None, classes: int = 10):
    """A checkpoint of a network that answers `digit` for any image (its last layer is only a bias)."""
    model = build_model("cnn", channels=[4, 8], depth=[1, 1], classes=classes)
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        last.bias[digit] = 10.0
    config = {"model": {"channels": [4, 8], "depth": [1, 1], "classes": classes}}
    meta = {"recipe": "cnn", "architecture": "cnn", "config": config, "seed": digit, "epoch": 1}
    path = tmp_path / (name or f"teacher_{digit}") / "checkpoint.pt"
    save_checkpoint(path, {"model": model.state_dict(), "meta": meta})
    return path


def data():
    images, labels = plain_digits(400)  # 0s and 1s only
    return {"train": (images, labels), "test": plain_digits(40)}


def small(**overrides):
    base = {"threads": 1, "limit": 400, "epochs": 2, "batch_size": 32}
    return load_recipe("fast", overrides={**base, **overrides})


def reads(run_dir) -> np.ndarray:
    model, _ = load_model(run_dir)
    images, _ = plain_digits(10)
    with torch.no_grad():
        return model(torch.from_numpy(images).float().div(255)[:, None]).argmax(1).numpy()


def test_the_cnn_distill_recipe_is_cnn_mix_taught_by_the_three_cnn_mix_seeds():
    distill, mix = load_recipe("cnn_distill"), load_recipe("cnn_mix")
    assert distill.distill.teachers == [f"runs/dm/mix_{s}/checkpoint.pt" for s in range(3)]
    assert (distill.distill.alpha, distill.distill.temperature) == (0.7, 3.0)
    assert mix.distill.teachers == []  # off everywhere else
    assert dataclasses.replace(distill, recipe="cnn_mix", distill=mix.distill) == mix


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"distill.teachers": ["t.pt"], "distill.alpha": 1.5}, r"distill.alpha must be in \[0, 1\]"),
        ({"distill.teachers": ["t.pt"], "distill.temperature": 0}, "distill.temperature must be above 0"),
        ({"distill.teachers": "t.pt"}, "distill.teachers must be a list"),
        ({"distill.teacher": ["t.pt"]}, "unknown setting 'distill.teacher'"),
    ],
)
def test_bad_distill_settings_are_clear_errors(overrides, message):
    with pytest.raises(DigitrecError, match=message):
        load_recipe("cnn", overrides=overrides)


def test_the_soft_targets_average_the_teachers_probabilities_at_the_temperature(tmp_path):
    teachers = Teachers([str(teacher_of(tmp_path, 3)), str(teacher_of(tmp_path, 5))], 10, torch.device("cpu"))
    targets = teachers.soft_targets(torch.rand(4, 1, 28, 28), temperature=2.0)
    one = F.softmax(torch.tensor([0.0] * 3 + [5.0] + [0.0] * 6), 0)  # logit 10 at T = 2
    assert torch.allclose(targets, ((one + one.roll(2)) / 2).expand(4, 10), atol=1e-6)
    assert targets[0, 3] == pytest.approx(0.474589, abs=1e-5) and targets[0, 5] == targets[0, 3]


def test_the_distillation_loss_is_t_squared_times_the_kl_divergence():
    student = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    targets = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    q = np.exp(student.numpy() / 3) / np.exp(student.numpy() / 3).sum(1, keepdims=True)
    p = targets.numpy()
    expected = 9 * (p * np.log(p / q)).sum(1).mean()
    assert distill_loss(student, targets, 3.0).item() == pytest.approx(expected, rel=1e-5)
    assert distill_loss(targets.log() * 3, targets, 3.0).item() == pytest.approx(0, abs=1e-6)


def test_a_student_of_a_teacher_that_always_says_3_learns_to_say_3(tmp_path):
    # The labels are 0s and 1s; only the teacher ever says 3. With alpha = 1 the labels carry no
    # weight, so a student that reads 3 learned it from the teacher; with alpha = 0 it reads its labels.
    teacher = teacher_of(tmp_path, 3)
    taught = {"distill.teachers": [str(teacher)], "distill.temperature": 1.0}
    train(small(**taught, **{"distill.alpha": 1.0}), tmp_path / "kd", data=data())
    assert (reads(tmp_path / "kd") == 3).all()
    summary = train(small(**taught, **{"distill.alpha": 0.0}), tmp_path / "labels", data=data())
    assert summary["test_accuracy"] == 1.0 and list(reads(tmp_path / "labels")) == [0, 1] * 5

    _, meta = load_model(tmp_path / "kd")
    assert meta["teachers"] == [
        {
            "path": str(teacher.resolve()),
            "sha256": file_sha256(teacher),
            "recipe": "cnn",
            "seed": 3,
            "test_accuracy": None,
        }
    ]
    assert meta["config"]["distill"] == {"teachers": [str(teacher)], "alpha": 1.0, "temperature": 1.0}


def test_the_model_card_names_the_teachers(tmp_path):
    from digitrec.export import export_onnx

    teacher = teacher_of(tmp_path, 3)
    config = small(epochs=1, **{"distill.teachers": [str(tmp_path / "teacher_3")]})  # a run folder will do
    train(config, tmp_path / "kd", data=data())
    card = export_onnx(
        tmp_path / "kd", tmp_path / "kd.onnx", test_data=plain_digits(20), validation_data=plain_digits(20)
    )
    assert [(t["path"], t["sha256"]) for t in card["teachers"]] == [(str(teacher.resolve()), file_sha256(teacher))]
    plain = train(small(epochs=1), tmp_path / "plain", data=data())
    card = export_onnx(
        plain["checkpoint"], tmp_path / "p.onnx", test_data=plain_digits(20), validation_data=plain_digits(20)
    )
    assert "teachers" not in card


def test_teachers_that_cannot_teach_are_clear_errors_before_any_training(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    cases = [
        ([str(tmp_path / "nowhere" / "checkpoint.pt")], "distill teacher not found: .*nowhere"),
        ([str(junk)], "cannot read .*junk.pt as a digitrec checkpoint"),
        ([str(teacher_of(tmp_path, 3, classes=11))], "has 11 outputs; the network being trained has 10"),
    ]
    for teachers, message in cases:
        with pytest.raises(ModelError, match=message):
            train(small(**{"distill.teachers": teachers}), tmp_path / "run", data=data())
        assert not (tmp_path / "run").exists()


def test_cli_names_a_missing_teacher_and_exits_1(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the recipe's relative teacher paths start here, where there are none
    args = ["train", "--recipe", "cnn_distill", "--out", str(tmp_path / "run"), "--limit", "600", "--epochs", "1"]
    code, _, err = run_main(args, capsys)  # before MNIST (none here) or the rendered set is loaded
    assert code == 1 and "Error: distill teacher not found: runs/dm/mix_0/checkpoint.pt" in err
    assert "Traceback" not in err


class Killed(Exception):
    pass


def kill_after_epoch_1(row):
    if row["epoch"] == 1:
        raise Killed


def test_resume_refuses_teachers_that_changed_and_resumes_runs_older_than_distill(tmp_path):
    teacher = teacher_of(tmp_path, 3)
    config = small(**{"distill.teachers": [str(teacher)]})
    with pytest.raises(Killed):
        train(config, tmp_path / "kd", data=data(), callbacks=Callbacks(on_epoch=kill_after_epoch_1))
    teacher_of(tmp_path, 4, name="teacher_3")  # another network at the same path
    with pytest.raises(DigitrecError, match="teachers of .* have changed"):
        train(config, tmp_path / "kd", data=data(), resume=True)

    # A run whose checkpoint was written before [distill] existed (no such table in its config).
    plain = small()
    with pytest.raises(Killed):
        train(plain, tmp_path / "old", data=data(), callbacks=Callbacks(on_epoch=kill_after_epoch_1))
    state = torch.load(tmp_path / "old" / "checkpoint.pt", weights_only=True)
    del state["meta"]["config"]["distill"]
    save_checkpoint(tmp_path / "old" / "checkpoint.pt", {k: v for k, v in state.items() if k != "format"})
    summary = train(plain, tmp_path / "old", data=data(), resume=True)
    assert summary["epochs"] == 2 and json.loads((tmp_path / "old" / "config.json").read_text())["limit"] == 400


def test_a_run_whose_project_folder_moved_resumes_with_the_same_teachers(tmp_path, monkeypatch):
    """The recipe's teachers are relative paths; the record holds where they resolved to. A project
    folder renamed between the kill and the resume holds the very same teacher files, by content:
    the resume used to be refused as 'the teachers have changed'."""
    project = tmp_path / "project"
    teacher_of(project, 3, name="teachers/t3")
    monkeypatch.chdir(project)
    config = small(**{"distill.teachers": ["teachers/t3/checkpoint.pt"]})
    with pytest.raises(Killed):
        train(config, project / "kd", data=data(), callbacks=Callbacks(on_epoch=kill_after_epoch_1))
    moved = project.rename(tmp_path / "renamed")
    monkeypatch.chdir(moved)
    summary = train(config, moved / "kd", data=data(), resume=True)
    assert summary["epochs"] == 2
    _, meta = load_model(moved / "kd")
    assert [t["path"] for t in meta["teachers"]] == [str(moved / "teachers/t3/checkpoint.pt")]


def test_a_teacher_whose_run_has_not_finished_is_refused(tmp_path):
    """A teacher run still training (or killed) holds a half-taught network in its checkpoint, and
    rewrites it each epoch: it taught silently, as if finished."""
    with pytest.raises(Killed):
        train(small(), tmp_path / "teacher", data=data(), callbacks=Callbacks(on_epoch=kill_after_epoch_1))
    with pytest.raises(ModelError, match=r"distill teacher .*teacher stopped after epoch 1 of 2: finish its run"):
        train(small(**{"distill.teachers": [str(tmp_path / "teacher")]}), tmp_path / "kd", data=data())
    assert not (tmp_path / "kd").exists()


def test_a_teacher_replaced_while_it_is_read_is_refused(tmp_path, monkeypatch):
    """The record's sha256 was taken after the weights were read, from the file then at the path:
    a teacher replaced in between (its run started over) was recorded as the new file while the
    old one taught."""
    from digitrec.train import distill

    teacher = teacher_of(tmp_path, 3)
    read = distill.ckpt.load_model

    def read_then_replace(path):
        loaded = read(path)
        teacher_of(tmp_path, 4, name="teacher_3")  # another network at the same path
        return loaded

    monkeypatch.setattr(distill.ckpt, "load_model", read_then_replace)
    with pytest.raises(ModelError, match="teacher_3/checkpoint.pt changed while it was read"):
        Teachers([str(teacher)], 10, torch.device("cpu"))
