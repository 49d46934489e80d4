"""`digitrec read --keep-punctuation` and `Recognizer.read(..., keep_punctuation=True)` with the
shipped line reader, on amounts written with MNIST test digits and marks (`synth.write_text`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def amounts(mnist):
    """Amounts with marks written with MNIST test digits that the shipped model reads surely."""
    from digitrec import synth

    images, labels = mnist["test"]
    rng = np.random.default_rng(5)
    texts = ["7.50", "1,250.00", "-5", "3,000", "0.75", "-12", "48.10", "2,500"]
    return [(synth.write_text(rng, images[:2000], labels[:2000], t), t) for t in texts]


@pytest.mark.mnist
def test_the_shipped_reader_keeps_points_separators_and_minus_signs(amounts):
    from digitrec.runtime import Recognizer

    rec = Recognizer()
    kept = [rec.read(image, keep_punctuation=True).text for image, _ in amounts]
    plain = [rec.read(image).text for image, _ in amounts]
    right = sum(k == t for k, (_, t) in zip(kept, amounts))
    assert right >= 7, list(zip(kept, [t for _, t in amounts]))
    # By default the text is the digits only, and the marks never change the digits read.
    for k, p, (_, _t) in zip(kept, plain, amounts):
        assert p.isdigit() and "".join(c for c in k if c.isdigit()) == p


@pytest.mark.mnist
def test_read_cli_keep_punctuation(amounts, tmp_path, capsys):
    import json

    import cv2
    from conftest import run_main

    for k, (image, _text) in enumerate(amounts[:3]):
        cv2.imwrite(str(tmp_path / f"a{k}.png"), image)
    code, out, err = run_main(["read", str(tmp_path), "--json", "--keep-punctuation"], capsys)
    assert code == 0, err
    texts = {Path(r["path"]).name: r["text"] for r in json.loads(out)}
    assert sum(texts[f"a{k}.png"] == t for k, (_, t) in enumerate(amounts[:3])) >= 2, texts
    code, out, _ = run_main(["read", str(tmp_path), "--json"], capsys)
    assert all(r["text"].isdigit() for r in json.loads(out))


def test_the_shipped_line_reader_writes_marks_and_says_where_it_came_from():
    """One line reader reads the digits and places the marks; its card says what it writes, how it
    was trained and why it was shipped."""
    from digitrec.read.line_reader import ALPHABET
    from digitrec.runtime import Recognizer

    reader = Recognizer().reader.line_reader
    assert reader.alphabet == ALPHABET and reader.card["config"]["held_out_writers"] > 0
    # Since 2026-12-07 the 2026-12-06 line reader trained on with soft scans and blended back: the
    # card names its recipe and the file it started from.
    assert "line_reader_soft.toml" in reader.card["command"] and reader.card["config"]["blend_start"] == 0.5
    assert reader.card["started_from"]["file"] == "line_reader_20261206.onnx"
    assert len(reader.card["started_from"]["sha256"]) == 64
    assert "benchmarks/read.py" in reader.card["notes"]
    assert not (reader.path.parent / "line_reader_marks.onnx").exists()


@pytest.mark.mnist
def test_the_server_keeps_punctuation_when_asked(amounts, client):
    """`keep_punctuation` as a form field, a JSON field or a query parameter (it was ignored: the
    page and API clients could not keep marks; an audit)."""
    import base64

    import cv2

    image, text = amounts[0]  # 7.50
    png = cv2.imencode(".png", image)[1].tobytes()
    files = {"file": ("a.png", png, "image/png")}
    as_json = {"images": [base64.b64encode(png).decode()]}
    for request in (
        {"files": files, "data": {"keep_punctuation": "true"}},
        {"json": {**as_json, "keep_punctuation": True}},
        {"files": files, "params": {"keep_punctuation": "1"}},
        {"files": files, "params": {"keep_punctuation": ""}},  # a bare ?keep_punctuation, as a flag
    ):
        answer = client.post("/v1/read", **request)
        assert answer.status_code == 200 and answer.json()["readings"][0]["text"] == text, answer.text
    for plain in ({"files": files}, {"json": {**as_json, "keep_punctuation": False}}):
        assert client.post("/v1/read", **plain).json()["readings"][0]["text"] == "750"
    bad = client.post("/v1/read", files=files, data={"keep_punctuation": "maybe"})
    assert bad.status_code == 422 and bad.json()["detail"] == "keep_punctuation: true or false, not 'maybe'"
