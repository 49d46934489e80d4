"""Written numbers made from MNIST digits, with known answers: for the reading benchmark (from
*test* digits) and for training the reader's segmentation verifier (from *training* digits).

`make_number` pastes digit crops dark on light paper with random sizes, gaps and baseline jitter,
`separated`, `touching` (each digit slid left until its ink meets its neighbour's), `overlapping`
(slid further) or `photo` (separated or touching, then a lighting gradient, blur, noise and JPEG).
It can also return which digit owns each pixel, so a candidate segmentation can be scored.
`digit_matches` scores a reading against the answer. numpy and OpenCV only.
"""

from __future__ import annotations

import cv2
import numpy as np

from digitrec import documents, glyph_forms

GROUPS = ("separated", "touching", "overlapping", "photo")
# Marks that are not digits, drawn by `punctuation`: the decimal point, comma and dash of an amount;
# FORM_MARKS adds what else people write beside a number on a cheque or a form: an equals sign
# closing the amount, a slash, a short tick (shorter than any digit of the line).
CHEQUE_MARKS = ".,-"
FORM_MARKS = ".,-=/'"
# The numbers the reader's networks train on (the verifier's candidates, the line reader's lines):
# this share has FORM_MARKS beside it, and this share ends in smaller digits (the cents of an
# amount), so that neither a mark nor a small digit is new to them.
MARKS_SHARE, SMALL_TAIL_SHARE = 0.4, 0.25
# The marks a reader keeps with `keep_punctuation` (a decimal point, a thousands separator, a
# minus sign): the line reader learns them as characters; the other FORM_MARKS it learns to skip.
KEPT_MARKS = ".,-"
HOOKED_ONES = 0.3  # of the 1s in a dressed number, those written with a long lead-in stroke
PHOTO_SHARE = 0.3  # of the dressed numbers, those photographed (light, blur, noise, JPEG)
# A soft scan (`soft_scan`): a blur of 3-8% of the digit height, or a resolution at which the
# digits are 8-18 px tall.
SOFT_BLUR, LOW_RES = (0.03, 0.08), (8.0, 18.0)
INK = 60  # a pasted pixel at least this bright (of 255) is ink: for touching and ownership


