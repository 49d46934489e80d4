"""The reader's line model: CTC decoding, its line images, the shipped model, and its training."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import steepest_edge

from digitrec import synth
from digitrec.errors import DigitrecError
from digitrec.preprocess.segment import segment
from digitrec.read.line_reader import BLANK, HEIGHT, STRIDE, LineReader, greedy_decode, line_image, string_log_prob


def _log_softmax(x: np.ndarray) -> np.ndarray:
    return torch.from_numpy(x).log_softmax(-1).numpy()


def test_greedy_decode_merges_repeats_and_drops_blanks():
    path = [BLANK, 3, 3, BLANK, 3, 1, 1, BLANK, BLANK, 7]
    log_probs = np.log(np.full((len(path), 11), 0.01))
    log_probs[np.arange(len(path)), path] = np.log(0.9)
    text, score = greedy_decode(log_probs)
    assert text == "3317"
    assert score == pytest.approx(len(path) * np.log(0.9))


@pytest.mark.parametrize("text", ["", "5", "42", "1001", "77", "31415926"])
def test_string_log_prob_is_the_ctc_loss(text):
    """The forward algorithm in numpy agrees with PyTorch's CTC loss (which sums the same alignments)."""
    rng = np.random.default_rng(len(text))
    log_probs = _log_softmax(rng.normal(0, 2, (24, 11)).astype(np.float32)).astype(np.float64)
    expected = -torch.nn.functional.ctc_loss(
        torch.from_numpy(log_probs)[:, None],
        torch.tensor([[int(c) for c in text]] if text else [[0]])[:, : len(text)],
        torch.tensor([24]),
        torch.tensor([len(text)]),
        blank=BLANK,
        reduction="sum",
    ).item()
    assert string_log_prob(log_probs, text) == pytest.approx(expected, rel=1e-6)


def test_string_log_prob_needs_room_for_the_string():
    log_probs = np.log(np.full((3, 11), 1 / 11))
    assert string_log_prob(log_probs, "11") > -np.inf  # 1, blank, 1
    assert string_log_prob(log_probs, "111") == -np.inf  # needs 5 columns


@pytest.mark.mnist
def test_line_image_is_mnist_sized_and_ordered(mnist):
    images, labels = mnist["test"]
    grey, text = synth.make_number(np.random.default_rng(3), images, labels, 4, "separated")
    seg = segment(grey)
    (line,) = seg.lines
    image = line_image(line.atoms, seg.ink, seg.stroke, line.height)
    assert image.dtype == np.uint8 and image.shape[0] == HEIGHT and image.shape[1] % STRIDE == 0
    rows = np.nonzero(image.max(axis=1) > 128)[0]
    assert 16 <= rows.max() - rows.min() + 1 <= 30  # digits about 20 px tall, as in MNIST
    assert image[:, :4].max() == 0 and image[:, -4:].max() == 0  # blank margins


@pytest.fixture(scope="module")
def line_reader():
    return LineReader()


@pytest.mark.mnist
def test_shipped_line_reader_reads_touching_strings(line_reader, mnist):
    images, labels = mnist["test"]
    rng = np.random.default_rng(7)
    right = 0
    for k in range(40):
        grey, text = synth.make_number(rng, images, labels, 3 + k % 4, "touching")
        seg = segment(grey)
        line = seg.lines[0]
        read, _ = greedy_decode(line_reader.log_probs(line_image(line.atoms, seg.ink, seg.stroke, line.height)))
        right += read == text
    assert right >= 34, right


def test_a_file_that_is_not_a_line_reader_is_refused(tmp_path):
    from digitrec.errors import ModelError
    from digitrec.runtime import default_model_path

    with pytest.raises(ModelError, match="not a line reader"):
        LineReader(default_model_path())
    with pytest.raises(ModelError, match="not found"):
        LineReader(tmp_path / "missing.onnx")


