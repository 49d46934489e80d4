"""The light runtime: a Recognizer on any contract-following ONNX model, with answers users can
rely on and no PyTorch or matplotlib anywhere on the predict path."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from predict_helpers import write_linear_onnx

from digitrec import doubt
from digitrec.errors import ImageError, ModelError
from digitrec.runtime import Prediction, Recognizer, softmax


@pytest.fixture
def linear_model(tmp_path):
    """Logits that favour a digit by where the ink is: enough to check plumbing, fast to build."""
    rng = np.random.default_rng(0)
    weight = rng.normal(0, 1, (784, 10)).astype(np.float32)
    return write_linear_onnx(
        tmp_path / "linear.onnx", weight, np.zeros(10, np.float32), {"name": "linear-test", "test_accuracy": 0.1}
    ), weight


def page(digit_box: tuple[int, int, int, int] = (60, 40, 20, 80)) -> np.ndarray:
    """A white page with one dark bar: a '1'."""
    image = np.full((200, 160), 235, np.uint8)
    y, x, w, h = digit_box
    image[y : y + h, x : x + w] = 25
    return image


def test_probabilities_follow_the_model_contract(linear_model):
    path, weight = linear_model
    rec = Recognizer(path)
    assert rec.card == {"name": "linear-test", "test_accuracy": 0.1}
    digits = np.random.default_rng(1).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    probs = rec.predict_probabilities(digits)
    expected = softmax((digits.reshape(5, -1).astype(np.float32) / 255) @ weight)
    assert probs.shape == (5, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert np.allclose(probs, expected, atol=1e-5)
    assert rec.predict_probabilities(digits[0]).shape == (1, 10)
    assert rec.predict_probabilities(np.zeros((0, 28, 28), np.uint8)).shape == (0, 10)


def test_predict_answers_with_top_k_and_what_the_model_saw(linear_model):
    rec = Recognizer(linear_model[0], min_confidence=0)  # always answer: this random model is unsure
    answer = rec.predict(page(), top=4, debug=True)
    assert isinstance(answer, Prediction)
    assert answer.image28.shape == (28, 28) and answer.image28.dtype == np.uint8
    assert answer.digit == answer.top[0][0] and len(answer.top) == 4
    assert [p for _, p in answer.top] == sorted((p for _, p in answer.top), reverse=True)
    assert abs(float(answer.probabilities.sum()) - 1) < 1e-5
    assert "mnist" in answer.stages and "mask" in answer.stages
    as_dict = answer.to_dict()
    assert set(as_dict) == {"digit", "confidence", "top", "uncertain", "reason"} and as_dict["reason"] is None
    json.dumps(as_dict)  # plain types only
    assert rec.predict(page()).stages == {}  # no debug, no stages kept


def test_predict_many_keeps_order_and_isolates_bad_inputs(linear_model, tmp_path):
    rec = Recognizer(linear_model[0], min_confidence=0)
    good = page()
    missing = str(tmp_path / "missing.png")
    inputs = [good, b"", b"not an image", missing, np.full((50, 50), 255, np.uint8), None, good]
    for workers in (1, 3):
        answers = rec.predict_many(inputs, workers=workers)
        assert [type(a).__name__ for a in answers] == [
            "Prediction",
            "ImageError",
            "ImageError",
            "ImageError",
            "NoInk",
            "NotAnImage",  # None among the images: its own answer, not a TypeError that stops the batch
            "Prediction",
        ]
        assert all(isinstance(a, ImageError) for a in answers[1:6])
        assert "no ink" in str(answers[4]) and answers[4].doubt_reason == doubt.NO_INK
        assert str(answers[5]).endswith("not NoneType") and isinstance(answers[5], TypeError)
        assert [a.doubt_reason for a in answers[1:4]] == [None, None, None]
        assert answers[0].digit == answers[6].digit == rec.predict(good).digit
    assert rec.predict_many([]) == []


def test_min_confidence_marks_uncertain_answers(linear_model):
    rec = Recognizer(linear_model[0], min_confidence=1.0)
    answer = rec.predict(page())
    assert answer.uncertain and answer.digit is None and answer.top  # the guesses stay visible
    assert answer.reason == doubt.LOW_CONFIDENCE and answer.to_dict()["reason"] == "low confidence"
    assert not Recognizer(linear_model[0], min_confidence=0).predict(page()).uncertain


def test_doubt_is_on_by_default(linear_model):
    """The default threshold flags this random model's unsure answer (38%); under it, it answers."""
    rec = Recognizer(linear_model[0])
    assert rec.min_confidence == doubt.DEFAULT_MIN_CONFIDENCE == 0.93
    answer = rec.predict(page())
    assert 0.2 < answer.confidence < 0.93 and answer.top[0][0] == 1
    assert answer.to_dict() | {"confidence": None, "top": None} == {
        "digit": None,
        "confidence": None,
        "top": None,
        "uncertain": True,
        "reason": "low confidence",
    }
    sure = Recognizer(linear_model[0], min_confidence=answer.confidence - 1e-3).predict(page())
    assert sure.digit == 1 and not sure.uncertain and sure.reason is None


