"""Loading images: every common format and pixel layout -> the same upright grey picture; bad files
-> a clear message each, and a huge image refused from its header alone."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from digitrec.errors import ImageError, NotAnImage
from digitrec.preprocess import load_grey


def upright_page() -> np.ndarray:
    """uint8 (60, 40): dark ink on light paper, an asymmetric 'L' so any rotation or flip shows."""
    page = np.full((60, 40), 230, np.uint8)
    page[8:50, 8:14] = 20  # the upright stroke, on the left
    page[44:50, 8:32] = 20  # the foot, at the bottom
    return page


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "fmt, options, tolerance",
    [
        ("PNG", {}, 0),
        ("BMP", {}, 0),
        ("TIFF", {}, 0),
        ("GIF", {}, 0),
        ("WEBP", {"lossless": True}, 0),
        ("JPEG", {"quality": 95}, 12),
    ],
)
def test_every_format_gives_the_same_grey(fmt, options, tolerance):
    page = upright_page()
    loaded = load_grey(encode(Image.fromarray(page), fmt, **options))
    assert loaded.dtype == np.uint8 and loaded.shape == page.shape
    assert np.abs(loaded.astype(int) - page).max() <= tolerance


@pytest.mark.parametrize(
    "orientation, stored_as",
    [
        (3, Image.Transpose.ROTATE_180),
        (6, Image.Transpose.ROTATE_90),
        (8, Image.Transpose.ROTATE_270),
    ],
)
def test_exif_orientation_is_applied(orientation, stored_as):
    """Phones store the sensor's pixels and an Orientation tag; the loader must show them upright."""
    page = upright_page()
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.fromarray(page).transpose(stored_as), "JPEG", quality=95, exif=exif)
    loaded = load_grey(data)
    assert loaded.shape == page.shape
    assert np.abs(loaded.astype(int) - page).max() <= 12


def test_colour_and_cmyk_become_luma():
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    expected = round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    assert np.all(np.abs(load_grey(encode(Image.fromarray(rgb), "PNG")).astype(int) - expected) <= 1)
    cmyk = Image.fromarray(rgb).convert("CMYK")
    assert np.all(np.abs(load_grey(encode(cmyk, "JPEG", quality=95)).astype(int) - expected) <= 6)
    assert np.all(np.abs(load_grey(rgb).astype(int) - expected) <= 1)  # arrays are RGB too


def test_transparency_is_composited_on_white():
    """A drawing canvas saved without a background: RGB 0 everywhere, the strokes only in alpha."""
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[10:30, 18:22, 3] = 255
    for grey in (load_grey(encode(Image.fromarray(rgba), "PNG")), load_grey(rgba)):
        assert grey[0, 0] == 255 and grey[20, 20] == 0
    palette = Image.fromarray(rgba).convert("RGB").convert("P")  # palette with a transparent index
    palette.info["transparency"] = palette.getpixel((0, 0))
    assert load_grey(encode(palette, "PNG"))[0, 0] == 255


def test_white_strokes_on_a_transparent_canvas_are_composited_on_black():
    """A dark-themed drawing app saves white strokes over transparency: on white paper they would
    vanish ("no ink found", a new user's audit). All that is opaque is one light colour: the
    paper under it is black. A sticker of white paper with dark ink on it stays on white."""
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[10:30, 18:22, 3] = 255
    rgba[10:30, 17, 3] = 128  # an anti-aliased edge
    for grey in (load_grey(encode(Image.fromarray(rgba), "PNG")), load_grey(rgba), load_grey(rgba[..., [0, 3]])):
        assert grey[0, 0] == 0 and grey[20, 20] == 255 and 120 <= grey[20, 17] <= 136
    sticker = np.zeros((40, 40, 4), np.uint8)
    sticker[5:35, 5:35] = (250, 250, 250, 255)  # paper
    sticker[10:30, 18:22, :3] = 10  # ink on it
    grey = load_grey(sticker)
    assert grey[0, 0] == 255 and grey[20, 20] == 10 and grey[6, 6] == 250
    # A cut-out yellow note with a thin pen number: under 3% of it is ink (a review found it on black)
    note = np.zeros((250, 400, 4), np.uint8)
    note[50:200, 50:350] = (255, 240, 120, 255)
    ink = np.zeros((250, 400), np.uint8)
    cv2.putText(ink, "4182", (80, 150), cv2.FONT_HERSHEY_SIMPLEX, 1.25, 255, 1, cv2.LINE_AA)
    assert 0 < (ink > 128).mean() < 0.03
    note[..., :3] = np.where(ink[..., None] > 128, 20, note[..., :3])
    grey = load_grey(note)
    assert grey[0, 0] == 255 and grey[100, 60] > 200 and grey[ink > 128].max() <= 20


def test_sixteen_bit_files_and_arrays():
    ramp = np.tile(np.linspace(0, 65535, 50).astype(np.uint16), (20, 1))
    expected = np.round(ramp / 257.0)
    for data in (encode(Image.fromarray(ramp), "PNG"), encode(Image.fromarray(ramp), "TIFF")):
        assert np.abs(load_grey(data).astype(int) - expected).max() <= 1
    assert np.abs(load_grey(ramp).astype(int) - expected).max() <= 1


