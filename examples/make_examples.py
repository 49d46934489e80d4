"""Writes the sample images in this folder: MNIST *test* digits dressed up as what people actually
have (a phone photo, a scan, a drawing canvas, a marker on paper...). The file name ends in the
true digit: `photo_7.jpg` shows a 7. Run from the repository root:

    .venv/bin/python examples/make_examples.py
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from predict_helpers import ink_box, paper_photo  # noqa: E402

from digitrec.data import load_mnist  # noqa: E402

# (file, index into the MNIST test set): fixed so the files never change between runs
PICKS = {"photo": 0, "scan": 30, "drawing": 4, "chalk": 1, "mnist": 7, "marker": 15, "scan16": 3, "grid": 11}


def large(digit28: np.ndarray, height: int) -> np.ndarray:
    """float32 ink (1 = ink) of the digit, `height` px high, smooth edges."""
    crop = ink_box(digit28).astype(np.float32) / 255
    scale = height / crop.shape[0]
    return np.clip(cv2.resize(crop, (round(crop.shape[1] * scale), height), interpolation=cv2.INTER_CUBIC), 0, 1)


def on_page(ink: np.ndarray, size: tuple[int, int], at: tuple[int, int], paper: float, pen: float) -> np.ndarray:
    page = np.full(size, paper, np.float32)
    y, x = at
    region = page[y : y + ink.shape[0], x : x + ink.shape[1]]
    region[:] = region * (1 - ink) + pen * ink
    return page


def save_jpeg_with_orientation(grey: np.ndarray, path: Path, orientation: int) -> None:
    """Store the pixels turned the way a phone's sensor has them, with the EXIF tag that turns them back."""
    stored = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(grey).transpose(stored).save(path, "JPEG", quality=82, exif=exif)


def main() -> None:
    images, labels = load_mnist("test")
    rng = np.random.default_rng(7)
    written = []

    def name(kind: str, ext: str) -> Path:
        path = HERE / f"{kind}_{labels[PICKS[kind]]}.{ext}"
        written.append(path)
        return path

    # A phone photo: lined paper, light falling off, blur, noise; stored sideways with an EXIF tag.
    photo = paper_photo(images[PICKS["photo"]], rng, size=(480, 640), lines=True, jpeg=False)
    save_jpeg_with_orientation(photo, name("photo", "jpg"), 6)

    # A grey scan with paper texture and a fine pen.
    ink = large(images[PICKS["scan"]], 90)
    scan = on_page(ink, (160, 180), (35, 40), 205, 60)
    scan += cv2.GaussianBlur(rng.normal(0, 10, scan.shape).astype(np.float32), (0, 0), 1.5)
    cv2.imwrite(str(name("scan", "png")), np.clip(scan, 0, 255).astype(np.uint8))

    # A drawing canvas saved without a background (what canvas.toDataURL() gives): strokes in alpha.
    ink = large(images[PICKS["drawing"]], 200)
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[40 : 40 + ink.shape[0], 140 - ink.shape[1] // 2 : 140 - ink.shape[1] // 2 + ink.shape[1], 3] = ink * 255
    Image.fromarray(rgba, "RGBA").save(name("drawing", "png"))

    # Chalk on a dark board (light ink on dark), off centre, a little uneven.
    ink = large(images[PICKS["chalk"]], 150)
    board = on_page(ink, (300, 400), (70, 230), 45, 215)
    board *= 1 - 0.25 * np.mgrid[0:300, 0:400][1] / 400
    cv2.imwrite(str(name("chalk", "jpg")), np.clip(board, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 85])

    # MNIST itself: passes through unchanged.
    cv2.imwrite(str(name("mnist", "png")), images[PICKS["mnist"]])

    # A fat marker on white paper, big in the frame, blue ink, as an RGB photo.
    ink = large(images[PICKS["marker"]], 260)
    ink = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))
    rgb = np.stack([on_page(ink, (400, 360), (70, 110), p, c) for p, c in ((245, 30), (243, 60), (238, 150))], -1)
    rgb += rng.normal(0, 3, rgb.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=80)
    name("marker", "jpg").write_bytes(buffer.getvalue())

    # A 16-bit TIFF from a scanner.
    ink = large(images[PICKS["scan16"]], 70)
    scan16 = on_page(ink, (110, 100), (20, 30), 52000, 9000)
    Image.fromarray(scan16.astype(np.uint16)).save(name("scan16", "tif"))

    # Pencil on squared paper with a shadow across it.
    ink = large(images[PICKS["grid"]], 110)
    grid = on_page(ink * 0.6, (360, 480), (120, 300), 225, 90)
    for k in range(0, 480, 36):
        grid[:, k : k + 2] *= 0.85
        grid[k : k + 2, :] *= 0.85
    yy, xx = np.mgrid[0:360, 0:480]
    grid *= 1 - 0.35 / (1 + np.exp(-(xx - yy - 60) / 25.0))  # a soft-edged shadow
    grid = cv2.GaussianBlur(grid, (0, 0), 0.8) + rng.normal(0, 2, grid.shape)
    cv2.imwrite(str(name("grid", "jpg")), np.clip(grid, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 80])

    for path in written:
        print(f"wrote {path.relative_to(HERE.parent)} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