def _ink_crop(digit28: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(digit28 > 30)
    return digit28[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def make_number(
    rng: np.random.Generator,
    images: np.ndarray,
    labels: np.ndarray,
    length: int,
    group: str = "separated",
    spans: list | None = None,
    punctuation: bool = False,
    owner_out: list | None = None,
    small_tail: float = 0.0,
    marks: str = CHEQUE_MARKS,
    digits: np.ndarray | None = None,
    document: float = 0.0,
    text_out: list | None = None,
    minus: float = 0.0,
    forms: float = 0.0,
    soft: float = 0.0,
) -> tuple[np.ndarray, str]:
    """-> (uint8 grey image, dark ink on light paper; the label string). `spans`, when given,
    receives each digit's (left, right) x in the image; `punctuation` adds marks drawn from `marks`
    (CHEQUE_MARKS: dots, commas and dashes) between and after the digits (not part of the label); `owner_out`,
    when given, receives an int16 map of the image's shape: the index of the digit whose ink is
    strongest at each pixel, -1 where no digit has ink (punctuation included). With probability
    `small_tail` the last one to three digits are written at 50-75% of the height (the cents of an
    amount). `digits`: the indices of the images to write (default: `length` at random; one
    writer's, from `digitrec.writers`, make a number written by one hand). With probability
    `document` the number is dressed (`_dress`: one hand's slant and pen, hooked 1s, a cross, tick
    or underline beside it, ruled, squared, register or cheque paper, sometimes a photo of it).
    `text_out`, when given, receives the label with the KEPT_MARKS drawn (".", ",", "-") where
    they are written; with probability `minus` a minus sign is written before the number. With
    `forms`, each digit of a class `glyph_forms.FORMS` knows is redrawn in one of its real writers'
    forms with that probability, and the whole number has one of its hands (`glyph_forms.hand`,
    unless dressed) and no dressed hooked 1s (the forms draw their own). With probability `soft`
    the finished image is scanned soft or at a low resolution (`soft_scan`)."""
    layout = group if group != "photo" else ("separated", "touching")[int(rng.integers(2))]
    idx = rng.integers(0, len(images), length) if digits is None else np.asarray(digits)
    length = len(idx)
    dress = bool(document) and rng.random() < document
    slant, pen = documents.hand(rng) if dress else glyph_forms.hand(rng) if forms else (0.0, 0)
    height = float(rng.uniform(22, 64))  # px, the string's digit height
    sizes = np.ones(length)
    if small_tail and length > 1 and rng.random() < small_tail:
        n_small = int(rng.integers(1, min(3, length - 1) + 1))
        sizes[-n_small:] = rng.uniform(0.5, 0.75)
    pieces = []
    for i, size in zip(idx, sizes):
        crop = _ink_crop(images[i]).astype(np.float32)
        f = height * size * rng.uniform(0.85, 1.15) / crop.shape[0]
        piece = cv2.resize(
            crop,
            (max(1, round(crop.shape[1] * f)), max(1, round(crop.shape[0] * f))),
            interpolation=cv2.INTER_LINEAR,
        )
        if forms:  # drawn before the hand's slant and pen, which then apply to the new strokes too
            piece = glyph_forms.redraw(rng, piece, int(labels[i]), forms)
        if dress or forms:
            piece = documents.styled(piece, slant, pen, height)
        if dress and not forms and labels[i] == 1 and rng.random() < HOOKED_ONES:
            piece = documents.hooked_one(rng, piece)
        pieces.append(piece)
    margin = int(height * rng.uniform(0.4, 1.0))
    width = sum(p.shape[1] for p in pieces) + int(length * 0.6 * height) + 2 * margin
    canvas = np.zeros((int(height * 1.6) + 2 * margin, width), np.float32)
    owner = np.full(canvas.shape, -1, np.int16)
    x = left = margin  # left: where the digit before this one starts
    written = []  # (x, character) of every digit and kept mark, for text_out
    if minus and rng.random() < minus:
        x = _punctuate(rng, canvas, x, margin + int(height * 1.3), height, "-")
        written.append((margin, "-"))
    for k, p in enumerate(pieces):
        canvas, owner = _room(canvas, owner, x + p.shape[1])
        y = (
            margin
            + int(height * 0.3 + rng.uniform(-0.1, 0.1) * height)
            + int((height - p.shape[0]) * rng.uniform(0, 1))
        )
        if k > 0 and layout != "separated":
            x = _slide_until_touching(canvas, p, x, y, floor=left)
            if layout == "overlapping":
                x -= int(rng.uniform(0.03, 0.12) * height)  # still right of the margin: x >= left >= margin
        left = x
        region = canvas[y : y + p.shape[0], x : x + p.shape[1]]
        owner[y : y + p.shape[0], x : x + p.shape[1]][(p > region) & (p >= INK)] = k
        np.maximum(region, p, out=region)
        if spans is not None:
            spans.append((x, x + p.shape[1]))
        written.append((x, str(int(labels[idx[k]]))))
        x += p.shape[1] + int(rng.uniform(0.1, 0.5) * height)
        if punctuation and (k == length - 1 or rng.random() < 0.2):
            canvas, owner = _room(canvas, owner, x + int(1.5 * height))
            at = x
            x, kind = _punctuate(rng, canvas, x, margin + int(height * 1.3), height, marks, with_kind=True)
            if kind in KEPT_MARKS:
                written.append((at, kind))
    if dress:
        canvas, owner, x = _beside(rng, canvas, owner, x, margin, height, pen)
    right = x - int(0.1 * height) + margin
    canvas, owner = canvas[:, :right], owner[:, :right]
    paper = rng.uniform(200, 245)
    grey = paper - canvas / 255.0 * paper * rng.uniform(0.65, 0.9)
    if dress:
        kinds = list(documents.BACKGROUNDS)
        weights = np.array(list(documents.BACKGROUNDS.values()))
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        grey = documents.background(rng, grey, height, kind)
        if owner_out is not None and grey.shape != owner.shape:  # a border added on the left
            owner = np.pad(owner, ((0, 0), (grey.shape[1] - owner.shape[1], 0)), constant_values=-1)
    # A soft scan before a photo's noise and JPEG, which a real soft scan has on top of its blur.
    # Nothing is drawn from rng without it: the seeded numbers stay the same.
    if soft and rng.random() < soft:
        grey = soft_scan(rng, grey, height)
    if group == "photo" or (dress and rng.random() < PHOTO_SHARE):
        grey = _photo(rng, grey)
    if text_out is not None:
        text_out.append("".join(ch for _, ch in written))
    if owner_out is not None:
        owner_out.append(owner)
    return np.clip(grey, 0, 255).astype(np.uint8), "".join(str(int(labels[i])) for i in idx)


def write_text(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, text: str) -> np.ndarray:
    """A number written as `text` says, marks included ("1,250.00", "-5"): each digit a random
    image of it from `images`, separated like `make_number`'s, each mark (KEPT_MARKS) drawn by
    `_punctuate` where it stands -> uint8 grey image, dark ink on light paper."""
    height = float(rng.uniform(28, 56))
    margin = int(height * 0.6)
    baseline = margin + int(height * 1.3)
    canvas = np.zeros((int(height * 1.6) + 2 * margin, 2 * margin + int(len(text) * 1.6 * height)), np.float32)
    x = margin
    for ch in text:
        if ch not in "0123456789":
            x = _punctuate(rng, canvas, x, baseline, height, ch)
            continue
        choices = np.nonzero(labels == int(ch))[0]
        crop = _ink_crop(images[int(rng.choice(choices))]).astype(np.float32)
        f = height * rng.uniform(0.9, 1.1) / crop.shape[0]
        piece = cv2.resize(crop, (max(1, round(crop.shape[1] * f)), max(1, round(crop.shape[0] * f))))
        y = baseline - piece.shape[0]
        region = canvas[y : y + piece.shape[0], x : x + piece.shape[1]]
        np.maximum(region, piece[: region.shape[0], : region.shape[1]], out=region)
        x += piece.shape[1] + int(rng.uniform(0.15, 0.4) * height)
    canvas = canvas[:, : x + margin]
    paper = rng.uniform(200, 245)
    return np.clip(paper - canvas / 255.0 * paper * rng.uniform(0.65, 0.9), 0, 255).astype(np.uint8)


def _beside(
    rng: np.random.Generator, canvas: np.ndarray, owner: np.ndarray, x: int, margin: int, height: float, pen: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """What a clerk writes beside a number: a cross or tick after it, or a line under it (or
    nothing) -> (canvas, owner, the x after it)."""
    kind = rng.choice(list(documents.BESIDE) + [""])
    width = max(2, int(height * rng.uniform(0.06, 0.12)) + pen)
    if kind in ("x", "v"):
        x += int(height * rng.uniform(0.2, 0.8))
        canvas, owner = _room(canvas, owner, x + int(height))
        top = margin + int(height * rng.uniform(0.3, 0.9))
        x = documents.beside(rng, canvas, str(kind), x, top, height, width)
    elif kind == "_":
        y = min(canvas.shape[0] - 1, margin + int(height * rng.uniform(1.3, 1.5)))
        documents.underline(rng, canvas, margin, x, y, width)
    return canvas, owner, x


def _room(canvas: np.ndarray, owner: np.ndarray, right: int) -> tuple[np.ndarray, np.ndarray]:
    """The canvas and owner map widened to at least `right` columns: the gaps allowed for at the
    start do not always hold the marks."""
    more = right - canvas.shape[1]
    if more <= 0:
        return canvas, owner
    return np.pad(canvas, ((0, 0), (0, more))), np.pad(owner, ((0, 0), (0, more)), constant_values=-1)


def _punctuate(
    rng: np.random.Generator,
    canvas: np.ndarray,
    x: int,
    baseline: int,
    height: float,
    marks: str = CHEQUE_MARKS,
    with_kind: bool = False,
):
    """Draw one of `marks` ('.', ',', '-', '=', '/', "'") at x on the baseline -> the x after it
    (and, `with_kind`, which mark it was)."""
    pen = max(2, int(height * rng.uniform(0.08, 0.14)))
    kind = rng.choice(list(marks))
    if kind in "-=":
        y = baseline - int(height * rng.uniform(0.35, 0.6))
        end = x + int(height * rng.uniform(0.25, 0.5))
        tilt = int(rng.integers(-2, 3))
        cv2.line(canvas, (x, y), (end, y + tilt), 255, pen)
        if kind == "=":
            below = y + max(2 * pen, int(height * rng.uniform(0.15, 0.3)))
            cv2.line(canvas, (x + int(rng.integers(-2, 3)), below), (end, below + tilt), 255, pen)
        x = end
    elif kind in "/'":
        # A slash leans far more than a handwritten 1 (dx/dy 0.8-1.2) and is about half as tall as
        # the digits (0.3-0.55 of their height, plus the pen's width); a tick is shorter still
        # (0.15-0.35), upright or leaning, at the top of the line or on the baseline.
        tall = height * (rng.uniform(0.3, 0.55) if kind == "/" else rng.uniform(0.15, 0.35))
        lean = rng.uniform(0.8, 1.2) if kind == "/" else rng.uniform(-0.3, 0.5)
        bottom = baseline if kind == "/" or rng.random() < 0.5 else baseline - int(height * rng.uniform(0.6, 0.9))
        top = bottom - int(tall)
        dx = int(lean * tall)
        cv2.line(canvas, (x + max(0, -dx), bottom), (x + max(0, -dx) + dx, top), 255, pen)
        x += abs(dx) + pen
    else:
        cv2.circle(canvas, (x + pen, baseline - pen), pen, 255, -1)
        if kind == ",":
            cv2.line(canvas, (x + pen, baseline - pen), (x, baseline + int(0.25 * height)), 255, pen)
        x += 2 * pen
    x += int(rng.uniform(0.1, 0.4) * height)
    return (x, str(kind)) if with_kind else x


def _slide_until_touching(canvas: np.ndarray, piece: np.ndarray, x: int, y: int, floor: int = 1) -> int:
    """Slide `piece` left from x until its ink meets ink already on the canvas, but never past
    `floor` (the previous digit's left edge: a faint digit has no ink to meet). The overlapping
    layout then moves it 3-12% of the height further, which can pass `floor` by that much."""
    ink = piece > INK
    h, w = piece.shape
    while x > max(1, floor):
        below = canvas[y : y + h, x - 1 : x - 1 + w] > INK
        if (below & ink).any():
            break
        x -= 1
    return x


def soft_scan(rng: np.random.Generator, grey: np.ndarray, height: float) -> np.ndarray:
    """`grey` (float32, digits `height` px tall) as a soft or a low-resolution scan saw it, same
    shape: half the time blurred by a Gaussian of SOFT_BLUR of the digit height, else taken where
    the digits were LOW_RES px tall and enlarged back. A register scanned a little soft (sigma 1.2 px
    on 18 px digits) lost 14 of 47 rows, and at half its resolution 8 (issue 16): the photos'
    blur (0.4-1.2 px on digits of 22-64) is mostly far milder than that."""
    h, w = grey.shape
    if rng.random() < 0.5:
        return cv2.GaussianBlur(grey, (0, 0), height * rng.uniform(*SOFT_BLUR))
    f = min(1.0, rng.uniform(*LOW_RES) / height)
    small = cv2.resize(grey, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _photo(rng: np.random.Generator, grey: np.ndarray) -> np.ndarray:
    h, w = grey.shape
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * np.arange(w)[None] / w + np.sin(angle) * np.arange(h)[:, None] / h
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
    grey = grey * (1 - rng.uniform(0.15, 0.45) * ramp)
    grey = cv2.GaussianBlur(grey, (0, 0), rng.uniform(0.4, 1.2))
    grey = grey + rng.normal(0, rng.uniform(3, 10), grey.shape)
    ok, data = cv2.imencode(
        ".jpg", np.clip(grey, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 85))]
    )
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE).astype(np.float32)


def digit_matches(predicted: str, label: str) -> int:
    """Digits in the right place: length of the longest common subsequence, so one missing or
    extra digit costs one digit, not the rest of the string."""
    a, b = predicted, label
    table = np.zeros((len(a) + 1, len(b) + 1), np.int32)
    for i in range(len(a)):
        for j in range(len(b)):
            table[i + 1, j + 1] = table[i, j] + 1 if a[i] == b[j] else max(table[i, j + 1], table[i + 1, j])
    return int(table[-1, -1])
