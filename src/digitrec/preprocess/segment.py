"""A written number -> lines of candidate digit pieces ("atoms"). OpenCV and numpy only.

The reader (`digitrec.read`) decides which consecutive atoms form one digit, scoring each
candidate with the classifier; this module only has to make sure every true digit boundary is
among the atom boundaries. So it over-segments on purpose:

1. `ink_map`: grey -> ink bright on black, with the paper's lighting divided out (shadows, gradients,
   a black scanner border and faint background texture such as a cheque's guilloche fade away).
2. `ink_mask`: hysteresis threshold (strong ink seeds, grown through fainter ink), specks dropped,
   long straight lines (ruled lines, underlines, frame edges) erased.
3. connected components, grouped into text lines top to bottom by vertical overlap;
4. every component wide enough to hold two touching digits is cut at candidate points: seams
   (a shortest path from top to bottom through the least ink) started at the minima of the
   vertical ink projection. Each cut remembers how much ink it crosses, so the reader can charge
   for cutting through strokes.

All sizes are in units of the line's digit height `H`, measured from the image, so nothing here
depends on the resolution of the input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from digitrec.errors import TooMuchToRead
from digitrec.preprocess.components import label_blobs
from digitrec.preprocess.debug import Stages
from digitrec.preprocess.ink import NOISE_SIGMAS, ink_is_bright, is_flat, rough_ink
from digitrec.preprocess.lines import UNDERLINE_SPAN, may_hold_segment
from digitrec.preprocess.morph import open_line
from digitrec.preprocess.noise import paper_noise, percentile_float
from digitrec.preprocess.stats import LEVELS, histogram, median_abs_deviation, otsu_level, percentile

# The working resolution: big photos are shrunk (speed), small scans enlarged (a 20 px digit has
# too few pixels for a seam between two touching digits). Longest side after scaling, in px.
WORK_MIN_SIDE, WORK_MAX_SIDE = 400, 1000
# A component shorter than this fraction of the line's digit height is punctuation, a dot, a
# dash, or a loose stroke fragment: the reader may skip it or merge it into a neighbour.
SMALL_ATOM = 0.5
# Small components at least this tall are still cut as digits of their own height.
SMALL_CHAIN = 0.35
# A page's digits taller than this where its ink was found (the median height of its lines; a page
# is found at its own size up to WORK_MAX_SIDE) are brought down to it, and the page segmented
# again: the ink finder's lighting model and the cuts' pixel limits read 20-40 px digits best.
# Chosen on 300 validation documents (writers no network saw) each read at 0.7, 1, 1.5 and 2 times
# its size, the cap for every input: none 958 of 1,200, 24 px 972, 32 px 985, 40 px 987, 48 px 975;
# only pages (an input of at least WORK_MIN_SIDE): crops, which are enlarged anyway, lost two
# cheques of ../shared's at 40 px (docs/read.md, session 18, "a page's digits brought to 40 px").
PAGE_DIGIT_HEIGHT = 40
# Components wider than this many digit heights may be several touching digits: they get cuts.
SPLIT_WIDTH = 0.8
# A seam strays at most this many digit heights from where it starts (slanted digits).
SEAM_BAND = 0.15
# Slants of the straight cuts tried besides the seams (dx/dy; positive leans right).
SLANTS = (-0.4, -0.2, 0.2, 0.4, 0.6)
# Straight runs longer than this many digit heights are rules, underlines or frame edges.
RULE_LENGTH = 2.2
# Before the digits' height is known, a rule is a line across the page: this much of its longer
# side. In a small crop (an input of at most WORK_MIN_SIDE px, which the reader enlarges: a cut-out
# digit, a drawing app's 200-400 px canvas, a tablet's 128 px rendering) one digit may fill the
# page, and its straight strokes (the stem of a 1, the bar of a 4: up to 0.71 of a 28x28 MNIST
# image) are that long; no digit is taller than the crop, nor much wider than it is tall, so there
# a rule must also be longer than UNDERLINE_SPAN of the shorter side (as `preprocess.lines` says
# of crops). A cheque's amount field (a crop twice as wide as tall) keeps its underline's length.
# (Under 128 px, `preprocess.lines.MIN_SIDE`, before: `read` of the shared single digits 190 -> 197
# of 200 canvas-synth, 380 -> 395 of 400 uji-pen; every reading of the 108 cheque amounts, 51
# register rows, 60 photo strings and 60 photo-synth digits unchanged, 2026-12-06.)
PAGE_RULE = 0.6


@dataclass
class Atom:
    """A piece of ink: a whole connected component, or a slice of one cut at a seam."""

    x: int
    y: int
    w: int
    h: int
    mask: np.ndarray = field(repr=False)  # bool (h, w)
    cut_cost: float = 0.0  # ink crossed (in stroke widths) by the cut on this atom's right side
    component: int = -1  # slices cut from one connected component share its number

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass
class TextLine:
    atoms: list[Atom]  # left to right
    height: float  # typical digit height, px at working scale

    @property
    def top(self) -> int:
        return min(a.y for a in self.atoms)

    @property
    def bottom(self) -> int:
        return max(a.y + a.h for a in self.atoms)


@dataclass
class Segmentation:
    ink: np.ndarray  # uint8 (H, W) ink map at working scale, ink bright
    mask: np.ndarray  # bool (H, W) ink kept
    scale: float  # working size / original size
    lines: list[TextLine]
    stroke: float  # typical stroke width, px at working scale


def working_scale(shape: tuple[int, int]) -> float:
    longest = max(shape[:2])
    if longest > WORK_MAX_SIDE:
        return WORK_MAX_SIDE / longest
    if longest < WORK_MIN_SIDE:
        return WORK_MIN_SIDE / longest
    return 1.0


# Paper darker than this share of the page's is a border (a scanner's black edge, a dark desk).
# Black, not shade: at half the page's brightness a shadow across a photographed page took the
# digits in it for a border's edge (measured: scanner borders 0.02-0.22 of the page, that shadow 0.43).
BORDER_PAPER = 0.25
# Ink more than this share of which lies on a border's edge is the edge's teeth, not writing.
ON_BORDER = 0.5
# Bold writing (under three strokes tall) sets the digits' height only when at least this share of
# the working image's shorter side tall (the two bold pages measured: 0.33 and 0.44; specks 0.02).
BOLD_MIN = 0.15
# The ink map's level (0-255: how much darker than the paper, as a share of its brightness) that a
# stroke's core must reach to seed a stroke (`ink_mask`); fainter ink only grows from such seeds.
# 40 loses pencil: a photo's pencil strokes peak at 25-60, and half the pencil numbers of
# ../shared's photos are misread. 20 read them (validation documents made faint, benchmarks/read.py
# --faint 0.2: 766 -> 870 of 1,000, none changed as given), but a blank grid or ruled page saved as
# a rough JPEG (quality 40-60) then read "1", often over 0.93 sure: its lines are as faint as pencil
# (16 of 80 such pages at 20, 0 at 40). So 40 stays until something tells pencil from a printed grid
# (docs/read.md, session 21).
STROKE_CORE = 40.0


def _odd(n: float) -> int:
    n = max(3, int(round(n)))
    return n if n % 2 else n + 1


def ink_map(grey: np.ndarray) -> np.ndarray:
    """uint8 grey (either polarity) -> uint8 ink map (`ink_and_border`'s first part)."""
    return ink_and_border(grey)[0]


def ink_and_border(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 grey (either polarity) -> (uint8 ink map: how much darker than the local paper each
    pixel is, relative to the paper's brightness (so a shadow or a lighting gradient does not
    read as ink), 0 = paper.

    The paper is a grey closing (max then min filter) several stroke widths wide: it erases the
    ink but follows the lighting, and keeps large dark regions (a scanner's black border) dark,
    where contrast is then measured against the page's own paper so their noise is not ink;
    bool map of the border's edge, or None without a border: within the closing's reach of paper
    far darker than the page's. The teeth of a border's ragged edge are narrower than the closing,
    so they read as ink, a tall stroke beside the number; `segment` drops the ink that lies there.)"""
    # Light ink on a dark background is made dark on light: a dark page (median under 100) whose
    # ink `predict`'s test also finds lighter than its background (the thin strokes, or the sparse
    # strong deviation in a photo). The median alone read an underexposed cheque (every pixel x 0.6)
    # inverted; the test alone took the paper of a register cell beside a wide black border for ink.
    if percentile(histogram(grey), 50) < 100 and ink_is_bright(grey):
        grey = 255 - grey
    g = grey.astype(np.float32)
    h, w = g.shape
    stroke = stroke_width(_rough_ink(grey))
    # Ten rough strokes wide, and never tiny against the image: the rough mask keeps only the
    # strokes' cores, so it underestimates their width, and a window narrower than a stroke
    # hollows the stroke out (measured: 3x reads 93.6% of single MNIST digits, 10x 99.0%).
    k = max(10 * stroke + 3, max(h, w) / 25)
    if is_flat(grey):
        # A drawing: the rough mask's local median, a twelfth of the image wide, follows a marker's
        # stroke drawn wider than that and measures only its rim (4 px of a 30 px stroke), and a
        # closing that narrow hollows the strokes out (their outlines were read as two or three
        # digits, or none). Otsu splits a flat image's ink whole, as `predict`'s ink finding does
        # (`ink.rough_ink`); five of its strokes wide was chosen on a dev set of MNIST validation
        # digits drawn with markers (fat strokes 210 -> 293 of 300 read right at 3, 5 or 10
        # strokes) and the flat validation documents (153 -> 154 of 193; 153 at 3, 152 at 10).
        k = max(k, 5 * stroke_width(rough_ink(grey, evenly_lit=True) > 0) + 3)
    # Morphology at reduced size when the window is large: lighting varies slowly anyway.
    f = min(1.0, 9.0 / k)
    small = cv2.resize(g, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA) if f < 1 else g
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_odd(k * f), _odd(k * f)))
    closed = cv2.blur(cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE), (3, 3))
    paper = cv2.resize(closed, (w, h), interpolation=cv2.INTER_LINEAR) if f < 1 else closed
    paper = np.maximum(paper, g)
    page = percentile_float(paper, 90)
    dark = _at_the_frame((closed < BORDER_PAPER * page).astype(np.uint8))
    edge = None
    if dark.any():
        edge = cv2.dilate(dark, kernel) > 0
        edge = cv2.resize(edge.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0 if f < 1 else edge
    strip = _thin_border(g, BORDER_PAPER * page, stroke)
    if strip is not None:
        edge = strip if edge is None else edge | strip
    contrast = paper - g  # in place from here: a photo's float maps are 3 MB each
    contrast /= np.maximum(paper, max(0.6 * page, 1.0))  # 1: a black page has no paper to be darker than
    contrast *= 255
    return np.clip(contrast, 0, 255, out=contrast).astype(np.uint8), edge


def _thin_border(g: np.ndarray, level: float, stroke: float) -> np.ndarray | None:
    """A border narrower than the closing (a strip of a scanner's black edge in a small crop) is
    closed away, so it reads as ink: a tall, sure 1 beside the number. Paper darker than `level`
    that is thicker than any stroke (it outlasts an opening three rough strokes wide) and reaches
    the picture's frame is such a border -> bool map of it and a stroke around it, or None."""
    dark = (cv2.blur(g, (3, 3)) < level).astype(np.uint8)
    if not (dark[0].any() or dark[-1].any() or dark[:, 0].any() or dark[:, -1].any()):
        return None  # nothing dark at the frame (most pages): no need to look further
    wide = cv2.getStructuringElement(cv2.MORPH_RECT, (_odd(3 * stroke), _odd(3 * stroke)))
    strip = _along_a_side(cv2.morphologyEx(dark, cv2.MORPH_OPEN, wide))
    if not strip.any():
        return None
    around = cv2.getStructuringElement(cv2.MORPH_RECT, (_odd(2 * stroke), _odd(2 * stroke)))
    out: np.ndarray = cv2.dilate(strip, around) > 0
    return out


def _along_a_side(dark: np.ndarray) -> np.ndarray:
    """The regions of a uint8 0/1 map that run along at least half of one side of the picture
    and reach less than a third of the way across from it: a border's strip. A bold digit cropped
    tight touches the frame too (its strokes outlast the opening when the rough stroke width
    underestimates them), but in spots, or reaching right across (a 1 from top to bottom)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    h, w = dark.shape
    x, y, bw, bh = (stats[:, k] for k in range(4))
    keep = np.zeros(n, np.uint8)
    # Per side: the frame's pixels there, the side's length, how far each region reaches in from it.
    for edge, length, reach, across in (
        (labels[:, 0], h, x + bw, w),
        (labels[:, -1], h, w - x, w),
        (labels[0], w, y + bh, h),
        (labels[-1], w, h - y, h),
    ):
        along = np.bincount(edge, minlength=n) >= 0.5 * length
        keep |= (along & (reach < across / 3)).astype(np.uint8)
    keep[0] = 0
    out: np.ndarray = keep[labels]
    return out


def _at_the_frame(dark: np.ndarray) -> np.ndarray:
    """The regions of a uint8 0/1 map that touch the image's frame. A border or a desk lies at the
    picture's edge; dark paper in the middle is a bold stroke the closing could not erase."""
    n, labels = cv2.connectedComponents(dark, connectivity=8)
    if n <= 1:
        return dark
    frame = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    keep = np.zeros(n, np.uint8)
    keep[frame[frame > 0]] = 1
    out: np.ndarray = keep[labels]
    return out


def _rough_ink(grey: np.ndarray) -> np.ndarray:
    """A first ink mask (dark on light), only good enough to measure the stroke width: pixels
    well below a local median of the paper."""
    h, w = grey.shape
    f = min(1.0, 128 / max(h, w))
    small = cv2.resize(grey, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    k = _odd(max(small.shape) / 12)
    background = cv2.resize(cv2.medianBlur(small, k), (w, h), interpolation=cv2.INTER_LINEAR)
    # Whole grey levels: the median distance from the background comes from their histogram.
    noise = 1.4826 * percentile(histogram(cv2.absdiff(grey, background)), 50) + 1.0
    darker: np.ndarray = cv2.subtract(background, grey) > max(6 * noise, 20)  # saturates at 0: not darker
    return darker


def ink_mask(ink: np.ndarray) -> np.ndarray:
    """uint8 ink map -> bool mask by hysteresis: strong ink (Otsu over the pixels that are not bare
    paper) seeds the components, which then grow through fainter, anti-aliased ink. Both
    thresholds stay above the paper's own noise."""
    counts = histogram(ink)
    paper = np.where(LEVELS <= percentile(counts, 50) + 1, counts, 0)  # the lower half: bare paper
    paper_level, spread = median_abs_deviation(paper)
    noise = paper_level + 4 * 1.4826 * spread + 8
    # The lower half's spread understates grain: on a noisy blank page (grey 225, sigma 12-16) a
    # tenth of the pixels passed, hundreds of specks that read as lines of digits. The grain
    # measured from neighbouring pixels (as `predict` measures it, `preprocess.noise`) sets a
    # floor as `preprocess.ink` does (NOISE_SIGMAS of it above the paper).
    grain = paper_noise(ink)
    noise = max(noise, paper_level + NOISE_SIGMAS * grain)
    inked = np.where(LEVELS > noise, counts, 0)
    if inked.sum() < 20:
        return np.zeros(ink.shape, bool)
    high = max(otsu_level(inked), noise, STROKE_CORE)
    strong = np.where(LEVELS >= high, counts, 0)
    if not strong.any():  # faint texture only, nothing as dark as a stroke's core
        return np.zeros(ink.shape, bool)
    level = percentile(strong, 90)
    low = max(noise, level / 3)
    weak = (ink >= low).astype(np.uint8)
    n, labels = cv2.connectedComponents(weak, connectivity=8)
    seeded = np.zeros(n, bool)
    seeded[labels[ink >= high]] = True
    seeded[0] = False
    kept: np.ndarray = seeded[labels]
    return kept


def stroke_width(mask: np.ndarray) -> float:
    """Typical stroke width in px: twice the median distance to the background along the
    ridge of the strokes."""
    if not mask.any():
        return 2.0
    # Only the strokes' bounding box and a 1 px ring of background around it matter: each
    # stroke pixel's nearest background is then inside, and the ridge test looks 1 px around.
    mask = mask.astype(np.uint8)
    x, y, w, h = cv2.boundingRect(mask)
    mask = mask[max(0, y - 1) : y + h + 1, max(0, x - 1) : x + w + 1]
    if mask.all():
        # Ink to the frame on every side (a black page's Otsu mask): no background to measure
        # from, where distanceTransform's distances are "infinite" and the median overflows. As
        # if the frame were background: as wide as the ink's narrower side.
        return float(max(1.0, min(mask.shape)))
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    ridge = dist[(dist > 0) & (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)) - 1e-3)]
    return float(max(1.0, 2 * np.median(ridge)))


def rule_angles(mask: np.ndarray, length: float) -> tuple[list[float], list[float]]:
    """Tilts (degrees) of the long straight lines in a mask: the ruled lines of a page photographed
    at an angle are not horizontal. -> (near-horizontal tilts, near-vertical tilts), each
    including 0, at most three per family."""
    found: dict[str, dict[float, float]] = {"h": {}, "v": {}}
    min_length, gap = max(10, int(length)), 3
    # Most pages hold no line that long: two projections tell, without the transform (5 ms a photo).
    if not may_hold_segment(mask, min_length, gap):
        return [0.0], [0.0]
    segments = cv2.HoughLinesP(
        mask.astype(np.uint8) * 255,
        1,
        np.pi / 360,
        threshold=max(20, int(length / 2)),
        minLineLength=min_length,
        maxLineGap=gap,
    )
    for x1, y1, x2, y2 in [] if segments is None else segments.reshape(-1, 4).tolist():
        angle = float(np.degrees(np.arctan2(y2 - y1, x2 - x1)))
        angle = (angle + 90) % 180 - 90  # (-90, 90]
        family, tilt = ("h", angle) if abs(angle) <= 45 else ("v", angle - 90 if angle > 0 else angle + 90)
        key = round(tilt * 2) / 2  # half-degree bins
        found[family][key] = found[family].get(key, 0.0) + float(np.hypot(x2 - x1, y2 - y1))
    out = []
    for family in ("h", "v"):
        tilts = sorted(found[family], key=lambda tilt: found[family][tilt], reverse=True)[:3]
        out.append(sorted(set([0.0] + tilts)))
    return out[0], out[1]


def erase_rules(
    ink: np.ndarray, length: float, horizontal: Sequence[float] = (0.0,), vertical: Sequence[float] = (0.0,)
) -> np.ndarray:
    """Subtract straight lines longer than `length` px, at the given tilts (degrees) from
    horizontal and from vertical, from the ink map (ruled lines, grids, underlines, frame edges).
    A grey opening along the line keeps, at each pixel, the weakest ink of the run through it,
    i.e. the line's own level; what a digit adds on top of a line it crosses stays. Faint or
    broken-up lines (JPEG, thin pen) go as well as solid ones."""
    length = max(3, int(length))
    h, w = ink.shape
    centre = (w / 2, h / 2)
    rules = np.zeros_like(ink)
    for tilts, axis in ((horizontal, 1), (vertical, 0)):
        # Bridge one-pixel gaps and a slight bend first: dilate across the line direction.
        across = cv2.getStructuringElement(cv2.MORPH_RECT, (1, 3) if axis == 1 else (3, 1))
        for tilt in tilts:
            turn = cv2.getRotationMatrix2D(centre, tilt, 1.0)
            level = ink if tilt == 0 else cv2.warpAffine(ink, turn, (w, h), flags=cv2.INTER_LINEAR)
            found = cv2.erode(open_line(cv2.dilate(level, across), length, axis), across)
            if tilt != 0:
                found = cv2.warpAffine(found, turn, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
            rules = np.maximum(rules, found)
    return cv2.subtract(ink, rules)


def _components(mask: np.ndarray) -> list[Atom]:
    # Labelled in the ink's box (`label_blobs`): numbered as on the whole page, at a fraction of the cost.
    labelled = label_blobs(mask.astype(np.uint8))
    atoms = []
    for i in range(1, labelled.n):
        x, y, w, h, _area = labelled.stats[i]
        atoms.append(Atom(int(x), int(y), int(w), int(h), labelled.image[y : y + h, x : x + w] == i))
    return atoms


def _off_border(atoms: list[Atom], edge: np.ndarray | None) -> list[Atom]:
    """The atoms that are not mostly on a border's edge (`ink_and_border`)."""
    if edge is None:
        return atoms
    return [a for a in atoms if (a.mask & edge[a.y : a.y + a.h, a.x : a.x + a.w]).sum() <= ON_BORDER * a.area]


def _writing(mask: np.ndarray, edge: np.ndarray | None) -> tuple[list[Atom], float]:
    """The components of a mask that may be writing (off the border's edge, not single pixels)
    and their digit height (0 when none is upright)."""
    atoms = _off_border([a for a in _components(mask) if a.area >= 6], edge)
    return atoms, estimate_digit_height(atoms, stroke_width(mask), bold_min=BOLD_MIN * min(mask.shape))


def estimate_digit_height(atoms: list[Atom], stroke: float = 1.0, bold_min: float = math.inf) -> float:
    """The ink-weighted median height of the components that could be characters (not specks,
    not rules or underlines only a few strokes thick; a string of touching digits is one wide
    component): digits carry most of the ink on a page of numbers."""

    def upright(least: float, widest: float) -> list[Atom]:
        return [a for a in atoms if a.h >= least and a.w < widest * a.h and a.h < 10 * max(a.w, 1)]

    # Bold writing: a marker's digits, or two 1s run into one blob, are under three of their own
    # strokes tall (2.9 measured). Without any taller ink, what is at least two and a half strokes
    # and `bold_min` px tall and not a bar (an underline) is the writing. A speck is one or two
    # strokes tall (at 1.5, a noisy JPEG page's specks read as 4s), but on a page of specks alone
    # the stroke measured is a speck's core, so a speck needs the size too.
    cand = upright(max(4, 3 * stroke), 10) or upright(max(4, 2.5 * stroke, bold_min), 3)
    # A 1 written alone is more than ten of its widths tall (a pen's 1 20 px wide and 290 tall, a
    # tall 1 on the page's number pad): beside digits such a stroke is a rule, but on a page with
    # nothing else upright, and `bold_min` tall, it is the writing ("no digits found" before).
    # Lines across the page are gone by now (`segment` erases them first).
    cand = cand or [a for a in atoms if a.h >= max(4, 3 * stroke, bold_min) and a.w < a.h]
    if not cand:
        return 0.0
    heights = np.array([a.h for a in cand], np.float32)
    weights = np.array([a.area for a in cand], np.float32)
    order = np.argsort(heights)
    cum = np.cumsum(weights[order])
    return float(heights[order][np.searchsorted(cum, cum[-1] / 2)])


def group_lines(atoms: list[Atom], height: float) -> list[TextLine]:
    """Components -> text lines, top to bottom. Character-sized components found the lines (each
    joins the line it overlaps most vertically); small pieces then join the line they sit in."""
    big = sorted((a for a in atoms if a.h >= SMALL_ATOM * height), key=lambda a: a.x)
    small = [a for a in atoms if a.h < SMALL_ATOM * height]
    lines: list[list[Atom]] = []
    # Each line is compared by its last few atoms, so a drifting baseline is followed: their median
    # top and bottom, kept per line and updated when it grows (not recomputed for every atom and
    # line: a page of thousands of specks in dozens of rows made that seconds).
    spans: list[tuple[float, float]] = []

    def span(line: list[Atom]) -> tuple[float, float]:
        recent = line[-3:]
        return np.median([b.y for b in recent]), np.median([b.y + b.h for b in recent])

    for a in big:
        best, best_overlap = None, 0.0
        for n, (top, bottom) in enumerate(spans):
            overlap = (min(bottom, a.y + a.h) - max(top, a.y)) / min(a.h, bottom - top)
            if overlap > best_overlap:
                best, best_overlap = n, overlap
        if best is not None and best_overlap >= 0.4:
            lines[best].append(a)
            spans[best] = span(lines[best])
        else:
            lines.append([a])
            spans.append(span(lines[-1]))
    result = []
    for line in lines:
        line_height = float(np.median([a.h for a in line]))
        result.append(TextLine(line, line_height))
    # A 'line' much shorter than the tallest is a loose piece of a digit (the flag of a 5) or
    # a mark: its atoms join a real line as small pieces, if they sit in one.
    tallest = max((t.height for t in result), default=0.0)
    small += [a for t in result if t.height < SMALL_ATOM * tallest for a in t.atoms]
    result = [t for t in result if t.height >= SMALL_ATOM * tallest]

    # Nearest pieces first: a line's span grows with the pieces that join it, so the flag of a 5
    # broken off above a loose piece of its stem joins once that piece has (in raster order it
    # came first, and was left out: the 5 read as a 3).
    def distance(a: Atom) -> float:
        cy = a.y + a.h / 2
        return min((abs(cy - (t.top + t.bottom) / 2) for t in result), default=0.0)

    for a in sorted(small, key=distance):
        cy = a.y + a.h / 2
        inside = [t for t in result if t.top - 0.25 * t.height <= cy <= t.bottom + 0.25 * t.height]
        if inside:
            min(inside, key=lambda t: abs(cy - (t.top + t.bottom) / 2)).atoms.append(a)
    for t in result:
        t.atoms.sort(key=lambda a: a.cx)
    result.sort(key=lambda t: (t.top + t.bottom) / 2)
    return result


def _seams(cost: np.ndarray, starts: Sequence[int], band: int) -> np.ndarray:
    """Cheapest top-to-bottom paths through `cost` (h, w), one per start column x0, each staying
    within x0 +- band and moving at most one column per row -> int32 (len(starts), h): x per row.

    All starts at once (one pass over the rows for all: a row at a time per seam was most of
    cutting a line): each seam's window is 2 band + 1 columns, those beyond the image infinitely
    dear. A tie goes to the left-most of the three predecessors, then the left-most end."""
    h, w = cost.shape
    offsets = np.arange(-band, band + 1)
    columns = np.asarray(starts)[:, None] + offsets  # (n, 2 band + 1)
    inside = (columns >= 0) & (columns < w)
    # float64: a column's cost plus a pull towards the start column (0.02 per column).
    step = cost.astype(np.float32)[:, np.clip(columns, 0, w - 1)] + 0.02 * np.abs(offsets)
    acc = np.where(inside, step, np.inf)  # (h, n, 2 band + 1)
    back = np.zeros(acc.shape, np.int8)  # -1, 0, 1: the predecessor's column, from this one
    wall = np.full((len(columns), 1), np.inf)
    for r in range(1, h):
        prev = acc[r - 1]
        best, move = np.concatenate([wall, prev[:, :-1]], axis=1), np.full(prev.shape, -1, np.int8)
        for option, shift in ((prev, 0), (np.concatenate([prev[:, 1:], wall], axis=1), 1)):
            better = option < best  # strictly: the left-most of equal predecessors wins
            best, move = np.where(better, option, best), np.where(better, np.int8(shift), move)
        acc[r] += best
        back[r] = move
    n = np.arange(len(columns))
    at = np.empty((len(columns), h), np.int64)  # index in each seam's window
    at[:, -1] = acc[-1].argmin(axis=1)
    for r in range(h - 1, 0, -1):
        at[:, r - 1] = at[:, r] + back[r, n, at[:, r]]
    paths: np.ndarray = (columns[n[:, None], at]).astype(np.int32)
    return paths


def _cut_cost(on_ink: np.ndarray, stroke: float) -> float:
    """How much a cut destroys, in strokes: each stroke it crosses counts one; a cut that runs
    a long way through ink (along the contact of two digits pressed together) counts extra."""
    return float(_cut_costs(on_ink[None], stroke)[0])


def _cut_costs(on_ink: np.ndarray, stroke: float) -> np.ndarray:
    """`_cut_cost` of many cuts at once: bool (n, h), whether each cut is on ink in each row ->
    float64 (n,)."""
    runs = np.count_nonzero(np.diff(on_ink.astype(np.int8), axis=1) == 1, axis=1) + on_ink[:, 0]
    length = on_ink.sum(axis=1) / max(stroke, 1.0)
    costs: np.ndarray = runs + 0.3 * np.maximum(0.0, length - 1.5 * runs)
    return costs


def _contour_valleys(mask: np.ndarray, height: float, margin: int) -> list[tuple[int, int]]:
    """(x at the top, x at the bottom) of cuts joining a dip of the upper contour to a rise of
    the lower contour (or running straight down from either when it has no partner)."""
    h, w = mask.shape
    inked = mask.any(axis=0)
    top: np.ndarray = np.where(inked, mask.argmax(axis=0), h).astype(np.float32)
    bottom: np.ndarray = np.where(inked, h - 1 - mask[::-1].argmax(axis=0), -1).astype(np.float32)
    sigma = max(1.0, 0.03 * height)
    top = cv2.GaussianBlur(top[None], (0, 0), sigmaX=sigma).ravel()
    bottom = cv2.GaussianBlur(bottom[None], (0, 0), sigmaX=sigma).ravel()
    depth = 0.12 * height
    xs = range(margin, w - margin)
    dips = [
        x
        for x in xs
        if top[x] >= top[x - 1] and top[x] > top[x + 1] and top[x] > top[margin : w - margin].min() + depth
    ]
    rises = [
        x
        for x in xs
        if bottom[x] <= bottom[x - 1]
        and bottom[x] < bottom[x + 1]
        and bottom[x] < bottom[margin : w - margin].max() - depth
    ]
    cuts = []
    for xt in dips:
        near = [xb for xb in rises if abs(xb - xt) <= 0.35 * height]
        cuts += [(xt, xb) for xb in near] or [(xt, xt)]
    cuts += [(xb, xb) for xb in rises if all(abs(xb - xt) > 0.35 * height for xt in dips)]
    return cuts


def split_touching(atom: Atom, height: float, stroke: float) -> list[Atom]:
    """Cut a component that may hold several touching digits at its most likely seams. Returns
    the slices left to right (the atom itself when it is too narrow to hold two digits)."""
    if atom.h < SMALL_ATOM * height:
        # A chain of digits written smaller than the line (a cheque's trailing zeros joined by a
        # ligature) is cut at its own scale; flatter or smaller marks are punctuation.
        if atom.h < SMALL_CHAIN * height:
            return [atom]
        height = float(atom.h)
    if atom.w < SPLIT_WIDTH * height:
        return [atom]
    margin = max(2, int(0.12 * height))
    seams = _candidate_seams(atom.mask, height, stroke, margin)
    # Slanted writing: a 1 leaning on its neighbour is only separable along its slant.
    seams += _slanted_cuts(atom.mask, height, stroke, margin)
    # Keep the cheapest seams that are not too close to each other and do not cross.
    seams.sort(key=lambda s: s[0])
    kept: list[tuple[float, np.ndarray]] = []
    max_cuts = int(4 * atom.w / height) + 2  # a narrow digit (a 1) is ~0.3 heights wide
    kept_paths = np.empty((max_cuts, atom.h), np.int32)  # the kept seams' paths, to test against at once
    for cost, path in seams:
        if cost > 4.0 or len(kept) >= max_cuts:
            break
        others = kept_paths[: len(kept)]
        apart = np.abs(others - path).mean(axis=1) > 0.12 * height  # exact: sums of whole numbers
        uncrossed = np.all(others <= path, axis=1) | np.all(others >= path, axis=1)
        if np.all(apart & uncrossed):
            kept_paths[len(kept)] = path
            kept.append((cost, path))
    if not kept:
        return [atom]
    kept.sort(key=lambda s: s[1].mean())
    cols = np.arange(atom.w)[None]
    pieces, left = [], np.full(atom.h, -1)
    for cost, path in kept + [(0.0, np.full(atom.h, atom.w))]:
        region = atom.mask & (cols > left[:, None]) & (cols <= path[:, None])
        left = path
        piece = _crop_atom(region, atom.x, atom.y)
        if piece is not None:
            piece.cut_cost = cost
            pieces.append(piece)
    return pieces or [atom]


def _candidate_seams(mask: np.ndarray, height: float, stroke: float, margin: int) -> list[tuple[float, np.ndarray]]:
    """Candidate cuts through a component's bool mask (h, w): [(cost in strokes, x per row)]."""
    h, w = mask.shape
    m = mask.astype(np.float32)
    # Candidate starts: minima of the smoothed column profile, away from the ends.
    profile = cv2.GaussianBlur(m.sum(axis=0)[None], (0, 0), sigmaX=max(1.0, 0.04 * height)).ravel()
    xs = [x for x in range(margin, w - margin) if profile[x] <= profile[x - 1] and profile[x] <= profile[x + 1]]
    # Very wide blobs also get evenly spaced candidates: two digits pressed together may leave
    # no minimum at all.
    step = max(2, int(0.3 * height))
    xs += list(range(margin + step // 2, w - margin, step))
    band = max(2, int(SEAM_BAND * height))
    seams = []
    rows = np.arange(h)
    for path in _seams(m, sorted(set(xs)), band) if xs else []:
        if margin <= path.mean() <= w - margin:
            seams.append((_cut_cost(mask[rows, np.clip(path, 0, w - 1)], stroke), path))
    # Valley to valley: where the upper contour dips and the lower contour rises, two round
    # digits meet (a 0 against an 8); the cut joins the two valleys in a straight line, even
    # when it runs along their contact, which a least-ink seam avoids.
    for xt, xb in _contour_valleys(mask, height, margin):
        path = np.round(np.linspace(xt, xb, h)).astype(np.int32)
        seams.append((_cut_cost(mask[rows, path], stroke), path))
    return seams


def _slanted_cuts(mask: np.ndarray, height: float, stroke: float, margin: int) -> list[tuple[float, np.ndarray]]:
    """Straight cuts at every slant in SLANTS (none upright: the seams cover that) through every
    other column: [(cost in strokes, x per row)], the cheapest per column (the first slant of
    equal ones), the columns in the order the slants first reach them."""
    h, w = mask.shape
    up = (h - 1) / 2 - np.arange(h)  # height above the middle row
    rows = np.arange(h)
    xs = np.arange(margin, w - margin, 2)
    best = np.full(len(xs), np.inf)
    best_path = np.zeros((len(xs), h), np.int32)
    first = np.full(len(xs), len(SLANTS))  # the first slant whose cut stays inside the atom
    for number, k in enumerate(SLANTS):
        paths = np.round(xs[:, None] + k * up).astype(np.int32)  # (columns, h)
        inside = (paths.min(axis=1) >= 0) & (paths.max(axis=1) < w)
        costs = np.where(inside, _cut_costs(mask[rows, np.clip(paths, 0, w - 1)], stroke), np.inf)
        better = costs < best
        best[better], best_path[better] = costs[better], paths[better]
        first[inside & (first == len(SLANTS))] = number
    order = np.lexsort((xs, first))  # by first slant, then column
    return [(float(best[i]), best_path[i]) for i in order if first[i] < len(SLANTS)]


def _crop_atom(mask: np.ndarray, x: int, y: int) -> Atom | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return Atom(int(x + x0), int(y + y0), int(x1 - x0), int(y1 - y0), mask[y0:y1, x0:x1].copy())


def segment(
    grey: np.ndarray,
    stages: Stages | None = None,
    *,
    cut: bool = True,
    max_pieces: int | None = None,
    deadline: Callable[[], None] | None = None,
    fit_height: bool = True,
) -> Segmentation:
    """uint8 grey image -> lines of over-segmented atoms at working scale. `cut=False` leaves the
    components whole (the line reader's training data needs only the lines: 4x faster).
    `max_pieces`: raise TooMuchToRead as soon as there are more components, or more atoms once
    cut, than this (grouping and cutting thousands of specks is itself seconds of work);
    `deadline` is called before each line is cut (`digitrec.read.ReadBudget`). `fit_height`: a
    page whose digits are over PAGE_DIGIT_HEIGHT tall is shrunk and segmented again."""
    # The ink is found at the input's resolution (at most WORK_MAX_SIDE; a page with digits over
    # PAGE_DIGIT_HEIGHT, at a smaller one), where its stroke widths are the ones the lighting model
    # expects; small inputs are enlarged afterwards.
    given, shape = grey, grey.shape  # the input, at its own size
    scale = working_scale(shape)
    if scale < 1:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ink, edge = ink_and_border(grey)
    if scale > 1:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        ink = cv2.resize(ink, (grey.shape[1], grey.shape[0]), interpolation=cv2.INTER_CUBIC)
        if edge is not None:
            edge = (
                cv2.resize(edge.astype(np.uint8), (grey.shape[1], grey.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
            )
    # Rules first with a length that only lines across the page reach (digits sitting on a ruled
    # line would otherwise merge into one blob and spoil the height estimate), at the tilts the
    # page's long lines show; then again at a length measured in digit heights, once the digits
    # tell how tall they are.
    page_ink, page_mask = ink, ink_mask(ink)
    page_rule = PAGE_RULE * max(ink.shape)
    crop_rule = max(page_rule, UNDERLINE_SPAN * min(ink.shape))
    lengths = [crop_rule] if max(shape) <= WORK_MIN_SIDE or crop_rule == page_rule else [page_rule, crop_rule]
    for long_rule in lengths:
        tilts_h, tilts_v = rule_angles(page_mask, long_rule)
        ink = erase_rules(page_ink, long_rule, tilts_h, tilts_v)
        mask = ink_mask(ink)
        atoms, height = _writing(mask, edge)
        # A larger page whose page rules took all the writing there was is read as a crop: a 1
        # or a 7 filling a square 600 px canvas was the only "rule" ('no digits found'). Only when
        # there was writing before: a blank or ruled page (nothing upright) is not tried twice.
        if height > 0 or long_rule == lengths[-1] or _writing(page_mask, edge)[1] == 0:
            break
    if height > 0:
        ink = erase_rules(ink, RULE_LENGTH * height, tilts_h, tilts_v)
        mask = ink_mask(ink)
        atoms = _off_border(_components(mask), edge)
    stroke = stroke_width(mask)
    atoms = [a for a in atoms if a.area >= max(6, 0.5 * stroke * stroke) and a.area >= 0.002 * height * height]
    # Not characters: taller than three digits (frame edges), or long thin lines.
    atoms = [a for a in atoms if a.h <= 3 * height and not (a.w > 2 * height and a.h < 3 * stroke)]
    if max_pieces is not None and len(atoms) > max_pieces:
        raise TooMuchToRead.over(len(atoms), "pieces of ink", max_pieces)
    lines = group_lines(atoms, height) if height > 0 else []
    if fit_height and lines and max(shape) >= WORK_MIN_SIDE:
        # A page's ink was found at working scale (<= 1): only taller digits there are brought down
        # (a 1600 px photo whose 60 px digits were found at 37 px would be resampled for nothing).
        tall = float(np.median([line.height for line in lines]))
        if tall > PAGE_DIGIT_HEIGHT:
            f = PAGE_DIGIT_HEIGHT * scale / tall  # of the input, whose digits are tall / scale px
            smaller = cv2.resize(given, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            if deadline is not None:
                deadline()  # a second pass: the clock may stop it before it starts
            seg = segment(smaller, stages, cut=cut, max_pieces=max_pieces, deadline=deadline, fit_height=False)
            seg.scale *= f  # working size / the input's size, as for any other input
            return seg
    count = sum(len(line.atoms) for line in lines)  # atoms, growing as components are cut
    for line in lines if cut else []:
        if deadline is not None:
            deadline()
        pieces = []
        for number, a in enumerate(line.atoms):
            cut_up = split_touching(a, line.height, stroke)
            count += len(cut_up) - 1
            if max_pieces is not None and count > max_pieces:
                raise TooMuchToRead.over(count, "pieces of ink", max_pieces)
            for p in cut_up:
                p.component = number
                pieces.append(p)
        line.atoms = pieces
    if stages is not None:
        stages.update(grey=grey, ink=ink, mask=(mask * 255).astype(np.uint8))
    return Segmentation(ink=ink, mask=mask, scale=scale, lines=lines, stroke=stroke)


def render_group(atoms: list[Atom], ink: np.ndarray, stroke: float) -> np.ndarray:
    """Atoms that form one digit -> float32 ink crop in [0, 1] (ink bright) for `fit_and_centre`,
    which brings the stroke width into MNIST's range. The crop keeps the ink map's anti-aliased
    grey levels, but only on and just around the group's own strokes: a neighbour's slice inside
    the box stays out."""
    x0, y0 = min(a.x for a in atoms), min(a.y for a in atoms)
    x1, y1 = max(a.x + a.w for a in atoms), max(a.y + a.h for a in atoms)
    pad = 1  # a blank border: a crop that is all ink has no stroke width to measure
    mask = np.zeros((y1 - y0 + 2 * pad, x1 - x0 + 2 * pad), np.uint8)
    for a in atoms:
        mask[a.y - y0 + pad : a.y - y0 + pad + a.h, a.x - x0 + pad : a.x - x0 + pad + a.w] |= a.mask
    rim = max(1, round(stroke / 4))
    keep = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rim + 1, 2 * rim + 1)))
    keep[:pad], keep[-pad:], keep[:, :pad], keep[:, -pad:] = 0, 0, 0, 0
    window = np.zeros(mask.shape, np.float32)
    ys0, xs0 = max(0, y0 - pad), max(0, x0 - pad)
    part = ink[ys0 : y1 + pad, xs0 : x1 + pad].astype(np.float32)
    window[ys0 - (y0 - pad) : ys0 - (y0 - pad) + part.shape[0], xs0 - (x0 - pad) : xs0 - (x0 - pad) + part.shape[1]] = (
        part
    )
    level = percentile_float(window[mask > 0], 90) if mask.any() else 1.0
    crop: np.ndarray = np.clip(window / max(level, 1.0), 0, 1) * (keep > 0)
    return crop
