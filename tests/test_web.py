"""The HTTP API: every endpoint and every error status, in-process (TestClient), against a real
`digitrec serve` process, and fuzzed from its own OpenAPI schema."""

from __future__ import annotations

import base64
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import cv2
import httpx
import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from web_helpers import LOCAL, draw_digit, free_port, photo_of_digit, png, start_server, stop_server, wait_until_up

from digitrec.runtime import Recognizer
from digitrec.web import create_app
from digitrec.web.limits import Limits

ONE, SEVEN = png(draw_digit(1)), png(draw_digit(7))


@pytest.fixture(scope="module")
def strict(recognizer):
    """An app with tiny limits, so each limit is cheap to hit."""
    limits = Limits(max_body_bytes=50_000, max_images=2)
    with TestClient(create_app(recognizer, limits=limits), base_url=LOCAL) as c:
        yield c


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ---------- what works ----------


def test_healthz_names_the_model(client, recognizer):
    assert client.get("/healthz").json() == {"status": "ok", "model": recognizer.card.get("name", "unnamed")}


def test_model_endpoint_answers_what_a_client_needs_of_the_model_card(client, recognizer):
    response = client.get("/v1/model")
    assert response.status_code == 200
    card = response.json()
    assert card["name"] == recognizer.card["name"] and card["labels"] == [str(d) for d in range(10)]
    assert card["input"] == recognizer.card["input"] and card["test_accuracy"] > 0.99
    # Not how or where it was made: no commit, library versions, training config or history.
    assert not {"commit", "torch", "config", "history", "data_sha256", "trained", "created"} & set(card)


def test_the_app_loads_the_model_itself_at_start_up():
    with TestClient(create_app(), base_url=LOCAL) as c:
        assert c.get("/healthz").status_code == 200
        assert c.post("/v1/predict", files={"file": ("7.png", SEVEN)}).json()["predictions"][0]["digit"] == 7


def test_multipart_files_are_answered_in_order(client):
    files = [
        ("file", ("a.png", ONE, "image/png")),
        ("file", ("b.png", SEVEN, "image/png")),
        ("file", ("c.png", ONE, "application/octet-stream")),
    ]
    response = client.post("/v1/predict", files=files)
    assert response.status_code == 200
    answers = response.json()["predictions"]
    assert [a["digit"] for a in answers] == [1, 7, 1]
    for a in answers:
        assert a["confidence"] > 0.5 and a["top"][0] == [a["digit"], a["confidence"]]
        assert len(a["probabilities"]) == 10 and sum(a["probabilities"]) == pytest.approx(1, abs=1e-4)
        assert a["probabilities"][a["digit"]] == a["confidence"]
        assert "image28" not in a and "error" not in a


