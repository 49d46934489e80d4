"""Shared by the web tests: digits drawn from real MNIST strokes, and a real `digitrec serve`
process (serving the model shipped in the package) on a free localhost port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import numpy as np

# Pen paths on a 28x28 grid (x, y), traced along the skeleton (Zhang-Suen thinning) of real MNIST
# test digits and simplified (Douglas-Peucker, 0.6 px): test image 5 (a '1') and 60 (a '7').
STROKES = {
    1: [[16, 7], [16, 9], [12, 19], [12, 22]],
    7: [[4, 8], [6, 8], [7, 9], [14, 9], [18, 12], [18, 20], [17, 21], [17, 23], [15, 25]],
}


# Real pen strokes (UJIpenchars2, Llorens et al. 2008, CC BY 4.0: writers 24, 30 and 45 of its
# file order), simplified (Douglas-Peucker, 0.8) into a box 100 units high; y grows downward.
PEN_STROKES = {
    8: [
        [[41, 24], [43, 21], [43, 17], [40, 8], [36, 3], [29, 0], [21, 1], [12, 5], [4, 12], [2, 17], [0, 27]]
        + [[5, 38], [14, 50], [37, 74], [41, 80], [43, 85], [41, 94], [34, 99], [23, 100], [18, 98], [9, 92]]
        + [[5, 83], [5, 74], [7, 69], [16, 60], [52, 34], [57, 27], [58, 24], [55, 19], [51, 18], [49, 15]]
        + [[44, 14], [41, 12]]
    ],
    3: [
        [[1, 13], [5, 7], [11, 4], [21, 1], [31, 0], [40, 4], [43, 7], [44, 11], [41, 23], [32, 34], [22, 43]]
        + [[9, 52], [14, 50], [22, 49], [41, 53], [53, 60], [56, 66], [58, 72], [58, 78], [55, 84], [50, 90]]
        + [[43, 94], [27, 99], [11, 100], [2, 96], [0, 93], [0, 89], [3, 85]]
    ],
    5: [
        [[13, 0], [8, 6], [6, 12], [8, 20], [14, 28], [36, 51], [43, 62], [47, 73], [48, 82], [44, 90], [36, 96]]
        + [[26, 99], [16, 100], [8, 95], [5, 92], [0, 81]],
        [[5, 8], [34, 5], [52, 8]],
    ],
}


# A 4 whose open top is nearly closed, like a 9: the shipped model says 9 (57%) or 4 (43%).
AMBIGUOUS_4_9 = [[[13.2, 4.4], [10, 5], [8, 12], [18, 13]], [[18, 4], [18, 25]]]


def draw_digit(digit: int, size: int = 280, stroke: int = 22, ink: int = 0, paper: int = 255) -> np.ndarray:
    """uint8 (size, size): the digit's stroke drawn as the page draws it (black on white)."""
    return draw_strokes([STROKES[digit]], size, stroke, ink, paper)


def draw_strokes(strokes, size: int = 280, stroke: int = 22, ink: int = 0, paper: int = 255) -> np.ndarray:
    """uint8 (size, size): pen paths on the 28x28 grid, drawn as the page draws them."""
    image = np.full((size, size), paper, np.uint8)
    for path in strokes:
        points = ((np.array(path, np.float32) + 0.5) * size / 28).astype(np.int32)
        cv2.polylines(image, [points], False, ink, stroke, lineType=cv2.LINE_AA)
    return image


def png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def photo_of_digit(digit: int, width: int = 1280, height: int = 800, seed: int = 0) -> bytes:
    """A ~1 MP JPEG like a phone photo of a digit on paper: uneven light, noise, dark blue ink."""
    rng = np.random.default_rng(seed)
    side = int(min(width, height) * 0.6)
    ink = draw_digit(digit, size=side, stroke=side // 14)
    light = np.linspace(228, 200, width, dtype=np.float32)[None, :] + np.linspace(0, -12, height)[:, None]
    grey = light + rng.normal(0, 4, (height, width))
    top, left = (height - side) // 2, (width - side) // 2
    region = grey[top : top + side, left : left + side]
    grey[top : top + side, left : left + side] = np.where(ink < 128, 50 + ink * 0.3, region)
    bgr = np.stack([grey * 1.0, grey * 0.97, grey * 0.94], axis=-1).clip(0, 255).astype(np.uint8)
    return cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, log_path: Path, *options: str, **popen) -> subprocess.Popen:
    """`digitrec serve` as a real process: the installed console script, else `python -m digitrec`
    (`popen`: more arguments for subprocess.Popen)."""
    script = Path(sys.executable).parent / "digitrec"
    digitrec = [str(script)] if script.exists() else [sys.executable, "-m", "digitrec"]
    command = [*digitrec, "serve", "--port", str(port), "--log-level", "warning", *options]
    log = open(log_path, "ab")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ}, **popen)


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"digitrec serve exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"digitrec serve did not answer at {url} within {timeout} s")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


LOCAL = "http://localhost"  # TestClient says Host: testserver, which the app does not answer to
