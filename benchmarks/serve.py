"""Serving benchmark: throughput and latency of `digitrec serve` on this machine, over localhost.

    python benchmarks/serve.py                      # starts `digitrec serve` itself on a free port
    python benchmarks/serve.py --workers 2          # ... with two server processes
    python benchmarks/serve.py --url http://127.0.0.1:8000 --pid 1234   # a server already running

Scenarios, each bounded by --seconds: 28x28 MNIST test digits as PNG (multipart upload, what an API
client sends) at 1 and 16 concurrent clients; a ~1-megapixel phone-like photo at 1 and 16 clients;
then 10,000 28x28 requests while watching the server's RSS. The client is a minimal asyncio
HTTP/1.1 keep-alive loop (requests prepared in advance) so that it takes as little as possible of
the CPU it shares with the server. Targets (issue 6): p99 < 50 ms and >= 300 req/s for 28x28
PNGs at 16 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT.parent / "shared" / "data" / "external" / "photo-synth"
BOUNDARY = "digitrecbenchmark"


# ---------- what we send ----------


def multipart_request(host: str, port: int, path: str, image: bytes, name: str) -> bytes:
    part = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body = part + image + f"\r\n--{BOUNDARY}--\r\n".encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: multipart/form-data; "
        f"boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def mnist_pngs(n: int) -> tuple[list[bytes], np.ndarray]:
    from digitrec.data import load_mnist

    images, labels = load_mnist("test")
    return [cv2.imencode(".png", im)[1].tobytes() for im in images[:n]], labels[:n]


def photos(n: int) -> tuple[list[bytes], str]:
    """Phone-like photos of ~1.2 MP (1280x960) from the shared external set, else one made here."""
    found = sorted(PHOTOS.glob("photo_*.jpg")) if PHOTOS.is_dir() else []
    chosen = []
    for path in found:
        h, w = cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_8).shape
        if sorted((w * 8, h * 8)) == [960, 1280]:
            chosen.append(path.read_bytes())
        if len(chosen) == n:
            return chosen, f"{n} photo-synth JPEGs, 1280x960"
    # Fallback: an MNIST digit, enlarged, on a lit paper background, as JPEG.
    from digitrec.data import load_mnist

    digit = cv2.resize(load_mnist("test")[0][0], (600, 600), interpolation=cv2.INTER_CUBIC)
    paper = np.linspace(230, 190, 1280, dtype=np.float32)[None, :].repeat(960, 0)
    paper[180:780, 340:940] -= digit * 0.6
    jpeg = cv2.imencode(".jpg", paper.clip(0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
    return [jpeg], "a synthetic 1280x960 JPEG"


# ---------- a lean HTTP/1.1 client ----------


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


async def client_loop(
    host: str,
    port: int,
    requests: list[bytes],
    deadline: float,
    budget: list[int],
    latencies: list[float],
    failures: list[int],
    offset: int,
    interval: float,
):
    """Send requests one after another on one keep-alive connection: as fast as answers come
    (interval 0), or paced, one every `interval` s, timed from when each was due (so a slow answer
    also counts against the requests queued behind it)."""
    reader, writer = await asyncio.open_connection(host, port)
    i = offset
    due = time.perf_counter() + interval * (offset % 97) / 97  # spread the paced clients out
    try:
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
            if interval:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                start, due = due, due + interval
            else:
                start = time.perf_counter()
            writer.write(requests[i % len(requests)])
            status, body = await read_response(reader)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                failures.append(status)
            i += 1
    finally:
        writer.close()


async def load(
    host: str,
    port: int,
    requests: list[bytes],
    clients: int,
    seconds: float,
    max_requests: int = 10**9,
    rate: float = 0.0,
) -> dict:
    """`clients` connections for `seconds`; `rate` > 0 paces them to that many requests/s in all."""
    latencies: list[float] = []
    failures: list[int] = []
    budget = [max_requests]
    start = time.perf_counter()
    interval = clients / rate if rate else 0.0
    await asyncio.gather(
        *(
            client_loop(host, port, requests, start + seconds, budget, latencies, failures, k * 7, interval)
            for k in range(clients)
        )
    )
    elapsed = time.perf_counter() - start
    ms = np.array(latencies or [np.nan]) * 1000
    return {
        "n": len(ms),
        "rps": len(ms) / elapsed,
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
        "failed": len(failures),
    }


# ---------- the server and the machine ----------


def process_tree(pid: int) -> list[int]:
    """A process and its children (uvicorn workers)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            pass
    return found