@pytest.mark.mnist
@pytest.mark.slow
def test_training_the_line_reader_end_to_end(mnist, real_data, tmp_path, capsys):
    """The real training command, cheap: a few numbers, one epoch, exported and loaded by LineReader."""
    from digitrec.train.line_reader import main

    cheap = ["--out", str(tmp_path / "run"), "--numbers", "60", "--workers", "1", "--threads", "1"]
    main([*cheap, "--epochs", "1", "--export", str(tmp_path / "lines.onnx")])
    assert "held-out string accuracy" in capsys.readouterr().out
    reader = LineReader(tmp_path / "lines.onnx")
    log_probs = reader.log_probs(np.zeros((HEIGHT, 64), np.uint8))
    assert log_probs.shape == (64 // STRIDE, 11) and np.allclose(np.exp(log_probs).sum(1), 1, atol=1e-5)
    assert (tmp_path / "run" / "lines.npz").is_file() and (tmp_path / "run" / "checkpoint.pt").is_file()
    with pytest.raises(DigitrecError, match="--resume"):
        main(["--out", str(tmp_path / "run"), "--numbers", "60", "--epochs", "1"])
    # --resume continues from the checkpoint: one more epoch.
    main([*cheap, "--epochs", "2", "--resume"])
    assert "epoch 2:" in capsys.readouterr().out
    # --average: finished runs exported as one model that averages their probabilities; a run
    # averaged with itself reads exactly as it does alone.
    run = tmp_path / "run"
    main(
        [
            "--out",
            str(run),
            "--numbers",
            "60",
            "--epochs",
            "2",
            "--threads",
            "1",
            "--resume",
            "--export",
            str(tmp_path / "single.onnx"),
        ]
    )
    main(["--average", str(run), str(run), "--export", str(tmp_path / "average.onnx")])
    assert "average of 2 line readers" in capsys.readouterr().out
    average, single = LineReader(tmp_path / "average.onnx"), LineReader(tmp_path / "single.onnx")
    line = (np.random.default_rng(0).random((HEIGHT, 96)) * 255).astype(np.uint8)
    assert np.allclose(average.log_probs(line), single.log_probs(line), atol=1e-5)
    assert [m["run"] for m in average.card["members"]] == ["run", "run"]
    with pytest.raises(DigitrecError, match="not a finished line-reader run"):
        main(["--average", str(tmp_path / "nothing"), "--export", str(tmp_path / "x.onnx")])
    # --init-seed: an ensemble's second member trains on the same lines (the cache is reused, no
    # line is drawn again) from another start, so it reads differently.
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(run / "lines.npz", other / "lines.npz")
    main([*cheap[2:], "--out", str(other), "--epochs", "2", "--init-seed", "1", "--export", str(other / "o.onnx")])
    log = capsys.readouterr().out
    assert "held-out (" not in log and "held-out string accuracy" in log
    assert json.loads((other / "line_reader_config.json").read_text())["init_seed"] == 1
    assert not np.allclose(LineReader(other / "o.onnx").log_probs(line), single.log_probs(line), atol=1e-3)


@pytest.mark.mnist
@pytest.mark.slow
def test_a_run_can_go_on_from_a_line_reader_file_with_its_batch_norms_frozen(mnist, tmp_path):
    """`start`: the run begins with the file's weights, not a fresh network, and keeps its batch
    norms as the file has them folded: at a learning rate of 0 an epoch of training leaves a model
    that reads exactly as the file does (batch norms in training mode would have moved their
    statistics), and the card names the file it started from."""
    from digitrec.files import file_sha256
    from digitrec.read.line_reader import default_line_reader_path
    from digitrec.train.line_reader import main

    start = default_line_reader_path()
    out = ["--out", str(tmp_path / "run"), "--numbers", "40", "--workers", "1", "--threads", "1", "--epochs", "1"]
    main([*out, "--start", str(start), "--lr", "0", "--export", str(tmp_path / "go-on.onnx")])
    went_on, shipped = LineReader(tmp_path / "go-on.onnx"), LineReader(start)
    line = (np.random.default_rng(1).random((HEIGHT, 128)) * 255).astype(np.uint8)
    assert np.allclose(went_on.log_probs_all(line), shipped.log_probs_all(line), atol=1e-4)
    assert went_on.card["started_from"] == {"file": start.name, "sha256": file_sha256(start)}
    assert went_on.card["config"]["start"] == start.name  # the card names no path of this machine
    assert json.loads((tmp_path / "run" / "line_reader_config.json").read_text())["start"] == str(start)
    # blend_start: the exported weights are that share of the start's. Trained at the usual rate on
    # the same lines (the cache is reused), the network moves; blended wholly back, it is the start.
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(tmp_path / "run" / "lines.npz", again / "lines.npz")
    out[1] = str(again)
    main([*out, "--start", str(start), "--export", str(again / "moved.onnx")])
    moved = LineReader(again / "moved.onnx").log_probs_all(line)
    assert not np.allclose(moved, shipped.log_probs_all(line), atol=1e-3)
    main([*out, "--start", str(start), "--blend-start", "1", "--resume", "--export", str(again / "back.onnx")])
    back = LineReader(again / "back.onnx")
    assert np.allclose(back.log_probs_all(line), shipped.log_probs_all(line), atol=1e-4)
    # The checkpoint keeps the trained weights: exported again unblended, it is the first export.
    main([*out, "--start", str(start), "--resume", "--export", str(again / "moved-again.onnx")])
    assert np.array_equal(LineReader(again / "moved-again.onnx").log_probs_all(line), moved)
    # A resumed run must go on from the start it began with (else its batch norms would train and
    # the card would lose where it came from): without it, or from a fresh run, it is refused.
    with pytest.raises(DigitrecError, match="began from line_reader.onnx .* gives no start"):
        main([*out, "--resume", "--epochs", "2"])
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(again / "lines.npz", fresh / "lines.npz")
    main([out[0], str(fresh), *out[2:]])
    with pytest.raises(DigitrecError, match="began from a fresh network, but this run gives line_reader.onnx"):
        main([out[0], str(fresh), *out[2:], "--start", str(start), "--resume"])


def test_blend_mixes_each_weight_and_keeps_counters():
    from digitrec.models import LineCNN
    from digitrec.train.line_reader import blend

    torch.manual_seed(0)
    a, b = LineCNN(classes=14), LineCNN(classes=14)
    start = {k: v.clone() for k, v in b.state_dict().items()}
    mine = {k: v.clone() for k, v in a.state_dict().items()}
    mixed = blend(a, start, 0.25).state_dict()
    for name, value in mixed.items():
        if value.is_floating_point():
            assert torch.allclose(value, 0.75 * mine[name] + 0.25 * start[name]), name
        else:  # batch norms' step counters are not weights
            assert torch.equal(value, mine[name]), name


@pytest.mark.mnist
def test_a_bad_start_is_refused_before_any_line_is_drawn(mnist, tmp_path):
    """Drawing the lines takes minutes: a start that is no line reader, or one of another alphabet
    (a digits-only reader), is refused first."""
    from digitrec.errors import ModelError
    from digitrec.models import LineCNN
    from digitrec.train.line_reader import _card, export, main

    digits_only = tmp_path / "digits.onnx"
    network = LineCNN(classes=11).eval()
    export(
        network, digits_only, _card(network, 0.0, [], "test", alphabet="0123456789"), [np.zeros((HEIGHT, 64), np.uint8)]
    )
    run = tmp_path / "run"
    with pytest.raises(ModelError, match="writes '0123456789': a run starts from a line reader of"):
        main(["--out", str(run), "--numbers", "40", "--workers", "1", "--start", str(digits_only)])
    (tmp_path / "notes.onnx").write_text("not a model")
    with pytest.raises(DigitrecError):
        main(["--out", str(run), "--numbers", "40", "--workers", "1", "--start", str(tmp_path / "notes.onnx")])
    assert not (run / "lines.npz").exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"start": 5}, "must be the path of a line reader"),
        ({"start": "nowhere.onnx"}, "is not a file"),
        ({"blend_start": 0.5}, "blend_start needs start"),
        ({"blend_start": 1.5, "start": __file__}, "setting blend_start must be in"),
    ],
)
def test_a_start_that_is_no_file_or_a_blend_without_one_is_refused(settings, message):
    from digitrec.errors import DataError
    from digitrec.train.line_reader import LineReaderConfig, default_recipe

    with pytest.raises(DataError, match=message):
        LineReaderConfig.load(default_recipe(), settings)


