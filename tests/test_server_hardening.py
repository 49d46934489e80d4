"""The server against hostile clients (issue 14): deeply nested JSON, work that would block the
event loop or run past its deadline, too many requests at once, foreign Host headers and cross-site
POSTs, and, against a real `digitrec serve`, slow-loris and idle-connection floods."""

from __future__ import annotations

import base64
import logging
import os
import resource
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from web_helpers import LOCAL, draw_digit, free_port, png, start_server, stop_server, wait_until_up

import digitrec.web.app as web_app
from digitrec.runtime import Recognizer
from digitrec.web import create_app
from digitrec.web.guard import allowed_hosts_for, host_name
from digitrec.web.limits import Limits
from digitrec.web.workers import SLOW_NICENESS, lower_priority

SEVEN = png(draw_digit(7))


class SlowRecognizer(Recognizer):
    """The real Recognizer, each prediction made to last `seconds`."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def predict_many(self, images, top: int = 3):
        time.sleep(self.seconds)
        return super().predict_many(images, top)


def timed_get(c, path: str = "/healthz") -> tuple[int, float]:
    start = time.perf_counter()
    status = c.get(path).status_code
    return status, time.perf_counter() - start


# ---------- finding 6: JSON nested 1,000 deep ----------


def test_multipart_bodies_are_parsed_off_the_event_loop(client, monkeypatch):
    # Starlette's form parser ran on the event loop: a 17 MB upload stalled every other request.
    import asyncio

    from digitrec.web import uploads

    seen = []
    parse = uploads._from_multipart

    def recording(*args):
        try:
            asyncio.get_running_loop()
            seen.append("event loop")
        except RuntimeError:
            seen.append("thread")
        return parse(*args)

    monkeypatch.setattr(uploads, "_from_multipart", recording)
    big = SEVEN + b"\0" * uploads.INLINE_PARSE_BYTES  # trailing bytes after IEND: still the same PNG
    for image in (SEVEN, big):
        answer = client.post("/v1/predict", files=[("file", ("7.png", image)), ("note", (None, "hi"))])
        assert answer.status_code == 200 and answer.json()["predictions"][0]["digit"] == 7
    assert seen == ["event loop", "thread"]  # a small body is cheaper to parse than to hand over


def test_a_flood_of_multipart_parts_is_a_400(client):
    body = b"".join(b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n' for _ in range(1000)) + b"--b--\r\n"
    answer = client.post("/v1/predict", content=body, headers={"content-type": "multipart/form-data; boundary=b"})
    assert answer.status_code == 400 and "too many parts" in answer.json()["detail"]


def test_300_images_in_one_upload_are_told_the_limit_on_images_not_only_on_parts(client):
    """`curl -F file=@... ` x 300 (a folder): the answer named only the 256 parts, and the user who
    sent 250 next was told of the 64 images then."""
    answer = client.post("/v1/predict", files=[("file", (f"{i}.png", SEVEN)) for i in range(300)])
    assert answer.status_code == 400
    assert answer.json()["detail"] == (
        "too many parts in the multipart body (at most 256; a request takes at most 64 images: send the "
        "others in more requests)"
    )


@pytest.mark.parametrize("body", [b"[" * 1000 + b"]" * 1000, b'{"images": ' + b"[" * 1000 + b"]" * 1000 + b"}"])
def test_deeply_nested_json_is_a_422_without_a_stack_trace(client, caplog, body):
    with caplog.at_level(logging.DEBUG):
        response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("the body is not valid JSON (recursion limit exceeded")
    assert not [r for r in caplog.records if r.exc_info]


# ---------- never decode on the event loop; a deadline per request ----------


def test_a_slow_header_probe_does_not_block_the_event_loop(recognizer, monkeypatch):
    # A decoder that takes 1.5 s on a hostile header (the PNG chunk flood took 11 s): it must run in
    # the thread pool, so /healthz answers meanwhile.
    def slow_image_pixels(data: bytes) -> int:
        time.sleep(1.5)
        return 784

    monkeypatch.setattr(web_app, "image_pixels", slow_image_pixels)
    with TestClient(create_app(recognizer), base_url=LOCAL) as c:
        with ThreadPoolExecutor(1) as pool:
            upload = pool.submit(c.post, "/v1/predict", files={"file": ("7.png", SEVEN)})
            time.sleep(0.3)  # the upload is being probed
            status, seconds = timed_get(c)
            assert status == 200 and seconds < 0.5
            assert upload.result().json()["predictions"][0]["digit"] == 7


def test_a_request_past_its_deadline_is_answered_at_once_and_the_server_goes_on():
    with TestClient(create_app(SlowRecognizer(2.0), limits=Limits(request_seconds=0.5)), base_url=LOCAL) as c:
        start = time.perf_counter()
        response = c.post("/v1/predict", files={"file": ("7.png", SEVEN)})
        assert time.perf_counter() - start < 1.5
        assert response.status_code == 422
        assert response.json() == {"detail": "too much work: these images took longer than the 0.5 s limit to process"}
        assert timed_get(c)[0] == 200


def test_an_abandoned_heavy_request_keeps_its_turn_until_its_thread_ends():
    # The thread cannot be killed; the heavy lane must stay taken while it runs, or abandoned heavy
    # work would pile up unbounded. The next heavy request waits for its turn: a 503 (busy).
    limits = Limits(request_seconds=0.4, heavy_pixels=100)
    post = lambda c: c.post("/v1/predict", files={"file": ("7.png", SEVEN)})  # noqa: E731
    with TestClient(create_app(SlowRecognizer(1.2), limits=limits), base_url=LOCAL) as c:
        assert post(c).status_code == 422  # its own work, past 0.4 s; its thread runs to 1.2 s
        busy = post(c)  # 0.4 s more, waiting for the lane the first thread holds
        assert busy.status_code == 503 and "busy with large images or reading" in busy.json()["detail"]
        time.sleep(0.6)  # the first thread is done: the lane is free again
    with TestClient(create_app(SlowRecognizer(0.1), limits=limits), base_url=LOCAL) as c:
        assert post(c).status_code == 200


class NiceRecording(Recognizer):
    """The real Recognizer, noting the OS niceness of the thread each call runs in."""

    def __init__(self):
        super().__init__()
        self.niceness = {}

    def _note(self, what: str):
        self.niceness[what] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def predict_many(self, images, top: int = 3):
        self._note("predict")
        return super().predict_many(images, top)

    def read(self, image, *args, **kwargs):
        self._note("read")
        return super().read(image, *args, **kwargs)


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="thread priorities are Linux's")
def test_reading_runs_at_a_lower_priority_than_predictions():
    recognizer = NiceRecording()
    with TestClient(create_app(recognizer), base_url=LOCAL) as c:
        assert c.post("/v1/predict", files={"file": ("7.png", SEVEN)}).status_code == 200
        assert c.post("/v1/read", files={"file": ("7.png", SEVEN)}).json()["readings"][0]["text"] == "7"
    assert recognizer.niceness["read"] == min(19, recognizer.niceness["predict"] + SLOW_NICENESS)


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="thread priorities are Linux's")
def test_slow_work_is_niced_relative_to_a_niced_server():
    """`nice -n 10 digitrec serve`: reading must still run after drawing. The slow lane's threads
    were set to nice 10 outright, the server's own level, so both ran at 10."""
    seen = []

    def started_at_nice_5():
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me, os.getpriority(os.PRIO_PROCESS, me) + 5)  # raising needs no rights
        before = os.getpriority(os.PRIO_PROCESS, me)
        lower_priority()
        seen.append((before, os.getpriority(os.PRIO_PROCESS, me)))

    thread = threading.Thread(target=started_at_nice_5)
    thread.start()
    thread.join()
    ((before, after),) = seen
    assert after == min(19, before + SLOW_NICENESS)


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="process priorities are Linux's")
def test_slow_work_runs_in_worker_processes_that_come_back_when_killed():
    # What `digitrec serve` does: reading holds the interpreter lock for long stretches, so it runs
    # in processes of its own (at a lower priority), never in the server's.
    recognizer = Recognizer(threads=1)
    with TestClient(create_app(recognizer, slow_processes=True), base_url=LOCAL) as c:
        workers = c.app.state.slow_workers
        pids = sorted(workers._pool._processes)
        assert len(pids) == 2 and os.getpid() not in pids
        for pid in pids:
            assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + SLOW_NICENESS)
        assert c.post("/v1/read", files={"file": ("7.png", SEVEN)}).json()["readings"][0]["text"] == "7"
        refused = c.post("/v1/read", files={"file": ("blank.png", png(np.full((64, 64), 255, np.uint8)))})
        assert refused.status_code == 422 and "no" in refused.json()["detail"]  # a Refusal crossed back
        os.kill(pids[0], signal.SIGKILL)
        # The request that meets the dead worker (this one, or the next, whenever the pool notices)
        # is a 503 and the pool starts again; after that every request is answered.
        statuses = [c.post("/v1/read", files={"file": ("7.png", SEVEN)}).status_code for _ in range(3)]
        assert set(statuses) <= {200, 503} and statuses.count(503) <= 1 and statuses[-1] == 200, statuses
        assert pids[0] not in c.app.state.slow_workers._pool._processes