def test_json_base64_and_data_urls_with_the_image_the_model_saw(client, recognizer):
    body = {"images": [b64(SEVEN), "data:image/png;base64," + b64(ONE)]}
    answers = client.post("/v1/predict?image28=true", json=body).json()["predictions"]
    assert [a["digit"] for a in answers] == [7, 1]
    seen = cv2.imdecode(np.frombuffer(base64.b64decode(answers[0]["image28"]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert seen.shape == (28, 28)
    np.testing.assert_array_equal(seen, recognizer.predict(SEVEN).image28)


def test_a_one_megapixel_photo(client):
    photo = photo_of_digit(7)
    assert cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (800, 1280)
    answer = client.post("/v1/predict", files={"file": ("photo.jpg", photo, "image/jpeg")}).json()
    assert answer["predictions"][0]["digit"] == 7


def test_one_bad_image_does_not_stop_the_others(client):
    body = {"images": [b64(SEVEN), b64(b"this is not an image"), "@@not base64@@", b64(ONE)]}
    response = client.post("/v1/predict", json=body)
    assert response.status_code == 200
    answers = response.json()["predictions"]
    assert answers[0]["digit"] == 7 and answers[3]["digit"] == 1
    assert set(answers[1]) == {"error"} and "not an image" in answers[1]["error"]
    assert answers[2] == {"error": "not valid base64"}


def test_answers_say_whether_they_are_sure_and_why_not(client):
    """The default threshold (doubt.DEFAULT_MIN_CONFIDENCE) is on; a blank image's error has the
    reason 'no ink'; /v1/model tells the page the threshold."""
    blank = png(np.full((120, 120), 245, np.uint8))
    files = [("file", ("7.png", SEVEN)), ("file", ("blank.png", blank))]
    seven, empty = client.post("/v1/predict", files=files).json()["predictions"]
    assert seven["digit"] == 7 and seven["confidence"] >= 0.93
    assert seven["uncertain"] is False and seven["reason"] is None
    assert empty == {"error": empty["error"], "reason": "no ink"} and empty["error"].startswith("no ink found")
    assert client.get("/v1/model").json()["min_confidence"] == 0.93
    schema = client.get("/openapi.json").json()["components"]["schemas"]["PredictionOut"]["properties"]
    assert {"uncertain", "reason"} <= set(schema)


def test_serve_min_confidence_reaches_every_worker_process(tmp_path):
    """`serve --min-confidence 1 --workers 2`: every answer is flagged 'low confidence', whichever
    process answers; the guesses stay in `top`."""
    port = free_port()
    server = start_server(port, tmp_path / "serve.log", "--workers", "2", "--min-confidence", "1")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, server)
        with httpx.Client(base_url=url, timeout=30) as http:
            for _ in range(4):  # new connections: both processes get some
                answer = http.post("/v1/predict", files={"file": ("7.png", SEVEN)}, headers={"connection": "close"})
                (p,) = answer.json()["predictions"]
                assert (p["digit"], p["uncertain"], p["reason"], p["top"][0][0]) == (None, True, "low confidence", 7)
            assert http.get("/v1/model").json()["min_confidence"] == 1.0
    finally:
        stop_server(server)


def test_the_page_and_its_files_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<canvas id="pad"' in page.text and 'capture="environment"' in page.text
    for asset in ("/static/app.js", "/static/app.css", "/static/favicon.svg"):
        assert client.get(asset).status_code == 200, asset
    for text in (page.text, client.get("/static/app.js").text, client.get("/static/app.css").text):
        assert "http://" not in text and "https://" not in text  # nothing from outside


def test_openapi_schema_and_docs_without_a_cdn(client):
    schema = client.get("/openapi.json").json()
    assert {"/v1/predict", "/v1/read", "/v1/model", "/healthz"} <= set(schema["paths"])
    body = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    docs = client.get("/docs")
    assert docs.status_code == 200 and "https://" not in docs.text
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200


# ---------- every error status ----------


def blank_png(width: int, height: int) -> bytes:
    return png(np.full((height, width), 255, np.uint8))


def png_claiming_size(width: int, height: int) -> bytes:
    """A small real PNG whose header claims another size (a 'decompression bomb' header)."""
    data = bytearray(blank_png(30, 30))
    ihdr = bytearray(data[12:29])  # chunk type + 13 bytes of IHDR data
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


@pytest.mark.parametrize(
    "kwargs, status, message",
    [
        # 413: over the body limit, announced by Content-Length or found while reading a chunked body
        (dict(files={"file": ("big.png", b"\0" * 60_000)}), 413, "too large"),
        (
            dict(content=iter([b"{" + b" " * 30_000] * 3), headers={"content-type": "application/json"}),
            413,
            "too large",
        ),
        # 415: a body type the endpoint does not take
        (dict(content=b"hello", headers={"content-type": "text/plain"}), 415, "multipart/form-data"),
        (dict(content=b"hello"), 415, "not a body without a Content-Type"),
        # 422: no usable image
        (dict(files={"file": ("x.png", b"this is not an image")}), 422, "not an image"),
        (dict(files={"file": ("empty.png", b"")}), 422, "empty"),
        (dict(files={"file": ("huge.png", png_claiming_size(10_000, 5_000))}), 422, "image too large (10000x5000"),
        (dict(files={"file": ("blank.png", blank_png(50, 50))}), 422, "ink"),
        (dict(json={"images": ["@@"]}), 422, "not valid base64"),
        (dict(content=b"{not json", headers={"content-type": "application/json"}), 422, "not valid JSON"),
        (dict(json={"pictures": []}), 422, "images: Field required"),
        (dict(json={"images": []}), 422, "at least 1 item"),
        (dict(json={"images": [b64(ONE)] * 3}), 422, "too many images (3; at most 2"),
        (dict(files={"file": (None, "text, not a file")}), 422, "must be a file upload"),
        (dict(data={"file": "text"}), 415, "not application/x-www-form-urlencoded"),
        (dict(files={"picture": ("7.png", SEVEN)}), 422, "field named 'file'"),
        (dict(params={"image28": "perhaps"}, json={"images": [b64(ONE)]}), 422, "query.image28"),
        # 400: a multipart body that does not parse
        (dict(content=b"--x\r\ngarbage", headers={"content-type": "multipart/form-data"}), 400, ""),
        (  # cut off: the part and its image are there, the closing boundary is not
            dict(
                content=b'--b\r\nContent-Disposition: form-data; name="file"; filename="7.png"\r\n\r\n' + SEVEN,
                headers={"content-type": "multipart/form-data; boundary=b"},
            ),
            400,
            "breaks off before its closing boundary",
        ),
    ],
)
def test_bad_requests_get_a_clear_4xx(strict, kwargs, status, message):
    response = strict.post("/v1/predict", **kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_several_bad_images_are_all_named(client):
    files = [("file", ("a.txt", b"nope")), ("file", ("b.png", blank_png(40, 40)))]
    detail = client.post("/v1/predict", files=files).json()["detail"]
    assert detail.startswith("a.txt: not an image") and "b.png: " in detail


def test_unknown_paths_and_methods(client):
    assert client.get("/v2/predict").status_code == 404
    assert client.get("/v1/predict").status_code == 405
    assert client.post("/healthz").status_code == 405


def test_read_answers_the_number_and_each_digit_box(client):
    number = png(np.hstack([draw_digit(1), draw_digit(7), draw_digit(7)]))  # "177", 840x280
    files = [("file", ("177.png", number)), ("file", ("blank.png", blank_png(60, 60)))]
    response = client.post("/v1/read", files=files)
    assert response.status_code == 200
    reading, blank = response.json()["readings"]
    assert reading["text"] == "177" and reading["lines"] == ["177"]
    assert [d["digit"] for d in reading["digits"]] == [1, 7, 7]
    xs = [d["box"][0] for d in reading["digits"]]
    assert xs == sorted(xs) and 0 <= xs[0] < 280 <= xs[1] < 560 <= xs[2] < 840  # one box per drawn digit
    assert 0.5 < reading["confidence"] <= 1
    assert blank == {"error": "no digits found"}


def test_read_with_nothing_readable_is_a_422(client):
    response = client.post("/v1/read", json={"images": [b64(blank_png(60, 60))]})
    assert response.status_code == 422 and response.json() == {"detail": "no digits found"}


class CountingRecognizer(Recognizer):
    """The real Recognizer, noting how many predictions run at once (each made to last 0.3 s)."""

    def __init__(self):
        super().__init__()
        self.running = self.most = 0
        self.lock = threading.Lock()

    def predict_many(self, images, top: int = 3):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.3)
        try:
            return super().predict_many(images, top)
        finally:
            with self.lock:
                self.running -= 1


@pytest.mark.parametrize("side, heavy", [(100, False), (300, True)])
def test_heavy_requests_take_turns_while_light_ones_run_side_by_side(side, heavy):
    recognizer = CountingRecognizer()
    image = png(cv2.resize(draw_digit(7), (side, side)))  # heavy: over 50,000 pixels
    with TestClient(create_app(recognizer, limits=Limits(heavy_pixels=50_000)), base_url=LOCAL) as c:
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: c.post("/v1/predict", files={"file": ("7.png", image)}), range(4)))
    assert [a.json()["predictions"][0]["digit"] for a in answers] == [7] * 4
    assert recognizer.most == 1 if heavy else recognizer.most >= 2


