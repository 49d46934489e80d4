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
    from digitrec.runtime import Recognizer, softmax

    inputs, outputs = golden
    rec = Recognizer(threads=1)
    probs = rec.predict_probabilities(inputs["digits"])
    # The golden probabilities are the plain softmax (T = 1): log p = logits + a constant per row, so
    # softmax(log p / T) is what the same logits give with the card's temperature applied.
    temperature = rec.model_card.temperature
    assert 0.4 < temperature < 0.5
    expected = softmax(np.log(outputs["model"].astype(np.float64)) / temperature)
    np.testing.assert_allclose(probs, expected, rtol=0, atol=GOLDEN_ATOL)
    assert probs.argmax(1).tolist() == inputs["labels"].tolist() == [7, 2, 1, 0, 4, 1, 4, 9]
    # The reader's digit scorer (the model shipped before cnn_mix) still gives what it gave then.
    scorer = rec.reader.recognizer
    np.testing.assert_allclose(
        scorer.predict_probabilities(inputs["digits"], calibrated=False),
        outputs["reader_digits"],
        rtol=0,
        atol=GOLDEN_ATOL,
    )


def test_shipped_verifier_gives_its_golden_probabilities(golden):
    from digitrec.read.verifier import Verifier

    inputs, outputs = golden
    probs = Verifier(threads=1).probabilities(inputs["digits"])
    assert probs.shape == (8, 11)
    np.testing.assert_allclose(probs, outputs["verifier"], rtol=0, atol=GOLDEN_ATOL)