def test_float_and_bool_arrays():
    x = np.zeros((20, 20), np.float32)
    x[5:15, 5:15] = 1.0
    assert load_grey(x)[10, 10] == 255 and load_grey(x)[0, 0] == 0
    assert load_grey(x > 0.5)[10, 10] == 255


def test_gif_first_frame():
    first = Image.fromarray(upright_page())
    second = Image.fromarray(255 - upright_page())
    data = encode(first, "GIF", save_all=True, append_images=[second])
    assert np.array_equal(load_grey(data), upright_page())


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but holds almost no pixel data: decoding it would fail
    as truncated, so a 'too large' answer proves the size was checked before decoding."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def truncated_png() -> bytes:
    data = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)), "PNG")
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.png", b"", "empty file"),
        ("notes.txt", b"this is not an image\n", "not an image"),
        ("half.png", truncated_png(), "truncated or corrupt"),
        ("dot.png", encode(Image.new("L", (1, 1), 0), "PNG"), "too small"),
        ("huge.png", png_header_only(20000, 20000), r"too large \(400 megapixels"),
        ("big.png", png_header_only(8000, 6000), r"too large \(8000x6000"),  # under Pillow's own bomb limit
    ],
)
def test_bad_files_each_get_their_message(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    # 'too large' for a header-only PNG proves the size is refused before decoding (which would
    # call it truncated); how long that takes is for benchmarks/, not a unit test on a shared machine.
    for source in (path, str(path), content):
        with pytest.raises(ImageError, match=message):
            load_grey(source)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_grey(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="folder"):
        load_grey(tmp_path)


def test_a_pillow_image_is_read_as_its_file_would_be(tmp_path):
    """`Image.open(path)` is how many start: the same grey as the path, upright by its EXIF, a GIF's
    colours not its palette indices, the same size limits; the caller's image is left as it was."""
    page = upright_page()
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "phone.jpg").write_bytes(
        encode(Image.fromarray(page).transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif)
    )
    (tmp_path / "palette.gif").write_bytes(encode(Image.fromarray(page), "GIF"))
    for name in ("phone.jpg", "palette.gif"):
        with Image.open(tmp_path / name) as opened:
            size = opened.size
            grey = load_grey(opened)
            assert opened.size == size  # not rotated in place
        assert np.array_equal(grey, load_grey(tmp_path / name)), name
        assert grey.shape == page.shape and np.abs(grey.astype(int) - page).max() <= 12, name
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[10:30, 18:22, 3] = 255  # a canvas: strokes in alpha only
    canvas = load_grey(Image.fromarray(rgba))
    assert canvas[0, 0] == 255 and canvas[20, 20] == 0
    with pytest.raises(ImageError, match="too large .*: save it smaller .* 12 MP mode"):
        load_grey(Image.new("1", (8000, 6000)))  # 48 MP: a phone's high-resolution mode; what to do is said
    with pytest.raises(ImageError, match="too small"):
        load_grey(Image.new("L", (5, 5)))


@pytest.mark.parametrize("source, name", [(None, "NoneType"), ([[0] * 28] * 28, "list"), (7, "int")])
def test_what_is_not_an_image_is_a_type_error_that_says_what_is(source, name):
    with pytest.raises(TypeError, match=f"a numpy array or a Pillow image, not {name}$"):
        load_grey(source)


def test_an_open_binary_file_is_read_as_its_bytes(tmp_path):
    # The audit: io.BytesIO and open files (what web frameworks hand over) were a TypeError.
    page = upright_page()
    data = encode(Image.fromarray(page), "PNG")
    (tmp_path / "page.png").write_bytes(data)
    expected = load_grey(data)
    assert np.array_equal(load_grey(io.BytesIO(data)), expected)
    with open(tmp_path / "page.png", "rb") as file:
        assert np.array_equal(load_grey(file), expected)
    with open(tmp_path / "page.png", encoding="latin-1") as text, pytest.raises(TypeError, match="open it with 'rb'"):
        load_grey(text)
    from starlette.datastructures import UploadFile  # FastAPI's upload: its read() is a coroutine

    with pytest.raises(NotAnImage, match="pass its .file, or await its read"):
        load_grey(UploadFile(io.BytesIO(data)))
    assert np.array_equal(load_grey(UploadFile(io.BytesIO(data)).file), expected)


def test_bad_arrays():
    with pytest.raises(ImageError, match="too small"):
        load_grey(np.zeros((1, 1), np.uint8))
    with pytest.raises(ImageError, match="shape"):
        load_grey(np.zeros((4, 4, 4, 4), np.uint8))
    with pytest.raises(ImageError, match="NaN"):
        load_grey(np.full((20, 20), np.nan, np.float32))
    with pytest.raises(ImageError, match="unsupported array type complex64"):  # not a ComplexWarning
        load_grey(np.ones((20, 20), np.complex64))