def test_light_requests_queue_for_a_thread_per_core_instead_of_sharing_the_cores():
    """Six drawings at once: `fast_threads` (2) of them are answered at a time and the rest queue
    in order, where the shared thread pool ran all six side by side (each slower, the tail most)."""
    recognizer = CountingRecognizer()
    with TestClient(create_app(recognizer, limits=Limits(fast_threads=2)), base_url=LOCAL) as c:
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: c.post("/v1/predict", files={"file": ("7.png", SEVEN)}), range(6)))
    assert [a.json()["predictions"][0]["digit"] for a in answers] == [7] * 6
    assert recognizer.most == 2


# ---------- a real server ----------


def test_real_server_answers_concurrent_clients(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, tmp_path / "serve.log")
    try:
        wait_until_up(url, server)
        with httpx.Client(base_url=url, timeout=30) as http:

            def ask(i: int) -> int | None:
                digit, image = (1, ONE) if i % 2 else (7, SEVEN)
                answer = http.post("/v1/predict", files={"file": (f"{i}.png", image)}).json()
                return answer["predictions"][0]["digit"] == digit

            with ThreadPoolExecutor(16) as pool:
                assert all(pool.map(ask, range(64)))
            # A chunked upload over the limit (20 MB) is cut off with a 413, and the server goes on.
            too_big = http.post(
                "/v1/predict", content=iter([b"\0" * 1_048_576] * 21), headers={"content-type": "application/json"}
            )
            assert too_big.status_code == 413
        assert httpx.get(f"{url}/healthz").status_code == 200
    finally:
        stop_server(server)


