"""Helpers for the predict tests.

`paper_photo`: a realistic test image built from an MNIST test digit, written dark on a sheet of
paper and photographed, with what phones add (uneven light, ruled lines, rotation, blur, noise,
JPEG); the label is known by construction. Also used by `examples/make_examples.py`.
`write_linear_onnx`: a tiny ONNX model that follows the model contract, built in milliseconds."""

from __future__ import annotations

import cv2
import numpy as np


def ink_box(digit28: np.ndarray) -> np.ndarray:
    """The MNIST digit cropped to its ink (MNIST pads every digit to 28x28)."""
    ys, xs = np.nonzero(digit28 > 0)
    return digit28[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def paper_photo(
    digit28: np.ndarray,
    rng: np.random.Generator,
    *,
    size: tuple[int, int] | None = None,
    lines: bool | None = None,
    jpeg: bool = True,
) -> np.ndarray | bytes:
    """uint8 MNIST digit (ink = 255 on 0) -> a photo of it written on paper: grey uint8 (H, W), or
    JPEG bytes when `jpeg`. Every random choice comes from `rng`."""
    h, w = size or (int(rng.integers(240, 520)), int(rng.integers(240, 520)))
    paper = float(rng.uniform(175, 245))
    page = np.full((h, w), paper, np.float32)
    page += rng.normal(0, 2.0, (h, w)).astype(np.float32)  # paper grain

    if lines if lines is not None else rng.random() < 0.5:
        # Faint ruled lines, slightly slanted, a digit height or so apart.
        gap = int(rng.integers(28, 60))
        depth = float(rng.uniform(0.12, 0.3)) * paper
        slope = float(rng.uniform(-0.03, 0.03))
        for y in range(int(rng.integers(5, gap)), h + int(abs(slope) * w), gap):
            cv2.line(page, (0, y), (w - 1, int(y + slope * w)), paper - depth, 1, cv2.LINE_AA)

    # The digit: 18-45% of the shorter side high, anywhere on the page, slightly rotated.
    crop = ink_box(digit28).astype(np.float32) / 255.0
    target = float(rng.uniform(0.18, 0.45)) * min(h, w)
    scale = target / crop.shape[0]
    big = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(target))), interpolation=cv2.INTER_CUBIC)
    pad = int(0.3 * target)
    big = np.pad(np.clip(big, 0, 1), pad)
    angle = float(rng.uniform(-8, 8))
    m = cv2.getRotationMatrix2D((big.shape[1] / 2, big.shape[0] / 2), angle, 1.0)
    big = cv2.warpAffine(big, m, (big.shape[1], big.shape[0]))
    bh, bw = big.shape
    bh, bw = min(bh, h), min(bw, w)
    big = big[:bh, :bw]
    y0, x0 = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
    darkness = float(rng.uniform(0.55, 0.9))  # ballpoint to marker
    region = page[y0 : y0 + bh, x0 : x0 + bw]
    region *= 1.0 - darkness * big

    # Light: a gradient in a random direction (up to 40% darker) and a soft vignette.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = float(rng.uniform(0, 2 * np.pi))
    ramp = np.cos(theta) * xx / w + np.sin(theta) * yy / h
    ramp = (ramp - ramp.min()) / max(1e-6, float(np.ptp(ramp)))
    page *= 1.0 - float(rng.uniform(0.0, 0.4)) * ramp
    r2 = ((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2
    page *= 1.0 - float(rng.uniform(0, 0.3)) * r2

    page = cv2.GaussianBlur(page, (0, 0), float(rng.uniform(0.4, 1.3)))
    page += rng.normal(0, float(rng.uniform(1.0, 4.0)), (h, w)).astype(np.float32)
    grey = np.clip(page, 0, 255).astype(np.uint8)
    if not jpeg:
        return grey
    ok, encoded = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(45, 90))])
    assert ok
    return encoded.tobytes()


def write_linear_onnx(path, weight: np.ndarray, bias: np.ndarray, card: dict | None = None):
    """A tiny ONNX classifier that follows the model contract: image float32 (N, 1, 28, 28) ->
    logits (N, 10) = flatten(image) @ weight + bias. Enough to test everything but accuracy."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["image"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "weight"], ["scores"]),
            helper.make_node("Add", ["scores", "bias"], ["logits"]),
        ],
        "linear",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", weight.shape[1]])],
        [
            numpy_helper.from_array(weight.astype(np.float32), "weight"),
            numpy_helper.from_array(bias.astype(np.float32), "bias"),
        ],
    )
    return save_graph(graph, path, card)


def save_graph(graph, path, card: dict | None = None, opset: int = 17):
    """An ONNX graph -> a model file, with the digitrec card in its metadata when given."""
    import json

    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    if card is not None:
        helper.set_model_props(model, {"digitrec": json.dumps(card)})
    onnx.save(model, str(path))
    return path


def good_model_path():
    """The model accuracy tests use: $DIGITREC_TEST_MODEL when set, else the shipped model."""
    import os
    from pathlib import Path

    import pytest

    from digitrec.runtime import default_model_path

    path = Path(os.environ.get("DIGITREC_TEST_MODEL") or default_model_path())
    if not path.is_file():
        pytest.fail(f"no model at {path}: ship src/digitrec/assets/model.onnx or set DIGITREC_TEST_MODEL")
    return path
