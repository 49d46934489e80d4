"""The model-file contract (`digitrec.modelfile`): golden outputs of the shipped models, the card's
schema, the one writer and the one reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parent / "data"
# Probabilities (and the line reader's log-probabilities) stored by the code that shipped the models.
GOLDEN_ATOL = 1e-5


@pytest.fixture(scope="module")
def golden():
    with np.load(DATA / "golden_inputs.npz") as inputs, np.load(DATA / "golden_outputs.npz") as outputs:
        return dict(inputs), dict(outputs)


def test_shipped_digit_model_gives_its_golden_probabilities(golden):
    from digitrec.runtime import Recognizer

    inputs, outputs = golden
    probs = Recognizer(threads=1).predict_probabilities(inputs["digits"])
    np.testing.assert_allclose(probs, outputs["model"], rtol=0, atol=GOLDEN_ATOL)
    assert probs.argmax(1).tolist() == inputs["labels"].tolist() == [7, 2, 1, 0, 4, 1, 4, 9]


def test_shipped_verifier_gives_its_golden_probabilities(golden):
    from digitrec.verifier import Verifier

    inputs, outputs = golden
    probs = Verifier(threads=1).probabilities(inputs["digits"])
    assert probs.shape == (8, 11)
    np.testing.assert_allclose(probs, outputs["verifier"], rtol=0, atol=GOLDEN_ATOL)


def test_shipped_line_reader_gives_its_golden_log_probabilities(golden):
    from digitrec.line_reader import LineReader, greedy_decode

    inputs, outputs = golden
    log_probs = LineReader(threads=1).log_probs(inputs["line"])
    assert log_probs.shape == (inputs["line"].shape[1] // 4, 11)
    np.testing.assert_allclose(log_probs, outputs["line_reader"], rtol=0, atol=GOLDEN_ATOL)
    assert greedy_decode(log_probs)[0] == greedy_decode(outputs["line_reader"])[0]