def test_several_worker_processes_share_the_port(tmp_path):
    port = free_port()
    server = start_server(port, tmp_path / "serve.log", "--workers", "2")
    try:
        wait_until_up(f"http://127.0.0.1:{port}", server)
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/predict", files={"file": ("7.png", SEVEN)}, timeout=30)
        assert answer.json()["predictions"][0]["digit"] == 7
    finally:
        stop_server(server)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_server_stopped_with_sigterm_says_nothing_about_leaks(workers, tmp_path):
    """systemd, docker and kill stop a server with SIGTERM; uvicorn then raises the signal again,
    which ends the process before any exit handler. The reading workers' queues must be freed
    before that, or Python's resource tracker prints a warning about leaked semaphores."""
    import signal

    port, log = free_port(), tmp_path / "serve.log"
    server = start_server(port, log, "--workers", workers)
    try:
        wait_until_up(f"http://127.0.0.1:{port}", server, timeout=60)
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/read", files={"file": ("7.png", SEVEN)}, timeout=30)
        assert answer.json()["readings"][0]["text"] == "7"  # read in a worker process
    finally:
        stop_server(server)
    assert server.returncode in (-signal.SIGTERM, 0)  # one process re-raises it; several's supervisor exits 0
    time.sleep(0.5)  # the resource tracker, a process of its own, writes its warning as it ends
    said = log.read_text()
    assert "leaked" not in said and "Traceback" not in said, said


def test_the_listening_socket_is_tcp_so_answers_are_not_held_back_by_nagle():
    from digitrec.web.server import listen

    with listen("127.0.0.1", 0) as sock:
        # asyncio sets TCP_NODELAY on accepted connections only when the listening socket says TCP.
        assert sock.proto == socket.IPPROTO_TCP and sock.get_inheritable()


def test_serve_on_a_busy_port_is_a_clear_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "digitrec", "serve", "--port", str(port)], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1
    assert f"Error: cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_a_missing_model_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "digitrec", "serve", "--model", str(tmp_path / "no.onnx")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Error: model file not found" in result.stderr and "Traceback" not in result.stderr


def test_serve_with_a_model_missing_the_files_its_card_names_is_a_clear_error(tmp_path):
    # The shipped model.onnx copied alone: its card names the reader's digit model beside it. It
    # was "serving ...", then uvicorn's traceback of the lifespan and exit 3.
    import shutil

    from digitrec.runtime import default_model_path

    shutil.copy(default_model_path(), tmp_path / "model.onnx")
    result = subprocess.run(
        [sys.executable, "-m", "digitrec", "serve", "--port", "0", "--model", str(tmp_path / "model.onnx")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr and "serving" not in result.stderr
    assert "Error: " in result.stderr and "reader's digit model reader_digits.onnx, which is not there" in result.stderr


# ---------- broken images: whatever the decoder meets, never a 500 ----------


@given(
    cut=st.integers(0, len(SEVEN)),
    flips=st.lists(st.tuples(st.integers(0, len(SEVEN) - 1), st.integers(0, 255)), max_size=8),
)
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_corrupted_and_truncated_images_are_a_4xx_or_an_answer(client, cut, flips):
    data = bytearray(SEVEN)
    for at, value in flips:
        data[at] = value
    for endpoint in ("/v1/predict", "/v1/read"):
        response = client.post(endpoint, files={"file": ("x.png", bytes(data[:cut]))})
        assert response.status_code in (200, 422), response.text
        assert response.json()


# ---------- the OpenAPI schema, fuzzed: no input makes a 500 ----------

# Schemathesis calls the app as Host: testserver.
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(allowed_hosts=("testserver",)))


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_server_error(case):
    case.call_and_validate(checks=[not_a_server_error, status_code_conformance, response_schema_conformance])
