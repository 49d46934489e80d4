"""Reading's work budget (`digitrec.read.ReadBudget`): a page of hundreds of short strokes is
refused quickly ("too much to read"), in the library, the CLI and the HTTP API, while real numbers
read exactly as without a budget."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from digitrec import synth
from digitrec.cli import cli
from digitrec.errors import ImageError, TooMuchToRead
from digitrec.read import DEFAULT_BUDGET, UNLIMITED, ReadBudget
from digitrec.runtime import Recognizer
from digitrec.web import create_app


def bars_png(rows: int, side: int = 1000) -> bytes:
    """The amplification attack of issue 14: a `side` x `side` PNG of `rows` rows (one every 30 px)
    of short vertical bars, 2 px wide, 15 px tall, every 5 px: `side` / 5 pieces of ink per row,
    each rendered in ~5 candidate runs through two networks. 33 rows on 1000 px (6,468 pieces)
    cost main 22.8 s of CPU."""
    image = np.full((side, side), 255, np.uint8)
    for row in range(rows):
        y = 10 + row * 30
        for x in range(10, side - 10, 5):
            cv2.rectangle(image, (x, y), (x + 1, y + 14), 0, -1)
    return cv2.imencode(".png", image)[1].tobytes()


@pytest.fixture(scope="module")
def recognizer():
    return Recognizer()


@pytest.fixture(scope="module")
def number(mnist, recognizer):
    """A generated 5-digit string of MNIST test digits that the reader reads right (digits the
    model reads surely on their own, as in test_read.py)."""
    images, labels = mnist["test"][0][:500], mnist["test"][1][:500]
    probs = recognizer.predict_probabilities(images)
    keep = (probs.argmax(1) == labels) & (probs.max(1) >= np.quantile(probs.max(1), 0.3))
    image, label = synth.make_number(np.random.default_rng(3), images[keep], labels[keep], 5, "separated")
    assert recognizer.read(image, budget=UNLIMITED).text == label
    return image, label


def _timed_read(recognizer, image, **kwargs):
    """-> (the reading or the ImageError, CPU seconds it cost): CPU time, not wall clock, as the
    tests share two cores with other work."""
    start = time.process_time()
    try:
        return recognizer.read(image, **kwargs), time.process_time() - start
    except ImageError as exc:
        return exc, time.process_time() - start


def test_a_page_of_short_bars_is_refused_before_anything_is_rendered(recognizer, monkeypatch):
    # Six rows on 400 px: 456 pieces of ink. Main rendered and classified ~2,300 candidates and
    # read six lines: 1.8 s of CPU (5 s of wall clock beside other work); now 0.03-0.07 s.
    from digitrec.read import candidates, reader

    rendered = []
    monkeypatch.setattr(candidates, "fit_and_centre", lambda crop: rendered.append(crop))
    monkeypatch.setattr(reader, "line_image", lambda *args: rendered.append(args))
    refused, seconds = _timed_read(recognizer, bars_png(6, side=400))
    assert isinstance(refused, TooMuchToRead) and isinstance(refused, ImageError)
    assert str(refused) == f"too much to read: 456 pieces of ink (limit {DEFAULT_BUDGET.max_pieces})"
    assert rendered == []
    assert seconds < 0.5


def test_the_whole_attack_is_refused_in_about_a_second(recognizer):
    # 33 rows on 1000 px: 6,468 pieces, ~32,000 candidates; main spent 22.8 s of CPU.
    # What is left is finding the ink on a 1000 px page, as for any photo: 0.3 s of CPU.
    refused, seconds = _timed_read(recognizer, bars_png(33))
    assert isinstance(refused, TooMuchToRead), refused
    assert seconds < 1.5


def test_each_limit_refuses_with_its_own_message(recognizer, number):
    image, label = number
    assert recognizer.read(image).to_dict() == recognizer.read(image, budget=UNLIMITED).to_dict()
    assert recognizer.read(image).text == label  # the default budget
    cases = {
        ReadBudget(max_lines=0): "lines of writing (limit 0)",
        ReadBudget(max_pieces=4): "pieces of ink (limit 4)",
        ReadBudget(max_pieces_per_line=4): "pieces of ink in one line (limit 4)",
        ReadBudget(max_candidates=5): "candidate digits (limit 5)",
    }
    for budget, message in cases.items():
        with pytest.raises(TooMuchToRead, match=r"^too much to read: \d+ " + re.escape(message) + "$"):
            recognizer.read(image, budget=budget)


def test_pieces_are_counted_as_components_are_cut(recognizer, mnist):
    from digitrec.preprocess.segment import segment

    rng = np.random.default_rng(5)
    image, _ = synth.make_number(rng, mnist["test"][0][:200], mnist["test"][1][:200], 4, "touching")
    seg = segment(image)
    components = sum(len({a.component for a in line.atoms}) for line in seg.lines)
    pieces = sum(len(line.atoms) for line in seg.lines)
    assert components < pieces  # touching digits are cut
    with pytest.raises(TooMuchToRead, match=rf"pieces of ink \(limit {components}\)$"):
        recognizer.read(image, budget=ReadBudget(max_pieces=components))
    assert segment(image, max_pieces=pieces).lines  # exactly enough


def test_a_deadline_that_expires_mid_read_refuses(recognizer, number, monkeypatch):
    image, label = number
    with pytest.raises(TooMuchToRead, match=r"^too much to read: still reading after .* s \(limit 0.001 s\)$"):
        recognizer.read(image, budget=ReadBudget(max_seconds=0.001))
    # A clock that advances one second at each look: the budget of 4.5 s runs out at the fifth
    # check, after segmentation, between the lines' renderings and network calls.
    from digitrec.read import budget

    ticks = iter(range(100))
    monkeypatch.setattr(budget.time, "monotonic", lambda: float(next(ticks)))
    with pytest.raises(TooMuchToRead, match=r"still reading after 5.00 s \(limit 4.5 s\)"):
        recognizer.read(image, budget=ReadBudget(max_seconds=4.5))
    monkeypatch.undo()
    assert recognizer.read(image, budget=ReadBudget(max_seconds=None)).text == label


def test_the_cli_reports_it_and_goes_on(tmp_path, number):
    image, label = number
    good, bars = tmp_path / "number.png", tmp_path / "bars.png"
    cv2.imwrite(str(good), image)
    bars.write_bytes(bars_png(6, side=400))
    result = CliRunner().invoke(cli, ["read", "--json", str(bars), str(good)], catch_exceptions=False)
    assert result.exit_code == 1
    by_name = {Path(e["path"]).name: e for e in json.loads(result.output)}
    assert by_name["bars.png"]["error"].startswith("too much to read: ") and by_name["bars.png"]["text"] is None
    assert by_name["number.png"]["text"] == label and by_name["number.png"]["error"] is None
    plain = CliRunner().invoke(cli, ["read", str(bars)], catch_exceptions=False)
    assert plain.exit_code == 1 and f"{bars}: error: too much to read: " in plain.output
    assert "Traceback" not in plain.output


def test_the_server_answers_422_too_much_to_read(recognizer, number):
    image, label = number
    with TestClient(create_app(recognizer), base_url="http://localhost") as client:
        start = time.process_time()  # CPU seconds of all the process's threads
        response = client.post("/v1/read", files=[("file", ("bars.png", bars_png(6, side=400)))])
        seconds = time.process_time() - start
        assert response.status_code == 422, response.text[:300]
        assert response.json()["detail"].startswith("too much to read: ")
        assert seconds < 0.5  # main: 1.8 s
        # Beside a real number, only the bars image fails.
        files = [
            ("file", ("bars.png", bars_png(6, side=400))),
            ("file", ("number.png", cv2.imencode(".png", image)[1].tobytes())),
        ]
        response = client.post("/v1/read", files=files)
        assert response.status_code == 200
        refused, read = response.json()["readings"]
        assert refused["error"].startswith("too much to read: ") and read["text"] == label