@pytest.mark.mnist
def test_a_recipe_with_forms_draws_them_in_its_training_lines_only(mnist):
    """`forms` redraws training numbers' digits in real writers' forms (a new cache key); the
    held-out lines stay as the recipe without forms draws them."""
    from digitrec.train.line_reader import LineReaderConfig, data_settings, generate_lines

    plain, forms = LineReaderConfig(), LineReaderConfig(forms=0.5)
    assert "forms" not in json.loads(data_settings(plain)) and json.loads(data_settings(forms))["forms"] == 0.5
    train_plain, train_forms = generate_lines(plain, 3, 12, False), generate_lines(forms, 3, 12, False)
    assert any(a.shape != b.shape or not np.array_equal(a, b) for a, b in zip(train_plain[0], train_forms[0]))
    held_plain, held_forms = generate_lines(plain, 3, 12, True), generate_lines(forms, 3, 12, True)
    assert held_plain[1] == held_forms[1]
    assert all(np.array_equal(a, b) for a, b in zip(held_plain[0], held_forms[0]))


@pytest.mark.mnist
def test_a_recipe_with_soft_scans_softens_its_lines_under_a_new_cache_key(mnist):
    """`soft` scans a share of the training numbers soft or at a low resolution (`synth.soft_scan`):
    the same numbers, their line images less sharp; the held-out lines stay as they were."""
    from digitrec.train.line_reader import LineReaderConfig, data_settings, generate_lines

    plain, soft = LineReaderConfig(), LineReaderConfig(soft=1.0)
    assert "soft" not in json.loads(data_settings(plain)) and json.loads(data_settings(soft))["soft"] == 1.0
    (sharp_lines, sharp_texts), (soft_lines, soft_texts) = (generate_lines(c, 3, 12, False) for c in (plain, soft))
    assert sharp_texts[0] == soft_texts[0]  # the same number (a line that no longer reads as one is dropped)

    def edges(lines):
        return np.mean([steepest_edge(x) for x in lines])

    assert edges(soft_lines) < 0.8 * edges(sharp_lines)
    held_sharp, held_soft = (generate_lines(c, 3, 12, True) for c in (plain, soft))  # held out: sharp
    assert held_sharp[1] == held_soft[1] and all(np.array_equal(a, b) for a, b in zip(held_sharp[0], held_soft[0]))


