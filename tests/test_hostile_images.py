"""Hostile image files and inputs (issue 14, findings 1, 2, 3, 5, 8, 12): each is refused from its
structure in milliseconds, before Pillow or libjpeg work on it, and big but allowed pictures are
read in bounded memory. The files are built by `hostile_files`, small versions where the cost grows
with their size; the real ones where the refusal must not depend on it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hostile_files import ico_bomb, jpeg_scan_bomb, png_chunk_flood
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from predict_helpers import write_linear_onnx

import digitrec
from digitrec.errors import ImageError
from digitrec.preprocess import load_grey
from digitrec.preprocess.load import MAX_BYTES, MAX_JPEG_SCANS, MAX_PNG_CHUNKS, probe
from digitrec.web.limits import image_pixels

TESTS = Path(__file__).resolve().parent
SRC = Path(digitrec.__file__).resolve().parents[1]  # the sources under test, for the child processes


def refused_quickly(data: bytes, message: str, within: float) -> None:
    """The loader and the server's size probe both refuse `data` with `message`, each in `within` s."""
    for attempt in (lambda: load_grey(data), lambda: probe(data)):
        start = time.perf_counter()
        with pytest.raises(ImageError, match=message):
            attempt()
        assert time.perf_counter() - start < within
    start = time.perf_counter()
    assert image_pixels(data) == 0  # the server's heavy-lane probe: "the loader will refuse it"
    assert time.perf_counter() - start < within


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def digit_page(size=(300, 200)) -> Image.Image:
    page = np.full(size[::-1], 235, np.uint8)
    page[40:160, 140:160] = 20
    return Image.fromarray(page)


# --- finding 1: ICO, and every format we do not read ---


def test_an_icon_is_refused_without_decoding_its_picture():
    """Pillow decodes the PNG inside an .ico while opening it, before anyone can check its size:
    a 700 KB icon held 177 MP (785 MB). Icons are not read at all; this one is 49 MP."""
    refused_quickly(ico_bomb(side=7000), "unsupported format", within=0.2)


def test_formats_outside_the_list_are_refused_and_the_listed_ones_read():
    page = digit_page()
    for fmt in ("ICO", "PCX", "TGA", "SGI"):
        with pytest.raises(ImageError, match="unsupported format"):
            load_grey(encode(page.resize((64, 64)), fmt))
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM"):
        assert load_grey(encode(page, fmt)).shape == (200, 300)
    assert probe(encode(page, "PNG")) == (300, 200)


def test_pillow_pixel_limit_is_ours_only_while_decoding():
    """Pillow checks GIF frames and TIFF tiles against its own limit while decoding: ours then,
    the application's own setting after."""
    from PIL import Image as PillowImage

    before = PillowImage.MAX_IMAGE_PIXELS
    load_grey(encode(digit_page(), "PNG"))
    assert PillowImage.MAX_IMAGE_PIXELS == before


# --- finding 2: PNG chunk flood ---


def test_a_png_chunk_flood_is_refused_before_pillow_walks_it():
    """1.5 M empty private chunks before the pixels (18 MB): Pillow walked them for 3-11 s."""
    refused_quickly(png_chunk_flood(), f"over {MAX_PNG_CHUNKS} chunks", within=0.5)
    refused_quickly(png_chunk_flood(chunks=MAX_PNG_CHUNKS + 10), "chunks", within=0.1)


def test_a_png_with_many_ordinary_chunks_still_reads():
    text = Image.new("L", (64, 64), 255)
    info = PngInfo()
    for i in range(300):
        info.add_text(f"k{i}", "v")
    assert load_grey(encode(text, "PNG", pnginfo=info)).shape == (64, 64)
    assert load_grey(png_chunk_flood(chunks=1000)).shape == (64, 64)  # a few are fine


# --- finding 3: progressive JPEG scan bomb ---


def test_a_jpeg_scan_bomb_is_refused_before_libjpeg_decodes_it():
    """Each empty scan costs libjpeg a pass over every block: 100,000 of them took 28-40 s."""
    refused_quickly(jpeg_scan_bomb(), f"over {MAX_JPEG_SCANS} scans", within=0.2)
    refused_quickly(jpeg_scan_bomb(scans=2000), "scans", within=0.05)  # 0.5 s to decode before


