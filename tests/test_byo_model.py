"""Bring your own model: any ONNX digit classifier is fed and read the way it declares (model_adapter),
and the Keras tutorial network works end to end with export, evaluate and predict (issue 8)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from predict_helpers import save_graph

from digitrec.cli import main
from digitrec.errors import ModelError
from digitrec.model_adapter import ModelAdapter, normalise_scores, softmax
from digitrec.runtime import Recognizer

RNG = np.random.default_rng(0)
W = RNG.normal(0, 0.05, (784, 10)).astype(np.float32)
B = RNG.normal(0, 0.1, 10).astype(np.float32)
DIGITS = RNG.integers(0, 256, (5, 28, 28), dtype=np.uint8)  # any pixels do: the models are linear maps


def write_model(
    path: Path,
    item_shape: tuple,
    *,
    final: str | None = None,
    card: dict | None = None,
    batch: int | str = "n",
    scale: float = 1.0,
) -> Path:
    """A tiny ONNX classifier: x (batch, *item_shape) -> Reshape (batch, 784) -> x @ (W * scale) + B
    -> optional final operator (Sigmoid, Softmax, LogSoftmax)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Reshape", ["x", "flat_shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "W", "B"], ["z"]),
    ]
    if final:
        nodes.append(helper.make_node(final, ["z"], ["out"], **({"axis": 1} if "Softmax" in final else {})))
    nodes.append(helper.make_node("Identity", [nodes[-1].output[0]], ["scores"]))  # looked through
    graph = helper.make_graph(
        nodes,
        "byo",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, *item_shape])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, 10])],
        [
            numpy_helper.from_array(np.array([-1, 784], np.int64), "flat_shape"),
            numpy_helper.from_array(W * np.float32(scale), "W"),
            numpy_helper.from_array(B, "B"),
        ],
    )
    return save_graph(graph, path, card)


def reference(digits: np.ndarray, final: str | None, pixel_scale: float = 1 / 255) -> np.ndarray:
    z = (digits.reshape(len(digits), 784).astype(np.float64) * pixel_scale) @ W + B
    if final in (None, "Softmax", "LogSoftmax"):
        return softmax(z)
    return normalise_scores(1 / (1 + np.exp(-z)))


@pytest.mark.parametrize(
    "item_shape, layout",
    [
        ((1, 28, 28), "NCHW"),
        ((28, 28, 1), "NHWC"),
        ((28, 28), "NHW"),
        ((784,), "NF"),
    ],
)
def test_every_input_layout_is_fed_its_shape(item_shape, layout, tmp_path):
    recognizer = Recognizer(write_model(tmp_path / "m.onnx", item_shape))
    assert recognizer.adapter.layout == layout
    probs = recognizer.predict_probabilities(DIGITS)
    np.testing.assert_allclose(probs, reference(DIGITS, None), atol=1e-5)
    assert np.allclose(probs.sum(axis=1), 1)


@pytest.mark.parametrize(
    "final, kind",
    [
        (None, "logits"),
        ("Sigmoid", "scores"),
        ("Softmax", "probabilities"),
        ("LogSoftmax", "log_probabilities"),
    ],
)
def test_output_kind_is_read_from_the_graph_without_a_card(final, kind, tmp_path):
    recognizer = Recognizer(write_model(tmp_path / "m.onnx", (28, 28), final=final))
    assert recognizer.adapter.output_kind == kind
    np.testing.assert_allclose(recognizer.predict_probabilities(DIGITS), reference(DIGITS, final), atol=1e-5)


def test_the_card_overrides_the_graph_and_sets_the_pixel_range(tmp_path):
    # A model trained on raw pixels 0..255 whose card says so, and whose sigmoid head the card names.
    card = {"name": "raw", "input": {"range": [0, 255]}, "output": {"kind": "scores (sigmoid)"}}
    recognizer = Recognizer(write_model(tmp_path / "m.onnx", (784,), final="Sigmoid", card=card, scale=1 / 255))
    assert recognizer.adapter.range == (0.0, 255.0) and recognizer.adapter.output_kind == "scores"
    np.testing.assert_allclose(recognizer.predict_probabilities(DIGITS), reference(DIGITS, "Sigmoid"), atol=1e-5)
    # mean/std normalisation declared in the card happens before the model sees the pixels
    card = {"input": {"range": [0, 1], "mean": 0.5, "std": 0.25}}
    adapter = ModelAdapter.from_session(Recognizer(write_model(tmp_path / "n.onnx", (784,), card=card)).session, card)
    np.testing.assert_allclose(
        adapter.to_input(np.array([[[0] * 28] * 28, [[255] * 28] * 28], np.uint8))[:, 0], [-2, 2]
    )