def test_shipped_line_reader_gives_its_golden_log_probabilities(golden):
    from digitrec.read.line_reader import LineReader, greedy_decode

    inputs, outputs = golden
    log_probs = LineReader(threads=1).log_probs(inputs["line"])
    assert log_probs.shape == (inputs["line"].shape[1] // 4, 11)
    # An unlikely label's log-probability (-13.74) came out 1.1e-5 off on another machine's CPU
    # (onnxruntime picks its kernels by instruction set): float32 rounding, relative to the value.
    np.testing.assert_allclose(log_probs, outputs["line_reader"], rtol=1e-6, atol=GOLDEN_ATOL)
    # The line reader with marks (2026-12-06) reads the golden line right; the one before read 69069.
    assert greedy_decode(log_probs)[0] == "".join(map(str, inputs["line_labels"])) == "59069"


# ---------- the card: one schema, checked when a model is opened ----------


def test_the_shipped_cards_are_valid_and_match_their_sidecars():
    import json

    from digitrec import paths
    from digitrec.modelfile import ModelCard, card_path_for, open_model

    for name, kind in (
        ("model", None),
        ("verifier", None),
        ("line_reader", "line-reader"),
    ):
        path = paths.assets_dir() / f"{name}.onnx"
        _, card = open_model(path, require_input=True)
        assert card.version == 1 and card.kind == kind and card.input.name == "image"
        assert (card.input.range, card.input.mean, card.input.std) == ((0.0, 1.0), 0.0, 1.0)
        assert card.data == json.loads(card_path_for(path).read_text())
        assert ModelCard.from_json(card.to_json()) == card


def linear_model(path: Path, card_text: str | None = None, bias: float = 0.0) -> Path:
    """A tiny digit model (image (N, 1, 28, 28) -> logits (N, 10)) with `card_text` as its metadata, as is."""
    import onnx
    from predict_helpers import write_linear_onnx

    rng = np.random.default_rng(0)
    write_linear_onnx(path, rng.normal(0, 0.05, (784, 10)), np.full(10, bias))
    if card_text is not None:
        proto = onnx.load(str(path))
        entry = proto.metadata_props.add()
        entry.key, entry.value = "digitrec", card_text
        onnx.save(proto, str(path))
    return path


@pytest.mark.parametrize(
    "card_text, message",
    [
        ("{not json", "is not JSON"),
        ('["a", "list"]', "expected a JSON object, got list"),
        ('{"input": {"mean": "zero"}}', "input.mean should be a finite number"),
        ('{"input": {"std": 0}}', "input.std is 0"),
        ('{"input": {"std": "1"}}', "input.std should be a finite number"),
        ('{"input": {"range": [1, 1]}}', "maps every pixel to the same value"),
        ('{"input": "image"}', "'input' should be an object"),
        ('{"labels": [0, 1]}', "'labels' should be a list of strings"),
        ('{"format": "digitrec-card/9"}', "newer than this digitrec reads"),
        ('{"input": {"name": "pixels"}}', "names the input 'pixels'"),
    ],
)
def test_a_malformed_card_is_a_model_error_in_the_library_and_the_cli(card_text, message, tmp_path, capsys):
    from digitrec.cli import main
    from digitrec.errors import ModelError
    from digitrec.runtime import Recognizer

    path = linear_model(tmp_path / "bad.onnx", card_text)
    with pytest.raises(ModelError, match=message.replace("[", r"\[")):
        Recognizer(path)
    digit = tmp_path / "digit.png"
    import cv2

    cv2.imwrite(str(digit), np.pad(np.full((12, 4), 255, np.uint8), 8))
    with pytest.raises(SystemExit) as info:
        main(["predict", "--model", str(path), "--json", str(digit)])
    captured = capsys.readouterr()
    assert info.value.code == 1 and message in captured.err and "Traceback" not in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("key", ["reader_digits", "line_reader"])
@pytest.mark.parametrize(
    "name, message",
    [
        (5, "should name a file, got 5"),
        (["a.onnx"], 'should name a file, got ["a.onnx"]'),
        (0, "should name a file, got 0"),
        ("", 'should name a file, got ""'),
        ("~nosuchuser9/x.onnx", "~nosuchuser9/x.onnx, which is not there"),  # expanduser: RuntimeError
        ("a" * 5000, "a" * 100 + "..., which is not there"),  # stat: OSError, file name too long
        ("a\x00b.onnx", '"a\\u0000b.onnx", which is not there'),  # no NUL on the terminal
    ],
)
def test_a_card_naming_an_odd_companion_is_a_model_error_never_a_traceback(key, name, message, tmp_path, capsys):
    # The files a card names beside the model (`card.companion_path`): a card from elsewhere is input.
    import json

    import cv2

    from digitrec.cli import main
    from digitrec.errors import ModelError
    from digitrec.runtime import Recognizer

    path = linear_model(tmp_path / "odd.onnx", json.dumps({key: name}))
    page = tmp_path / "number.png"
    cv2.imwrite(str(page), np.pad(np.full((40, 8), 255, np.uint8), 20))
    with pytest.raises(ModelError) as info:
        Recognizer(path, threads=1).read(page)
    assert message in str(info.value) and "\x00" not in str(info.value)
    with pytest.raises(SystemExit) as exited:
        main(["read", "--model", str(path), str(page)])
    err = capsys.readouterr().err
    assert exited.value.code == 1 and message in err and "Traceback" not in err


def test_the_readers_networks_need_their_input_contract(tmp_path):
    from digitrec.errors import ModelError
    from digitrec.read.line_reader import LineReader
    from digitrec.read.verifier import Verifier

    no_card = linear_model(tmp_path / "bare.onnx")
    no_input = linear_model(tmp_path / "no-input.onnx", '{"kind": "line-reader", "labels": ["0"]}')
    for make in (Verifier, LineReader):
        with pytest.raises(ModelError, match="has no digitrec model card"):
            make(no_card)
        with pytest.raises(ModelError, match="no 'input'"):
            make(no_input)


def test_the_verifier_and_line_reader_feed_what_their_card_says(tmp_path):
    """The input name and pixel range come from the card, not from constants in the reader."""
    import json

    import onnx
    from onnx import TensorProto, helper

    from digitrec import paths
    from digitrec.read.line_reader import LineReader

    proto = onnx.load(str(paths.assets_dir() / "line_reader.onnx"))
    card = json.loads(proto.metadata_props[0].value)
    # The same network behind a first node that takes pixels in [0, 255] under another name.
    card["input"].update(name="pixels", range=[0, 255])
    old = proto.graph.input[0]
    new = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 1, 32, "width"])
    scale = helper.make_tensor("inv255", TensorProto.FLOAT, [], [1 / 255])
    proto.graph.initializer.append(scale)
    proto.graph.node.insert(0, helper.make_node("Mul", ["pixels", "inv255"], [old.name]))
    proto.graph.input.remove(old)
    proto.graph.input.append(new)
    proto.metadata_props[0].value = json.dumps(card)
    onnx.save(proto, str(tmp_path / "renamed.onnx"))

    with np.load(DATA / "golden_inputs.npz") as inputs, np.load(DATA / "golden_outputs.npz") as outputs:
        got = LineReader(tmp_path / "renamed.onnx", threads=1).log_probs(inputs["line"])
        np.testing.assert_allclose(got, outputs["line_reader"], rtol=0, atol=1e-4)


