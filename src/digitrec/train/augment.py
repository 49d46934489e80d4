"""On-the-fly augmentation of whole batches with torch ops (no per-image Python loop).

Input and output: float32 (N, 1, 28, 28) in [0, 1], ink = 1. All randomness comes from the
`torch.Generator` passed in, so a seed fixes every distortion (and a resumed run repeats them).

What it covers, and why:
- rotation, scale, shear, translation: writers' slant and size, and imperfect centring;
- aspect stretch and "fill the box": semeion and NIST optdigits stretch every digit to touch all four
  sides of its box, so a '1' arrives as a wide bar; MNIST never shows that;
- stroke width: tablet pens and thin fountain pens give strokes much thinner or thicker than MNIST's;
- elastic distortion (Simard et al., 2003): local wobble of the strokes, for the `best` recipe;
- European / Latin American glyphs, which MNIST's American writers rarely used: a long flag on the
  '1' (it can look like a '7' to an MNIST model) or a foot under it, and a crossbar on the '7'.
All geometric parts are composed into one sampling grid, so each image is resampled once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from digitrec.train.config import AugmentConfig

SIZE = 28
BOX = 20  # MNIST fits each digit into a 20x20 box inside the 28x28 image
INK_THRESHOLD = 0.2  # a pixel above this counts as ink when finding the bounding box


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (high - low) + low


def _chance(n: int, p: float, gen: torch.Generator) -> torch.Tensor:
    """(n,) bool, each True with probability p (always draws, so the stream does not depend on p)."""
    return torch.rand(n, generator=gen) < p


def random_affine(n: int, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) forward maps in normalised coordinates ([-1, 1] across the image): out = A @ in + t."""
    angle = torch.deg2rad(_uniform(n, -cfg.rotate, cfg.rotate, gen))
    zoom = _uniform(n, 1 - cfg.scale, 1 + cfg.scale, gen)
    aspect = torch.exp(_uniform(n, -cfg.stretch, cfg.stretch, gen))
    shear = _uniform(n, -cfg.shear, cfg.shear, gen)
    shift = _uniform(2 * n, -cfg.translate, cfg.translate, gen).view(n, 2) * (2 / SIZE)
    keep = ~_chance(n, cfg.p, gen)  # these images get the identity
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    shearing = torch.eye(2).repeat(n, 1, 1)
    shearing[:, 0, 1] = shear
    scaling = torch.diag_embed(torch.stack([zoom * aspect, zoom / aspect], 1))
    matrix = rotation @ shearing @ scaling
    matrix[keep] = torch.eye(2)
    shift[keep] = 0
    return torch.cat([matrix, shift[:, :, None]], 2)


def fill_box_affine(x: torch.Tensor, chosen: torch.Tensor, max_stretch: float = 3.0) -> torch.Tensor:
    """(N, 2, 3) forward maps that stretch each chosen digit's ink bounding box to the full 20x20
    box at the centre (identity for the others), the way semeion/optdigits normalise digits."""
    n = x.shape[0]
    ink = x[:, 0] > INK_THRESHOLD  # (N, 28, 28)
    cols, rows = ink.any(1), ink.any(2)  # (N, 28) each
    idx = torch.arange(SIZE, device=x.device)

    def extent(mask):  # first and one-past-last ink index, in pixel-edge units
        first = torch.where(mask, idx, SIZE).amin(1).float()
        last = torch.where(mask, idx, -1).amax(1).float() + 1
        return first, last

    x0, x1 = extent(cols)
    y0, y1 = extent(rows)
    has_ink = (x1 > x0) & (y1 > y0)
    chosen = chosen & has_ink
    fx = (BOX / (x1 - x0).clamp(min=1)).clamp(max=max_stretch)
    fy = (BOX / (y1 - y0).clamp(min=1)).clamp(max=max_stretch)
    # Pixel-edge coordinate u in [0, 28] is u / 14 - 1 normalised; the box centre goes to 0.
    cx, cy = (x0 + x1) / SIZE - 1, (y0 + y1) / SIZE - 1
    one, zero = torch.ones(n, device=x.device), torch.zeros(n, device=x.device)
    fx, fy = torch.where(chosen, fx, one), torch.where(chosen, fy, one)
    cx, cy = torch.where(chosen, cx, zero), torch.where(chosen, cy, zero)
    return torch.stack([torch.stack([fx, zero, -fx * cx], 1), torch.stack([zero, fy, -fy * cy], 1)], 1)