def test_a_fixed_batch_of_one_is_fed_one_image_at_a_time(tmp_path):
    recognizer = Recognizer(write_model(tmp_path / "m.onnx", (1, 28, 28), batch=1))
    assert recognizer.adapter.fixed_batch == 1
    np.testing.assert_allclose(recognizer.predict_probabilities(DIGITS), reference(DIGITS, None), atol=1e-5)


def test_without_card_or_graph_the_values_decide():
    adapter = ModelAdapter("x", output_kind="auto")
    scores = np.array([[0.9, 0.1] + [0.0] * 8, [0.0] * 10], np.float32)
    np.testing.assert_allclose(adapter.to_probabilities(scores), [[0.9, 0.1] + [0] * 8, [0.1] * 10], atol=1e-6)
    logits = np.array([[2.0, -1.0] + [0.0] * 8], np.float32)
    np.testing.assert_allclose(adapter.to_probabilities(logits), softmax(logits), atol=1e-6)


def test_sigmoid_logits_keep_their_digits_when_every_score_is_tiny():
    # A tutorial network that shrugs: every sigmoid below 1e-8. onnxruntime's Sigmoid would answer
    # zeros or 50% errors down there; the runtime applies the sigmoid itself, in log space.
    z = np.array([[-30.0, -25.0, -40.0, -19.0, -50.0, -22.0, -33.0, -27.0, -21.0, -45.0]], np.float32)
    scores = 1 / (1 + np.exp(-z.astype(np.float64)))
    got = ModelAdapter("x", output_kind="sigmoid_logits").to_probabilities(z)
    np.testing.assert_allclose(got, scores / scores.sum(), rtol=1e-5)
    assert got.argmax() == 3


@pytest.mark.parametrize(
    "item_shape, card, message",
    [
        ((32, 32), None, "takes input of shape (N, 32, 32)"),
        ((28, 28), {"input": {"layout": "CHW"}}, "input.layout 'CHW'"),
        ((28, 28), {"input": {"range": "0-1"}}, "input.range should be two numbers"),
    ],
)
def test_models_digitrec_cannot_feed_get_a_clear_message(item_shape, card, message, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    if item_shape == (32, 32):  # a LeNet-style 32x32 input
        graph = helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 32, 32])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 32, 32])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save(model, str(tmp_path / "m.onnx"))
        path = tmp_path / "m.onnx"
    else:
        path = write_model(tmp_path / "m.onnx", item_shape, card=card)
    with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Recognizer(path)


