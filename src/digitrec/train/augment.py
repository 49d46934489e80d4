"""On-the-fly augmentation of whole batches with torch ops (no per-image Python loop).

Input and output: float32 (N, 1, 28, 28) in [0, 1], ink = 1. All randomness comes from the
`torch.Generator` passed in, so a seed fixes every distortion (and a resumed run repeats them).

What it covers, and why:
- rotation, scale, shear, translation: writers' slant and size, and imperfect centring;
- aspect stretch and "fill the box": semeion and NIST optdigits stretch every digit to touch all four
  sides of its box, so a '1' arrives as a wide bar; MNIST never shows that;
- stroke width: tablet pens and thin fountain pens give strokes much thinner or thicker than MNIST's;
- elastic distortion (Simard et al., 2003): local wobble of the strokes, for the `best` recipe.
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


def fill_box_affine(x: torch.Tensor, chosen: torch.Tensor, max_stretch: float = 4.0) -> torch.Tensor:
    """(N, 2, 3) forward maps that stretch each chosen digit's ink bounding box to the full 20x20
    box at the centre (identity for the others), the way semeion/optdigits normalise digits."""
    n = x.shape[0]
    ink = x[:, 0] > INK_THRESHOLD  # (N, 28, 28)
    cols, rows = ink.any(1), ink.any(2)  # (N, 28) each
    idx = torch.arange(SIZE)

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
    one, zero = torch.ones(n), torch.zeros(n)
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
    coarse = torch.rand(n, 2, 4, 4, generator=gen) * 2 - 1
    field = F.interpolate(coarse, size=(SIZE, SIZE), mode="bicubic", align_corners=True)
    field = field * (pixels * 2 / SIZE) * chosen.float()[:, None, None, None]
    return field.permute(0, 2, 3, 1)


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
    return F.avg_pool2d(big, 2).clamp(0, 1)


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """float32 (N, 1, 28, 28) -> the same shape, randomly distorted per image."""
    if not cfg.enabled:
        return x
    n = x.shape[0]
    # Draw every random number whatever the settings, so switching one part off leaves the others'
    # streams unchanged.
    thicken = _chance(n, 0.5, gen)
    stroke = _chance(n, cfg.stroke_p, gen)
    amount = torch.randint(1, max(1, round(cfg.stroke_px)) + 1, (n,), generator=gen)
    fill = _chance(n, cfg.fill_p, gen)
    elastic = _chance(n, cfg.elastic_p, gen)
    affine = random_affine(n, cfg, gen)
    offsets = elastic_offsets(n, cfg.elastic_px, elastic, gen)

    if cfg.stroke_p > 0:
        steps = torch.where(thicken, amount, -amount) * stroke
        x = change_stroke_width(x, steps)
    forward = compose(affine, fill_box_affine(x, fill)) if cfg.fill_p > 0 else affine
    grid = F.affine_grid(invert(forward), list(x.shape), align_corners=False)
    if cfg.elastic_p > 0:
        grid = grid + offsets
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def describe(cfg: AugmentConfig) -> str:
    if not cfg.enabled:
        return "off"
    parts = [f"rotate ±{cfg.rotate:g}°", f"scale ±{cfg.scale:g}", f"shear ±{cfg.shear:g}",
             f"shift ±{cfg.translate:g}px", f"aspect ×e^±{cfg.stretch:g}"]
    if cfg.fill_p:
        parts.append(f"fill-box p={cfg.fill_p:g}")
    if cfg.stroke_p:
        parts.append(f"stroke ±{cfg.stroke_px:g}px p={cfg.stroke_p:g}")
    if cfg.elastic_p:
        parts.append(f"elastic {cfg.elastic_px:g}px p={cfg.elastic_p:g}")
    return ", ".join(parts)

