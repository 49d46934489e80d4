"""The `[mix]` recipe option: real-looking rendered digits in every batch (digitrec.train.rendered)."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch
from conftest import plain_digits, run_main

from digitrec.errors import DigitrecError
from digitrec.train import load_recipe, train
from digitrec.train import rendered as rendered_module
from digitrec.train.loop import as_float, to_tensor
from digitrec.train.rendered import KINDS, rendered_set


def test_the_cnn_mix_recipe_is_the_cnn_recipe_with_a_rendered_share():
    mix, cnn = load_recipe("cnn_mix"), load_recipe("cnn")
    assert mix.mix.rendered == 0.3 and mix.mix.examples == 60000
    assert cnn.mix.rendered == 0.0  # the shipped recipe is MNIST only
    assert dataclasses.replace(mix, recipe="cnn", mix=cnn.mix) == cnn


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"mix.rendered": 1.0}, "mix.rendered must be in [0, 1)"),
        ({"mix.rendered": 0.2, "mix.examples": 0}, "mix.examples must be at least 1"),
        ({"mix.share": 0.2}, "unknown setting 'mix.share'"),
        ({"mix": {"rendered": "lots"}}, "mix.rendered must be a number"),
    ],
)
def test_bad_mix_settings_are_clear_errors(overrides, message):
    with pytest.raises(DigitrecError, match=message.replace("[", r"\[").replace(")", r"\)")):
        load_recipe("cnn", overrides=overrides)


def box_sevens(n: int) -> np.ndarray:
    """Empty squares in MNIST form: nothing like the 0s and 1s of `plain_digits`."""
    images = np.zeros((n, 28, 28), np.uint8)
    for image in images:
        cv2.rectangle(image, (6, 6), (21, 21), 255, 2)
    return images


def test_mixing_trains_on_the_rendered_set_drawn_from_the_training_split(tmp_path, monkeypatch):
    # MNIST here is only 0s and 1s; the rendered set only squares labelled 7. A model that says 7
    # for a square learned it from the mixed-in share, and nowhere else.
    images, labels = plain_digits(400)
    data = {"train": (images, labels), "test": plain_digits(40)}
    seen = {}

    def fake_rendered_set(examples, seed, train_images, train_labels, log=None):
        seen.update(examples=examples, seed=seed, images=len(train_images))
        return box_sevens(examples), np.full(examples, 7, np.int64)

    monkeypatch.setattr(rendered_module, "rendered_set", fake_rendered_set)
    square = as_float(to_tensor(box_sevens(1)))

    def reading(overrides: dict, out: str) -> int:
        config = load_recipe("fast", overrides={"threads": 1, "limit": 400, "epochs": 2, "batch_size": 32, **overrides})
        summary = train(config, tmp_path / out, data=data)
        from digitrec.checkpoint import load_model

        model, meta = load_model(tmp_path / out)
        with torch.no_grad():
            return int(model(square).argmax(1)), summary, meta

    digit, summary, meta = reading({"mix.rendered": 0.25, "mix.examples": 50, "mix.seed": 3}, "mixed")
    assert digit == 7
    # drawn from the 360 training images only (the 40 validation images of the split stay out)
    assert seen == {"examples": 50, "seed": 3, "images": 360} and summary["rendered_images"] == 50
    assert meta["config"]["mix"] == {"rendered": 0.25, "examples": 50, "seed": 3}
    assert summary["test_accuracy"] == 1.0  # the 0s and 1s are still read
    digit, summary, _ = reading({}, "plain")
    assert digit != 7 and summary["rendered_images"] == 0


def test_rendered_digits_carry_their_labels_and_are_cached(mnist, monkeypatch):
    from digitrec.runtime import Recognizer

    images, labels = (a[:3000] for a in mnist["train"])
    views, got = rendered_set(200, 0, images, labels)
    assert views.shape == (len(got), 28, 28) and views.dtype == np.uint8 and len(got) == 200
    kinds = np.repeat(list(KINDS), [round(200 * share) for share in KINDS.values()])  # drawn kind by kind
    read = Recognizer(reject=False).predict_probabilities(views).argmax(1)
    # The shipped model reads most of them as labelled: a label that did not follow its digit
    # (the middle digit of a cut number, a font's glyph) would read right about 1 time in 10.
    for kind in KINDS:
        assert (read == got)[kinds == kind].mean() >= 0.75, kind
    assert (read == got).mean() >= 0.9

    def no_drawing(*args, **kwargs):
        raise AssertionError("drawn again instead of read from the cache")

    monkeypatch.setattr(rendered_module, "make_rendered", no_drawing)
    again, again_labels = rendered_set(200, 0, images, labels)
    assert np.array_equal(again, views) and np.array_equal(again_labels, got)
    with pytest.raises(AssertionError, match="drawn again"):
        rendered_set(200, 1, images, labels)  # another seed: another set


def test_cli_trains_the_cnn_mix_recipe_with_mix_flags(real_data, tmp_path, capsys):
    args = ["train", "--recipe", "cnn_mix", "--out", str(tmp_path / "run"), "--limit", "600", "--epochs", "1"]
    code, out, err = run_main([*args, "--threads", "1", "--set", "mix.examples=40", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["recipe"] == "cnn_mix" and summary["rendered_images"] == 40
    code, out, err = run_main([*args, "--threads", "1", "--set", "mix.examples=40", "--force"], capsys)
    assert code == 0, err
    assert "after 1 epoch," in out.strip().splitlines()[-1]  # not "1 epochs"
    code, _, err = run_main([*args, "--force", "--set", "mix.rendered=1.5"], capsys)
    assert code == 1 and "Error: bad training config: mix.rendered must be in [0, 1)" in err
