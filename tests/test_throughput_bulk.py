"""The bulk path `digitrec predict` takes for many files (digitrec.bulk): reduced decoding, worker
processes, batched model calls. Its promise: the same answers, in the same order, as predicting
each file one by one on the reduced image; a bad file gets its own error."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from digitrec import bulk
from digitrec.cli import main
from digitrec.errors import ImageError
from digitrec.runtime import Recognizer


def write_linear_model(path):
    """A random linear classifier in the digitrec contract: answers are arbitrary but deterministic,
    which is all an equality test needs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["image"], ["flat"], axis=1),
            helper.make_node("Gemm", ["flat", "W", "b"], ["logits"]),
        ],
        "linear",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 10])],
        [
            numpy_helper.from_array(rng.normal(0, 0.1, (784, 10)).astype(np.float32), "W"),
            numpy_helper.from_array(np.zeros(10, np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def photo(seed: int, size=(864, 1152)) -> bytes:
    """A dark digit-like scribble on lit paper, as a 1-megapixel JPEG."""
    rng = np.random.default_rng(seed)
    h, w = size
    page = np.full((h, w), rng.uniform(190, 240), np.float32)
    page *= np.linspace(1.0, rng.uniform(0.75, 1.0), w, dtype=np.float32)[None, :]
    points = rng.random((6, 2)) * [0.3 * w, 0.4 * h] + [rng.uniform(0.1, 0.6) * w, rng.uniform(0.1, 0.5) * h]
    cv2.polylines(
        page, [points.astype(np.int32)], False, float(rng.uniform(20, 80)), int(rng.integers(8, 20)), cv2.LINE_AA
    )
    page += rng.normal(0, 2, page.shape).astype(np.float32)
    return cv2.imencode(".jpg", np.clip(page, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """20 photos and, in the middle, a file that is not an image."""
    root = tmp_path_factory.mktemp("photos")
    for i in range(20):
        (root / f"p{i:02d}.jpg").write_bytes(photo(i))
    (root / "p10b.jpg").write_bytes(b"not a jpeg at all")
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_linear_model(tmp_path_factory.mktemp("model") / "linear.onnx")


def test_reduced_decoding_keeps_the_long_side_at_bulk_side(folder, tmp_path):
    grey = bulk.decode_reduced(str(folder / "p00.jpg"))
    assert max(grey.shape) == bulk.BULK_SIDE and grey.shape == (240, 320)
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.full((40, 30), 200, np.uint8))
    assert bulk.decode_reduced(str(small)).shape == (40, 30)  # small images are left alone


def test_bulk_answers_equal_one_by_one_on_the_reduced_image_in_order(folder, model):
    recognizer = Recognizer(model)
    files = sorted(str(p) for p in folder.iterdir())
    inputs = [*files, ImageError("folder holds no images")]
    answers = list(bulk.predict_stream(recognizer, inputs, workers=2, chunk=7))  # chunks cut across files
    assert len(answers) == len(inputs)
    assert isinstance(answers[-1], ImageError) and str(answers[-1]) == "folder holds no images"
    bad = files.index(str(folder / "p10b.jpg"))
    assert isinstance(answers[bad], ImageError) and "not an image" in str(answers[bad])
    for i, path in enumerate(files):
        if i == bad:
            continue
        alone = recognizer.predict(bulk.decode_reduced(path))
        assert answers[i].digit == alone.digit
        np.testing.assert_allclose(answers[i].probabilities, alone.probabilities, atol=1e-6)


@pytest.mark.parametrize("fast", [False, True])
def test_predict_cli_takes_the_bulk_path_for_many_files(folder, model, capsys, monkeypatch, fast):
    calls = []
    original = bulk.predict_stream

    def spy(*args, **kwargs):
        calls.append(len(args[1]))
        return original(*args, **kwargs)

    monkeypatch.setattr(bulk, "predict_stream", spy)
    with pytest.raises(SystemExit) as info:
        main(["predict", str(folder), "--model", str(model), "--json", *(["--fast"] if fast else [])])
    out = json.loads(capsys.readouterr().out)
    assert info.value.code == 1  # one bad file
    assert calls == [21]
    recognizer = Recognizer(model)
    assert [r["path"] for r in out] == sorted(str(p) for p in folder.iterdir())
    for r in out:
        if r["path"].endswith("p10b.jpg"):
            assert r["digit"] is None and "not an image" in r["error"]
        else:
            # --fast: the reduced decode; without it, exactly what the library's predict(path) says.
            alone = recognizer.predict(bulk.decode_reduced(r["path"]) if fast else r["path"])
            assert r["error"] is None and r["digit"] == alone.digit
            assert r["confidence"] == round(alone.confidence, 6)
