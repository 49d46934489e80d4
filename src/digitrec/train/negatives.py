"""What is not one digit, and what is, drawn as real images: the rejector's training data.

Every example is a whole image (dark ink on light paper, or the reverse; a photo's noise, blur and
JPEG; a bare 28x28 in MNIST form), passed through the same preprocessing `predict` uses
(`preprocess.digit.digit_views`), so the rejector learns from exactly what the runtime shows it.

Kinds, and the class each one teaches (`CLASSES`):
  digit     MNIST training digits and the digits of fonts, with the same pen styles and distortions;
            as normalised scans give them (stretched to fill a 16 or 32 px box, often binary); and
            cut from a written number with slivers of its neighbours at the edges; and as a cheque
            reader's scan gives them (`cheque_digit`: thin pens, guilloche, wide neighbour slivers,
            low contrast); and in a phone photo of a note (`photo_digit`: perspective, shadow)
  letter    letters and symbols of handwriting-like fonts (OpenCV's Hershey fonts, script ones
            included, and the TrueType fonts installed here, `make rejector-fonts`) with slant,
            elastic distortion and pens; glyphs a digit is written like (O, l, I, S, Z, |, ...)
            are left out
  scribble  Bezier strokes, zigzags, loops and spirals, hatching (never a bar, a 1: `narrow`);
            and (`scrawl`) crossings-out, cursive garlands, waves, bursts of crossing lines, dots
  shape     smileys, stars, triangles, hearts, arrows, ticks, crosses, empty boxes
  blank     paper with grain, specks, gradients and JPEG; ruled and squared paper with nothing written
  pair      two or three MNIST training digits side by side (`synth.make_number`: apart, touching,
            overlapping, photographed)
  number    four to six of them, a whole number (a user gives `predict` a number: fitted into the
            20 px box its digits are specks, which without these it took for a blank page)
  document-number  two to six of them dressed as a document holds a number: a register cell, a
            cheque, ruled or squared paper, marks, a cross or tick beside it (`synth.make_number`)
Fonts are split by family (`split_fonts`) and MNIST by writer (`train.rejector`), so a validation
set can hold fonts and hands the rejector never saw. numpy, OpenCV and Pillow only.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from digitrec import documents, doubt
from digitrec.errors import ImageError
from digitrec.preprocess.digit import digit_views, fit_and_centre

DIGIT, NOT_A_DIGIT, SEVERAL_DIGITS, NO_INK = range(4)
CLASSES = ("digit", doubt.NOT_A_DIGIT, doubt.SEVERAL_DIGITS, doubt.NO_INK)  # the rejector's outputs, in order
KIND_CLASS = {
    "digit": DIGIT,
    "font-digit": DIGIT,
    "scan-digit": DIGIT,
    "cut-digit": DIGIT,
    "cheque-digit": DIGIT,
    "photo-digit": DIGIT,
    "pen-digit": DIGIT,
    "letter": NOT_A_DIGIT,
    "scribble": NOT_A_DIGIT,
    "scrawl": NOT_A_DIGIT,
    "shape": NOT_A_DIGIT,
    "blank": NO_INK,
    "pair": SEVERAL_DIGITS,
    "number": SEVERAL_DIGITS,
    "document-number": SEVERAL_DIGITS,
}

# Glyphs a handwritten digit can look exactly like (O and 0, l and 1, S and 5, Z and 2, b and 6,
# g and q and 9) or that are a bare stroke (| / ( ! -): never taught as "not a digit".
LETTERS = "ABCDEFGHJKLMNPQRTUVWXYacdefhkmnprtuvwxy"
SYMBOLS = "#%&@?+*=<>~^"  # no $: an S with a bar, too close to a 5
FONT_DIGITS = "0123456789"
HERSHEY = {
    "hershey-simplex": cv2.FONT_HERSHEY_SIMPLEX,
    "hershey-plain": cv2.FONT_HERSHEY_PLAIN,
    "hershey-duplex": cv2.FONT_HERSHEY_DUPLEX,
    "hershey-complex": cv2.FONT_HERSHEY_COMPLEX,
    "hershey-triplex": cv2.FONT_HERSHEY_TRIPLEX,
    "hershey-complex-small": cv2.FONT_HERSHEY_COMPLEX_SMALL,
    "hershey-script-simplex": cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    "hershey-script-complex": cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
}
FONT_FOLDERS = ("/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts", "C:/Windows/Fonts")
# Fonts whose letters and digits are pictures or Greek (URW's dingbats and symbol fonts): their "0"
# is no digit and their "A" no letter.
NOT_TEXT = ("D050000L", "StandardSymbolsPS", "Dingbats", "Symbol", "Webdings", "Wingdings")
# A style written into a file name (FreeMonoBoldOblique, dkgBI, LinLibertine_RI): the same family.
STYLE = re.compile(r"(BoldOblique|BoldItalic|Bold|Oblique|Italic|Bd|BI|It)$")
GLYPH_PX = 64  # glyphs and shapes are drawn about this tall, then rendered at the image's size


@dataclass(frozen=True)
class Font:
    family: str  # e.g. "hershey-script-complex", "DejaVuSerif"
    hershey: int | None = None  # an OpenCV font id, or
    path: str | None = None  # a TrueType file


def font_family(path: Path) -> str:
    """A font file -> its family, the same for each of its styles, so that no style of a held-out
    family trains the rejector: DejaVuSans-Bold.ttf -> DejaVuSans, FreeMonoBoldOblique.ttf ->
    FreeMono, LinLibertine_RI.otf -> LinLibertine, dkgBd.ttf -> dkg, breipfont.ttf -> Breip."""
    name = path.stem.split("-")[0].split("_")[0]
    while STYLE.search(name) and STYLE.sub("", name):
        name = STYLE.sub("", name)
    if name.lower().endswith("font") and len(name) > 4:
        name = name[:-4]
    return name[0].upper() + name[1:]


def has_glyphs(path: str, chars: str) -> bool:
    """Does the font at `path` draw every one of `chars`, rather than its missing-glyph box? (A
    script font without digits would teach a box as a digit.)"""
    from PIL import Image, ImageDraw, ImageFont

    face = ImageFont.truetype(path, 32)

    def drawn(char: str) -> np.ndarray:
        image = Image.new("L", (64, 64), 0)
        ImageDraw.Draw(image).text((8, 8), char, fill=255, font=face)
        return np.asarray(image)

    missing = drawn("\U000f0000")  # a private-use code point no text font has
    return not any(np.array_equal(drawn(c), missing) for c in chars)


def installed_fonts() -> list[Font]:
    """The Hershey fonts (always there) and the TrueType/OpenType fonts found on this machine
    (`make rejector-fonts` installs the ones the shipped rejector was trained with), less NOT_TEXT
    and those without every digit and an A and an a."""
    fonts = [Font(name, hershey=code) for name, code in HERSHEY.items()]
    for folder in FONT_FOLDERS:
        for path in sorted(Path(folder).rglob("*")) if Path(folder).is_dir() else []:
            if (
                path.suffix.lower() in (".ttf", ".otf")
                and not path.stem.startswith(NOT_TEXT)
                and has_glyphs(str(path), FONT_DIGITS + "Aa")
            ):
                fonts.append(Font(font_family(path), path=str(path)))
    return fonts


def split_fonts(fonts: list[Font]) -> tuple[list[Font], list[Font]]:
    """-> (training fonts, held-out fonts), split by family, the same way on every machine with the
    same fonts: about a third of the families (by a hash of the name) are held out, and never fewer
    than one Hershey family, a script one among the held out when the hash gives none."""
    families = sorted({f.family for f in fonts})
    held = {name for name in families if zlib.crc32(name.encode()) % 3 == 0}
    held.add("hershey-script-complex")  # a handwriting-like font the rejector never saw
    held.discard("hershey-script-simplex")  # ... and its sibling always among the trained ones
    return [f for f in fonts if f.family not in held], [f for f in fonts if f.family in held]


def pick_font(rng: np.random.Generator, fonts: list[Font]) -> Font:
    """A family at random, then one of its files: a family with 18 styles (Lato) is drawn no more
    often than one with a single file (a handwriting font)."""
    families = sorted({f.family for f in fonts})
    family = families[rng.integers(len(families))]
    same = [f for f in fonts if f.family == family]
    return same[rng.integers(len(same))]


# --- ink sketches: float32 (H, W), ink = 1 on 0, cropped to the ink -------------------------


def crop_ink(ink: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(ink > 0.1)
    if len(ys) == 0:
        return ink
    return ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def glyph(rng: np.random.Generator, char: str, font: Font) -> np.ndarray:
    """One character of `font`, about GLYPH_PX tall, a random pen width."""
    size = 2 * GLYPH_PX
    if font.hershey is not None:
        scale = cv2.getFontScaleFromHeight(font.hershey, GLYPH_PX)
        thickness = int(rng.integers(1, 7))
        code = font.hershey | (cv2.FONT_ITALIC if rng.random() < 0.3 else 0)
        canvas = np.zeros((size + GLYPH_PX, size + GLYPH_PX), np.uint8)
        cv2.putText(canvas, char, (GLYPH_PX // 2, size), code, scale, 255, thickness, cv2.LINE_AA)
    else:
        from PIL import Image, ImageDraw, ImageFont

        face = ImageFont.truetype(str(font.path), GLYPH_PX)
        image = Image.new("L", (size + GLYPH_PX, size + GLYPH_PX), 0)
        ImageDraw.Draw(image).text(
            (GLYPH_PX // 2, GLYPH_PX // 2),
            char,
            fill=255,
            font=face,
            stroke_width=int(rng.integers(0, 3)),
            stroke_fill=255,
        )
        canvas = np.asarray(image)
    return crop_ink(canvas.astype(np.float32) / 255.0)


def _bezier(points: np.ndarray, n: int = 60) -> np.ndarray:
    """Control points (K, 2) -> n points of the Bezier curve (de Casteljau)."""
    t = np.linspace(0, 1, n)[:, None, None]
    p = np.broadcast_to(points, (n, *points.shape)).astype(np.float64)
    while p.shape[1] > 1:
        p = (1 - t) * p[:, :-1] + t * p[:, 1:]
    return p[:, 0]


def _draw(curves: list[np.ndarray], pen: int, size: int = 96, closed: bool = False) -> np.ndarray:
    canvas = np.zeros((size, size), np.uint8)
    for c in curves:
        cv2.polylines(canvas, [np.round(c).astype(np.int32)], closed, 255, pen, cv2.LINE_AA)
    return crop_ink(canvas.astype(np.float32) / 255.0)


# A scribble whose strokes span a box narrower than this (short side / long side) is a bar that
# anyone would read as a 1: like the digit-shaped letters, never taught as "not a digit". Drawn
# again instead (`scribble`).
NARROWEST = 0.35


def narrow(curves: list[np.ndarray]) -> bool:
    """Are these strokes (each (K, 2) points) a bar: a box of short side < NARROWEST x long side?"""
    points = np.concatenate(curves)
    w, h = np.ptp(points, axis=0)
    return min(w, h) < NARROWEST * max(w, h, 1e-6)


def scribble(rng: np.random.Generator) -> np.ndarray:
    """A random stroke: Bezier curves, a zigzag, loops, a spiral or hatching, in a 96 px square;
    never one that is a bar (`narrow`)."""
    while True:
        pen, curves = _scribble_strokes(rng)
        if not narrow(curves):
            return _draw(curves, pen)


def _scribble_strokes(rng: np.random.Generator) -> tuple[int, list[np.ndarray]]:
    pen = int(rng.integers(2, 7))
    kind = rng.choice(["bezier", "zigzag", "loops", "spiral", "hatching", "tangle"])
    if kind == "bezier":
        # Two or three curves of eight or more control points: a path that turns many times (one
        # curve of a few points is often a 1, a 7 or a 2, and no one could call it a scribble).
        curves = [
            _bezier(rng.uniform(8, 88, (int(rng.integers(8, 12)), 2)), 160) for _ in range(int(rng.integers(2, 4)))
        ]
    elif kind == "zigzag":
        n = int(rng.integers(4, 10))
        xs = np.linspace(8, 88, n) + rng.normal(0, 3, n)
        ys = np.where(np.arange(n) % 2, rng.uniform(8, 35, n), rng.uniform(60, 88, n))
        pts = np.stack([xs, ys], 1)
        curves = [pts if rng.random() < 0.5 else pts[:, ::-1]]
    elif kind == "loops":
        t = np.linspace(0, 2 * np.pi * rng.uniform(2, 5), 300)
        r = rng.uniform(10, 20)
        curves = [np.stack([10 + r + t * rng.uniform(3, 6) - r * np.sin(t), 48 + r * np.cos(t)], 1)]
    elif kind == "spiral":
        t = np.linspace(0, 2 * np.pi * rng.uniform(2, 4), 300)
        radius = 4 + t * rng.uniform(2, 3.5)
        curves = [np.stack([48 + radius * np.cos(t), 48 + radius * np.sin(t)], 1)]
    elif kind == "hatching":
        n, angle = int(rng.integers(4, 10)), rng.uniform(0, np.pi)
        d = np.array([np.cos(angle), np.sin(angle)])
        normal = np.array([-d[1], d[0]])
        curves = [np.stack([48 + o * normal - 40 * d, 48 + o * normal + 40 * d]) for o in np.linspace(-36, 36, n)]
        if rng.random() < 0.4:  # cross-hatching
            curves += [np.stack([48 + o * d - 40 * normal, 48 + o * d + 40 * normal]) for o in np.linspace(-36, 36, n)]
    else:  # a random walk that turns a lot
        steps = rng.normal(0, 1, (int(rng.integers(30, 80)), 2)).cumsum(0) * 4
        curves = [48 + steps - steps.mean(0)]
    return pen, curves


def scrawl(rng: np.random.Generator) -> np.ndarray:
    """More kinds of scribble than `scribble` draws (a kind of its own, so that the benchmark's
    scribbles, drawn by `scribble`, stay the same images): a crossing-out, a cursive garland
    (mmm, eee), a wave, a burst of crossing lines, a cluster of dots; in a 96 px square."""
    pen = int(rng.integers(2, 7))
    kind = rng.choice(["crossing-out", "garland", "wave", "burst", "dots"])
    if kind == "crossing-out":  # many strokes back and forth over one place
        n = int(rng.integers(10, 26))
        xs = np.where(np.arange(n) % 2, rng.uniform(60, 90, n), rng.uniform(6, 36, n))
        ys = np.linspace(rng.uniform(10, 35), rng.uniform(60, 86), n) + rng.normal(0, 4, n)
        curves = [np.stack([xs, ys], 1)]
    elif kind == "garland":  # arches (m) or loops (e) written in a row, like a word no one can read
        humps = rng.uniform(3, 6)
        t = np.linspace(0, humps * np.pi, 300)
        x = 6 + 84 * t / t[-1]
        if rng.random() < 0.5:
            y = 70 - 40 * np.abs(np.sin(t))
        else:
            x = x + 8 * np.sin(2 * t)
            y = 55 - 20 * np.sin(2 * t + np.pi / 2) * rng.uniform(0.6, 1.2)
        curves = [np.stack([x, y], 1)]
    elif kind == "wave":
        t = np.linspace(0, 2 * np.pi * rng.uniform(2, 5), 300)
        curves = [np.stack([6 + 84 * t / t[-1], 48 + rng.uniform(6, 18) * np.sin(t)], 1)]
    elif kind == "burst":  # five or more long straight lines crossing (fewer, shorter ones make a 4, a 7)
        angles = rng.uniform(0, np.pi, int(rng.integers(5, 10)))
        d = np.stack([np.cos(angles), np.sin(angles)], 1) * rng.uniform(30, 44, (len(angles), 1))
        centres = 48 + rng.normal(0, 8, (len(angles), 2))
        curves = [np.stack([c - v, c + v]) for c, v in zip(centres, d)]
    else:  # dots, as a pen tapped on the paper
        curves = [np.repeat(p[None], 2, 0) for p in rng.uniform(8, 88, (int(rng.integers(6, 20)), 2))]
        pen = int(rng.integers(4, 9))
    return _draw(curves, pen)


def shape(rng: np.random.Generator) -> np.ndarray:
    """A drawn shape that is no digit: a smiley, star, triangle, heart, arrow, tick, cross, box."""
    pen = int(rng.integers(2, 6))
    kind = rng.choice(["smiley", "star", "triangle", "heart", "arrow", "tick", "cross", "box", "asterisk"])
    t = np.linspace(0, 2 * np.pi, 100)
    if kind == "smiley":
        face = np.stack([48 + 40 * np.cos(t), 48 + 40 * np.sin(t)], 1)
        mouth_t = np.linspace(0.2 * np.pi, 0.8 * np.pi, 30)
        mouth = np.stack([48 + 24 * np.cos(mouth_t), 52 + 20 * np.sin(mouth_t) * rng.choice([1, -1])], 1)
        eyes = [np.stack([[x - 1, 34.0], [x + 1, 36.0]]) for x in (34, 62)]
        return _draw([face, mouth, *eyes], pen)
    if kind == "star":
        k = np.arange(11) * np.pi / 5 - np.pi / 2
        r = np.where(np.arange(11) % 2, rng.uniform(12, 22), 42)
        return _draw([np.stack([48 + r * np.cos(k), 48 + r * np.sin(k)], 1)], pen)
    if kind == "triangle":  # corners on a circle, far apart: never a flat sliver that looks like a 1
        a = rng.uniform(0, 2 * np.pi) + np.array([0, 2.1, 4.2]) + rng.uniform(-0.3, 0.3, 3)
        return _draw([np.stack([48 + 40 * np.cos(a), 48 + 40 * np.sin(a)], 1)], pen, closed=True)
    if kind == "heart":
        x, y = 16 * np.sin(t) ** 3, 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
        return _draw([np.stack([48 + 2.5 * x, 48 - 2.5 * y], 1)], pen, closed=True)
    if kind == "arrow":
        return _draw([np.array([[8, 48], [88, 48]]), np.array([[68, 30], [88, 48], [68, 66]])], pen)
    if kind == "tick":
        return _draw([np.array([[10, 50], [35, 80], [88, 12]])], pen)
    if kind == "cross":
        return _draw([np.array([[10, 10], [86, 86]]), np.array([[86, 10], [10, 86]])], pen)
    if kind == "box":  # an empty box of a form
        w, h = rng.uniform(30, 44), rng.uniform(30, 44)
        return _draw(
            [np.array([[48 - w, 48 - h], [48 + w, 48 - h], [48 + w, 48 + h], [48 - w, 48 + h]])], pen, closed=True
        )
    angles = np.arange(int(rng.integers(3, 5))) * np.pi / rng.integers(3, 5)
    return _draw(
        [
            np.array([[48 - 40 * np.cos(a), 48 - 40 * np.sin(a)], [48 + 40 * np.cos(a), 48 + 40 * np.sin(a)]])
            for a in angles
        ],
        pen,
    )


def mnist_ink(digit28: np.ndarray) -> np.ndarray:
    """uint8 (28, 28) MNIST digit -> its ink at 3x, float32 0-1, cropped."""
    ink = cv2.resize(digit28.astype(np.float32) / 255.0, (84, 84), interpolation=cv2.INTER_CUBIC)
    return crop_ink(np.clip(ink, 0, 1))


# --- pens and distortions ---------------------------------------------------------------------


def distort(rng: np.random.Generator, ink: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Slant, rotation, aspect, an elastic warp and a pen (width, pencil grain, faint ink)."""
    h, w = ink.shape
    pad = max(h, w) // 3 + 4
    ink = np.pad(ink, pad)
    h, w = ink.shape
    shear = rng.uniform(-0.35, 0.35) * strength
    angle = np.radians(rng.uniform(-12, 12) * strength)
    aspect = np.exp(rng.uniform(-0.25, 0.25) * strength)
    a = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ np.array(
        [[aspect, shear], [0, 1]]
    )
    centre = np.array([w / 2, h / 2])
    m = np.hstack([a, (centre - a @ centre)[:, None]]).astype(np.float32)
    ink = cv2.warpAffine(ink, m, (w, h), flags=cv2.INTER_LINEAR)
    if rng.random() < 0.7:  # elastic: a smooth random displacement field (Simard et al. 2003)
        sigma = max(h, w) * rng.uniform(0.06, 0.12)
        alpha = max(h, w) * rng.uniform(0.02, 0.06) * strength
        dx, dy = (cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) for _ in range(2))
        dx, dy = dx * alpha / (np.abs(dx).max() + 1e-6), dy * alpha / (np.abs(dy).max() + 1e-6)
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        ink = cv2.remap(ink, gx + dx, gy + dy, cv2.INTER_LINEAR)
    pen = rng.choice(["ballpoint", "marker", "fine", "pencil", "faint"])
    if pen == "marker":
        ink = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    elif pen == "fine":
        ink = cv2.erode(ink, np.ones((2, 2), np.uint8)) if (ink > 0.5).sum() > 200 else ink
    elif pen == "pencil":
        ink = ink * rng.uniform(0.4, 1.0, ink.shape).astype(np.float32)
        ink = cv2.GaussianBlur(ink, (3, 3), 0)
    elif pen == "faint":
        ink = ink * rng.uniform(0.35, 0.7)
    return crop_ink(np.clip(ink, 0, 1))


