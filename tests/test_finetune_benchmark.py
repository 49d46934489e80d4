"""benchmarks/finetune.py: what its before/after columns count (the shared set itself is never
needed by the tests; the digits are MNIST test digits written as PNG files here)."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
from conftest import load_benchmark

from digitrec.modelfile import open_model
from digitrec.modelfile.write import rewrite_card
from digitrec.runtime import Recognizer, default_model_path


@pytest.fixture(scope="module")
def benchmark():
    return load_benchmark("finetune")


def test_accuracy_counts_the_top_reading_not_whether_it_clears_the_doubt_threshold(benchmark, mnist, tmp_path):
    """The learning curves compare accuracies (issue 17's targets, the external benchmark's
    column): a right answer the default `min_confidence` flags as low confidence is still right.
    Counting it wrong made the shipped cnn_mix read the cheques 87.9% where it reads 97.6%: 40 of
    its 412 right answers are under 0.93."""
    # The shipped network with a card that makes every answer unsure (T = 50: no probability
    # near 0.93) but changes no argmax.
    model = tmp_path / "unsure.onnx"
    shutil.copyfile(default_model_path(), model)
    _, card = open_model(model)
    rewrite_card(model, {**{k: v for k, v in card.data.items() if k != "format"}, "calibration": {"temperature": 50.0}})
    images, labels = mnist["test"]
    items = [cv2.imencode(".png", np.pad(255 - images[i], 10, constant_values=255))[1].tobytes() for i in range(20)]
    answers = Recognizer(model, reject=False).predict_many(items)
    assert all(a.uncertain and a.digit is None for a in answers)  # every answer is a doubt by default
    assert [a.top[0][0] for a in answers] == labels[:20].tolist()  # ... and its top reading is right

    assert benchmark.accuracy_on(model, items, labels[:20]) == 1.0
