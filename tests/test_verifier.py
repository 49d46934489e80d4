"""The reader's segmentation verifier and the data it is trained on."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from digitrec import synth
from digitrec.errors import DigitrecError
from digitrec.preprocess.digit import fit_and_centre
from digitrec.preprocess.segment import segment
from digitrec.read.candidates import candidate_groups
from digitrec.read.verifier import Verifier, default_verifier_path
from digitrec.train.segments import NOT_ONE_DIGIT, candidate_examples, label_candidates


def _one_piece(image: np.ndarray) -> bool:
    return cv2.connectedComponents((image > 30).astype(np.uint8))[0] == 2


@pytest.mark.mnist
def test_candidates_are_labelled_from_the_ink_they_hold(mnist):
    """Two well-separated digits in one piece each (1s and 7s: too narrow to be cut): each one's
    own component is that digit, both together are not one digit."""
    images, labels = mnist["test"]
    pick = [k for k in range(2000) if labels[k] in (1, 7) and _one_piece(images[k])][:2]
    rng = np.random.default_rng(0)
    owner_out: list = []
    grey, text = synth.make_number(rng, images[pick], labels[pick], 2, "separated", owner_out=owner_out)
    seg = segment(grey)
    owner = cv2.resize(owner_out[0], seg.mask.shape[::-1], interpolation=cv2.INTER_NEAREST)
    (line,) = seg.lines
    assert len(line.atoms) == 2
    runs = candidate_groups(line)
    found = dict(zip(runs, label_candidates(line, runs, owner, seg.mask, text)))
    assert found == {(0, 1): int(text[0]), (1, 2): int(text[1]), (0, 2): NOT_ONE_DIGIT}


@pytest.mark.mnist
def test_candidate_examples_hold_both_kinds(mnist):
    from digitrec.runtime import Recognizer

    images, labels = mnist["train"][0][:300], mnist["train"][1][:300]
    x, y = candidate_examples(np.random.default_rng(1), images, labels, 12)
    assert x.dtype == np.uint8 and x.shape[1:] == (28, 28) and len(x) == len(y)
    digits = y < 10
    assert (~digits).sum() > 0 and digits.sum() > 0
    # The labels are right: the shipped digit model agrees with nearly all the "one digit" ones.
    agree = Recognizer().predict_probabilities(x[digits]).argmax(1) == y[digits]
    assert agree.mean() >= 0.9, agree.mean()


@pytest.fixture(scope="module")
def verifier():
    assert default_verifier_path().is_file(), "the shipped verifier is missing"
    return Verifier()


@pytest.mark.mnist
def test_shipped_verifier_tells_one_digit_from_pieces_and_pairs(verifier, mnist):
    images, labels = mnist["test"][0][:400], mnist["test"][1][:400]
    whole = verifier.one_digit(images)
    # Pieces: the left or right 45% of each digit's ink; pairs: two digits side by side.
    pieces, pairs = [], []
    for k, im in enumerate(images[:200]):
        ys, xs = np.nonzero(im > 30)
        crop = im[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32) / 255
        cut = max(1, int(0.45 * crop.shape[1]))
        half = crop[:, :cut] if k % 2 else crop[:, -cut:]
        if half.shape[1] >= 3 and labels[k] != 1:
            pieces.append(fit_and_centre(half))
        other = images[200 + k].astype(np.float32) / 255
        pairs.append(fit_and_centre(np.hstack([im.astype(np.float32) / 255, other])[:, 4:-4]))
    assert np.median(whole) > 0.95 and (whole > 0.5).mean() > 0.97
    assert np.median(verifier.one_digit(np.stack(pairs))) < 0.1
    assert np.median(verifier.one_digit(np.stack(pieces))) < 0.5


@pytest.mark.mnist
@pytest.mark.slow
def test_training_the_verifier_end_to_end(mnist, real_data, tmp_path, capsys):
    """The real training command, cheap: a few numbers, one epoch, exported as an 11-class ONNX
    model that the runtime's Verifier loads."""
    import json

    from digitrec.train.verifier import main

    main(
        [
            "--out",
            str(tmp_path / "run"),
            "--numbers",
            "30",
            "--epochs",
            "1",
            "--limit",
            "2000",
            "--threads",
            "1",
            "--export",
            str(tmp_path / "verifier.onnx"),
        ]
    )
    assert "test accuracy" in capsys.readouterr().out
    card = json.loads((tmp_path / "verifier_card.json").read_text())
    assert card["labels"][-1] == "not one digit" and card["output"]["shape"] == [11]
    probs = Verifier(tmp_path / "verifier.onnx").probabilities(mnist["test"][0][:50])
    assert probs.shape == (50, 11) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert (tmp_path / "run" / "candidates.npz").is_file()
    # A second run into the same folder needs --resume or --force, and says so.
    with pytest.raises(DigitrecError, match="--force"):
        main(["--out", str(tmp_path / "run"), "--numbers", "30", "--epochs", "1", "--limit", "2000"])
    with pytest.raises(DigitrecError, match="--numbers"):
        main(["--out", str(tmp_path / "run"), "--numbers", "31", "--epochs", "1", "--limit", "2000", "--force"])


def test_a_file_that_is_not_a_verifier_is_refused(tmp_path):
    from digitrec.errors import ModelError
    from digitrec.runtime import default_model_path

    with pytest.raises(ModelError, match="not a segmentation verifier"):
        Verifier(default_model_path())  # the digit model: ten outputs
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="cannot load"):
        Verifier(tmp_path / "junk.onnx")