def test_bad_models_fail_with_a_clear_message(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        Recognizer(tmp_path / "nope.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load"):
        Recognizer(broken)


def test_preprocess_errors_are_image_errors(linear_model):
    rec = Recognizer(linear_model[0])
    with pytest.raises(ImageError, match="no ink found"):
        rec.predict(np.full((64, 64), 200, np.uint8))


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# What the slim install leaves out (pyproject.toml's extras): the runtime must never need it.
TRAINING = ("torch", "onnx", "keras")
REPORT = ("matplotlib", "seaborn")
SERVER = ("fastapi", "uvicorn", "fastapi_offline")


@pytest.mark.parametrize(
    "command, heavy",
    [
        (["predict", str(EXAMPLES / "photo_7.jpg"), "--json"], TRAINING + REPORT + SERVER),
        (["read", str(EXAMPLES / "grid_6.jpg"), "--json"], TRAINING + REPORT + SERVER),
        # serve's modules import FastAPI, of course, but neither training nor plotting.
        (None, TRAINING + REPORT),
    ],
)
def test_the_runtime_commands_import_nothing_of_training_plots_or_server(command, heavy):
    if command is None:
        run = "import digitrec.cli.serve, digitrec.web.app, digitrec.web.server\n"
    else:
        run = f"from digitrec.cli import main\nmain({command!r})\n"
    code = (
        "import sys, atexit\n"
        f"atexit.register(lambda: print('HEAVY', sorted(m for m in {heavy!r} if m in sys.modules)))\n" + run
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout
    if command is not None:
        answer = json.loads(done.stdout.split("HEAVY")[0])[0]
        assert answer["error"] is None
        assert str(answer.get("digit", answer.get("text"))) == {"predict": "7", "read": "6"}[command[0]]


def test_predict_and_read_take_a_pillow_image():
    """`rec.predict(Image.open(...))`: the answers of the file itself."""
    from PIL import Image

    rec = Recognizer()
    with Image.open(EXAMPLES / "photo_7.jpg") as photo:  # stored sideways, with an EXIF orientation
        assert rec.predict(photo).to_dict() == rec.predict(EXAMPLES / "photo_7.jpg").to_dict()
        assert rec.predict(photo).digit == 7
    with Image.open(EXAMPLES / "grid_6.jpg") as grid:
        assert rec.read(grid).text == "6"


def test_predict_probabilities_takes_mnist_digits_as_loaders_give_them(recognizer):
    # torchvision and Keras give MNIST as floats in [0, 1]: read as uint8 they were all "1" at 74%.
    examples = Path(__file__).resolve().parent.parent / "examples"
    digits = np.stack(
        [recognizer.preprocess(examples / name) for name in ("scan_3.png", "drawing_4.png", "grid_6.jpg")]
    )
    expected = recognizer.predict_probabilities(digits)
    assert list(expected.argmax(1)) == [3, 4, 6]
    for same in (digits / 255.0, digits.astype(np.float32), digits[:, None], digits[..., None], digits > 127):
        assert list(recognizer.predict_probabilities(same).argmax(1)) == [3, 4, 6]
    assert np.allclose(recognizer.predict_probabilities(digits / 255.0), expected, atol=1e-6)
    for wider in (np.uint16, np.int32, np.int64):  # 0-255 in a wider integer type: the same digits
        assert np.array_equal(recognizer.predict_probabilities(digits.astype(wider)), expected)
    assert recognizer.predict_probabilities(digits[0]).shape == (1, 10)
    with pytest.raises(ImageError, match=r"not \(3, 784\): reshape it to \(N, 28, 28\)"):
        recognizer.predict_probabilities(digits.reshape(3, -1))
    with pytest.raises(ImageError, match=r"\(N, 28, 28\) arrays"):
        recognizer.predict_probabilities(np.zeros((3, 27, 27), np.uint8))


def test_predict_paths_given_one_folder_or_file_reads_it_not_its_letters(recognizer):
    examples = Path(__file__).resolve().parent.parent / "examples"
    from digitrec.preprocess.load import image_files

    names = image_files(examples)
    assert len(names) == 8  # scan_3, chalk_2, ...: the examples, make_examples.py not
    by_folder = [a.digit for a in recognizer.predict_paths(str(examples))]
    assert by_folder == [a.digit for a in recognizer.predict_paths(names)]
    assert [a.digit for a in recognizer.predict_paths(examples / "photo_7.jpg")] == [7]
    seven = (examples / "photo_7.jpg").read_bytes()
    for one in (memoryview(seven), io.BytesIO(seven)):  # one image, not a sequence of bytes or lines
        assert [a.digit for a in recognizer.predict_paths(one)] == [7]
    # Open files are read before the worker processes (which cannot be handed them) start.
    files = [open(examples / "photo_7.jpg", "rb") for _ in range(16)]  # noqa: SIM115
    try:
        assert [a.digit for a in recognizer.predict_paths(files, workers=2)] == [7] * 16
    finally:
        for f in files:
            f.close()
    with pytest.raises(ValueError, match="top is how many guesses"):
        recognizer.predict_paths([b"not even an image"], top=0)  # at once, before any work