# --- images --------------------------------------------------------------------------------------


def on_paper(rng: np.random.Generator, ink: np.ndarray) -> np.ndarray:
    """Ink sketch -> uint8 grey image of it written on paper: a random size (14-140 px tall), margin,
    paper and ink grey, polarity (a quarter light on dark), lighting ramp, grain, blur and JPEG;
    one in ten a bare 28x28 in MNIST form, as users pass them."""
    if rng.random() < 0.1:
        return fit_and_centre(ink)
    height = rng.uniform(14, 140)
    f = height / max(ink.shape[0], 1)
    ink = cv2.resize(ink, (max(1, round(ink.shape[1] * f)), max(1, round(height))), interpolation=cv2.INTER_AREA)
    margins = (rng.uniform(0.15, 1.2, 4) * height).astype(int) + 2
    ink = np.pad(ink, ((margins[0], margins[1]), (margins[2], margins[3])))
    return paper_image(rng, ink)


def paper_image(rng: np.random.Generator, ink: np.ndarray) -> np.ndarray:
    """float32 ink map (0-1) -> uint8 grey photo or scan of it (see `on_paper`)."""
    h, w = ink.shape
    paper = rng.uniform(150, 250)
    depth = rng.uniform(0.45, 0.95) * paper
    grey: np.ndarray = paper - ink * depth
    if rng.random() < 0.5:  # uneven light
        angle = rng.uniform(0, 2 * np.pi)
        ramp = np.cos(angle) * np.arange(w)[None] / w + np.sin(angle) * np.arange(h)[:, None] / h
        grey = grey * (1 - rng.uniform(0.0, 0.35) * (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6))
    if rng.random() < 0.5:
        grey = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), rng.uniform(0.3, 1.2))
    grey = grey + rng.normal(0, rng.uniform(0, 8), grey.shape)
    if rng.random() < 0.25:
        grey = 255 - grey  # light ink on a dark background (a canvas, a blackboard, an inverted scan)
    grey = np.clip(grey, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        ok, data = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 90))])
        grey = np.asarray(cv2.imdecode(data, cv2.IMREAD_GRAYSCALE))
    return grey