def rss_mb(pid: int) -> float:
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) the server has used: a cost per request that other programs on
    the machine do not change, unlike latency."""
    if not pid:
        return float("nan")
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except FileNotFoundError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def matmul_gflops(n: int = 1024, repeat: int = 10) -> float:
    a = np.random.default_rng(0).random((n, n), np.float32)
    a @ a
    start = time.perf_counter()
    for _ in range(repeat):
        a @ a
    return 2 * n**3 * repeat / (time.perf_counter() - start) / 1e9


def start_server(workers: int, model: str | None) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "digitrec",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        *(["--model", model] if model else []),
    ]
    server = subprocess.Popen(command)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if server.poll() is not None:
                sys.exit(f"digitrec serve exited with {server.returncode}")
            time.sleep(0.2)
    time.sleep(1.0 if workers > 1 else 0.2)  # let every worker come up
    return server, port


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running server on this machine (default: start one)")
    parser.add_argument("--pid", type=int, help="its process id, for the memory figures")
    parser.add_argument("--workers", type=int, default=1, help="server processes, when starting one")
    parser.add_argument("--model", help="ONNX model to serve, when starting one (default: the shipped one)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each timed scenario")
    parser.add_argument("--memory-requests", type=int, default=10_000)
    args = parser.parse_args()

    server = None
    if args.url:
        parts = urlsplit(args.url)
        host, port = parts.hostname, parts.port or 80
        if host not in ("127.0.0.1", "localhost", "::1"):
            sys.exit("benchmarks/serve.py only loads a server on this machine (127.0.0.1)")
        pid = args.pid
    else:
        server, port = start_server(args.workers, args.model)
        host, pid = "127.0.0.1", server.pid
    try:
        run(host, port, pid, args)
    finally:
        if server:
            server.terminate()
            server.wait(timeout=20)


def run(host: str, port: int, pid: int | None, args):
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
        f"matmul {matmul_gflops():.0f} GFLOP/s (float32, 1024^2)"
    )
    pngs, labels = mnist_pngs(1000)
    digit_requests = [multipart_request(host, port, "/v1/predict", p, f"{i}.png") for i, p in enumerate(pngs)]
    photo_bytes, photo_note = photos(8)
    photo_requests = [multipart_request(host, port, "/v1/predict", p, "photo.jpg") for p in photo_bytes]
    print(
        f"server: http://{host}:{port}  workers: {args.workers if not args.url else '?'}  "
        f"28x28: MNIST test PNGs ({np.mean([len(p) for p in pngs]):.0f} B)  photo: {photo_note} "
        f"({np.mean([len(p) for p in photo_bytes]) / 1024:.0f} KB)"
    )
    check_answers(host, port, pngs[:200], labels[:200])

    asyncio.run(load(host, port, digit_requests, 16, 1.0))  # warm up

    def scenario(requests, clients, rate=0.0) -> dict:
        cpu = cpu_seconds(pid)
        result = asyncio.run(load(host, port, requests, clients, args.seconds, rate=rate))
        result["cpu_ms"] = (cpu_seconds(pid) - cpu) * 1000 / max(1, result["n"])
        return result

    rows = [
        ("28x28 PNG", 1, scenario(digit_requests, 1)),
        ("28x28 PNG", 16, scenario(digit_requests, 16)),
        # The target rate, paced: the latency clients see when the server is not saturated.
        ("28x28 PNG, paced at 300 req/s", 16, scenario(digit_requests, 16, rate=300)),
        ("1 MP photo", 1, scenario(photo_requests, 1)),
        ("1 MP photo", 16, scenario(photo_requests, 16)),
    ]

    # Mixed: do photos being worked on slow down the digits? 16 digit clients beside 2 photo clients.
    async def mixed():
        return await asyncio.gather(
            load(host, port, digit_requests, 16, args.seconds), load(host, port, photo_requests, 2, args.seconds)
        )

    digits_beside, photos_beside = asyncio.run(mixed())
    rows += [
        ("28x28 PNG, beside 2 photo clients", 16, digits_beside),
        ("1 MP photo, beside 16 digit clients", 2, photos_beside),
    ]
    print("\n| request | clients | requests | req/s | p50 ms | p99 ms | max ms | server CPU ms/req | failed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for what, clients, r in rows:
        cpu = f"{r['cpu_ms']:.2f}" if "cpu_ms" in r else "(both)"
        print(
            f"| {what} | {clients} | {r['n']} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | "
            f"{r['max']:.1f} | {cpu} | {r['failed']} |"
        )
    flat_out, paced = rows[1][2], rows[2][2]
    print(
        f"\ntarget (28x28 PNG, 16 clients: p99 < 50 ms, >= 300 req/s): "
        f"{'met' if flat_out['rps'] >= 300 and paced['p99'] < 50 else 'NOT met'} at 300 req/s; "
        f"{'met' if flat_out['p99'] < 50 else 'NOT met'} flat out ({flat_out['rps']:.0f} req/s)"
    )

    if pid:
        before = rss_mb(pid)
        warm = asyncio.run(load(host, port, digit_requests, 16, 600, max_requests=1000))
        after_warm = rss_mb(pid)
        rest = asyncio.run(load(host, port, digit_requests, 16, 600, max_requests=max(1, args.memory_requests - 1000)))
        after = rss_mb(pid)
        print(
            f"\nserver RSS over {warm['n'] + rest['n']:,} requests (16 clients): before {before:.0f} MB, "
            f"after 1,000 {after_warm:.0f} MB, after {warm['n'] + rest['n']:,} {after:.0f} MB "
            f"(growth after warm-up {after - after_warm:+.1f} MB); failed: {warm['failed'] + rest['failed']}"
        )


def check_answers(host: str, port: int, pngs: list[bytes], labels: np.ndarray):
    """The server must be answering, and right: accuracy on the digits we send."""
    import httpx

    answers = []
    for start in range(0, len(pngs), 50):  # the server takes at most 64 images a request
        files = [("file", (f"{i}.png", p)) for i, p in enumerate(pngs[start : start + 50])]
        answers += httpx.post(f"http://{host}:{port}/v1/predict", files=files, timeout=60).json()["predictions"]
    accuracy = np.mean([a.get("digit") == int(y) for a, y in zip(answers, labels)])
    print(f"sanity: {accuracy:.1%} of {len(pngs)} MNIST test digits right through the API")


if __name__ == "__main__":
    main()