# ---------- outputs a digit model must not give ----------


def scalar_output_model(path: Path) -> Path:
    from onnx import TensorProto, helper
    from predict_helpers import save_graph

    graph = helper.make_graph(
        [helper.make_node("ReduceMax", ["image"], ["logits"], keepdims=0)],
        "scalar",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [])],
    )
    return save_graph(graph, path)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: linear_model(p, bias=float("nan")), "answered NaN or infinity; it cannot be used"),
        (lambda p: linear_model(p, bias=float("inf")), "answered NaN or infinity"),
        (scalar_output_model, "a digit model gives (N, 10)"),
    ],
)
def test_a_model_answering_nan_or_a_scalar_is_an_error_never_nan_in_json(make, message, tmp_path, capsys):
    import cv2

    from digitrec.cli import main

    path = make(tmp_path / "broken.onnx")
    digit = tmp_path / "digit.png"
    cv2.imwrite(str(digit), np.pad(np.full((12, 4), 255, np.uint8), 8))
    with pytest.raises(SystemExit) as info:
        main(["predict", "--model", str(path), "--json", str(digit)])
    captured = capsys.readouterr()
    assert info.value.code == 1, captured
    assert "NaN" not in captured.out and "Traceback" not in captured.err
    assert message in captured.err


# ---------- the one writer ----------


class Scaled:
    """A stand-in for a trained network: (N, 1, H, W) -> (N, W, 11) logits; `drift` makes the
    PyTorch answers differ from what was exported (a broken exporter)."""

    @staticmethod
    def make(drift: float = 0.0):
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.w = torch.nn.Parameter(torch.linspace(-2, 2, 11))
                self.calls = 0

            def forward(self, x):
                self.calls += 1
                columns = x.mean(dim=2).permute(0, 2, 1)  # (N, W, 1)
                return columns * self.w * (1.0 if self.calls == 1 else 1.0 + drift)  # the first call is the trace

        return Net()


def line_card():
    return {
        "name": "test-line-reader",
        "kind": "line-reader",
        "input": {"name": "image", "shape": [1, 32, "width"], "range": [0.0, 1.0]},
        "output": {"name": "logits", "shape": ["width / 4", 11]},
    }


def test_the_line_reader_export_is_checked_and_leaves_nothing_when_it_fails(tmp_path, monkeypatch):
    from digitrec.errors import ModelError
    from digitrec.train import line_reader as training

    check = [np.random.default_rng(k).integers(0, 256, (32, 24 + 8 * k), dtype=np.uint8) for k in range(3)]
    out = tmp_path / "models" / "line.onnx"
    with pytest.raises(ModelError, match="disagrees with PyTorch"):
        training.export(Scaled.make(drift=0.5), out, line_card(), check)
    assert list(tmp_path.rglob("*")) == [tmp_path / "models"]

    import onnx

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(onnx, "save", disk_full)
    from digitrec.errors import DigitrecError

    with pytest.raises(DigitrecError, match="No space left on device"):
        training.export(Scaled.make(), out, line_card(), check)
    assert list(tmp_path.rglob("*")) == [tmp_path / "models"]
    monkeypatch.undo()

    card = training.export(Scaled.make(), out, line_card(), check)
    assert card["format"] == "digitrec-card/1" and card["onnx_parity_max_abs_diff"] < 1e-6
    assert sorted(p.name for p in out.parent.iterdir()) == ["line.onnx", "line_card.json"]
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    assert proto.producer_name == "digitrec" and [p.key for p in proto.metadata_props] == ["digitrec"]