def blank_page(rng: np.random.Generator) -> np.ndarray:
    """Paper with nothing written on it: grain, specks of dust, a lighting gradient, JPEG, and
    sometimes ruled lines or squares."""
    h, w = (int(v) for v in rng.integers(40, 400, 2))
    ink = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(0, 40))):  # dust and grain specks
        cv2.circle(
            ink, (int(rng.integers(w)), int(rng.integers(h))), int(rng.integers(0, 3)), float(rng.uniform(0.1, 0.9)), -1
        )
    if rng.random() < 0.35:
        rule(rng, ink, int(rng.integers(12, 40)))
    grey = paper_image(rng, ink)
    if rng.random() < 0.5:  # a strong grain: a photo in dim light
        grey = np.clip(grey + rng.normal(0, rng.uniform(5, 25), grey.shape), 0, 255).astype(np.uint8)
    return grey


def rule(rng: np.random.Generator, ink: np.ndarray, step: int) -> None:
    """Draw ruled lines `step` px apart into the float32 ink map `ink`, in place; four in ten
    squared paper (columns too)."""
    h, w = ink.shape
    level = float(rng.uniform(0.15, 0.6))
    for y in range(int(rng.integers(step)), h, step):
        cv2.line(ink, (0, y), (w, y), level, 1)
    if rng.random() < 0.4:
        for x in range(int(rng.integers(step)), w, step):
            cv2.line(ink, (x, 0), (x, h), level, 1)