def compose(outer: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """Forward maps (N, 2, 3): apply `inner` first, then `outer`."""
    a_o, t_o = outer[:, :, :2], outer[:, :, 2:]
    a_i, t_i = inner[:, :, :2], inner[:, :, 2:]
    return torch.cat([a_o @ a_i, a_o @ t_i + t_o], 2)


def invert(forward: torch.Tensor) -> torch.Tensor:
    """Forward map -> the (output -> input) map that F.affine_grid wants."""
    a_inv = torch.linalg.inv(forward[:, :, :2])
    return torch.cat([a_inv, -a_inv @ forward[:, :, 2:]], 2)


def elastic_offsets(n: int, pixels: float, chosen: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """(N, 28, 28, 2) smooth random displacements (normalised units): a coarse 4x4 random field
    upsampled bicubically, the cheap equivalent of Simard's Gaussian-smoothed noise."""
    coarse = (torch.rand(n, 2, 4, 4, generator=gen) * 2 - 1).to(chosen.device)
    field = F.interpolate(coarse, size=(SIZE, SIZE), mode="bicubic", align_corners=True)
    field = field * (pixels * 2 / SIZE) * chosen.float()[:, None, None, None]
    return field.permute(0, 2, 3, 1)


def draw_segments(
    x: torch.Tensor, start: torch.Tensor, end: torch.Tensor, width: torch.Tensor, chosen: torch.Tensor
) -> torch.Tensor:
    """Draw one anti-aliased line per chosen image: start/end (N, 2) as (x, y) pixel centres,
    width (N,) in pixels. Ink is the max of the old ink and the stroke."""
    ys, xs = torch.meshgrid(
        torch.arange(SIZE, dtype=torch.float32, device=x.device),
        torch.arange(SIZE, dtype=torch.float32, device=x.device),
        indexing="ij",
    )
    p = torch.stack([xs, ys], -1)[None]  # (1, 28, 28, 2)
    a, d = start[:, None, None, :], (end - start)[:, None, None, :]
    t = (((p - a) * d).sum(-1) / (d * d).sum(-1).clamp(min=1e-6)).clamp(0, 1)
    dist = (p - (a + t[..., None] * d)).norm(dim=-1)  # (N, 28, 28) distance to the segment
    stroke = (width[:, None, None] / 2 + 0.5 - dist).clamp(0, 1) * chosen[:, None, None].float()
    return torch.maximum(x, stroke[:, None])


def add_glyph_variants(x: torch.Tensor, labels: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """With probability p per image: a '1' gets a long flag from its top down to the left (or a foot
    along its bottom), a '7' a crossbar through its stem. Positions come from the ink itself."""
    n = x.shape[0]
    chosen = _chance(n, p, gen).to(x.device)
    foot = _chance(n, 0.3, gen).to(x.device)  # of the chosen 1s, these get a foot instead of a flag
    u = torch.rand(n, 4, generator=gen).to(x.device)
    width = 1.6 + u[:, 3]  # MNIST strokes are ~2-3 px wide
    ink = x[:, 0] > 0.5
    rows = ink.any(2)
    idx = torch.arange(SIZE, device=x.device)
    y0 = torch.where(rows, idx, SIZE).amin(1)
    y1 = torch.where(rows, idx, -1).amax(1)
    height = (y1 - y0 + 1).clamp(min=1).float()

    def ink_x_at(row: torch.Tensor) -> torch.Tensor:  # mean x of the ink in that row
        mask = ink[torch.arange(n, device=x.device), row.clamp(0, SIZE - 1)].float()
        return (mask * idx).sum(1) / mask.sum(1).clamp(min=1)

    top_x, bottom_x = ink_x_at(y0), ink_x_at(y1)
    # Flag: from the top of the 1, down-left at 40-65 degrees below the horizontal (flatter reads as
    # a "7"), 25-45% of the height long.
    angle = torch.deg2rad(40 + 25 * u[:, 0])
    length = height * (0.25 + 0.2 * u[:, 1])
    flag_start = torch.stack([top_x, y0.float()], 1)
    flag_end = flag_start + torch.stack([-length * torch.cos(angle), length * torch.sin(angle)], 1)
    # Foot: a horizontal bar under the 1, 40-70% of the height wide.
    half = height * (0.2 + 0.15 * u[:, 1])
    foot_start = torch.stack([bottom_x - half, y1.float()], 1)
    foot_end = torch.stack([bottom_x + half, y1.float()], 1)
    # Crossbar: through the 7's stem at 45-65% of its height, 40-60% of the height wide.
    bar_y = y0.float() + height * (0.45 + 0.2 * u[:, 2])
    bar_x = ink_x_at(bar_y.round().long())
    bar_half = height * (0.2 + 0.1 * u[:, 1])
    bar_start = torch.stack([bar_x - bar_half, bar_y + 0.5], 1)
    bar_end = torch.stack([bar_x + bar_half, bar_y - 0.5], 1)

    has_ink = rows.any(1)
    is_one, is_seven = chosen & has_ink & (labels == 1), chosen & has_ink & (labels == 7)
    # On a strongly slanted 1 a flag makes a fair '7': give those a foot instead.
    foot = foot | ((top_x - bottom_x) > 0.3 * height)
    start = torch.where((is_one & foot)[:, None], foot_start, torch.where(is_one[:, None], flag_start, bar_start))
    end = torch.where((is_one & foot)[:, None], foot_end, torch.where(is_one[:, None], flag_end, bar_end))
    return draw_segments(x, start, end, width, is_one | is_seven)


def change_stroke_width(x: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Thicken (steps > 0) or thin (steps < 0) strokes by |steps| x 1 px of width, per image.

    Works at twice the resolution, where a 3x3 max-pool (dilation) or min-pool (erosion) moves each
    edge by half a pixel of the 28x28 image, then averages back down: grey edges stay anti-aliased."""
    if not bool((steps != 0).any()):
        return x
    big = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    for k in range(1, int(steps.abs().max()) + 1):
        grow = (steps >= k)[:, None, None, None]
        shrink = (steps <= -k)[:, None, None, None]
        dilated = F.max_pool2d(big, 3, 1, 1)
        eroded = -F.max_pool2d(-big, 3, 1, 1)
        big = torch.where(grow, dilated, torch.where(shrink, eroded, big))
    # Only the images whose strokes changed: the round trip through 2x blurs the others a little.
    changed = (steps != 0)[:, None, None, None]
    return torch.where(changed, F.avg_pool2d(big, 2).clamp(0, 1), x)


def augment_batch(
    x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """float32 (N, 1, 28, 28) -> the same shape, randomly distorted per image. `labels` (N,) are
    needed only for the glyph variants."""
    if not cfg.enabled:
        return x
    n = x.shape[0]
    # Draw every random number whatever the settings, so switching one part off leaves the others'
    # streams unchanged. They come from the CPU generator `gen` on every device (the same numbers
    # on CPU and GPU), then move to the batch's device.
    device = x.device
    thicken = _chance(n, 0.5, gen).to(device)
    stroke = _chance(n, cfg.stroke_p, gen).to(device)
    amount = torch.randint(1, max(1, round(cfg.stroke_px)) + 1, (n,), generator=gen).to(device)
    fill = _chance(n, cfg.fill_p, gen).to(device)
    elastic = _chance(n, cfg.elastic_p, gen).to(device)
    affine = random_affine(n, cfg, gen).to(device)
    offsets = elastic_offsets(n, cfg.elastic_px, elastic, gen)

    if cfg.glyph_p > 0 and labels is not None:
        x = add_glyph_variants(x, labels, cfg.glyph_p, gen)
    if cfg.stroke_p > 0:
        steps = torch.where(thicken, amount, -amount) * stroke
        x = change_stroke_width(x, steps)
    forward = compose(affine, fill_box_affine(x, fill)) if cfg.fill_p > 0 else affine
    grid = F.affine_grid(invert(forward), list(x.shape), align_corners=False)
    if cfg.elastic_p > 0:
        grid = grid + offsets
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if cfg.fill_p > 0:
        # Stretching a 2-3 px stroke several times over smears its anti-aliased edge into a wide
        # ramp; the binary scans it imitates have crisp edges, so restore the contrast.
        crisp = ((x - 0.25) * 2).clamp(0, 1)
        x = torch.where(fill[:, None, None, None], crisp, x)
    return x


def describe(cfg: AugmentConfig) -> str:
    if not cfg.enabled:
        return "off"
    parts = [
        f"rotate ±{cfg.rotate:g}°",
        f"scale ±{cfg.scale:g}",
        f"shear ±{cfg.shear:g}",
        f"shift ±{cfg.translate:g}px",
        f"aspect ×e^±{cfg.stretch:g}",
    ]
    if cfg.fill_p:
        parts.append(f"fill-box p={cfg.fill_p:g}")
    if cfg.stroke_p:
        parts.append(f"stroke ±{cfg.stroke_px:g}px p={cfg.stroke_p:g}")
    if cfg.glyph_p:
        parts.append(f"1/7 glyphs p={cfg.glyph_p:g}")
    if cfg.elastic_p:
        parts.append(f"elastic {cfg.elastic_px:g}px p={cfg.elastic_p:g}")
    if cfg.forms:
        parts.append(f"writers' forms of 1/2/4/7/9 p={cfg.forms:g}")
    return ", ".join(parts)