def test_posts_past_the_in_flight_cap_are_a_503_at_once():
    with TestClient(create_app(SlowRecognizer(1.0), limits=Limits(max_in_flight=2)), base_url=LOCAL) as c:
        with ThreadPoolExecutor(3) as pool:
            post = lambda _: c.post("/v1/predict", files={"file": ("7.png", SEVEN)})  # noqa: E731
            statuses = sorted(r.status_code for r in pool.map(post, range(3)))
            assert timed_get(c)[0] == 200  # GETs are not counted
        assert statuses == [200, 200, 503]
        busy = c.post("/v1/predict", files={"file": ("7.png", SEVEN)})
        assert busy.status_code == 200  # the cap frees as requests end


def test_bodies_held_in_memory_are_capped_and_freed():
    # Bodies still arriving do not count as work, but their bytes count against the memory the cap
    # on work allowed (max_in_flight x max_body_bytes): here 2 x 100.
    import asyncio

    from fastapi import HTTPException

    from digitrec.web.guard import InFlightLimit

    async def app(scope, receive, send):  # reads its whole body, as an endpoint does
        while (await receive()).get("more_body"):
            pass

    guard = InFlightLimit(app, max_in_flight=2, max_body_bytes=100)
    scope = {"type": "http", "method": "POST", "headers": []}

    def chunks(*parts):
        queue = asyncio.Queue()
        for i, part in enumerate(parts):
            queue.put_nowait({"type": "http.request", "body": part, "more_body": i < len(parts) - 1})
        return queue

    async def scenario():
        first = asyncio.Queue()
        first.put_nowait({"type": "http.request", "body": b"x" * 150, "more_body": True})
        slow = asyncio.create_task(guard(scope, first.get, None))
        await asyncio.sleep(0)
        assert guard.held_bytes == 150 and guard.at_work == 0  # arriving: held, not at work
        with pytest.raises(HTTPException) as refused:
            await guard(scope, chunks(b"y" * 60, b"").get, None)
        assert refused.value.status_code == 503 and guard.held_bytes == 150
        await guard(scope, chunks(b"z" * 40, b"").get, None)  # fits beside it
        first.put_nowait({"type": "http.request", "body": b"", "more_body": False})
        await slow
        assert guard.held_bytes == 0 and guard.at_work == 0

    asyncio.run(scenario())