def scanned_digit(rng: np.random.Generator, digit28: np.ndarray) -> np.ndarray:
    """A digit as normalised scans store it (USPS, Semeion, NIST forms): cropped, often stretched to
    fill a 16 or 32 px box edge to edge, often thresholded to black and white, ink bright on dark."""
    ink = mnist_ink(digit28)
    if rng.random() < 0.5:  # written fast with a thick pen (Semeion's writers were asked to hurry)
        ink = distort(rng, ink, strength=0.7)
        ink = ink / max(float(ink.max()), 1e-6)  # a scan is thresholded: `distort`'s faint pen is not a scan's
        ink = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(rng.integers(3, 9)),) * 2))
    side = int(rng.choice([16, 16, 20, 24, 28, 32]))
    if rng.random() < 0.6:  # stretched to touch all four sides
        box = cv2.resize(ink, (side, side), interpolation=cv2.INTER_AREA)
    else:
        box = fit_and_centre(ink)[None].astype(np.float32)[0] / 255.0
        box = cv2.resize(box, (side, side), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.6:
        box = (box > rng.uniform(0.25, 0.5)).astype(np.float32)
    grey = np.clip(box * 255, 0, 255).astype(np.uint8)
    return 255 - grey if rng.random() < 0.2 else grey


def pen_digit(rng: np.random.Generator, digit28: np.ndarray) -> np.ndarray:
    """A digit written with a tablet's pen and saved as a drawing app saves it (uji-pen, a canvas):
    MNIST's strokes thinned to their middle line and drawn again with one even width, black on
    plain white, 40-160 px, no paper, no noise."""
    ink = distort(rng, mnist_ink(digit28), strength=0.5)
    solid = (ink > 0.4 * ink.max()).astype(np.float32)  # relative: `distort`'s faint pen is 0.35-0.7
    # The middle line: where the distance to the paper is a local maximum (a medial axis, in
    # 3 px pieces that the even pen joins again).
    far = cv2.distanceTransform((solid * 255).astype(np.uint8), cv2.DIST_L2, 3)
    middle = ((far >= cv2.dilate(far, np.ones((3, 3), np.uint8)) - 0.5) & (far >= 1)).astype(np.float32)
    pen = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(rng.integers(3, 8)),) * 2)
    ink = crop_ink(cv2.GaussianBlur(cv2.dilate(middle, pen), (3, 3), 0))
    side = int(rng.integers(40, 161))
    f = side * rng.uniform(0.6, 0.85) / max(ink.shape)
    ink = cv2.resize(
        ink, (max(1, round(ink.shape[1] * f)), max(1, round(ink.shape[0] * f))), interpolation=cv2.INTER_AREA
    )
    canvas = np.zeros((side, side), np.float32)
    y, x = (side - ink.shape[0]) // 2, (side - ink.shape[1]) // 2
    canvas[y : y + ink.shape[0], x : x + ink.shape[1]] = ink
    return np.clip(255 - canvas * 255, 0, 255).astype(np.uint8)