def test_a_carded_model_loads_without_torch_or_onnx(tmp_path):
    """The predict path stays light: the card says everything, so neither torch nor onnx is imported."""
    path = write_model(tmp_path / "m.onnx", (28, 28), final="Sigmoid", card={"output": {"kind": "scores"}})
    code = (
        "import sys; from digitrec.runtime import Recognizer\n"
        f"r = Recognizer({str(path)!r}); r.predict_probabilities(__import__('numpy').zeros((2, 28, 28), 'uint8'))\n"
        "bad = [m for m in ('torch', 'onnx', 'keras', 'matplotlib') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_legacy_h5_and_missing_keras_files_get_messages(tmp_path, capsys):
    for args, message in [
        (["predict", "--model", str(tmp_path / "m.h5"), "x.png"], "legacy HDF5"),
        (["predict", "--model", str(tmp_path / "gone.keras"), "x.png"], "model file not found"),
        (["evaluate", str(tmp_path / "gone.keras")], "model file not found"),
    ]:
        with pytest.raises(SystemExit) as info:
            main(args)
        err = capsys.readouterr().err
        assert info.value.code == 1 and message in err and "Traceback" not in err, err


def test_without_keras_export_says_what_to_install(tmp_path, capsys, monkeypatch):
    import zipfile

    from digitrec.extras import install_command

    model = tmp_path / "tutorial.keras"
    with zipfile.ZipFile(model, "w") as z:
        z.writestr("config.json", "{}")
    monkeypatch.setitem(sys.modules, "keras", None)  # what `import keras` does when it is not installed
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    for args in (
        ["export", str(model), "--out", str(tmp_path / "t.onnx")],
        ["predict", "--model", str(model), "x.png"],
    ):
        with pytest.raises(SystemExit) as info:
            main(args)
        err = capsys.readouterr().err
        assert info.value.code == 1 and install_command("keras") in err and "Traceback" not in err, err
        assert err.count("\n") == 1 and "digitrec: converting" not in err, err  # the error alone


# ---------- the Keras tutorial network, end to end ----------


@pytest.fixture(scope="module")
def keras_tutorial(mnist, tmp_path_factory):
    """The classic tutorial network, trained for one epoch on 4,000 MNIST images and saved as .keras.
    -> (path, the Keras model)."""
    import importlib.util

    if importlib.util.find_spec("keras") is None:  # not importorskip: that would import Keras before its backend is set
        pytest.skip("the keras extra is not installed")
    from digitrec.keras_export import import_keras

    keras = import_keras()
    if keras.backend.backend() != "torch":
        pytest.skip(f"Keras already runs on {keras.backend.backend()}")
    keras.utils.set_random_seed(0)
    images, labels = mnist["train"]
    model = keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(50, activation="relu"),
            keras.layers.Dense(50, activation="relu"),
            keras.layers.Dense(10, activation="sigmoid"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(images[:4000] / 255.0, labels[:4000], epochs=1, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("keras") / "tutorial.keras"
    model.save(path)
    return path, model


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def keras_probabilities(model, digits28: np.ndarray) -> np.ndarray:
    """What Keras itself says, under the same normalisation as digitrec (sigmoid scores / their sum)."""
    scores = np.asarray(model.predict(digits28.astype(np.float32) / 255.0, verbose=0), np.float64)
    return normalise_scores(scores)


def assert_same_answers(got: np.ndarray, want: np.ndarray) -> None:
    """Same digit for every image, probabilities within 5e-5 (onnxruntime and PyTorch round the
    matrix products differently, ~1e-5 here). A near tie may flip: allowed only where Keras's top
    two are closer than 1e-4."""
    np.testing.assert_allclose(got, want, atol=5e-5)
    top2 = np.sort(want, axis=1)[:, -2:]
    flipped = got.argmax(1) != want.argmax(1)
    assert not (flipped & (top2[:, 1] - top2[:, 0] > 1e-4)).any()


@pytest.mark.mnist
@pytest.mark.slow
def test_keras_tutorial_export_evaluate_predict(
    keras_tutorial, mnist, real_mnist_env, isolated_cache, tmp_path, capsys
):
    path, model = keras_tutorial
    # export: an ONNX model whose card says how to feed it and that it answers sigmoid scores
    onnx_path = tmp_path / "tutorial.onnx"
    code, out, err = run_cli(["export", str(path), "--out", str(onnx_path), "--json"], capsys)
    assert code == 0, err
    card = json.loads(out.strip().splitlines()[-1])
    # the sigmoid is applied by the runtime in float64 (see keras_export._strip_head)
    assert card["input"]["layout"] == "NHW" and card["output"]["kind"].startswith("sigmoid_logits")
    assert card["parameters"] == 784 * 50 + 50 + 50 * 50 + 50 + 50 * 10 + 10
    assert card["onnx_parity_max_abs_diff"] < 1e-4

    # evaluate: the .onnx and the .keras itself (converted on the fly, cached) agree with Keras
    test_images, test_labels = mnist["test"]
    n = 1000
    expected = keras_probabilities(model, test_images[:n])
    # MNIST from the user's cache (--data-dir); the .keras conversion goes to this test's own cache
    data_dir = (
        real_mnist_env.get("DIGITREC_DATA_DIR")
        or Path(real_mnist_env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "digitrec" / "mnist"
    )
    for model_arg in (onnx_path, path):
        out_dir = tmp_path / f"eval-{model_arg.suffix[1:]}"
        code, out, err = run_cli(
            [
                "evaluate",
                str(model_arg),
                "--out",
                str(out_dir),
                "--limit",
                str(n),
                "--json",
                "--data-dir",
                str(data_dir),
            ],
            capsys,
        )
        assert code == 0, err
        with open(out_dir / "predictions.csv") as f:
            rows = list(csv.DictReader(f))
        probs = np.array([[float(r[f"p{d}"]) for d in range(10)] for r in rows])
        assert len(rows) == n
        assert_same_answers(probs, expected)
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["accuracy"] == pytest.approx(float((expected.argmax(1) == test_labels[:n]).mean()))
        assert summary["accuracy"] > 0.8  # one short epoch; the point is agreement with Keras
    converted = list((isolated_cache / "digitrec" / "converted").glob("tutorial-*.onnx"))
    assert len(converted) == 1

    # predict: image files through the same preprocessing; Keras on the same views gives the same answers
    files = []
    for i in range(12):
        files.append(tmp_path / f"digit{i}.png")
        cv2.imwrite(str(files[-1]), test_images[i])
    code, out, err = run_cli(["predict", "--model", str(path), "--json", "--top", "10", *map(str, files)], capsys)
    assert code == 0, err
    answers = json.loads(out)
    recognizer = Recognizer(path)
    assert recognizer.path == converted[0]  # the cached conversion, not a new one
    for file, answer in zip(files, answers):
        want = keras_probabilities(model, recognizer.views(str(file))).mean(axis=0)
        got = np.zeros(10)
        for digit, p in answer["top"]:
            got[digit] = p
        assert_same_answers(got[None], want[None])


# ---------- the converted-.keras cache is verified, rebuilt, keyed by versions (issue 14 #14) ----------


@pytest.fixture(scope="module")
def small_keras(tmp_path_factory):
    """An untrained Dense softmax network saved as .keras (no MNIST needed)."""
    import importlib.util

    if importlib.util.find_spec("keras") is None:
        pytest.skip("the keras extra is not installed")
    from digitrec.keras_export import import_keras

    keras = import_keras()
    if keras.backend.backend() != "torch":
        pytest.skip(f"Keras already runs on {keras.backend.backend()}")
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
    )
    path = tmp_path_factory.mktemp("keras-cache") / "small.keras"
    model.save(path)
    return path


def test_the_keras_cache_is_verified_and_rebuilt(small_keras, isolated_cache, tmp_path, capsys):
    from digitrec import __version__
    from digitrec.model_io import converted_path

    first = Recognizer(small_keras)
    cached = first.path
    assert cached == converted_path(small_keras) and cached.parent == isolated_cache / "digitrec" / "converted"
    assert f"digitrec{__version__}" in cached.name and "keras3." in cached.name  # keyed by both versions
    expected = first.predict_probabilities(DIGITS)
    capsys.readouterr()

    # A swapped file (another valid model) is not trusted: converted again, same answers as before.
    write_model(tmp_path / "other.onnx", (28, 28), final="Softmax")
    cached.write_bytes((tmp_path / "other.onnx").read_bytes())
    again = Recognizer(small_keras)
    assert "does not match its hash" in capsys.readouterr().err
    np.testing.assert_array_equal(again.predict_probabilities(DIGITS), expected)

    # A truncated file is rebuilt, not a "Protobuf parsing failed" forever.
    cached.write_bytes(cached.read_bytes()[:200])
    np.testing.assert_array_equal(Recognizer(small_keras).predict_probabilities(DIGITS), expected)
    assert "does not match its hash" in capsys.readouterr().err

    # An intact cache is used as it is: no conversion (and no Keras call) the next time.
    Recognizer(small_keras)
    assert "converting" not in capsys.readouterr().err
    assert sorted(p.name for p in cached.parent.iterdir()) == [cached.name, cached.name + ".sha256"]