@pytest.mark.slow
def test_posts_still_sending_their_body_do_not_refuse_the_others(tmp_path):
    # The audit: 32 connections that sent a POST's head and then nothing (or a byte a second) made
    # every POST a 503 until --body-timeout closed them (60 s).
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, tmp_path / "serve.log", "--max-in-flight", "2", "--body-timeout", "30")
    try:
        wait_until_up(url, server)
        stalled = open_sockets(
            port,
            8,
            b"POST /v1/read HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"im',
        )
        time.sleep(0.5)
        answers = [httpx.post(f"{url}/v1/predict", files={"file": ("7.png", SEVEN)}, timeout=10) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200], answers[0].text
        assert answers[0].json()["predictions"][0]["digit"] == 7
        assert all(is_open(s) for s in stalled)  # still waiting for their bodies, not refused
        for s in stalled:
            s.close()
    finally:
        stop_server(server)


# ---------- finding 15: Host header, cross-site POSTs, /v1/model ----------


@pytest.mark.parametrize(
    "host, status",
    [
        ("localhost:8000", 200),
        ("127.0.0.1:8000", 200),
        ("[::1]:8000", 200),
        ("LOCALHOST", 200),
        ("evil.example", 400),
        ("evil.example:8000", 400),
        ("127.0.0.1.evil.example", 400),
        ("", 400),
    ],
)
def test_the_host_header_must_name_this_server(client, host, status):
    response = client.get("/v1/model", headers={"host": host})
    assert response.status_code == status
    if status == 400:
        assert "does not answer to the host name" in response.json()["detail"]


