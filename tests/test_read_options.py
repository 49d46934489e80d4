"""What users ask of `read`: a single digit read as a one-digit number, --digits and --pattern in
the search, the output options predict has (--csv, compact --json, --min-confidence, debug files),
"no digits found" for blank and noise pages, and a string confidence that means what it says."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from digitrec import doubt, synth
from digitrec.cli import cli
from digitrec.errors import ImageError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def recognizer():
    from digitrec.runtime import Recognizer

    return Recognizer(threads=1)


def _run(args):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


# --- a bare digit is a one-digit number ---


def test_bare_mnist_test_digits_read_as_one_digit_numbers(recognizer, mnist, tmp_path):
    """28x28 MNIST test digits as PNG files, white on black as MNIST has them and dark on light as
    a scan has them. Before: 67 in 100 (a 1's stem, 0.71 of the image, was erased as a ruled line
    across the page: 1 -> "11", 9 -> "0")."""
    images, labels = mnist["test"]
    pick = np.random.default_rng(0).choice(len(images), 60, replace=False)
    right = []
    for n, i in enumerate(pick):
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), images[i] if n % 2 else 255 - images[i])
        try:
            right.append(recognizer.read(str(path)).text == str(labels[i]))
        except ImageError:
            right.append(False)
    assert sum(right) >= 59, sum(right)


@pytest.mark.parametrize(
    "i",
    [
        # The segmentation reads this 2 as one line "64" (49% sure) and this 9 as "1": one line,
        # replaced because the rejector takes the page for one digit (it was never replaced).
        5449,
        9620,
        # Since the confidence map weighs the line reader's probability of the text more (session
        # 9), this 2 - digit model 41%, the line reader reading two digits - is under the one-digit
        # page's 0.5 (0.14) and reads "no digits found": bare test digits 994 -> 993 of 1,000.
        pytest.param(4176, marks=pytest.mark.xfail(strict=True, reason="docs/read.md, session 9's map")),
        445,
    ],
)
def test_an_odd_lone_digit_the_cuts_break_up_is_read_whole(recognizer, mnist, i):
    """MNIST test digits the segmentation breaks up: a 2 read "2 / 64", a 2 and a 6 whose pieces
    made no number ("no digits found"). Read as one digit, as `predict` sees it, that reading is
    the more probable one."""
    images, labels = mnist["test"]
    assert recognizer.read(images[i]).text == str(labels[i]), i


@pytest.mark.parametrize("name, digit", [("mnist_9.png", "9"), ("marker_5.jpg", "5")])
def test_the_examples_predict_gets_read_the_same(recognizer, name, digit):
    # marker_5: the 5's flag is broken off above a loose piece of its stem; it was left out of the
    # line (read "3").
    assert recognizer.read(str(EXAMPLES / name)).text == digit


# --- --digits and --pattern ---


@pytest.fixture(scope="module")
def overlapping(mnist):
    """Generated overlapping numbers the reader, unconstrained, reads with the wrong digit count."""
    images, labels = mnist["test"][0][:3000], mnist["test"][1][:3000]
    cases = {}
    # Seeds whose numbers the shipped line reader (2026-12-07) miscounts: 17745 -> 1745, 86771 -> 8671
    # (the 2026-12-06 one also miscounted seed 0, 50137 -> 5037, which this one reads right).
    for seed in (32, 26):
        rng = np.random.default_rng(seed)
        cases[seed] = synth.make_number(rng, images, labels, int(rng.integers(3, 6)), "overlapping")
    return cases


def test_digits_makes_the_search_find_the_right_count(recognizer, overlapping):
    for image, label in overlapping.values():
        assert len(recognizer.read(image).text) != len(label)  # 17745 -> 1745, 86771 -> 8671
        assert recognizer.read(image, digits=len(label)).text == label


def test_a_pattern_constrains_each_digit(recognizer, overlapping):
    image, label = overlapping[32]  # 17745
    assert recognizer.read(image, pattern=r"1\d{4}").text == label
    assert recognizer.read(image, pattern=r"[0-9]{5}", digits=5).text == label


def test_no_reading_that_matches_is_an_error_not_a_wrong_answer(recognizer, overlapping):
    image, _ = overlapping[32]
    with pytest.raises(ImageError, match="no reading matches 30 digits"):
        recognizer.read(image, digits=30)


def _lines_page(mnist, seed: int, lengths: tuple[int, ...]) -> tuple[np.ndarray, list[str]]:
    """Numbers of these lengths, one under the other."""
    images, labels = mnist["test"][0][:3000], mnist["test"][1][:3000]
    rng = np.random.default_rng(seed)
    parts = [synth.make_number(rng, images, labels, n, "separated") for n in lengths]
    width = max(image.shape[1] for image, _ in parts)
    page = np.vstack([np.pad(im, ((10, 10), (0, width - im.shape[1])), constant_values=255) for im, _ in parts])
    return page, [label for _, label in parts]


def test_of_several_lines_a_constraint_keeps_the_ones_that_fit_it(recognizer, mnist):
    """Lines of 3, 4 and 2 digits: each constraint reads the line it fits. Before, every line was
    forced to fit (`855 / 004` with --digits 3, `5249 / 8939 / 0022` with --digits 4; an audit).
    Each digit in the JSON names its line."""
    for seed in (4, 5):
        page, texts = _lines_page(mnist, seed, (3, 4, 2))
        reading = recognizer.read(page)
        assert reading.line_texts == texts
        assert [d["line"] for d in reading.to_dict()["digits"]] == [0] * 3 + [1] * 4 + [2] * 2
        for n, text in zip((3, 4, 2), texts):
            assert recognizer.read(page, digits=n).line_texts == [text], (seed, n)


def test_lines_that_fit_a_constraint_are_all_kept_however_unsure(recognizer, mnist):
    """Two lines of 4 digits: --digits 4 keeps both (a rule on the confidence dropped the less sure
    one and left the other unflagged; a review)."""
    for seed in (29, 30):
        page, texts = _lines_page(mnist, seed, (4, 4))
        assert recognizer.read(page, digits=4).line_texts == recognizer.read(page).line_texts == texts, seed


# --- blank and noise-only pages ---


def _paper(seed: int, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(225, sigma, (300, 400)), 0, 255).astype(np.uint8)


def _noise_pages():
    rng = np.random.default_rng(7)
    grain = _paper(0, 16)  # heavy paper grain: before, 928 specks ("too much to read")
    specks = _paper(1, 8)
    for x, y in rng.integers(10, 290, (30, 2)):
        cv2.circle(specks, (int(x), int(y)), int(rng.integers(1, 3)), int(rng.integers(30, 120)), -1)
    jpeg = cv2.imdecode(cv2.imencode(".jpg", specks, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], cv2.IMREAD_GRAYSCALE)
    # Blotchy paper: slow stains under the grain (before: read as four lines of "digits").
    stains = cv2.resize(rng.normal(0, 20, (8, 10)), (400, 300), interpolation=cv2.INTER_CUBIC)
    blotchy = np.clip(_paper(2, 12).astype(float) + stains, 0, 255).astype(np.uint8)
    # A lighting gradient in coarse JPEG blocks: nothing as dark as a stroke (it once had no pixel
    # above the strong-ink threshold, and an empty percentile was a traceback).
    shaded = (_paper(3, 6).astype(float) * (0.6 + 0.4 * np.linspace(0, 1, 400)[None])).astype(np.uint8)
    shaded = cv2.imdecode(cv2.imencode(".jpg", shaded, [cv2.IMWRITE_JPEG_QUALITY, 15])[1], cv2.IMREAD_GRAYSCALE)
    return {"grain": grain, "specks": specks, "jpeg": jpeg, "blotchy": blotchy, "shaded": shaded}


@pytest.mark.parametrize("name", ["grain", "specks", "jpeg", "blotchy", "shaded"])
def test_a_noise_only_page_has_no_digits(recognizer, name, tmp_path):
    path = tmp_path / f"{name}.png"
    cv2.imwrite(str(path), _noise_pages()[name])
    with pytest.raises(ImageError, match="^no digits found$"):
        recognizer.read(str(path))


# --- the command line ---


@pytest.fixture()
def number_files(tmp_path, overlapping, mnist):
    """The overlapping 17745 as a.png, a second number as a.jpg in the same folder, a bare 28x28
    digit, and a file that is not an image."""
    image, label = overlapping[32]
    cv2.imwrite(str(tmp_path / "a.png"), image)
    rng = np.random.default_rng(6)
    second, second_label = synth.make_number(rng, mnist["test"][0][:2000], mnist["test"][1][:2000], 3, "separated")
    cv2.imwrite(str(tmp_path / "a.jpg"), second, [cv2.IMWRITE_JPEG_QUALITY, 95])
    images, labels = mnist["test"]
    cv2.imwrite(str(tmp_path / "bare.png"), images[0])
    (tmp_path / "notes.txt").write_text("not an image\n")
    return {"a.png": label, "a.jpg": second_label, "bare.png": str(labels[0])}, tmp_path


def test_cli_digits_and_pattern(number_files):
    labels, folder = number_files
    path = str(folder / "a.png")
    result = _run(["read", path, "--digits", "5", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["text"] == labels["a.png"]
    result = _run(["read", path, "--pattern", r"1\d{4}"])
    assert result.exit_code == 0 and f"{path}: {labels['a.png']}" in result.output


def test_cli_bad_pattern_is_a_clear_error_before_any_work(number_files, capsys):
    from conftest import run_main

    _, folder = number_files
    code, out, err = run_main(["read", str(folder / "a.png"), "--pattern", "[a-z]+"], capsys)
    assert code == 1 and out == ""
    assert err.startswith("Error: cannot use the pattern '[a-z]+'") and "Traceback" not in err
    code, _, err = run_main(["read", str(folder / "a.png"), "--digits", "0"], capsys)
    assert code == 2 and "--digits" in err  # click's own range check


def test_cli_compact_json_csv_and_one_bad_file(number_files, tmp_path):
    labels, folder = number_files
    table = tmp_path / "out" / "answers.csv"
    table.parent.mkdir()
    paths = [str(folder / name) for name in ("a.png", "a.jpg", "bare.png", "notes.txt")]
    result = _run(["read", *paths, "--json", "--csv", str(table)])
    assert result.exit_code == 1  # notes.txt failed; the others were read
    lines = result.output.strip().splitlines()
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == 2 + len(paths)  # one object per line
    data = json.loads(result.output)
    # (a.png, unconstrained, reads a digit too many: 401077)
    assert [d["text"] for d in data[1:3]] == [labels["a.jpg"], labels["bare.png"]] and data[0]["text"].isdigit()
    assert data[3]["text"] is None and data[3]["error"] and data[3]["uncertain"] is False
    import csv

    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == paths
    assert [r["text"] for r in rows[:3]] == [d["text"] for d in data[:3]]
    assert float(rows[0]["confidence"]) == pytest.approx(data[0]["confidence"], abs=1e-6)
    assert rows[0]["digits"].split()[0] == f"{data[0]['digits'][0]['digit']}:{data[0]['digits'][0]['confidence']:.4f}"
    assert rows[3]["text"] == "" and rows[3]["error"] == data[3]["error"]


def test_cli_min_confidence_flags_the_string_and_the_digits_to_check(number_files):
    labels, folder = number_files
    path = str(folder / "a.jpg")
    plain = json.loads(_run(["read", path, "--json"]).output)[0]
    assert plain["uncertain"] is False and plain["reason"] is None
    assert not any(d["uncertain"] for d in plain["digits"])
    # A threshold between the least and the most confident digit: the string and some digits flagged.
    confidences = sorted(d["confidence"] for d in plain["digits"])
    threshold = min(0.999999, max(plain["confidence"], confidences[0]) + 1e-6)
    flagged = json.loads(_run(["read", path, "--json", "--min-confidence", str(threshold)]).output)[0]
    assert flagged["text"] == plain["text"] == labels["a.jpg"]
    assert flagged["uncertain"] is True and flagged["reason"] == doubt.LOW_CONFIDENCE
    assert [d["uncertain"] for d in flagged["digits"]] == [d["confidence"] < threshold for d in plain["digits"]]
    assert any(d["uncertain"] for d in flagged["digits"])
    result = _run(["read", path, "--min-confidence", str(threshold)])
    assert "uncertain: low confidence" in result.output


def test_cli_debug_images_never_overwrite_and_small_ones_are_enlarged(number_files, tmp_path):
    _, folder = number_files
    out = tmp_path / "debug"
    result = _run(["read", str(folder / "a.png"), str(folder / "a.jpg"), str(folder / "bare.png"), "--debug", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a-2.read.png", "a.read.png", "bare.read.png"]
    first, second = cv2.imread(str(out / "a.read.png")), cv2.imread(str(out / "a-2.read.png"))
    assert first.shape != second.shape  # two different inputs, two drawings
    bare = cv2.imread(str(out / "bare.read.png"))
    assert bare.shape[:2] == (420, 420)  # 28x28 enlarged 15x, pixels kept sharp


@pytest.mark.parametrize("command", ["read", "predict"])
def test_a_debug_folder_a_file_stands_in_the_way_of_is_one_error_before_any_work(
    command, number_files, tmp_path, capsys
):
    """`read` gave each input that error in place of its reading (an audit)."""
    from conftest import run_main

    _, folder = number_files
    (tmp_path / "taken").write_text("a file")
    code, out, err = run_main([command, str(folder / "a.png"), "--debug", str(tmp_path / "taken" / "debug")], capsys)
    assert code == 1 and out == ""
    assert (
        err.strip()
        == f"Error: cannot write {tmp_path / 'taken' / 'debug'}: {tmp_path / 'taken'} is a file, not a folder"
    )


# --- the server ---


def test_server_read_takes_digits_and_pattern_as_form_fields(client, overlapping):
    image, label = overlapping[32]
    png = cv2.imencode(".png", image)[1].tobytes()
    files = {"file": ("a.png", png, "image/png")}
    plain = client.post("/v1/read", files=files)
    assert plain.status_code == 200 and plain.json()["readings"][0]["text"] != label
    answer = client.post("/v1/read", files=files, data={"digits": "5"})
    assert answer.status_code == 200, answer.text
    reading = answer.json()["readings"][0]
    assert reading["text"] == label
    # The server flags a number under its threshold (doubt.DEFAULT_MIN_CONFIDENCE unless told).
    from digitrec.doubt import DEFAULT_MIN_CONFIDENCE

    flagged = reading["confidence"] < DEFAULT_MIN_CONFIDENCE
    assert reading["uncertain"] is flagged and reading["reason"] == ("low confidence" if flagged else None)
    assert all("uncertain" in d for d in reading["digits"])
    assert client.post("/v1/read", files=files, data={"pattern": r"1\d{4}"}).json()["readings"][0]["text"] == label
    bad = client.post("/v1/read", files=files, data={"pattern": "[a-z]"})
    assert bad.status_code == 422 and "cannot use the pattern" in bad.json()["detail"]
    bad = client.post("/v1/read", files=files, data={"digits": "four"})
    assert bad.status_code == 422 and "digits" in bad.json()["detail"]
    # The same beside `images` in a JSON body (the audit: they were ignored there, a 200 unconstrained).
    encoded = base64.b64encode(png).decode()
    for fields in ({"digits": 5}, {"digits": "5"}, {"pattern": r"1\d{4}"}):
        answer = client.post("/v1/read", json={"images": [encoded], **fields})
        assert answer.status_code == 200 and answer.json()["readings"][0]["text"] == label, fields
    vendor = client.post(  # any +json type, as the images are taken from it
        "/v1/read",
        content=json.dumps({"images": [encoded], "digits": 5}),
        headers={"content-type": "application/vnd.api+json"},
    )
    assert vendor.status_code == 200 and vendor.json()["readings"][0]["text"] == label
    bad = client.post("/v1/read", json={"images": [encoded], "digits": "four"})
    assert bad.status_code == 422 and "digits" in bad.json()["detail"]


# --- how sure ---


def test_a_clean_number_read_right_says_so(recognizer, mnist):
    """Clean separated 4-digit numbers: the string confidence is the calibrated probability that
    the reading is right (about 98% of such strings are). Before: the product of the digits'
    label-smoothed probabilities, 0.60-0.70 for every one of these."""
    images, labels = mnist["test"][0][:3000], mnist["test"][1][:3000]
    rng = np.random.default_rng(11)
    for _ in range(6):
        image, label = synth.make_number(rng, images, labels, 4, "separated")
        reading = recognizer.read(image)
        assert reading.text == label and 0.95 <= reading.confidence < 1.0, (label, reading.confidence)
        assert all(0.99 <= d.confidence <= 1.0 for d in reading.digits)


def test_the_confidence_map_is_the_documented_logistic():
    from digitrec.read.params import FEATURES, Evidence, ReaderParams, fit_logistic

    evidence = Evidence(-0.4, -0.1, -0.2, True, 4, line_margin=0.3, second_log_prob=-2.0)
    params = ReaderParams(confidence_weights=(1.0, 2.0, 0.0, 0.0, 0.5, 0.0, -1.0, 0.25, 0.0))
    assert len(FEATURES) == len(evidence.features()) == len(params.confidence_weights)
    assert params.line_confidence(evidence) == pytest.approx(1 / (1 + np.exp(-(1.0 - 0.8 + 0.5 - 0.3 - 0.5))))
    # Newton's method recovers the weights of a known logistic model.
    rng = np.random.default_rng(0)
    x = np.c_[np.ones(20000), rng.normal(size=(20000, 2))]
    y = rng.random(20000) < 1 / (1 + np.exp(-(x @ [0.5, 2.0, -1.0])))
    assert fit_logistic(x, y, l2=0.0) == pytest.approx([0.5, 2.0, -1.0], abs=0.1)


def test_the_evidence_says_how_far_the_line_reader_is_from_the_reading():
    """The weakest digit and piece, and the line reader's own reading against the one chosen: how
    much more probable it finds its own (log-odds) and how many digits they differ by."""
    from digitrec.read.line_reader import string_log_prob
    from digitrec.read.params import Evidence

    # 6 columns that read "12": 1, blank, 2, blank, blank, blank, each 0.9 sure (0.01 elsewhere).
    lp = np.full((6, 11), np.log(0.01))
    for t, k in enumerate((1, 10, 2, 10, 10, 10)):
        lp[t, k] = np.log(0.9)
    digits, pieces = np.array([0.9, 0.5]), np.array([0.99, 0.8])
    agrees = Evidence.of(digits, pieces, lp, "12")
    assert agrees.line_agrees and agrees.line_margin == 0.0 and agrees.length_gap == 0
    assert agrees.min_digit_log_prob == pytest.approx(np.log(0.5))
    assert agrees.min_one_digit_log_prob == pytest.approx(np.log(0.8))
    other = Evidence.of(digits, pieces, lp, "13")
    assert not other.line_agrees and other.length_gap == 0
    assert other.line_margin == pytest.approx(string_log_prob(lp, "12") - string_log_prob(lp, "13"))
    assert other.line_margin > 4  # 0.9 against 0.01 in the one column that differs: about log(90)
    short = Evidence.of(digits[:1], pieces[:1], lp, "1")
    assert short.length_gap == 1 and short.line_margin > 0
    # Without the line reader there is nothing to disagree with.
    alone = Evidence.of(digits, pieces, None, "12")
    assert (alone.line_margin, alone.length_gap, alone.line_log_prob) == (0.0, 0, 0.0)
