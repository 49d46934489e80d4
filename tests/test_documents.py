"""Numbers dressed as documents (`digitrec.documents` via `synth.make_number(document=...)`):
one hand's slant and pen, marks beside the number, register, cheque, ruled and squared paper."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import plain_digits

from digitrec import documents, synth


def test_undressed_numbers_are_made_exactly_as_before():
    """document=0 and text_out draw nothing more from the generator: the benchmark's strings stay."""
    images, labels = plain_digits()
    for group in synth.GROUPS:
        a = synth.make_number(np.random.default_rng(7), images, labels, 5, group, punctuation=True)
        b = synth.make_number(
            np.random.default_rng(7), images, labels, 5, group, punctuation=True, document=0.0, text_out=[]
        )
        assert a[1] == b[1] and np.array_equal(a[0], b[0])


def test_the_text_keeps_points_commas_and_minus_signs_where_they_are_written():
    images, labels = plain_digits()
    seen = set()
    for seed in range(40):
        text: list = []
        _, label = synth.make_number(
            np.random.default_rng(seed),
            images,
            labels,
            4,
            "separated",
            punctuation=True,
            marks=synth.FORM_MARKS,
            text_out=text,
            minus=0.5,
        )
        kept = text[0]
        assert "".join(c for c in kept if c.isdigit()) == label  # the digits, in order
        assert set(kept) <= set("01" + synth.KEPT_MARKS)  # '=', '/' and ticks are not kept
        seen |= set(kept) - set("01")
        if kept.startswith("-"):
            seen.add("minus")
    assert {".", ",", "-", "minus"} <= seen


@pytest.mark.parametrize("kind", list(documents.BACKGROUNDS))
def test_each_background_darkens_only_the_paper_and_keeps_the_ink_darkest(kind):
    rng = np.random.default_rng(3)
    page = np.full((80, 200), 230.0, np.float32)
    cv2.line(page, (60, 20), (60, 60), 40.0, 4)  # one dark stroke of ink
    out = documents.background(rng, page.copy(), 40.0, kind)
    assert out.shape[0] == page.shape[0] and out.shape[1] >= page.shape[1]
    shift = out.shape[1] - page.shape[1]  # a register's scanner border is added on the left
    assert out[40, 60 + shift] <= 45  # the ink is still there
    paper = out[:, shift:][page > 200]
    if kind == "plain":
        assert np.all(paper == 230)
    else:
        assert paper.min() < 225  # lines, waves or a box printed on the paper
        assert np.median(paper) > 150  # mostly paper still
    if kind == "register" and shift:
        assert np.median(out[:, : shift // 2]) < 80  # the black border


def test_one_hand_slant_and_pen():
    piece = np.zeros((40, 20), np.float32)
    cv2.line(piece, (10, 2), (10, 37), 255.0, 3)
    leaning = documents.styled(piece, 0.3, 0, 40.0)
    ys, xs = np.nonzero(leaning > 128)
    assert xs[ys < 8].mean() > xs[ys > 32].mean() + 6  # the top leans right
    assert (documents.styled(piece, 0.0, 2, 40.0) > 128).sum() > 1.5 * (piece > 128).sum()
    assert 0 < (documents.styled(piece, 0.0, -1, 40.0) > 128).sum() < (piece > 128).sum()


def test_dressed_numbers_keep_their_label_and_an_owner_map_of_their_shape():
    images, labels = plain_digits()
    kinds = set()
    for seed in range(30):
        owners: list = []
        rng = np.random.default_rng(seed)
        grey, label = synth.make_number(rng, images, labels, 3, "separated", owner_out=owners, document=1.0)
        plain = synth.make_number(np.random.default_rng(seed), images, labels, 3, "separated")
        assert len(label) == 3 and set(label) <= {"0", "1"}
        assert owners[0].shape == grey.shape
        assert sorted(np.unique(owners[0]).tolist())[1:] == [0, 1, 2]  # every digit still owns its ink
        kinds.add(grey.shape != plain[0].shape)
    assert kinds == {True, False} or kinds == {True}