def cut_digit(
    rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, label_out: list | None = None
) -> np.ndarray:
    """One digit cut from a written number by its span, a few px wider: slivers of its neighbours
    at the left and right edges, as the digits of a cheque's amount come. `label_out`, when given,
    receives the cut digit's label (the digit model trains on these too: train.rendered)."""
    from digitrec.synth import make_number

    spans: list = []
    # Apart only: a touching neighbour would put a second digit inside the cut, which is a pair.
    grey, text = make_number(rng, images, labels, 3, group="separated", spans=spans)
    if label_out is not None:
        label_out.append(int(text[1]))
    left, right = spans[1]
    extra = int(rng.integers(1, 8))
    cut = grey[:, max(0, left - extra) : right + extra]
    rows = np.nonzero((255 - cut.astype(int)).max(axis=1) > 60)[0]  # trim the paper above and below
    if len(rows):
        cut = cut[max(0, rows[0] - extra) : rows[-1] + 1 + extra]
    return cut


def cheque_digit(
    rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, label_out: list | None = None
) -> np.ndarray:
    """One digit of a cheque amount as a cheque reader's scan and segmenter give it: cut with
    wide slivers of its neighbours (up to 40% of a digit each side), often with a thin pen, over
    guilloche, at low contrast, sometimes binarised. The ORAND digits the first rejector flagged
    look like this. `label_out`, when given, receives the cut digit's label."""
    from digitrec.synth import make_number

    spans: list = []
    grey, text = make_number(rng, images, labels, 3, group="separated", spans=spans)
    if label_out is not None:
        label_out.append(int(text[1]))
    left, right = spans[1]
    width = right - left
    lo, hi = (int(width * f) + 1 for f in rng.uniform(0.02, 0.4, 2))
    cut = grey[:, max(0, left - lo) : right + hi].astype(np.float32)
    rows = np.nonzero((255 - cut).max(axis=1) > 60)[0]  # trim the paper above and below
    if len(rows):
        margin = int(rng.integers(1, 8))
        cut = cut[max(0, rows[0] - margin) : rows[-1] + 1 + margin]
    if rng.random() < 0.5 and cut.shape[0] > 30:  # a thin pen: the dark strokes eroded by a px
        cut = np.maximum(cv2.dilate(cut, np.ones((2, 2), np.uint8)), cut * 0.8 + 255 * 0.2)
    if rng.random() < 0.7:
        cut = documents.background(rng, cut, float(cut.shape[0]), "cheque")
    paper = float(np.percentile(cut, 90))
    cut = paper - (paper - cut) * rng.uniform(0.25, 1.0)  # low contrast: a light pen, a grey scan
    cut = cut + rng.normal(0, rng.uniform(0, 6), cut.shape)
    if rng.random() < 0.25:  # a binarised scan
        cut = np.where(cut < paper - rng.uniform(15, 40), 0.0, 255.0)
    return np.clip(cut, 0, 255).astype(np.uint8)


