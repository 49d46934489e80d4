"""The evaluation figures, each written as a PNG: confusion heatmap, worst mistakes, reliability diagram,
training curves. matplotlib and seaborn are imported only when a figure is drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DPI = 110
TRAIN_COLOUR, VAL_COLOUR = "#1f77b4", "#d62728"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    from digitrec.files import atomic_path

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    finally:
        _pyplot().close(fig)
    return path


def plot_confusion(confusion: np.ndarray, path: Path) -> Path:
    """Counts on a log colour scale, so a handful of mistakes shows beside a thousand right answers;
    zero cells are left blank to keep the eye on the mistakes."""
    import seaborn as sns
    from matplotlib.colors import LogNorm

    plt = _pyplot()
    confusion = np.asarray(confusion)
    labels = np.where(confusion > 0, confusion.astype(str), "")
    fig, ax = plt.subplots(figsize=(7.2, 6))
    sns.heatmap(
        np.ma.masked_equal(confusion, 0),
        annot=labels,
        fmt="",
        cmap="Blues",
        norm=LogNorm(vmin=1, vmax=max(int(confusion.max()), 2)),
        linewidths=0.5,
        linecolor="#e5e7eb",
        square=True,
        cbar_kws={"label": "images (log scale)"},
        annot_kws={"fontsize": 9},
        ax=ax,
    )
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title("Confusion matrix (rows: true, columns: predicted)")
    ax.tick_params(axis="y", rotation=0)
    return _save(fig, path)


def plot_mistakes(
    images: np.ndarray, labels: np.ndarray, probs: np.ndarray, indices: np.ndarray, path: Path, columns: int = 8
) -> Path:
    """A grid of wrongly answered digits, in the order given (most confident first). One mosaic on one
    axes with text above each tile: four times faster to draw than an axes per digit."""
    plt = _pyplot()
    n = len(indices)
    rows = max(1, -(-n // columns))
    tile, gap, header = 28, 10, 16  # in image pixels: digit, space between columns, caption above
    cell_w, cell_h = tile + gap, tile + header
    mosaic = np.full((rows * cell_h, columns * cell_w), 255, np.uint8)  # white paper, black tiles
    captions = []
    for k, i in enumerate(indices):
        top, left = (k // columns) * cell_h + header, (k % columns) * cell_w + gap // 2
        mosaic[top : top + tile, left : left + tile] = images[i]
        predicted = int(probs[i].argmax())
        captions.append(
            (left + tile / 2, top - 1.5, f"true {int(labels[i])}, said {predicted}\n{probs[i, predicted]:.1%} · #{i}")
        )
    scale = 1.35 / cell_w  # inches per image pixel
    fig, ax = plt.subplots(figsize=(columns * cell_w * scale, rows * cell_h * scale + 0.4))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    for x, y, text in captions:
        ax.text(x, y, text, ha="center", va="bottom", fontsize=9, color="#b91c1c", linespacing=1.15)
    if n == 0:
        ax.text(0.5, 0.5, "No mistakes.", fontsize=14, ha="center", transform=ax.transAxes)
    ax.axis("off")
    ax.set_title(
        f"{n} most confident mistakes (true label, answer, confidence, test index)" if n else "Mistakes", fontsize=11
    )
    return _save(fig, path)


def plot_reliability(bins: list[dict], ece: float, path: Path) -> Path:
    """Accuracy per confidence bin against the diagonal (perfect calibration), with how many images
    fall in each bin underneath: on MNIST nearly all sit in the top bin."""
    plt = _pyplot()
    lower = np.array([b["lower"] for b in bins])
    width = bins[0]["upper"] - bins[0]["lower"]
    counts = np.array([b["count"] for b in bins])
    filled = counts > 0
    accuracy = np.array([b["accuracy"] if b["count"] else 0.0 for b in bins])
    confidence = np.array([b["confidence"] if b["count"] else 0.0 for b in bins])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 6.4), sharex=True, gridspec_kw={"height_ratios": [3, 1.2]})
    top.bar(
        lower[filled],
        accuracy[filled],
        width=width,
        align="edge",
        color="#3b82f6",
        edgecolor="white",
        label="accuracy in bin",
    )
    gap_bottom = np.minimum(accuracy, confidence)[filled]
    top.bar(
        lower[filled],
        np.abs(confidence - accuracy)[filled],
        bottom=gap_bottom,
        width=width,
        align="edge",
        facecolor="none",
        edgecolor="#b91c1c",
        hatch="///",
        linewidth=1.2,
        label="gap to mean confidence",
    )  # unfilled: where the model is under-confident the blue shows through
    top.plot([0, 1], [0, 1], "--", color="#6b7280", label="perfect calibration")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.set_title(f"Reliability diagram ({len(bins)} bins), ECE = {ece:.4f}", pad=28)
    # Above the axes: inside, it would hide the low-confidence bins.
    top.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=9, frameon=False)
    bottom.bar(lower, np.maximum(counts, 0), width=width, align="edge", color="#9ca3af", edgecolor="white")
    if counts.max() > 0:
        bottom.set_yscale("log")
        bottom.set_ylim(0.5, counts.max() * 2)  # a bin of one image still shows
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("confidence (top probability)")
    bottom.set_ylabel("images")
    fig.tight_layout()
    return _save(fig, path)


def plot_history(rows: list[dict], path: Path) -> Path:
    """Loss and accuracy per epoch, train and validation, from the run's metrics.jsonl rows."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for split, colour in (("train", TRAIN_COLOUR), ("val", VAL_COLOUR)):
            key = f"{split}_{metric}"
            points = [(r["epoch"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
            if points:
                x, y = zip(*points)
                ax.plot(x, y, "o-", color=colour, markersize=4, label="train" if split == "train" else "validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric)
        ax.set_title(f"{metric.capitalize()} per epoch")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def plot_risk_coverage(coverage: np.ndarray, accuracy: np.ndarray, at: dict, path: Path) -> Path:
    """Accuracy of the answered images against the share answered, the most confident first, with
    the point the threshold `at` (metrics.answered_at) picks: the whole curve, and its last 10%
    enlarged, where a good model's few mistakes are. The y axes start just under the lowest accuracy."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    for ax, start in zip(axes, (0.0, 0.9)):
        shown = coverage >= start
        ax.plot(coverage[shown] * 100, accuracy[shown] * 100, color="#2563eb", linewidth=1.8, label="answered")
        if at["answered"]:
            ax.plot(
                [at["coverage"] * 100],
                [at["accuracy"] * 100],
                "o",
                color="#d97706",
                markersize=8,
                label=f"min_confidence {at['min_confidence']:g}:\n{at['coverage']:.2%} answered, "
                f"{at['accuracy']:.2%} right",
            )
        low = float(accuracy[shown].min()) * 100 if shown.any() else 0.0
        ax.set_ylim(max(0.0, low - (100 - low) * 0.15 - 0.01), 100.0 + (100 - low) * 0.05 + 0.001)
        ax.set_xlim(start * 100, 100)
        ax.set_xlabel("share answered, most confident first (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy of the answered (%)")
    axes[0].set_title("Risk-coverage: answer less, be right more often")
    axes[1].set_title("The last 10%, enlarged")
    axes[0].legend(loc="lower left", fontsize=9, frameon=False)
    fig.tight_layout()
    return _save(fig, path)
