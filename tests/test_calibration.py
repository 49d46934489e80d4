"""Temperature scaling (`digitrec.calibration`): the fit, the card field, the runtime applying it,
the export fitting it and the shipped model's card rewritten without touching its graph."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from digitrec.calibration import fit_temperature, nll
from digitrec.modelfile import ModelCard, softmax


def synthetic(temperature: float, n: int = 20000, seed: int = 0):
    """Logits whose true probabilities are softmax(logits / temperature), and labels drawn from them."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0, 2.5, (n, 10))
    p = softmax(true_logits)
    labels = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
    return true_logits * temperature, labels


@pytest.mark.parametrize("temperature", [0.4, 1.0, 2.5])
def test_the_fit_recovers_a_known_temperature(temperature):
    logits, labels = synthetic(temperature)
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(temperature, rel=0.05)
    assert nll(logits, labels, fitted) <= min(nll(logits, labels, fitted * f) for f in (0.9, 1.1))


def test_the_fit_needs_logits_and_labels():
    with pytest.raises(ValueError, match="need"):
        fit_temperature(np.zeros((0, 10)), np.zeros(0, int))


WEIGHT = np.random.default_rng(0).normal(0, 0.05, (784, 10)).astype(np.float32)
BIAS = np.linspace(-1, 1, 10).astype(np.float32)


def linear(path, card: dict | None):
    from predict_helpers import write_linear_onnx

    return write_linear_onnx(path, WEIGHT, BIAS, card)


def test_the_runtime_applies_the_cards_temperature_and_an_old_card_means_1(tmp_path):
    from digitrec.runtime import Recognizer

    digits = np.random.default_rng(1).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    logits = digits.reshape(5, 784).astype(np.float32) / 255.0 @ WEIGHT + BIAS
    old = Recognizer(linear(tmp_path / "old.onnx", {"name": "old"}))  # a card from before calibration
    bare = Recognizer(linear(tmp_path / "bare.onnx", None))
    hot = Recognizer(linear(tmp_path / "hot.onnx", {"name": "hot", "calibration": {"temperature": 2.0}}))
    assert old.model_card.temperature == 1.0 and bare.model_card is None and hot.model_card.temperature == 2.0
    np.testing.assert_allclose(old.predict_probabilities(digits), softmax(logits), atol=1e-5)
    np.testing.assert_allclose(bare.predict_probabilities(digits), softmax(logits), atol=1e-5)
    np.testing.assert_allclose(hot.predict_probabilities(digits), softmax(logits / 2.0), atol=1e-5)
    assert not np.allclose(softmax(logits), softmax(logits / 2.0), atol=1e-3)


@pytest.mark.parametrize(
    "calibration, message",
    [
        ({"temperature": 0}, "calibration.temperature should be a number above 0"),
        ({"temperature": -1.5}, "above 0"),
        ({"temperature": "2"}, "above 0"),
        ("hot", "'calibration' should be an object"),
    ],
)
def test_a_bad_temperature_is_a_model_error(calibration, message):
    from digitrec.errors import ModelError

    with pytest.raises(ModelError, match=message):
        ModelCard.from_dict({"calibration": calibration})


def test_calibrating_a_file_rewrites_only_its_card(mnist, tmp_path):
    """The shipped model's own procedure (`digitrec export --calibrate`) on a copy: logits identical."""
    import onnx

    from digitrec.export import calibrate_onnx
    from digitrec.modelfile import open_session
    from digitrec.runtime import Recognizer, default_model_path

    path = tmp_path / "model.onnx"
    shutil.copy(default_model_path(), path)
    proto = onnx.load(str(path))
    card = json.loads(proto.metadata_props[0].value)
    card.pop("calibration", None)  # as it shipped before: no temperature
    proto.metadata_props[0].value = json.dumps(card)
    onnx.save(proto, str(path))
    graph = proto.graph.SerializeToString()
    images, labels = mnist["test"]
    x = images[:400].astype(np.float32)[:, None] / 255.0
    before = open_session(path, 1).run(None, {"image": x})[0]
    assert Recognizer(path).model_card.temperature == 1.0

    written = calibrate_onnx(path, validation_data=(images[:2000], labels[:2000]))
    assert 0.3 < written["calibration"]["temperature"] < 0.6  # label smoothing made it under-confident
    assert written["calibration"]["ece_after"] < 0.02 and written["calibration"]["ece_before"] > 0.08
    assert onnx.load(str(path)).graph.SerializeToString() == graph
    assert np.array_equal(open_session(path, 1).run(None, {"image": x})[0], before)
    assert json.loads((tmp_path / "model_card.json").read_text())["calibration"] == written["calibration"]
    rec = Recognizer(path)
    assert rec.model_card.temperature == written["calibration"]["temperature"]
    np.testing.assert_allclose(
        rec.predict_probabilities(images[:400]), softmax(before / written["calibration"]["temperature"]), atol=1e-5
    )


def test_the_shipped_model_is_calibrated_on_mnist_test(mnist):
    from digitrec.evaluate.metrics import accuracy, expected_calibration_error
    from digitrec.runtime import Recognizer

    images, labels = mnist["test"]
    images, labels = images[:3000], labels[:3000]
    rec = Recognizer(threads=1)
    assert rec.model_card.data["calibration"]["images"] == 5000
    probs = rec.predict_probabilities(images)
    raw = softmax(np.log(probs.astype(np.float64)) * rec.model_card.temperature)  # undo T: the old answers
    assert accuracy(labels, probs) == accuracy(labels, raw) > 0.99
    assert expected_calibration_error(labels, probs) < 0.01 and expected_calibration_error(labels, raw) > 0.08


def test_cli_calibrate_refuses_what_it_cannot_rewrite(tmp_path, capsys):
    from digitrec.cli import main

    bare = linear(tmp_path / "bare.onnx", {"name": "x", "input": {"name": "image"}})
    for args, message in ([str(bare)], "no training config"), ([str(tmp_path / "run")], "rewrites a digitrec .onnx"):
        with pytest.raises(SystemExit) as info:
            main(["export", *args, "--calibrate"])
        err = capsys.readouterr().err
        assert info.value.code == 1 and message in err and "Traceback" not in err


def test_the_report_says_which_temperature_its_probabilities_used():
    from digitrec.evaluate.report import _temperature_note
    from digitrec.runtime import Recognizer

    note = _temperature_note(Recognizer(threads=1).card)
    assert "softmax(logits / T)" in note and "T = 0.462" in note and "validation images" in note
    assert "no calibration" in _temperature_note({"name": "old"})