def test_flattened_mnist_rows_are_told_to_reshape(recognizer):
    """MNIST loaders often give (N, 784) rows: that was 'image too small (784x2 ...)'."""
    with pytest.raises(ImageError, match=r"flattened 28x28 digits: reshape it to \(2, 28, 28\)"):
        load_grey(np.zeros((2, 784), np.uint8))
    with pytest.raises(ImageError, match="reshape"):
        recognizer.predict(np.zeros((60, 784), np.uint8))
    assert load_grey(np.zeros((784, 784), np.uint8)).shape == (784, 784)  # a square picture is a picture


def test_a_picture_784_pixels_wide_is_read_not_taken_for_flattened_digits(recognizer):
    """784 = 28 * 28 is also a width pictures have: a photo or a drawing app's canvas of that width
    was refused as 'flattened 28x28 digits'."""
    import cv2

    examples = Path(__file__).resolve().parent.parent / "examples"
    photo = load_grey(examples / "photo_7.jpg")  # 640x480
    wide_photo = cv2.resize(photo, (784, 588), interpolation=cv2.INTER_AREA)
    drawing = cv2.resize(load_grey(examples / "drawing_4.png"), (560, 560), interpolation=cv2.INTER_AREA)
    canvas = np.pad(drawing, ((0, 0), (112, 112)), mode="edge")  # 784x560, the paper widened
    for picture, digit in ((wide_photo, 7), (canvas, 4), (255 - canvas, 4)):  # a dark canvas too
        assert picture.shape[1] == 784
        assert recognizer.predict(picture).digit == digit
    rows = np.zeros((3, 784), np.uint8)  # three MNIST-like digits, flattened: still told to reshape
    rows.reshape(3, 28, 28)[:, 6:22, 12:16] = 255
    with pytest.raises(ImageError, match="reshape"):
        load_grey(rows)


def test_a_pillow_image_whose_file_was_closed_unread_says_so(tmp_path):
    """`with Image.open(p) as im: ...` then `predict(im)`: Pillow's pixels were never read and its
    file is closed; that was a bare AssertionError with no message."""
    (tmp_path / "d.png").write_bytes(encode(Image.fromarray(upright_page()), "PNG"))
    with Image.open(tmp_path / "d.png") as unread:
        pass
    with pytest.raises(ImageError, match=r"file was closed before its pixels were read .* call its \.load\(\) there"):
        load_grey(unread)
    with Image.open(tmp_path / "d.png") as loaded:
        loaded.load()
    assert np.array_equal(load_grey(loaded), load_grey(tmp_path / "d.png"))  # read in time: fine after


def test_a_dithered_black_and_white_photo_is_grey_again_and_read(recognizer):
    """A 1-bit "document mode" scan of a photo draws grey paper as a scatter of black dots, as dark
    as the ink: it was "no ink found" (a new user's audit). It is blurred back to grey; a clean
    black-and-white drawing is left exactly as it is."""
    from PIL import ImageOps

    from digitrec.preprocess.load import descreened

    examples = Path(__file__).resolve().parent.parent / "examples"
    photo = ImageOps.exif_transpose(Image.open(examples / "photo_7.jpg"))
    dithered = encode(photo.convert("1"), "PNG")  # Floyd-Steinberg, Pillow's default
    grey = load_grey(dithered)
    assert len(np.unique(grey)) > 50  # grey levels, not dots
    assert recognizer.predict(dithered).digit == 7
    drawing = np.where(load_grey(examples / "drawing_4.png") < 128, 0, 255).astype(np.uint8)
    assert np.array_equal(descreened(drawing), drawing)
    assert np.array_equal(load_grey(encode(Image.fromarray(drawing).convert("1"), "PNG")), drawing)


def test_a_pillow_module_half_imported_by_another_thread_is_not_an_error(tmp_path, monkeypatch):
    # A new Recognizer shared by threads: one thread was importing Pillow (PIL.Image in sys.modules,
    # its Image class not defined yet) when another asked whether its path was a Pillow image.
    import sys
    import types

    path = tmp_path / "seven.png"
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(path)
    monkeypatch.setitem(sys.modules, "PIL.Image", types.ModuleType("PIL.Image"))
    from digitrec.preprocess.load import _is_pillow_image

    assert _is_pillow_image(str(path)) is False


def test_a_new_recognizer_shared_by_threads_answers_every_image(tmp_path):
    # In a fresh process, so that Pillow is imported by the threads themselves (racing).
    script = """
import sys
from concurrent.futures import ThreadPoolExecutor
from digitrec import Recognizer
rec = Recognizer(threads=1)
paths = [sys.argv[1]] * 40
with ThreadPoolExecutor(4) as pool:
    digits = [p.digit for p in pool.map(rec.predict, paths)]
print(digits.count(7))
"""
    import subprocess
    import sys

    seven = Path(__file__).resolve().parent.parent / "examples" / "photo_7.jpg"
    done = subprocess.run([sys.executable, "-c", script, str(seven)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "40"
