"""`digitrec serve --collect DIR` and `POST /v1/reload`: corrections saved as finetune's data (the
folder, then a real server), and a model swapped without a restart."""

from __future__ import annotations

import base64
import csv
import threading
from pathlib import Path
from unittest.mock import ANY

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from predict_helpers import write_linear_onnx
from web_helpers import LOCAL, draw_digit, free_port, photo_of_digit, png, start_server, stop_server, wait_until_up

from digitrec.errors import DataError, ImageError
from digitrec.web.collect import MAX_IMAGE_BYTES, Collector, TooLarge

SEVEN, ONE = png(draw_digit(7)), png(draw_digit(1))


def data_url(image: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(image).decode()


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------- the folder ----------


def test_a_correction_is_the_image_as_sent_and_a_row_finetune_reads(tmp_path):
    from digitrec.tune.data import list_examples

    collector = Collector(tmp_path / "mine")
    saved = collector.add(SEVEN, "1", predicted="7")
    photo = collector.add(photo_of_digit(7), "7")
    number = collector.add(png(np.hstack([draw_digit(1), draw_digit(7)])), " 17 ", kind="number", predicted="11")
    assert saved.path.startswith("digits/1/") and saved.path.endswith(".png") and photo.path.endswith(".jpg")
    assert (tmp_path / "mine" / saved.path).read_bytes() == SEVEN  # as drawn: not re-encoded
    assert rows(tmp_path / "mine" / "manifest.csv") == [
        {"path": saved.path, "label": "1", "predicted": "7"},
        {"path": photo.path, "label": "7", "predicted": ""},
    ]
    assert rows(tmp_path / "mine" / "numbers.csv") == [{"path": number.path, "text": "17", "predicted": "11"}]
    examples = list_examples([tmp_path / "mine"])  # `digitrec finetune DIR` reads the folder as its manifest
    assert [(e.path, e.label) for e in examples] == [
        (tmp_path / "mine" / saved.path, 1),
        (tmp_path / "mine" / photo.path, 7),
    ]
    assert collector.counts() == {"digits": 2, "numbers": 1}


@pytest.mark.parametrize(
    "predicted, kept",
    [
        ('=HYPERLINK("http://evil.example")', ""),  # a spreadsheet would run it: CSV injection
        ("@SUM(A1)+7", "1 7"),
        ("20\n24", "20 24"),  # a reading of two lines stays one row
        ("20 / 24", "20 24"),  # as the page shows two lines
        ("-7.50", "-7.50"),
        ("?", ""),
    ],
)
def test_what_the_model_had_said_is_kept_as_plain_digits(predicted, kept, tmp_path):
    Collector(tmp_path).add(SEVEN, "7", predicted=predicted)
    assert rows(tmp_path / "manifest.csv") == [{"path": ANY, "label": "7", "predicted": kept}]


@pytest.mark.parametrize(
    "label, kind, message",
    [
        ("12", "digit", "the label must be one digit 0-9, not '12'"),
        ("x", "digit", "not 'x'"),
        ("", "digit", "not ''"),
        ("\u0663", "digit", "one digit 0-9"),  # Arabic-Indic three: str.isdigit() says yes
        ("1,7", "number", "the digits of the number"),
        ("1" * 33, "number", "1 to 32 of 0-9"),
        ("7", "letter", "kind must be 'digit' or 'number'"),
    ],
)
def test_labels_that_are_not_digits_are_refused_and_nothing_is_kept(label, kind, message, tmp_path):
    collector = Collector(tmp_path)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        collector.add(SEVEN, label, kind)
    assert list(tmp_path.iterdir()) == []


def test_images_that_are_not_images_or_too_large_are_refused(tmp_path):
    collector = Collector(tmp_path)
    with pytest.raises(ImageError, match="not an image"):
        collector.add(b"<svg></svg>", "7")
    with pytest.raises(ImageError):
        collector.add(SEVEN[: len(SEVEN) // 2], "7")  # cut short: the header reads, the pixels do not
    with pytest.raises(TooLarge, match=f"the limit is {MAX_IMAGE_BYTES}"):
        collector.add(SEVEN + b"\0" * MAX_IMAGE_BYTES, "7")
    # A blank pad, an all-black one, a transparent one: nothing finetune could learn (it skipped
    # them and exited 1; an audit).
    transparent = np.zeros((280, 280, 4), np.uint8)
    for blank in (np.full((280, 280), 255, np.uint8), np.zeros((280, 280), np.uint8), transparent):
        for kind, label in (("digit", "7"), ("number", "75")):
            with pytest.raises(ImageError, match="no ink found"):
                collector.add(png(blank), label, kind)
    assert list(tmp_path.iterdir()) == []


def test_a_manifest_edited_by_hand_keeps_its_rows(tmp_path):
    (tmp_path / "manifest.csv").write_text("path,label\nold.png,3")  # no last newline
    Collector(tmp_path).add(SEVEN, "7")
    got = rows(tmp_path / "manifest.csv")
    assert [r["label"] for r in got] == ["3", "7"] and got[0]["path"] == "old.png"


def test_a_collect_folder_removed_while_serving_is_made_again(tmp_path):
    """It answered 507 "cannot check the free space" to every correction (an audit)."""
    import shutil

    collector = Collector(tmp_path / "mine")
    shutil.rmtree(tmp_path / "mine")
    saved = collector.add(SEVEN, "7")
    assert (tmp_path / "mine" / saved.path).read_bytes() == SEVEN
    assert rows(tmp_path / "mine" / "manifest.csv") == [{"path": saved.path, "label": "7", "predicted": ""}]


def test_a_file_where_the_folder_should_be_is_a_clear_error(tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(DataError, match="is a file, not a folder"):
        Collector(tmp_path / "taken")


def test_concurrent_corrections_never_interleave_their_rows(tmp_path):
    """Two collectors on one folder (as `serve --workers 2` has: separate locks, one flock) and four
    threads each: every row whole, each naming its own file."""
    collectors = [Collector(tmp_path), Collector(tmp_path)]
    images = {str(d): png(draw_digit(1 if d % 2 else 7, size=200 + d)) for d in range(10)}

    def correct(worker: int):
        for k in range(12):
            label = str((worker + k) % 10)
            collectors[worker % 2].add(images[label], label, predicted="7")

    threads = [threading.Thread(target=correct, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = rows(tmp_path / "manifest.csv")
    assert len(got) == 96 and len({r["path"] for r in got}) == 96
    assert (tmp_path / "manifest.csv").read_text().count("path,label,predicted") == 1
    for r in got:
        assert r["predicted"] == "7" and (tmp_path / r["path"]).read_bytes() == images[r["label"]]


# ---------- the server ----------


def test_without_collect_there_is_no_corrections_endpoint(recognizer):
    from digitrec.web import create_app

    with TestClient(create_app(recognizer), base_url=LOCAL) as c:
        assert c.get("/v1/corrections").status_code == 404
        assert c.post("/v1/corrections", json={"image": data_url(SEVEN), "label": "1"}).status_code == 404


@pytest.mark.parametrize(
    "address, local",
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("::ffff:127.0.0.1", True),
     ("192.168.1.20", False), ("10.0.0.1", False), ("::ffff:192.168.1.2", False), ("testclient", False)],
)  # fmt: skip
def test_a_reload_is_only_taken_from_this_machine(recognizer, tmp_path, address, local):
    from digitrec.web import create_app

    with TestClient(create_app(recognizer), base_url=LOCAL, client=(address, 5000)) as c:
        response = c.post("/v1/reload", json={"model": str(tmp_path / "missing.onnx")})
    if local:  # got past the address check: the file is missing
        assert response.status_code == 422 and "missing.onnx" in response.json()["detail"]
    else:
        assert response.status_code == 403
        assert response.json()["detail"] == "a reload is only accepted from the machine the server runs on"


@pytest.fixture(scope="module")
def always_three(tmp_path_factory) -> Path:
    """A model that answers 3 whatever it sees, with a card that names it."""
    bias = np.full(10, -5.0)
    bias[3] = 5.0
    path = tmp_path_factory.mktemp("models") / "three.onnx"
    return write_linear_onnx(path, np.zeros((784, 10)), bias, card={"name": "always-three"})


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A real `digitrec serve --collect DIR` (with its slow-work processes)."""
    root = tmp_path_factory.mktemp("served")
    port = free_port()
    process = start_server(port, root / "serve.log", "--collect", str(root / "mine"))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process)
        yield url, root / "mine"
    finally:
        stop_server(process)


def test_the_server_saves_corrections_and_refuses_bad_ones(served):
    url, folder = served
    assert httpx.get(f"{url}/v1/corrections").json() == {"digits": 0, "numbers": 0}
    ok = httpx.post(f"{url}/v1/corrections", json={"image": data_url(SEVEN), "label": "1", "predicted": "7"})
    assert ok.status_code == 201 and ok.json()["label"] == "1" and ok.json()["kind"] == "digit"
    assert (folder / ok.json()["path"]).read_bytes() == SEVEN
    refusals = [
        ({"json": {"image": data_url(SEVEN), "label": "12"}}, 422, "the label must be one digit 0-9, not '12'"),
        ({"json": {"image": data_url(SEVEN)}}, 422, "label: Field required"),
        ({"json": {"image": "not base64!", "label": "1"}}, 422, "image: not valid base64"),
        ({"json": {"image": data_url(b"GIF89a" + b"\0" * 40), "label": "1"}}, 422, "image"),
        ({"json": {"image": data_url(png(np.full((280, 280), 255, np.uint8))), "label": "1"}}, 422, "no ink found"),
        ({"content": b"7", "headers": {"content-type": "text/plain"}}, 415, "multipart/form-data"),
        # multipart, as the page sends an upload: the same checks of the label and the image
        ({"files": {"file": ("7.png", SEVEN)}}, 422, "label: Field required"),
        ({"files": {"file": ("7.png", SEVEN)}, "data": {"label": "x"}}, 422, "the label must be one digit 0-9, not 'x'"),
        ({"files": {"file": ("7.png", SEVEN)}, "data": {"label": "12"}}, 422, "the label must be one digit 0-9"),
        ({"files": [("file", ("a.png", SEVEN)), ("file", ("b.png", SEVEN))], "data": {"label": "7"}}, 422, "one image, not 2"),
        ({"files": {"file": ("7.gif", b"GIF89a" + b"\0" * 40)}, "data": {"label": "1"}}, 422, "image"),
        ({"files": {"file": ("7.png", SEVEN)}, "data": {"label": "1", "predicted": "9" * 5000}}, 422, "predicted: longer than"),
        ({"data": {"label": "1"}}, 415, "multipart/form-data"),
        ({"content": b"{" * 5000, "headers": {"content-type": "application/json"}}, 422, "body"),
        ({"content": b"x" * (21 << 20), "headers": {"content-type": "application/json"}}, 413, "too large"),
        # a page on another site may not write into the user's folder
        ({"json": {"image": data_url(SEVEN), "label": "1"}, "headers": {"origin": "http://evil.example"}}, 403, "cross-site"),
    ]  # fmt: skip
    for request, status, message in refusals:
        response = httpx.post(f"{url}/v1/corrections", **request, timeout=30)
        assert response.status_code == status, (request.get("json"), response.text)
        assert message in response.json()["detail"]
    assert httpx.get(f"{url}/v1/corrections").json() == {"digits": 1, "numbers": 0}
    assert len(rows(folder / "manifest.csv")) == 1


def test_an_uploaded_photo_is_kept_from_a_multipart_correction(served):
    """How the page sends an upload: the file itself and the fields beside it."""
    url, folder = served
    photo = photo_of_digit(7)
    fields = {"label": "71", "kind": "number", "predicted": "7"}
    ok = httpx.post(f"{url}/v1/corrections", files={"file": ("IMG_1234.JPG", photo)}, data=fields, timeout=30)
    assert ok.status_code == 201 and ok.json()["kind"] == "number", ok.text
    assert ok.json()["path"].endswith(".jpg") and (folder / ok.json()["path"]).read_bytes() == photo
    assert rows(folder / "numbers.csv")[-1] == {"path": ok.json()["path"], "text": "71", "predicted": "7"}


def test_a_reload_swaps_the_model_and_its_reading_workers(served, always_three, tmp_path):
    from digitrec.runtime import default_model_path

    url, _ = served
    # "71", not "17": the shipped line reader reads this canvas "17" as "7", and held to that, the
    # three-only model's reader may leave the 1 out (skip_held); "71" it reads whole.
    strip = {"file": ("71.png", png(np.hstack([draw_digit(7), draw_digit(1)])))}
    assert httpx.post(f"{url}/v1/read", files=strip, timeout=30).json()["readings"][0]["text"] == "71"

    response = httpx.post(f"{url}/v1/reload", json={"model": str(always_three)}, timeout=60)
    assert response.status_code == 200 and response.json() == {"model": "always-three", "previous": "digitrec-cnn-mix"}
    assert httpx.get(f"{url}/healthz").json()["model"] == "always-three"
    assert httpx.post(f"{url}/v1/predict", files={"file": ("7.png", SEVEN)}).json()["predictions"][0]["digit"] == 3
    # reading runs in the worker processes: they were swapped too
    assert httpx.post(f"{url}/v1/read", files=strip, timeout=30).json()["readings"][0]["text"] == "33"

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    refused = httpx.post(f"{url}/v1/reload", json={"model": str(broken)}, timeout=60)
    assert refused.status_code == 422 and "the model in use is unchanged" in refused.json()["detail"]
    assert httpx.get(f"{url}/healthz").json()["model"] == "always-three"

    back = httpx.post(f"{url}/v1/reload", json={"model": str(default_model_path())}, timeout=60)
    assert back.json() == {"model": "digitrec-cnn-mix", "previous": "always-three"}
    assert httpx.post(f"{url}/v1/predict", files={"file": ("7.png", SEVEN)}).json()["predictions"][0]["digit"] == 7
    assert httpx.post(f"{url}/v1/read", files=strip, timeout=30).json()["readings"][0]["text"] == "71"


def test_a_request_that_meets_workers_closed_by_a_reload_is_answered_by_the_new_ones():
    """The slow-work processes a reload replaces are closed while a request may be on its way to
    them: the new workers answer it (it was a 503 "retry", which API clients do not do, and
    serve.md says requests keep being answered; an audit). Closed as the server stops, with no
    successor, it gets a 503, not a 500."""
    from fastapi import HTTPException

    from digitrec.runtime import default_model_path
    from digitrec.web.workers import SlowWorkers

    old, new = SlowWorkers(default_model_path(), 0.0, 1), SlowWorkers(default_model_path(), 0.0, 1)
    try:
        old.close(successor=new)
        assert old.answer("predict", [("7.png", SEVEN)], False)[0]["digit"] == 7
    finally:
        new.close(wait=True)
    with pytest.raises(HTTPException) as refused:
        new.answer("predict", [("7.png", SEVEN)], False)
    assert refused.value.status_code == 503 and "stopping" in refused.value.detail


def test_finetune_on_a_collect_folder_with_only_numbers_says_how_to_use_them(tmp_path):
    from digitrec.tune.data import list_examples

    Collector(tmp_path).add(png(np.hstack([draw_digit(1), draw_digit(7)])), "17", kind="number")
    with pytest.raises(DataError, match=f"its numbers go in with --numbers {tmp_path / 'numbers.csv'}"):
        list_examples([tmp_path])


def test_finetune_on_a_collect_folder_names_the_numbers_it_leaves_unused(tmp_path):
    """Digits and numbers corrected: `finetune DIR` learns the digits and says how to add the
    numbers (it left them out without a word; an audit)."""
    from digitrec.tune import finetune

    collector = Collector(tmp_path)
    collector.add(SEVEN, "7")
    collector.add(png(np.hstack([draw_digit(1), draw_digit(7)])), "17", kind="number")
    warnings: list[str] = []
    with pytest.raises(DataError, match="--out must end in .onnx"):  # stops before any work
        finetune([tmp_path], tmp_path / "mine.txt", warn=warnings.append)
    assert warnings == [
        f"{tmp_path / 'numbers.csv'} is not used: the numbers corrected there go in with --numbers {tmp_path / 'numbers.csv'}"
    ]


def test_with_several_processes_corrections_are_kept_and_a_reload_is_refused(tmp_path):
    """`serve --workers 2 --collect DIR`: each process saves into DIR (one manifest, whole rows); a
    reload would reach one process of two, so it is refused and says what to do."""
    port = free_port()
    process = start_server(port, tmp_path / "serve.log", "--workers", "2", "--collect", str(tmp_path / "mine"))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process, timeout=60)
        for label in "0123456789":
            saved = httpx.post(f"{url}/v1/corrections", json={"image": data_url(SEVEN), "label": label}, timeout=30)
            assert saved.status_code == 201, saved.text
        refused = httpx.post(f"{url}/v1/reload", timeout=30)
        assert refused.status_code == 409 and "runs 2 processes" in refused.json()["detail"]
    finally:
        stop_server(process)
    assert [r["label"] for r in rows(tmp_path / "mine" / "manifest.csv")] == list("0123456789")


def test_corrections_stop_before_the_disk_fills(recognizer, tmp_path, monkeypatch):
    import shutil as real_shutil

    from digitrec.web import collect, create_app

    usage = real_shutil.disk_usage(tmp_path)
    nearly_full = type(usage)(usage.total, usage.total - 100 * 2**20, 100 * 2**20)
    monkeypatch.setattr(collect.shutil, "disk_usage", lambda path: nearly_full)
    monkeypatch.delenv("DIGITREC_COLLECT_RESERVE_MB")  # the default reserve
    with TestClient(create_app(recognizer, collect=tmp_path / "mine"), base_url=LOCAL) as c:
        response = c.post("/v1/corrections", json={"image": data_url(SEVEN), "label": "1"})
    assert response.status_code == 507
    assert response.json()["detail"] == (
        "the correction could not be saved: the disk holding the collect folder has 100 MiB free; "
        "corrections stop below 512 MiB (DIGITREC_COLLECT_RESERVE_MB sets this)"
    )
    assert list((tmp_path / "mine").iterdir()) == []


def test_the_reserve_is_set_in_mib_and_a_bad_one_is_refused(tmp_path, monkeypatch):
    import shutil as real_shutil

    from digitrec.web import collect

    usage = real_shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        collect.shutil, "disk_usage", lambda path: type(usage)(10**12, 10**12 - 200 * 2**20, 200 * 2**20)
    )
    monkeypatch.setenv("DIGITREC_COLLECT_RESERVE_MB", "100")
    assert Collector(tmp_path / "small").add(SEVEN, "7").label == "7"  # 200 MiB free, 100 kept
    monkeypatch.setenv("DIGITREC_COLLECT_RESERVE_MB", "300")
    with pytest.raises(collect.DiskFull, match="200 MiB free; corrections stop below 300 MiB"):
        Collector(tmp_path / "small").add(SEVEN, "7")
    # Free space over the reserve, but not by the image's size: the message said "1 MiB free;
    # corrections stop below 1 MiB".
    monkeypatch.setenv("DIGITREC_COLLECT_RESERVE_MB", "1")
    monkeypatch.setattr(collect.shutil, "disk_usage", lambda path: type(usage)(10**12, 10**12, 2**20 + 100))
    with pytest.raises(collect.DiskFull) as info:
        Collector(tmp_path / "small").add(SEVEN, "7")
    assert str(info.value) == (
        f"the disk holding the collect folder has 1.0 MiB free: this image's {len(SEVEN):,} bytes would leave "
        "less than the 1 MiB corrections keep free (DIGITREC_COLLECT_RESERVE_MB sets this)"
    )
    monkeypatch.setenv("DIGITREC_COLLECT_RESERVE_MB", "lots")
    with pytest.raises(DataError, match=r"DIGITREC_COLLECT_RESERVE_MB='lots': give the free space to keep, in MiB"):
        Collector(tmp_path / "small")
    monkeypatch.setenv(
        "DIGITREC_COLLECT_RESERVE_MB", "9" * 5000
    )  # over int()'s 4,300 digits: the whole value was shown
    with pytest.raises(DataError) as info:
        Collector(tmp_path / "small")
    assert str(info.value) == (
        f"DIGITREC_COLLECT_RESERVE_MB='{'9' * 40}'...: give the free space to keep, in MiB (a whole number, 0 or more)"
    )


def test_serve_help_names_the_reserve_and_its_variable(capsys):
    from conftest import run_main

    from digitrec.web.collect import MIN_FREE_BYTES, RESERVE_VARIABLE

    code, out, _ = run_main(["serve", "--help"], capsys)
    text = " ".join(out.split())  # click wraps the help
    assert code == 0 and f"less than {MIN_FREE_BYTES // 2**20} MiB free" in text and RESERVE_VARIABLE in text