def test_real_progressive_and_multi_picture_jpegs_still_read():
    page = digit_page()
    for data in (
        encode(page.convert("RGB"), "JPEG", progressive=True),
        encode(page, "JPEG", progressive=True),
        jpeg_scan_bomb(scans=MAX_JPEG_SCANS - 10, size=(300, 200)),  # 6 + 54 scans: allowed
        encode(
            page.convert("RGB"),
            "MPO",
            save_all=True,  # a phone's two pictures in one file
            append_images=[page.convert("RGB")] * 8,
            progressive=True,
        ),
    ):
        assert load_grey(data).shape == (200, 300)


def test_a_jpeg_segment_flood_is_refused():
    """Comment segments before the first scan: Pillow reads each in Python."""
    data = encode(digit_page(), "JPEG")
    flood = data[:2] + b"\xff\xfe\x00\x02" * 20_000 + data[2:]
    refused_quickly(flood, "segments", within=0.1)
    restarts = data[:2] + b"\xff\xd0" * 1_000_000 + data[2:]  # markers with no body: 1.6 s before
    refused_quickly(restarts, "segments", within=0.1)


# --- finding 8: big but allowed pictures, in bounded memory and the same grey ---


def test_big_pictures_give_the_same_grey_a_strip_at_a_time():
    """The float work is done a million pixels at a time: the values must be exactly those of
    the whole-array formula (Pillow's luma weights, alpha composited on white)."""
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (1100, 1000, 4), dtype=np.uint8)
    x = rgba.astype(np.float32) / 255.0
    grey = x[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    grey = grey * x[..., 3] + (1.0 - x[..., 3])
    expected = np.clip(grey * 255.0 + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(load_grey(encode(Image.fromarray(rgba), "PNG")), expected)
    assert np.array_equal(load_grey(rgba), expected)
    deep = rng.integers(0, 65536, (1100, 1000), dtype=np.uint16)
    expected16 = np.clip(deep.astype(np.float32) / 65535.0 * 255.0 + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(load_grey(encode(Image.fromarray(deep), "PNG")), expected16)


PEAK = """
import resource, sys
from hostile_files import big_grey16_png, big_rgba_png
data = {"rgba": big_rgba_png, "grey16": big_grey16_png}[sys.argv[1]](ink=True)
from digitrec.preprocess import load_grey
from digitrec.preprocess.digit import WORK_SIDE
if sys.argv[2] == "load":
    answer = load_grey(data, max_side=WORK_SIDE).shape
else:
    from digitrec.runtime import Recognizer
    answer = Recognizer(sys.argv[3]).predict(data).digit
try:  # this process's own peak: ru_maxrss would include the parent's, kept across fork and exec
    status = open("/proc/self/status").read().split("VmHWM:")[1]
    peak_mb = int(status.split()[0]) // 1024
except OSError:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(answer, peak_mb)
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["rgba", "grey16"])
@pytest.mark.parametrize("how", ["load", "predict"])
def test_a_40_megapixel_picture_is_read_in_bounded_memory(kind, how, tmp_path):
    """6300x6300 (39.7 MP, allowed): RGBA took 1.6 GB (a float32 copy at full size), 16-bit 0.7 GB."""
    model = write_linear_onnx(
        tmp_path / "m.onnx", np.zeros((784, 10), np.float32), np.zeros(10, np.float32), {"name": "linear"}
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(TESTS)]), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", PEAK, kind, how, str(model)], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    answer, peak_mb = done.stdout.split()[:-1], int(done.stdout.split()[-1])
    assert peak_mb <= 400, f"peak RSS {peak_mb} MB"
    if how == "load":
        assert " ".join(answer) == "(6300, 6300)"


# --- finding 5: a failed image lets go of its pixels ---


def test_a_failed_image_does_not_keep_its_pixels_until_the_batch_ends(tmp_path):
    from digitrec.runtime import Recognizer

    model = write_linear_onnx(
        tmp_path / "m.onnx", np.zeros((784, 10), np.float32), np.zeros(10, np.float32), {"name": "linear"}
    )
    recognizer = Recognizer(model)
    blank = encode(Image.new("RGB", (2500, 2500), "white"), "PNG")  # "no ink found", after decoding
    tracemalloc.start()
    try:
        answers = recognizer.predict_many([blank, blank, blank])
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert all(isinstance(a, ImageError) and "no ink" in str(a) for a in answers)
    assert held < 3_000_000, held  # each traceback held its 6 MP grey picture and what came from it
    assert all(a.__traceback__ is None and a.__context__ is None for a in answers)


def test_the_server_keeps_no_frames_of_a_failed_image():
    from digitrec.web.app import _guarded

    def fails():
        pixels = np.zeros((2000, 2000), np.uint8)  # noqa: F841 - what a frame would keep alive
        try:
            raise KeyError("inner")
        except KeyError:
            raise ImageError("no ink found") from None

    error = _guarded(fails)
    assert isinstance(error, ImageError)
    assert error.__traceback__ is None and error.__context__ is None and error.__cause__ is None


# --- finding 12: standard input, devices and pipes ---


def predict(*args: str, **options) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-m", "digitrec", "predict", *args, "--json"],
        capture_output=True,
        timeout=60,
        env=env,
        **options,
    )
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    return done


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    weight = np.random.default_rng(0).normal(0, 1, (784, 10)).astype(np.float32)
    return str(
        write_linear_onnx(
            tmp_path_factory.mktemp("model") / "linear.onnx", weight, np.zeros(10, np.float32), {"name": "linear"}
        )
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_and_a_device_are_refused_and_the_other_files_answered(model, tmp_path):
    """A FIFO made the loader wait for a writer forever; /dev/zero reports size 0 and never ends."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    good = tmp_path / "one.png"
    digit_page().save(good)
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(ImageError, match="not a regular file"):
            load_grey(path)
    done = predict(str(fifo), "/dev/zero", str(good), "--model", model)
    assert done.returncode == 1
    answers = json.loads(done.stdout)
    assert [a["error"] is not None and "not a regular file" in a["error"] for a in answers] == [True, True, False]
    assert answers[2]["error"] is None and answers[2]["top"]  # answered (this random model is unsure of it)


def test_standard_input_is_capped_while_it_is_read(model):
    """`digitrec predict - < /dev/zero` read without end (4.8 GB before it was stopped)."""
    with open("/dev/zero", "rb") as zeros:
        start = time.perf_counter()
        done = predict("-", "--model", model, stdin=zeros)
    assert done.returncode == 1
    [answer] = json.loads(done.stdout)
    assert answer["error"] == f"standard input too large (over {MAX_BYTES // 2**20} MiB, the limit)"
    assert time.perf_counter() - start < 30


def test_standard_input_just_over_the_limit_is_refused_and_under_it_read(model):
    page = encode(digit_page(), "PNG")
    done = predict("-", "--model", model, input=page + bytes(MAX_BYTES + 1 - len(page)))
    assert "standard input too large" in json.loads(done.stdout)[0]["error"]
    done = predict("-", "--model", model, input=page)
    assert done.returncode == 0 and json.loads(done.stdout)[0]["error"] is None


# --- the same kind of flood in the other formats Pillow walks in Python while opening ---


def test_a_gif_extension_flood_is_refused():
    """Empty extension blocks before the picture: Pillow read 7 million of them (21 MB) in 1.5 s."""
    data = encode(digit_page(), "GIF")
    at = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)  # after header and colour table
    refused_quickly(data[:at] + b"!\xfe\x00" * 200_000 + data[at:], "blocks", within=0.2)
    comment = data[:at] + b"!\xfe" + (b"\xff" + b"x" * 255) * 1000 + b"\x00" + data[at:]
    assert load_grey(comment).shape == (200, 300)  # a long comment is fine


def test_a_tiff_field_of_millions_of_values_is_refused():
    """Pillow makes a Python number of each value while opening (4 M strip offsets: 0.6 s, 100 MB)."""
    import struct

    count = 1_000_000

    def field(tag, kind, n, value):
        return struct.pack("<HHII", tag, kind, n, value)

    fields = [
        field(256, 4, 1, 64),
        field(257, 4, 1, 64),
        field(258, 3, 1, 8),
        field(259, 3, 1, 1),
        field(262, 3, 1, 1),
        field(273, 4, count, 8 + 2 + 12 * 8 + 4),
        field(278, 4, 1, 64),
        field(279, 4, 1, 4096),
    ]
    data = b"II*\x00" + struct.pack("<IH", 8, len(fields)) + b"".join(fields) + bytes(4) + struct.pack("<I", 8) * count
    refused_quickly(data, "TIFF", within=0.1)
    assert load_grey(encode(digit_page(), "TIFF", compression="tiff_lzw")).shape == (200, 300)


# --- the same files sent to a real server, beside a good image ---


@pytest.mark.slow
def test_a_real_server_refuses_each_hostile_upload_at_once_and_answers_the_good_one(tmp_path):
    """The review's files at full size, in one request: the ICO decoded 785 MB inside the size
    probe, the chunk flood held the event loop 11 s, the scan bomb took 44 s of CPU."""
    import httpx
    from web_helpers import draw_digit, free_port, png, start_server, stop_server, wait_until_up

    hostile = {"bomb.ico": ico_bomb(), "flood.png": png_chunk_flood(), "scans.jpg": jpeg_scan_bomb()}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, tmp_path / "serve.log")
    try:
        wait_until_up(url, server)
        files = [("file", (name, data)) for name, data in hostile.items()] + [("file", ("7.png", png(draw_digit(7))))]
        start = time.perf_counter()
        answer = httpx.post(f"{url}/v1/predict", files=files, timeout=60)
        took = time.perf_counter() - start
        assert answer.status_code == 200
        predictions = answer.json()["predictions"]
        assert "unsupported format" in predictions[0]["error"]
        assert "chunks" in predictions[1]["error"] and "scans" in predictions[2]["error"]
        assert predictions[3]["digit"] == 7
        assert took < 3  # mostly the 20 MB upload itself
        peak_kb = int(
            next(
                line for line in Path(f"/proc/{server.pid}/status").read_text().splitlines() if line.startswith("VmHWM")
            ).split()[1]
        )
        assert peak_kb < 600_000  # the server with its model, no decoded bomb
    finally:
        stop_server(server)


def test_a_pnm_header_of_megabytes_is_refused():
    """Pillow reads a PBM/PGM/PPM header a byte at a time in Python: 2 MB of comment took 0.9 s."""
    pixels = bytes(64 * 64)
    for header in (
        b"P5\n#" + b"x" * 2_000_000 + b"\n64 64\n255\n",
        b"P5" + b" " * 2_000_000 + b"64 64\n255\n",
        b"P5" + b"#\n" * 1_000_000 + b"64 64\n255\n",
    ):
        refused_quickly(header + pixels, "PNM", within=0.1)
    comments = b"".join(b"# written by a scanner, line %d\n" % i for i in range(20))
    for header in (b"P5\n# CREATOR: GIMP PNM Filter Version 1.1\n64 64\n255\n", b"P5\n" + comments + b"64 64 255\n"):
        assert load_grey(header + pixels * 3).shape == (64, 64)  # over 4 KB in all: the limit is on the header


@pytest.mark.parametrize(
    "header, body, message",
    [
        (b"P5\n1001 1001\n254\n", bytes(1001 * 1001), "P5 file of maxval 254"),  # 0.7 s before
        (b"P2\n1001 1001\n255\n", b"0 " * 1001 * 1001, "plain-text P2"),  # 0.35 s before
    ],
    ids=["P5-maxval-254", "P2-plain"],
)
def test_pnm_files_pillow_decodes_in_python_are_refused_over_a_megapixel(header, body, message):
    refused_quickly(header + body, message, within=0.05)


def test_pnm_files_pillow_decodes_quickly_are_read_at_any_size():
    for data in (
        b"P5\n1001 1001\n255\n" + bytes(1001 * 1001),
        b"P5\n1001 1001\n65535\n" + bytes(2 * 1001 * 1001),
        b"P1\n1001 1001\n" + b"0" * 1001 * 1001,
        b"P2\n100 100\n15\n" + b"7 " * 10_000,
    ):
        assert load_grey(data).shape in ((1001, 1001), (100, 100))


def bmp(width: int, height: int, compression: int, pixels: bytes, header: bool = True) -> bytes:
    """An 8-bit palette BMP (or headerless DIB) with the given compression (1 = RLE8) and pixel data."""
    import struct

    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, compression, len(pixels), 2835, 2835, 256, 0)
    start = 14 + len(info) + len(palette)
    top = b"BM" + struct.pack("<IHHI", start + len(pixels), 0, 0, start) if header else b""
    return top + info + palette + pixels


def test_a_run_length_bmp_bomb_is_refused():
    """One pixel then 'end of line' per row: Pillow pads each row a byte at a time in Python (a
    26 KB 6300x6300 file took 3 s); over a megapixel RLE BMPs are refused."""
    rows = b"\x01\x05\x00\x00" * 2000 + b"\x00\x01"
    refused_quickly(bmp(2000, 2000, 1, rows), "run-length compressed BMP", within=0.05)  # 0.5 s before
    refused_quickly(bmp(2000, 2000, 1, rows, header=False), "run-length compressed BMP", within=0.05)
    small = bmp(100, 100, 1, b"\x64\x80\x00\x00" * 100 + b"\x00\x01")  # a grey RLE BMP: still read
    assert load_grey(small)[50, 50] == 128