@pytest.mark.parametrize(
    "headers, status",
    [
        ({}, 200),  # curl and scripts send neither header
        ({"origin": "http://localhost"}, 200),  # the drawing page, same origin
        ({"origin": "http://localhost", "sec-fetch-site": "same-origin"}, 200),
        ({"sec-fetch-site": "none"}, 200),  # typed by the user
        ({"origin": "http://evil.example"}, 403),
        ({"origin": "http://localhost:3000"}, 403),  # same site, another origin
        ({"origin": "null"}, 403),  # a sandboxed frame or a data: page
        ({"sec-fetch-site": "cross-site"}, 403),
        ({"sec-fetch-site": "same-site", "origin": "http://localhost:3000"}, 403),
        ({"sec-fetch-site": "cross-site", "origin": "http://localhost"}, 403),
    ],
)
def test_cross_site_posts_are_refused(client, headers, status):
    body = {"images": [base64.b64encode(SEVEN).decode()]}
    response = client.post("/v1/predict", json=body, headers=headers)
    assert response.status_code == status, response.text
    if status == 403:
        assert "cross-site requests are refused" in response.json()["detail"]


def test_allowed_hosts_follow_the_address_bound_to():
    assert allowed_hosts_for("127.0.0.1") == ("127.0.0.1", "localhost", "::1")
    assert allowed_hosts_for("::1", ["digits.lan"]) == ("127.0.0.1", "localhost", "::1", "digits.lan")
    assert allowed_hosts_for("192.168.1.20") == ("127.0.0.1", "localhost", "::1", "192.168.1.20")
    assert allowed_hosts_for("0.0.0.0") is None  # every interface: any name, unless names are given
    assert allowed_hosts_for("0.0.0.0", ["Digits.LAN"]) == ("digits.lan",)
    assert [host_name(h) for h in ("a:1", "[::1]:80", "::1", "A")] == ["a", "::1", "::1", "a"]


@pytest.mark.slow
def test_serve_options_reach_every_worker(tmp_path):
    # --workers 2 hands the settings to each process through the environment.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(
        port, tmp_path / "serve.log", "--workers", "2", "--allowed-host", "digits.lan", "--request-timeout", "0.001"
    )
    try:
        wait_until_up(url, server)
        for _ in range(4):  # the connections land on either worker
            assert httpx.get(f"{url}/healthz", headers={"host": "digits.lan:8000"}).status_code == 200
            assert httpx.get(f"{url}/healthz", headers={"host": "other.lan"}).status_code == 400
            late = httpx.post(f"{url}/v1/predict", files={"file": ("7.png", SEVEN)}, timeout=10)
            assert late.status_code == 422 and "0.001 s limit" in late.json()["detail"]
    finally:
        stop_server(server)