def photo_digit(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One digit in a phone photo of a note: written on paper (`synth.make_number`), half of them
    ruled or squared, seen at an
    angle (a perspective warp), sometimes under a soft shadow, then `synth`'s photo (a lighting
    gradient, blur, noise, JPEG); a quarter of them light on dark."""
    from digitrec.synth import _photo, make_number

    grey, _ = make_number(rng, images, labels, 1, group="separated")
    paper = float(np.median(grey))
    height = grey.shape[0]
    grey = np.pad(grey, int(height * rng.uniform(0, 0.5)), constant_values=paper).astype(np.float32)
    h, w = grey.shape
    if rng.random() < 0.5:  # a page of a school notebook: ruled or squared, lines about a digit apart
        lines = np.zeros((h, w), np.float32)
        rule(rng, lines, max(8, int(height * rng.uniform(0.4, 1.0))))
        grey = np.minimum(grey, paper * (1 - lines * rng.uniform(0.3, 0.8)))
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    moved = corners + rng.uniform(-0.12, 0.12, (4, 2)).astype(np.float32) * np.float32([w, h])
    grey = cv2.warpPerspective(
        grey, cv2.getPerspectiveTransform(corners, moved), (w, h), borderMode=cv2.BORDER_REPLICATE
    )
    if rng.random() < 0.4:  # the phone's (or the hand's) shadow: a soft darker half-plane
        angle = rng.uniform(0, 2 * np.pi)
        side = np.cos(angle) * (np.arange(w)[None] - w * rng.uniform(0.2, 0.8)) + np.sin(angle) * (
            np.arange(h)[:, None] - h * rng.uniform(0.2, 0.8)
        )
        shade = 1 / (1 + np.exp(-side / max(2.0, 0.08 * max(h, w))))
        grey = grey * (1 - rng.uniform(0.1, 0.3) * shade)
    grey = _photo(rng, grey)  # a lighting gradient, blur, noise, JPEG
    if rng.random() < 0.25:
        grey = 255 - grey
    return np.clip(grey, 0, 255).astype(np.uint8)


def several_digits(
    rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, counts: tuple[int, ...] = (2, 2, 3)
) -> np.ndarray:
    """A number of `counts` (one drawn) MNIST digits side by side: apart, touching, overlapping or
    photographed."""
    from digitrec.synth import GROUPS, make_number

    grey, _ = make_number(rng, images, labels, int(rng.choice(counts)), group=str(rng.choice(GROUPS)))
    if rng.random() < 0.25:
        grey = 255 - grey
    return grey


def document_number(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A number of 2-6 digits as documents hold one (`synth.make_number(document=1)`: a register
    cell's border and ruling, a cheque's guilloche, ruled or squared paper, a cross, tick or
    underline beside it, a photo of it; marks between the digits): what a user crops from a form
    and gives to `predict`, which must say *several digits*, not *not a digit*."""
    from digitrec.synth import FORM_MARKS, GROUPS, SMALL_TAIL_SHARE, make_number

    grey, _ = make_number(
        rng,
        images,
        labels,
        int(rng.integers(2, 7)),
        group=str(rng.choice(GROUPS)),
        punctuation=bool(rng.random() < 0.3),
        small_tail=SMALL_TAIL_SHARE,
        marks=FORM_MARKS,
        document=1.0,
    )
    return grey


