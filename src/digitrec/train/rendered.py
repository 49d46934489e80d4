"""Real-looking digits for the digit model: MNIST training digits drawn as the images users bring
(pens on paper, photos, normalised scans stretched into boxes, digits cut from a number with
slivers of their neighbours, cheque scans; font digits too), each passed through `digit_views`
exactly as `predict` prepares an image, so the model learns from what the runtime shows it.

The drawing is the rejector's (`negatives.py`: one set of renderers for both networks); this
module only picks a digit, keeps its label and caches the views. Made from the training split
alone (never the validation images the recipe holds out, nor the test set), once per
(examples, seed, training images), in the cache folder: a few minutes of CPU.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from digitrec import paths
from digitrec.train import negatives
from digitrec.train.cache import cached

# kind -> share of the set. The plain MNIST-looking renderings get the most; normalised scans
# (USPS, Semeion, NIST forms) and cheque cuts are where the MNIST-only model loses most.
KINDS = {"digit": 0.4, "scan-digit": 0.2, "cut-digit": 0.1, "cheque-digit": 0.2, "font-digit": 0.1}
VERSION = 2  # bump when the drawing changes, so that an old cache is not taken for a new one


def render_digit(
    rng: np.random.Generator, kind: str, fonts: list[negatives.Font], images: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, int]:
    """-> (uint8 (H, W) grey image of one digit of `kind` (a digit kind of negatives.KIND_CLASS), its label)."""
    if kind in ("digit", "scan-digit"):  # one image: the rejector's renderer draws exactly it
        i = int(rng.integers(len(images)))
        return negatives.make_image(rng, kind, fonts, images[i : i + 1], labels[i : i + 1]), int(labels[i])
    if kind in ("cut-digit", "cheque-digit"):
        label: list[int] = []
        cut = negatives.cut_digit if kind == "cut-digit" else negatives.cheque_digit
        return cut(rng, images, labels, label_out=label), label[0]
    if kind == "font-digit":
        digit = int(rng.integers(10))
        font = fonts[rng.integers(len(fonts))]
        ink = negatives.distort(rng, negatives.glyph(rng, str(digit), font))
        return negatives.on_paper(rng, ink), digit
    raise ValueError(f"not a digit kind: {kind!r}")


def make_rendered(
    rng: np.random.Generator,
    n: int,
    images: np.ndarray,
    labels: np.ndarray,
    fonts: list[negatives.Font],
    log: Callable[[str], None] = lambda m: None,
) -> tuple[np.ndarray, np.ndarray]:
    """-> (uint8 (M, 28, 28) views, int64 (M,) labels), M <= n: about n * KINDS[kind] of each kind;
    images in which the preprocessing finds no ink are left out, as predict refuses them."""
    views, out_labels = [], []
    for kind, share in KINDS.items():
        count = round(n * share)
        empty = 0
        for _ in range(count):
            grey, label = render_digit(rng, kind, fonts, images, labels)
            view = negatives.view_of(grey)
            if view is None:
                empty += 1
                continue
            views.append(view)
            out_labels.append(label)
        log(f"  {kind}: {count - empty:,} views ({empty:,} without ink)")
    return np.array(views, np.uint8).reshape(-1, 28, 28), np.array(out_labels, np.int64)


def rendered_set(
    examples: int, seed: int, images: np.ndarray, labels: np.ndarray, log: Callable[[str], None] = lambda m: None
) -> tuple[np.ndarray, np.ndarray]:
    """The cached rendered set for these settings, drawn from `images` (the run's MNIST training
    split, uint8 (N, 28, 28)) and made on first use. Training fonts only (`negatives.split_fonts`):
    the held-out families stay unseen by both networks."""
    made_with = {"examples": examples, "seed": seed, "source_images": len(images), "version": VERSION}
    path = paths.cache_root() / "rendered" / f"digits-{examples}-seed{seed}-from{len(images)}-v{VERSION}.npz"

    def build() -> tuple[np.ndarray, np.ndarray]:
        log(f"drawing {examples:,} real-looking digits from {len(images):,} MNIST training images ...")
        fonts, _ = negatives.split_fonts(negatives.installed_fonts())
        return make_rendered(np.random.default_rng(seed), examples, images, labels, fonts, log)

    return cached(
        path,
        made_with,
        build,
        lambda data: {"views": data[0], "labels": data[1]},
        lambda arrays: (arrays["views"], arrays["labels"]),
    )
