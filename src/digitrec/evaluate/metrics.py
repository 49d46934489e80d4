"""Classification metrics from labels and probabilities. numpy only, so a PyTorch checkpoint and the
ONNX runtime feed the same code.

Conventions: `labels` int (N,), `probs` float (N, C) rows summing to 1; the prediction is the argmax
and its probability is the confidence. Confusion rows are true labels, columns are predictions.
"""

from __future__ import annotations

import numpy as np

# -log(p) is clipped here so one probability that underflowed to 0 cannot make the mean loss infinite.
LOSS_EPS = 1e-12
ECE_BINS = 15  # Guo et al. 2017, "On Calibration of Modern Neural Networks"


def _check(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"probs must be (N, C) with N = {len(labels)} labels, got {probs.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f"labels must lie in 0..{probs.shape[1] - 1}")
    return labels, probs


def accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    labels, probs = _check(labels, probs)
    return float((probs.argmax(axis=1) == labels).mean()) if len(labels) else 0.0


def cross_entropy(labels: np.ndarray, probs: np.ndarray, eps: float = LOSS_EPS) -> float:
    """Mean negative log-probability of the true class (natural log), as nn.CrossEntropyLoss reports it."""
    labels, probs = _check(labels, probs)
    if not len(labels):
        return 0.0
    p_true = probs[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(p_true, eps, 1.0)).mean())


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """-> int64 (C, C): [true, predicted] counts."""
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    predicted = np.asarray(predicted).astype(np.int64).reshape(-1)
    flat = np.bincount(labels * n_classes + predicted, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes)


def per_class(confusion: np.ndarray) -> list[dict]:
    """Precision, recall, F1 and support per class (the class index is the digit); a ratio with nothing to
    count is 0, as in sklearn."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_pos = np.diag(confusion)
    support = confusion.sum(axis=1)  # how many of this class there are
    predicted = confusion.sum(axis=0)  # how often this class was answered
    precision = np.divide(true_pos, predicted, out=np.zeros_like(true_pos), where=predicted > 0)
    recall = np.divide(true_pos, support, out=np.zeros_like(true_pos), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(true_pos), where=both > 0)
    return [
        {"digit": c, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for c, (p, r, f, s) in enumerate(zip(precision, recall, f1, support))
    ]


def calibration_bins(labels: np.ndarray, probs: np.ndarray, n_bins: int = ECE_BINS) -> list[dict]:
    """Equal-width confidence bins ((m-1)/M, m/M] with, per bin, its count, mean confidence and accuracy
    (None for an empty bin). Confidence is the top probability; accuracy is whether the top class is right."""
    labels, probs = _check(labels, probs)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    # ceil(conf * M) - 1 puts conf in ((m-1)/M, m/M]; a confidence of exactly 0 cannot happen for a max of a
    # probability vector but is clipped into the first bin anyway.
    index = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    bins = []
    for m in range(n_bins):
        inside = index == m
        count = int(inside.sum())
        bins.append(
            {
                "lower": m / n_bins,
                "upper": (m + 1) / n_bins,
                "count": count,
                "confidence": float(confidence[inside].mean()) if count else None,
                "accuracy": float(correct[inside].mean()) if count else None,
            }
        )
    return bins


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE = sum over bins of (n_bin / N) * |accuracy_bin - confidence_bin|."""
    bins = calibration_bins(labels, probs, n_bins)
    n = sum(b["count"] for b in bins)
    if not n:
        return 0.0
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]))


def worst_mistakes(labels: np.ndarray, probs: np.ndarray, k: int | None = None) -> np.ndarray:
    """Indices of the wrong answers, most confident first (ties: lower index first)."""
    labels, probs = _check(labels, probs)
    wrong = np.flatnonzero(probs.argmax(axis=1) != labels)
    confidence = probs[wrong].max(axis=1)
    order = np.argsort(-confidence, kind="stable")
    return wrong[order][:k]


# --- doubt: answering only the most confident (selective classification) ---------------------------

# The shares answered the report's risk-coverage table shows.
COVERAGES = (0.5, 0.8, 0.9, 0.95, 0.99, 1.0)


