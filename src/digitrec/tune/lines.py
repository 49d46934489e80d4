"""`digitrec finetune --numbers CSV`: the user's labelled numbers -> the line images the reader's line
model sees (`line_reader.line_image`), each with its text. No torch here.

The image is cut into text lines by `preprocess.segment`, as the reader cuts it. One line: it is the
number, whatever the reader reads in it (a misread is what there is to learn). Several lines (a
register strip holds the number beside a tick or the ruling's remains): the reader (`Recognizer.read`)
says which of them are the number, and each of those lines is matched to the segmentation's by
where its digits are; when they are several, the text is split among them by how many digits the
reader found in each, and a number whose count differs from its text's is skipped: nothing then
says which digits are on which line (the rule `tune.numbers` keeps for the digits).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digitrec.files import file_sha256
from digitrec.preprocess.load import load_grey
from digitrec.preprocess.segment import Segmentation, TextLine, segment
from digitrec.read.line_reader import line_image
from digitrec.tune.numbers import attempt


@dataclass
class NumberLines:
    images: list[np.ndarray] = field(repr=False)  # uint8 (HEIGHT, W) each, as the line reader is fed
    texts: list[str]
    files: list[Path]  # the image each line comes from: the user's numbers are held out by file
    numbers: int  # labelled numbers given
    used: int  # whose lines were found
    skipped: list[tuple[Path, str]]  # (image, why)
    sha256: str  # of the texts and image contents, in order: which data made the line reader


def lines_from_numbers(
    numbers: list[tuple[Path, str]],
    read: Callable[[np.ndarray], object],
    warn: Callable[[str], None] = lambda m: None,
) -> NumberLines:
    """(image, text) pairs (`tune.numbers.list_numbers`) -> their line images and texts; `read` (a
    Recognizer's) decides which lines hold the number where the image has several."""
    images, texts, files, skipped = [], [], [], []
    digest = hashlib.sha256()
    for path, text in numbers:

        def lines_of(path: Path = path, text: str = text):
            grey = load_grey(path)
            seg = segment(grey)
            return seg, _number_lines(seg, grey, text, read), file_sha256(path)

        done = attempt(path, lines_of, skipped)
        if done is None:
            continue
        seg, found, content = done
        if isinstance(found, str):
            skipped.append((path, found))
            continue
        for line, part in found:
            images.append(line_image(line.atoms, seg.ink, seg.stroke, line.height))
            texts.append(part)
            files.append(path)
        digest.update(f"{text}:{content}\n".encode())
    if skipped:
        shown = "; ".join(f"{path.name}: {why}" for path, why in skipped[:5])
        warn(f"{len(skipped)} of {len(numbers)} numbers not used for the line reader (lines not matched): {shown}")
    return NumberLines(images, texts, files, len(numbers), len(numbers) - len(skipped), skipped, digest.hexdigest())


def _number_lines(seg: Segmentation, grey: np.ndarray, text: str, read) -> list[tuple[TextLine, str]] | str:
    """-> [(line, its part of `text`)], or why the lines cannot be matched."""
    if not seg.lines:
        return "no ink found"
    if len(seg.lines) == 1:
        return [(seg.lines[0], text)]
    reading = read(grey)
    # Each line the reader kept -> the segmented line that holds most of its digits' centres, with
    # how many digits the reader found there.
    counts: dict[int, int] = {}
    for digits in reading.lines:
        votes = [_nearest_line(seg, d.box) for d in digits]
        k = max(set(votes), key=votes.count)
        counts[k] = counts.get(k, 0) + len(digits)
    if len(counts) == 1:
        return [(seg.lines[next(iter(counts))], text)]
    if sum(counts.values()) != len(text):
        found = " / ".join(reading.line_texts)
        return f"read {found!r} in {len(counts)} lines ({sum(counts.values())} digits), labelled {text!r}"
    ends = np.cumsum(list(counts.values()))
    return [(seg.lines[k], text[end - n : end]) for (k, n), end in zip(counts.items(), ends)]


def _nearest_line(seg: Segmentation, box: tuple[int, int, int, int]) -> int:
    """The index of the segmented line nearest the centre of `box` (x, y, w, h in the image's pixels)."""
    x, y, w, h = box
    cx, cy = (x + w / 2) * seg.scale, (y + h / 2) * seg.scale  # at working scale, as the atoms

    def distance(line: TextLine) -> float:
        left, right = min(a.x for a in line.atoms), max(a.x + a.w for a in line.atoms)
        dx, dy = max(left - cx, 0, cx - right), max(line.top - cy, 0, cy - line.bottom)
        return float(np.hypot(dx, dy))

    return int(np.argmin([distance(line) for line in seg.lines]))
