"""The segmentation of written numbers (OpenCV only, no model): ink, rules, lines, touching digits."""

from __future__ import annotations

import cv2
import numpy as np

from digitrec.preprocess.segment import (
    Atom,
    erase_rules,
    estimate_digit_height,
    group_lines,
    ink_map,
    segment,
    split_touching,
)


def _page(h=200, w=400, paper=235):
    return np.full((h, w), paper, np.uint8)


def _digit_one(page, x, y, height, ink=30, width=4):
    cv2.line(page, (x, y), (x, y + height), ink, width)


def _ring(page, cx, cy, height, ink=30, width=4):
    cv2.ellipse(page, (cx, cy), (height // 3, height // 2), 0, 0, 360, ink, width)


def test_ink_map_is_the_same_for_either_polarity():
    page = _page()
    _ring(page, 100, 100, 60)
    dark_on_light = ink_map(page) > 128
    light_on_dark = ink_map(255 - page) > 128
    assert dark_on_light.sum() > 300
    assert (dark_on_light ^ light_on_dark).sum() < 0.05 * dark_on_light.sum()


def test_ink_map_ignores_a_lighting_gradient_and_a_black_border():
    page = _page(300, 300)
    _ring(page, 200, 150, 80)
    gradient = np.linspace(0.55, 1.0, 300)[None, :]
    lit = (page * gradient).astype(np.uint8)
    lit[:, :40] = 15  # a scanner's black border
    ink = ink_map(lit)
    assert ink[:, :32].max() < 60  # the border is not ink (its edge is a line: see below)
    assert ink[150, 200 - 80 // 3] > 128  # the ring's left side is
    assert np.median(ink[:, 60:120]) < 10  # the shaded paper is not
    seg = segment(lit)
    assert [len(t.atoms) for t in seg.lines] == [1] and seg.lines[0].atoms[0].x > 100


def test_erase_rules_removes_a_ruled_line_and_keeps_a_digit_standing_on_it():
    ink = np.zeros((120, 400), np.uint8)
    cv2.line(ink, (0, 90), (399, 90), 200, 2)  # ruled line across the page
    cv2.line(ink, (200, 40), (200, 90), 255, 4)  # a "1" standing on it
    out = erase_rules(ink, 120)
    assert out[90, 20] < 30 and out[90, 380] < 30  # the rule is gone
    assert out[60, 200] > 200  # the digit stays


def test_digit_height_and_lines():
    atoms = []
    for row, y in enumerate((20, 120)):
        for k in range(3 + row):
            mask = np.ones((50, 20), bool)
            atoms.append(Atom(30 + 40 * k, y + 3 * k, 20, 50, mask))
    atoms.append(Atom(300, 96, 4, 4, np.ones((4, 4), bool)))  # a dot between the lines: dropped
    height = estimate_digit_height(atoms)
    assert 45 <= height <= 55
    lines = group_lines(atoms, height)
    assert [len(t.atoms) for t in lines] == [3, 4]
    assert lines[0].top < lines[1].top
    assert [a.x for a in lines[1].atoms] == sorted(a.x for a in lines[1].atoms)


def test_split_touching_cuts_two_rings_where_they_touch():
    page = np.zeros((100, 140), np.uint8)
    cv2.ellipse(page, (40, 50), (28, 45), 0, 0, 360, 255, 6)
    cv2.ellipse(page, (98, 50), (28, 45), 0, 0, 360, 255, 6)  # touches the first at x ~ 69
    mask = page > 0
    assert cv2.connectedComponents(mask.astype(np.uint8))[0] == 2  # one blob (+ background)
    atom = Atom(0, 0, 140, 100, mask)
    pieces = split_touching(atom, height=95, stroke=6)
    assert len(pieces) >= 2
    # One of the cuts runs through the touching point, so the rings can be told apart.
    boundaries = [p.x + p.w for p in pieces[:-1]]
    assert any(abs(b - 69) <= 6 for b in boundaries)


def test_segment_finds_two_lines_and_skips_the_rule_under_them():
    page = _page(260, 400)
    for k in range(3):
        _digit_one(page, 60 + 60 * k, 30, 60)
    for k in range(2):
        _ring(page, 80 + 70 * k, 190, 60)
    cv2.line(page, (0, 228), (399, 228), 120, 2)  # a ruled line under the second row
    seg = segment(page)
    assert len(seg.lines) == 2
    assert len(seg.lines[0].atoms) == 3
    assert sum(a.h > 0.5 * seg.lines[1].height for a in seg.lines[1].atoms) == 2


def test_a_page_of_tall_digits_is_segmented_with_them_brought_to_the_cap():
    """A page (>= 400 px) whose digits are over PAGE_DIGIT_HEIGHT tall is shrunk until they are that
    tall and segmented again; `scale` still maps its atoms to the input's pixels. A crop (under
    400 px) and `fit_height=False` are segmented as given."""
    from digitrec.preprocess.segment import PAGE_DIGIT_HEIGHT

    page = _page(400, 800)
    for k in range(3):
        _ring(page, 150 + 200 * k, 200, 160, width=12)  # 160 px tall, at the input's resolution
    as_given = segment(page, fit_height=False)
    fitted = segment(page)
    assert as_given.scale == 1.0 and as_given.lines[0].height > 150
    assert len(fitted.lines) == 1 and len(fitted.lines[0].atoms) == 3
    assert fitted.scale < 1.0 and abs(fitted.lines[0].height / fitted.scale - as_given.lines[0].height) < 10
    # at working scale the digits are the cap's height, enlarged with the page to 400 px
    smaller = PAGE_DIGIT_HEIGHT / as_given.lines[0].height
    assert abs(fitted.lines[0].height - PAGE_DIGIT_HEIGHT * 400 / (800 * smaller)) < 10
    xs = sorted(a.x / fitted.scale for a in fitted.lines[0].atoms)  # boxes in the input's pixels
    assert np.allclose(xs, [150 - 160 // 3 + 200 * k for k in range(3)], atol=12)
    crop = np.ascontiguousarray(page[100:300, 50:300])  # under 400 px: one ring, read as given
    assert segment(crop).scale == segment(crop, fit_height=False).scale
    # A 2000 px page's 70 px rings are found at 1000 px, 35 px tall: under the cap, no second pass.
    big = _page(1000, 2000)
    for k in range(3):
        _ring(big, 300 + 400 * k, 500, 70, width=6)
    import digitrec.preprocess.segment as module

    passes = []

    def counted(*args, **kwargs):
        passes.append(kwargs.get("fit_height", True))
        return segment(*args, **kwargs)

    module.segment = counted
    try:
        seg = counted(big)
    finally:
        module.segment = segment
    assert passes == [True] and seg.scale == 0.5 and 30 < seg.lines[0].height < 40


def test_an_underexposed_page_is_not_read_inverted():
    """Every pixel x 0.4 (an underexposed scan: paper at 94 of 255) is the same writing: its lines
    and atoms are the bright page's. The page's median alone (under 100) made it light ink on dark,
    and real cheques darkened so read 62 of 108 (91 as given). White digits on black still flip."""
    page = _page(260, 400)
    for k in range(3):
        _digit_one(page, 60 + 60 * k, 30, 60)
    for k in range(2):
        _ring(page, 80 + 70 * k, 190, 60)
    dark = (page * 0.4).astype(np.uint8)

    def boxes(seg):
        return [[(a.x // 4, a.y // 4, a.w // 4, a.h // 4) for a in line.atoms] for line in seg.lines]

    assert len(segment(page).lines) == 2 and boxes(segment(dark)) == boxes(segment(page))
    assert boxes(segment(255 - page)) == boxes(segment(page))  # light ink on a dark page


def test_segment_of_a_blank_page_is_empty():
    seg = segment(_page())
    assert seg.lines == []


def test_stroke_width_measured_in_the_inks_box_is_the_whole_frames():
    """stroke_width looks only at the strokes' box and a 1 px ring: the same number as the
    distance transform of the whole frame, strokes touching its edges included."""
    from digitrec.preprocess.segment import stroke_width

    def whole_frame(mask):
        dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
        ridge = dist[(dist > 0) & (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)) - 1e-3)]
        return float(max(1.0, 2 * np.median(ridge)))

    rng = np.random.default_rng(1)
    for _ in range(20):
        page = np.zeros((int(rng.integers(20, 120)), int(rng.integers(20, 160))), np.uint8)
        for _ in range(3):
            h, w = page.shape
            p, q = (
                (int(rng.integers(-5, w + 5)), int(rng.integers(-5, h + 5))),
                (int(rng.integers(w)), int(rng.integers(h))),
            )
            cv2.line(page, p, q, 255, int(rng.integers(1, 9)))
        assert stroke_width(page > 0) == whole_frame(page > 0)
    assert stroke_width(np.zeros((9, 9), bool)) == 2.0


def _one_seam(cost, x0, band):
    """The seam search one start and one row at a time, as segment did it: the reference."""
    h, w = cost.shape
    lo, hi = max(0, x0 - band), min(w, x0 + band + 1)
    acc = cost[:, lo:hi].astype(np.float32) + 0.02 * np.abs(np.arange(lo, hi) - x0)[None]
    back = np.zeros(acc.shape, np.int8)
    for r in range(1, h):
        prev = acc[r - 1]
        options = np.stack([np.r_[np.inf, prev[:-1]], prev, np.r_[prev[1:], np.inf]])
        choice = options.argmin(axis=0)
        acc[r] += options[choice, np.arange(len(prev))]
        back[r] = choice - 1
    xs = np.empty(h, np.int32)
    xs[-1] = int(acc[-1].argmin())
    for r in range(h - 1, 0, -1):
        xs[r - 1] = xs[r] + back[r, xs[r]]
    return xs + lo


def _slanted_one_by_one(mask, stroke, margin):
    """Every slanted cut tried one at a time, as segment did it: the reference."""
    from digitrec.preprocess.segment import SLANTS

    def cut_cost(on_ink):
        runs = int(np.count_nonzero(np.diff(on_ink.astype(np.int8)) == 1) + on_ink[0])
        return runs + 0.3 * max(0.0, on_ink.sum() / max(stroke, 1.0) - 1.5 * runs)

    h, w = mask.shape
    up, rows, best = (h - 1) / 2 - np.arange(h), np.arange(h), {}
    for k in SLANTS:
        for x in range(margin, w - margin, 2):
            path = np.round(x + k * up).astype(np.int32)
            if path.min() >= 0 and path.max() < w and cut_cost(mask[rows, path]) < best.get(x, (np.inf,))[0]:
                best[x] = (cut_cost(mask[rows, path]), path)
    return list(best.values())


def test_all_seams_at_once_and_the_slanted_cuts_are_the_one_at_a_time_searchs():
    """Ink masks full of ties (whole-pixel costs): the batched searches pick the same paths, in
    the same order, at the same costs, as trying each start and each slant alone."""
    from digitrec.preprocess.segment import _seams, _slanted_cuts

    rng = np.random.default_rng(0)
    for _ in range(60):
        h, w = int(rng.integers(1, 70)), int(rng.integers(1, 120))
        mask = rng.random((h, w)) < rng.random()
        band = int(rng.integers(1, 12))
        starts = sorted({int(x) for x in rng.integers(0, w, int(rng.integers(1, 8)))})
        seams = _seams(mask.astype(np.float32), starts, band)
        assert all(np.array_equal(seams[i], _one_seam(mask, x0, band)) for i, x0 in enumerate(starts))
        stroke, margin = float(rng.uniform(0.5, 5)), int(rng.integers(1, 4))
        cuts, reference = _slanted_cuts(mask, 30.0, stroke, margin), _slanted_one_by_one(mask, stroke, margin)
        assert [c for c, _ in cuts] == [c for c, _ in reference]
        assert all(np.array_equal(p, q) for (_, p), (_, q) in zip(cuts, reference))


def test_components_labelled_in_the_inks_box_are_the_whole_pages():
    """segment labels only the ink's box: the same atoms, in the same order, as labelling the page."""
    from digitrec.preprocess.segment import _components

    rng = np.random.default_rng(2)
    for _ in range(30):
        mask = np.zeros((int(rng.integers(20, 200)), int(rng.integers(20, 300))), np.uint8)
        h, w = mask.shape
        for _ in range(int(rng.integers(1, 6))):  # strokes at odd places, and specks
            p, q = (int(rng.integers(w)), int(rng.integers(h))), (int(rng.integers(w)), int(rng.integers(h)))
            cv2.line(mask, p, q, 1, int(rng.integers(1, 4)))
        mask[rng.random((h, w)) < 0.002] = 1
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        atoms = _components(mask > 0)
        assert [(a.x, a.y, a.w, a.h) for a in atoms] == [tuple(int(v) for v in stats[i, :4]) for i in range(1, n)]
        for a, i in zip(atoms, range(1, n)):
            assert np.array_equal(a.mask, labels[a.y : a.y + a.h, a.x : a.x + a.w] == i)


def test_rule_angles_skips_the_transform_only_where_it_finds_nothing(monkeypatch):
    """Pages with and without a page-long line, tilted or dashed: the tilts with the projections'
    shortcut are those of always running the Hough transform, and the shortcut is taken."""
    import digitrec.preprocess.segment as segment_module

    rng = np.random.default_rng(3)
    pages, skipped = [], 0
    for _ in range(40):
        mask = np.zeros((300, 400), np.uint8)
        for _ in range(int(rng.integers(1, 4))):  # strokes, some long, some dashed
            y0, span = int(rng.integers(0, 300)), int(rng.integers(60, 400))
            cv2.line(mask, (0, y0), (span, y0 + int(rng.integers(-12, 13))), 1, int(rng.integers(1, 3)))
            if rng.random() < 0.5:
                mask[:, int(rng.integers(0, 300)) :: int(rng.integers(4, 8))] = 0
        pages.append(mask > 0)
        skipped += not segment_module.may_hold_segment(mask, 240, 3)
    quick = [segment_module.rule_angles(mask, 240.0) for mask in pages]
    monkeypatch.setattr(segment_module, "may_hold_segment", lambda *args: True)
    assert quick == [segment_module.rule_angles(mask, 240.0) for mask in pages]
    assert 5 < skipped < 35 and any(tilts != ([0.0], [0.0]) for tilts in quick)


def test_the_teeth_of_a_ragged_black_border_are_not_a_digit():
    """A scanner's black border with a ragged edge beside a small number (a register cell): the
    teeth are narrower than the paper's closing, so they read as ink, a stroke as tall as the page
    that the reader took for a 1 and made the line's height. The ink that lies on the border's edge
    is dropped; the number beside it stays whole."""
    rng = np.random.default_rng(0)
    page = _page(160, 300)
    page[:, :40] = 20
    for y in range(0, 160, 3):  # teeth: 1-7 px of black into the paper, 3 px tall
        page[y : y + 3, 40 : 40 + int(rng.integers(1, 8))] = 20
    _ring(page, 150, 80, 40)
    _digit_one(page, 200, 60, 40)
    seg = segment(page)
    atoms = [a for line in seg.lines for a in line.atoms]
    assert atoms and min(a.x for a in atoms) / seg.scale > 100  # nothing at the border
    assert [len({a.component for a in line.atoms}) for line in seg.lines] == [2]
    # Without the border the same number segments the same way.
    clean = _page(160, 300)
    _ring(clean, 150, 80, 40)
    _digit_one(clean, 200, 60, 40)
    assert [len({a.component for a in line.atoms}) for line in segment(clean).lines] == [2]


def test_a_stroke_too_bold_for_the_closing_is_not_a_border():
    """Dark paper counts as a border only where it reaches the picture's frame: a digit drawn on
    the page's canvas (strokes 22 px of 280), so bold that the paper's closing keeps it dark, is
    the digit itself, not a border's edge."""
    from web_helpers import draw_digit

    seven = draw_digit(7)
    seg = segment(seven)
    assert len(seg.lines) == 1
    atoms = seg.lines[0].atoms
    found = (max(a.x + a.w for a in atoms) - min(a.x for a in atoms)) / seg.scale
    cols = np.flatnonzero((seven < 128).any(axis=0))
    assert found > 0.8 * (cols[-1] - cols[0])  # the whole 7, not the pieces off its "border"


def test_a_border_narrower_than_the_closing_is_not_a_digit(monkeypatch):
    """A small crop of a register cell holds only a strip of the scanner's black border: narrower
    than the paper's closing, the strip itself was closed away, read as ink, a sure 1 as tall as the
    crop beside the number. Dark paper thicker than any stroke at the picture's frame is a border too."""
    from digitrec.preprocess import segment as segment_module

    rng = np.random.default_rng(1)
    page = _page(120, 240)
    page[:, :14] = 20
    for y in range(0, 120, 3):  # a ragged edge
        page[y : y + 3, 14 : 14 + int(rng.integers(0, 5))] = 20
    _ring(page, 110, 60, 40)
    _digit_one(page, 160, 40, 40)

    def left_edge(seg) -> float:
        return min(a.x for line in seg.lines for a in line.atoms) / seg.scale

    assert left_edge(segment(page)) > 60  # the ring's left side; nothing at the border
    monkeypatch.setattr(segment_module, "_thin_border", lambda *args: None)
    assert left_edge(segment_module.segment(page)) < 20  # the strip itself, as the old code read it


def test_bold_writing_has_a_height():
    """Digits under three of their own strokes tall (a marker, two 1s run into one blob) are the
    writing when no taller ink is there; an underline alone is not."""
    blob = Atom(20, 20, 24, 33, np.ones((33, 24), bool))
    assert estimate_digit_height([blob], stroke=11.5, bold_min=15) == 33
    assert estimate_digit_height([blob], stroke=11.5) == 0.0  # no size given: no fallback
    underline = Atom(0, 60, 130, 9, np.ones((9, 130), bool))
    assert estimate_digit_height([underline], stroke=6.0, bold_min=15) == 0.0
    assert estimate_digit_height([blob, underline], stroke=11.5, bold_min=15) == 33
    speck = Atom(200, 30, 6, 6, np.ones((6, 6), bool))  # a JPEG's speck, twice its stroke tall
    assert estimate_digit_height([speck], stroke=2.74, bold_min=15) == 0.0
    dot = Atom(100, 30, 5, 5, np.ones((5, 5), bool))  # a dot on a page of dots alone: 2.5 "strokes"
    assert estimate_digit_height([dot], stroke=2.0, bold_min=15) == 0.0


def test_a_bold_digit_cropped_tight_is_not_a_border(monkeypatch):
    """A bold 0 cropped to its ink touches all four sides of the picture, and its strokes outlast
    an opening three rough strokes wide (the rough width underestimates bold strokes). A border
    strip runs along half a side and reaches less than a third across; the 0 touches in spots."""
    from digitrec.preprocess import segment as segment_module

    page = _page(120, 96)
    cv2.ellipse(page, (48, 60), (40, 52), 0, 0, 360, 20, 16)

    def ink_kept(seg) -> float:
        return sum(a.area for line in seg.lines for a in line.atoms) / seg.scale**2

    assert ink_kept(segment(page)) > 0.6 * (page < 128).sum()
    monkeypatch.setattr(segment_module, "_along_a_side", segment_module._at_the_frame)
    assert ink_kept(segment_module.segment(page)) == 0  # dark at the frame alone: all of it "border"
