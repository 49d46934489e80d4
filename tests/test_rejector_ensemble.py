"""`train.rejector_ensemble.average`: several rejectors merged into one ONNX graph whose logits are
the mean of the members' temperature-scaled logits, the first member's reason head kept."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from digitrec.reject import default_rejector_path
from digitrec.train.rejector_ensemble import average


def outputs(proto_or_path, images: np.ndarray) -> dict[str, np.ndarray]:
    model = proto_or_path.SerializeToString() if isinstance(proto_or_path, onnx.ModelProto) else str(proto_or_path)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"image": images})))


def test_the_average_of_rejectors_is_the_mean_of_their_scaled_logits():
    path = default_rejector_path()
    rng = np.random.default_rng(0)
    images = (rng.random((6, 1, 28, 28)) > 0.85).astype(np.float32)  # strokes of specks: any input
    alone = outputs(path, images)
    merged = average([onnx.load(str(path)), onnx.load(str(path))], [0.5, 2.0])
    both = outputs(merged, images)
    assert set(both) == {"logits", "reasons"}
    # (logits / 0.5 + logits / 2) / 2 = 1.25 logits; the reasons are the first member's, untouched
    np.testing.assert_allclose(both["logits"], 1.25 * alone["logits"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(both["reasons"], alone["reasons"])
    three = outputs(average([onnx.load(str(path)) for _ in range(3)], [1.0, 1.0, 1.0]), images)
    np.testing.assert_allclose(three["logits"], alone["logits"], rtol=1e-5, atol=1e-5)