# --- examples --------------------------------------------------------------------------------------


def make_image(
    rng: np.random.Generator, kind: str, fonts: list[Font], images: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """One grey image (uint8 (H, W)) of `kind` (a key of KIND_CLASS)."""
    if kind == "digit":
        digit28 = images[rng.integers(len(images))]
        if rng.random() < 0.1:
            return digit28  # as MNIST gives it
        return on_paper(rng, distort(rng, mnist_ink(digit28), strength=0.5))
    if kind == "scan-digit":
        return scanned_digit(rng, images[rng.integers(len(images))])
    if kind == "pen-digit":
        return pen_digit(rng, images[rng.integers(len(images))])
    if kind == "cut-digit":
        return cut_digit(rng, images, labels)
    if kind == "cheque-digit":
        return cheque_digit(rng, images, labels)
    if kind == "photo-digit":
        return photo_digit(rng, images, labels)
    if kind == "font-digit":
        return on_paper(rng, distort(rng, glyph(rng, str(rng.choice(list(FONT_DIGITS))), pick_font(rng, fonts))))
    if kind == "letter":
        chars = LETTERS if rng.random() < 0.75 else SYMBOLS
        return on_paper(rng, distort(rng, glyph(rng, str(rng.choice(list(chars))), pick_font(rng, fonts))))
    if kind == "scribble":
        return on_paper(rng, distort(rng, scribble(rng), strength=0.5))
    if kind == "scrawl":
        return on_paper(rng, distort(rng, scrawl(rng), strength=0.5))
    if kind == "shape":
        return on_paper(rng, distort(rng, shape(rng), strength=0.5))
    if kind == "blank":
        return blank_page(rng)
    if kind == "pair":
        return several_digits(rng, images, labels)
    if kind == "number":
        return several_digits(rng, images, labels, counts=(4, 5, 6))
    if kind == "document-number":
        return document_number(rng, images, labels)
    raise ValueError(f"unknown kind {kind!r}")


def view_of(grey: np.ndarray) -> np.ndarray | None:
    """What the rejector sees of an image at run time: the first (as-written) MNIST view, or None
    when the preprocessing finds no ink (the runtime's 'no ink found' error)."""
    try:
        return digit_views(grey, squeezes=(1.0,))[0]
    except ImageError:
        return None


def make_examples(
    rng: np.random.Generator,
    counts: dict[str, int],
    fonts: list[Font],
    images: np.ndarray,
    labels: np.ndarray,
    log: Callable[[str], None] = lambda m: None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """{kind: how many} -> (uint8 (N, 28, 28) views, int64 (N,) classes, (N,) kinds). Images in
    which the preprocessing finds no ink are left out (the runtime already says 'no ink' there)."""
    views, classes, kinds = [], [], []
    for kind, n in counts.items():
        empty = 0
        for _ in range(n):
            view = view_of(make_image(rng, kind, fonts, images, labels))
            if view is None:
                empty += 1
                continue
            views.append(view)
            classes.append(KIND_CLASS[kind])
            kinds.append(kind)
        log(f"  {kind}: {n - empty:,} examples ({empty:,} without ink)")
    return (
        np.array(views, np.uint8).reshape(-1, 28, 28),
        np.array(classes, np.int64),
        np.array(kinds),
    )
