"""Pictures of MNIST a person looks at: samples per class, class balance, mean images, pixel statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from digitrec.files import check_writable

Split = tuple[np.ndarray, np.ndarray]  # (images uint8 (N, 28, 28), labels uint8 (N,))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def sample_grid(images: np.ndarray, labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """-> uint8 (10*30, per_class*30) mosaic: one row per class, 1-px gaps, ink white on black."""
    rng = np.random.default_rng(seed)
    cell = 30
    grid = np.full((10 * cell, per_class * cell), 40, dtype=np.uint8)
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        chosen = rng.choice(idx, size=min(per_class, len(idx)), replace=False)
        for j, i in enumerate(chosen):
            grid[digit * cell + 1 : digit * cell + 29, j * cell + 1 : j * cell + 29] = images[i]
    return grid


def write_exploration(train: Split, test: Split, out: Path | str, per_class: int = 10, seed: int = 0) -> list[Path]:
    plt = _pyplot()
    out = Path(out)
    check_writable(out / "samples.png")  # the folder made, or why not (a file in its way)
    written = []
    (train_x, train_y), (_, test_y) = train, test

    fig, ax = plt.subplots(figsize=(per_class * 0.6 + 0.6, 6.4))
    ax.imshow(sample_grid(train_x, train_y, per_class, seed), cmap="gray", vmin=0, vmax=255)
    ax.set_yticks(np.arange(10) * 30 + 14.5, [str(d) for d in range(10)])
    ax.set_xticks([])
    ax.set_title(f"{per_class} random training samples per class")
    written.append(_save(fig, out / "samples.png"))

    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.4
    for offset, (name, y) in zip((-width / 2, width / 2), (("train", train_y), ("test", test_y))):
        counts = np.bincount(y, minlength=10)
        bars = ax.bar(np.arange(10) + offset, counts / len(y) * 100, width, label=f"{name} (n={len(y)})")
        ax.bar_label(bars, labels=[str(c) for c in counts], fontsize=6, rotation=90, padding=2)
    ax.axhline(10, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(10))
    ax.set_xlabel("digit")
    ax.set_ylabel("% of split")
    ax.set_ylim(0, 14)
    ax.set_title("Class balance")
    ax.legend(fontsize=8)
    written.append(_save(fig, out / "class_balance.png"))

    fig, axes = plt.subplots(1, 10, figsize=(10, 1.5))
    for digit, ax in enumerate(axes):
        ax.imshow(train_x[train_y == digit].mean(axis=0), cmap="magma")
        ax.set_title(str(digit))
        ax.axis("off")
    fig.suptitle("Mean training image per class")
    written.append(_save(fig, out / "mean_images.png"))

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.hist(train_x.ravel(), bins=64, log=True, color="tab:blue")
    left.set_title(f"Pixel intensities (train): mean {train_x.mean():.2f}, std {train_x.std():.2f}")
    left.set_xlabel("value (0-255)")
    ink = (train_x > 127).reshape(len(train_x), -1).sum(axis=1)
    for digit in range(10):
        right.hist(ink[train_y == digit], bins=40, histtype="step", label=str(digit))
    right.set_title("Ink pixels (>127) per image, by class")
    right.set_xlabel("pixels")
    right.legend(fontsize=6, ncol=2)
    written.append(_save(fig, out / "pixel_stats.png"))
    return written


def _save(fig, path: Path) -> Path:
    from digitrec.files import atomic_path

    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        _pyplot().close(fig)
    return path