def risk_coverage(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Answer only the k most confident images, k = 1..N -> (coverage, accuracy), float (N,) each:
    coverage[k-1] = k / N, the share answered; accuracy[k-1] = the share of those k that are right.
    Ties in confidence keep the input order (a stable sort), so the curve is reproducible."""
    labels, probs = _check(labels, probs)
    order = np.argsort(-probs.max(axis=1), kind="stable")
    right = (probs.argmax(axis=1) == labels)[order]
    k = np.arange(1, len(labels) + 1)
    return k / max(len(labels), 1), np.cumsum(right) / k


def accuracy_at_coverage(labels: np.ndarray, probs: np.ndarray, coverages=COVERAGES) -> list[dict]:
    """The accuracy of the most confident `coverage` share of the images (at least one image)."""
    coverage, accuracy = risk_coverage(labels, probs)
    n = len(coverage)
    out = []
    for c in coverages:
        k = min(n, max(1, int(np.ceil(c * n)))) if n else 0
        out.append({"coverage": float(c), "answered": k, "accuracy": float(accuracy[k - 1]) if k else 0.0})
    return out


def answered_at(labels: np.ndarray, probs: np.ndarray, min_confidence: float) -> dict:
    """What a threshold does: the share answered (confidence >= min_confidence), their accuracy,
    and how many flagged answers were right and wrong."""
    labels, probs = _check(labels, probs)
    answered = probs.max(axis=1) >= min_confidence
    right = probs.argmax(axis=1) == labels
    return {
        "min_confidence": float(min_confidence),
        "coverage": float(answered.mean()) if len(labels) else 0.0,
        "answered": int(answered.sum()),
        "accuracy": float(right[answered].mean()) if answered.any() else 0.0,
        "flagged": int((~answered).sum()),
        "flagged_right": int((~answered & right).sum()),
        "flagged_wrong": int((~answered & ~right).sum()),
    }


def lowest_threshold_for_accuracy(labels: np.ndarray, probs: np.ndarray, target: float) -> float | None:
    """The lowest min_confidence (one of the images' confidences) at which the answered images are at
    least `target` right: it flags the fewest answers for that accuracy. None if no threshold
    reaches it (e.g. the most confident image is wrong and the target is 1)."""
    labels, probs = _check(labels, probs)
    confidence = probs.max(axis=1)
    coverage, accuracy = risk_coverage(labels, probs)
    ranked = np.sort(confidence, kind="stable")[::-1]  # the k-th most confident, as risk_coverage ranks them
    # A threshold answers whole groups of tied confidences: only the last image of a group is a cut.
    cut = np.append(ranked[1:] < ranked[:-1], True)
    good = np.flatnonzero(cut & (accuracy >= target))
    return float(ranked[good[-1]]) if len(good) else None


def flagged_by_reason(
    images: np.ndarray | None,
    probs: np.ndarray,
    min_confidence: float,
    rejected: list[str | None] | None = None,
) -> dict[str, int | None]:
    """How many images each doubt reason (digitrec.doubt.REASONS) flags, in that order, each image
    under one reason as `Recognizer` gives it: the rejector's reason first (`rejected`, one per image,
    None for a digit), then "no ink" for an image without one inked pixel (uint8 (N, 28, 28), ink > 0),
    then "low confidence" for the others whose top probability is under `min_confidence`. Without
    `rejected` the rejector's reasons ("not a digit", "several digits") are None: not checked."""
    from digitrec import doubt

    probs = np.asarray(probs, dtype=np.float64)
    blank = (
        np.zeros(len(probs), bool) if images is None else np.asarray(images).reshape(len(probs), -1).max(axis=1) == 0
    )
    counts: dict[str, int | None] = {reason: None for reason in doubt.REASONS}
    said = np.array([reason is not None for reason in rejected]) if rejected is not None else np.zeros(len(probs), bool)
    if rejected is not None:
        for reason in (doubt.NOT_A_DIGIT, doubt.SEVERAL_DIGITS):
            counts[reason] = sum(r == reason for r in rejected)
        blank |= np.array([r == doubt.NO_INK for r in rejected], bool)
    counts[doubt.NO_INK] = int(blank.sum())
    counts[doubt.LOW_CONFIDENCE] = int(((probs.max(axis=1) < min_confidence) & ~blank & ~said).sum())
    return counts


def doubt_summary(
    images: np.ndarray | None,
    labels: np.ndarray,
    probs: np.ndarray,
    min_confidence: float,
    rejected: list[str | None] | None = None,
) -> dict:
    """What `digitrec evaluate` reports of doubt, JSON-ready: the threshold's effect, the
    risk-coverage table and the flagged images per reason (`rejected`: the rejector's verdicts)."""
    return {
        "at_threshold": answered_at(labels, probs, min_confidence),
        "risk_coverage": accuracy_at_coverage(labels, probs),
        "flagged": flagged_by_reason(images, probs, min_confidence, rejected),
    }


def summarize(labels: np.ndarray, probs: np.ndarray, n_bins: int = ECE_BINS) -> dict:
    """Everything `digitrec evaluate` reports as numbers, JSON-ready."""
    labels, probs = _check(labels, probs)
    predicted = probs.argmax(axis=1)
    confusion = confusion_matrix(labels, predicted, probs.shape[1])
    return {
        "n": int(len(labels)),
        "accuracy": accuracy(labels, probs),
        "loss": cross_entropy(labels, probs),
        "errors": int((predicted != labels).sum()),
        "ece": expected_calibration_error(labels, probs, n_bins),
        "per_class": per_class(confusion),
        "confusion": confusion.tolist(),
        "calibration": calibration_bins(labels, probs, n_bins),
    }