def descendants(pid: int) -> set[int]:
    """The processes below `pid`, from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["terminate", "kill"])
def test_slow_work_processes_end_with_the_server(tmp_path, stop):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, tmp_path / "serve.log")
    try:
        wait_until_up(url, server)
        assert httpx.post(f"{url}/v1/read", files={"file": ("7.png", SEVEN)}, timeout=30).status_code == 200
        children = descendants(server.pid)
        assert len(children) >= 2  # the two slow-work processes (and spawn's resource tracker)
    finally:
        getattr(server, stop)()
        server.wait(timeout=15)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)]


# ---------- finding 7: slow and idle clients against a real server ----------


def open_sockets(port: int, count: int, send: bytes) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if send:
            s.sendall(send)
        sockets.append(s)
    return sockets


def closed_by_server(s: socket.socket, wait: float) -> bytes | None:
    """What the server sent before closing the socket, or None when it is still open after `wait`."""
    s.settimeout(wait)
    received = b""
    try:
        while chunk := s.recv(4096):
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return received


def is_open(s: socket.socket) -> bool:
    """Whether the server still holds `s` open (nothing to read yet, no end of stream)."""
    s.setblocking(False)
    try:
        return s.recv(4096) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


class HealthPoller:
    """Polls /healthz every 50 ms on a fresh connection; notes the longest answer time and failures."""

    def __init__(self, url: str):
        self.url, self.longest, self.failures = url, 0.0, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            start = time.perf_counter()
            try:
                status = httpx.get(f"{self.url}/healthz", timeout=5).status_code
                if status != 200:
                    self.failures.append(status)
            except httpx.HTTPError as exc:
                self.failures.append(repr(exc))
            self.longest = max(self.longest, time.perf_counter() - start)
            time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


@pytest.mark.slow
def test_slow_loris_clients_are_dropped_and_healthz_answers_meanwhile(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, tmp_path / "serve.log", "--header-timeout", "1", "--body-timeout", "1")
    try:
        wait_until_up(url, server)
        with HealthPoller(url) as health:
            start = time.monotonic()
            heads = open_sockets(port, 300, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            bodies = open_sockets(
                port,
                20,
                b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b'Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"im',
            )
            answers = [closed_by_server(s, wait=max(0.1, start + 4 - time.monotonic())) for s in heads + bodies]
            took = time.monotonic() - start
        assert None not in answers  # every one was closed by the server
        assert took < 4
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers[:300])
        assert not health.failures and health.longest < 1.0
        for s in heads + bodies:
            s.close()
        # A client that sends its head in time is answered as usual.
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert server.poll() is None
    finally:
        stop_server(server)
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log


def _small_file_limit():  # runs in the server process before it starts: 256 files, hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


@pytest.mark.slow
def test_more_idle_connections_than_file_descriptors_do_not_lock_clients_out(tmp_path):
    # 256 files -> the cap is 192 connections. On the old server, 400 idle sockets made accept()
    # fail with EMFILE and /healthz time out, until they closed.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, tmp_path / "serve.log", "--header-timeout", "60", preexec_fn=_small_file_limit)
    try:
        wait_until_up(url, server)
        idle = open_sockets(port, 400, b"")
        with HealthPoller(url) as health:
            time.sleep(1.0)
            answer = httpx.post(f"{url}/v1/predict", files={"file": ("7.png", SEVEN)}, timeout=10)
        assert answer.json()["predictions"][0]["digit"] == 7
        assert not health.failures and health.longest < 1.0
        # The oldest idle ones were closed to make room; the newest are still open.
        still_open = [is_open(s) for s in idle]
        assert not any(still_open[:150]) and any(still_open[-100:])
        for s in idle:
            s.close()
        assert server.poll() is None
    finally:
        stop_server(server)
    log = (tmp_path / "serve.log").read_text()
    assert "Too many open files" not in log and "Traceback" not in log, log