@pytest.mark.parametrize(
    ("setting", "value"),
    [("forms", 1.5), ("soft", 2.0), ("soft", float("nan")), ("soft", True), ("soft", "0.5"), ("document", -0.1)]
    + [("seed", -1), ("seed", 2**32)],
)
def test_a_line_reader_setting_out_of_range_is_refused_by_name(setting, value):
    from digitrec.errors import DataError
    from digitrec.train.line_reader import LineReaderConfig, default_recipe

    with pytest.raises(DataError, match=f"setting {setting} must be"):
        LineReaderConfig.load(default_recipe(), {setting: value})


def test_a_number_read_with_its_marks_is_right_by_its_digits_when_asked():
    """finetune --numbers: the user's texts are digits only, so an amount read `1.5` is right as
    15; held-out accuracy was 0% on every amount (an audit)."""
    from digitrec.read.line_reader import ALPHABET
    from digitrec.train.line_reader import evaluate

    spelled = [ALPHABET.index(c) for c in "1.5"]

    class Spells(torch.nn.Module):  # column k says the k-th character of "1.5", then blanks
        def forward(self, x):
            logits = torch.zeros(len(x), x.shape[-1] // STRIDE, len(ALPHABET) + 1)
            logits[:, :, len(ALPHABET)] = 5.0
            for k, c in enumerate(spelled):
                logits[:, 2 * k, c] = 10.0
            return logits

    image = np.zeros((HEIGHT, 20 * STRIDE), np.uint8)
    assert evaluate(Spells(), [image], ["1.5"]) == 1.0
    assert evaluate(Spells(), [image], ["15"]) == 0.0
    assert evaluate(Spells(), [image], ["15"], digits_only=True) == 1.0
