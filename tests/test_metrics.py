"""Evaluation metrics against small examples worked out by hand, and ECE against a plain loop."""

import math

import numpy as np
import pytest

from digitrec.evaluate import metrics

# Five images, three classes. Row i: the probabilities; the comment says what the argmax makes of it.
LABELS = np.array([0, 0, 1, 1, 2])
PROBS = np.array(
    [
        [0.70, 0.20, 0.10],  # says 0, right,  confidence 0.70
        [0.30, 0.62, 0.08],  # says 1, wrong,  confidence 0.62
        [0.10, 0.85, 0.05],  # says 1, right,  confidence 0.85
        [0.25, 0.20, 0.55],  # says 2, wrong,  confidence 0.55
        [0.10, 0.05, 0.85],  # says 2, right,  confidence 0.85
    ]
)


def test_accuracy_counts_argmax_hits():
    assert metrics.accuracy(LABELS, PROBS) == pytest.approx(3 / 5)


def test_loss_is_mean_negative_log_probability_of_the_truth():
    # p(true) = 0.70, 0.30, 0.85, 0.20, 0.85
    # -ln: 0.356675 + 1.203973 + 0.162519 + 1.609438 + 0.162519 = 3.495124, / 5 = 0.699025
    assert metrics.cross_entropy(LABELS, PROBS) == pytest.approx(0.699025, abs=1e-6)


def test_loss_of_a_zero_probability_is_finite():
    loss = metrics.cross_entropy(np.array([1]), np.array([[1.0, 0.0]]))
    assert loss == pytest.approx(-math.log(metrics.LOSS_EPS))


def test_confusion_rows_are_true_columns_predicted():
    confusion = metrics.confusion_matrix(LABELS, PROBS.argmax(axis=1), n_classes=3)
    assert confusion.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_per_class_precision_recall_f1_support():
    per_class = metrics.per_class(metrics.confusion_matrix(LABELS, PROBS.argmax(axis=1), 3))
    # class 0: said 0 once, right once -> P 1/1; two 0s, found one -> R 1/2; F1 = 2*1*.5/1.5 = 2/3
    # class 1: said 1 twice, right once -> P 1/2; two 1s, found one -> R 1/2; F1 = 1/2
    # class 2: said 2 twice, right once -> P 1/2; one 2, found it   -> R 1/1; F1 = 2/3
    expected = [(1.0, 0.5, 2 / 3, 2), (0.5, 0.5, 0.5, 2), (0.5, 1.0, 2 / 3, 1)]
    for digit, (row, (p, r, f, s)) in enumerate(zip(per_class, expected)):
        assert row["digit"] == digit
        assert row["precision"] == pytest.approx(p)
        assert row["recall"] == pytest.approx(r)
        assert row["f1"] == pytest.approx(f)
        assert row["support"] == s


def test_per_class_with_nothing_to_count_is_zero_not_nan():
    # class 2 never appears and is never predicted; class 1 appears but is never predicted
    per_class = metrics.per_class(np.array([[3, 0, 0], [2, 0, 0], [0, 0, 0]]))
    assert per_class[0]["precision"] == pytest.approx(3 / 5) and per_class[0]["recall"] == 1.0
    assert per_class[1] == {"digit": 1, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert per_class[2] == {"digit": 2, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_ece_by_hand_with_15_bins():
    # confidence * 15 -> bin: 0.70 -> 10.5 -> bin 10; 0.62 -> 9.3 -> bin 9; 0.85 -> 12.75 -> bin 12 (twice);
    # 0.55 -> 8.25 -> bin 8. Per bin |accuracy - confidence|:
    #   bin 8: |0 - .55| = .55 (1 image); bin 9: |0 - .62| = .62 (1); bin 10: |1 - .70| = .30 (1);
    #   bin 12: |1 - .85| = .15 (2 images)
    # ECE = (.55 + .62 + .30 + 2 * .15) / 5 = 1.77 / 5 = 0.354
    assert metrics.expected_calibration_error(LABELS, PROBS) == pytest.approx(0.354)
    bins = metrics.calibration_bins(LABELS, PROBS)
    assert len(bins) == 15
    assert [b["count"] for b in bins] == [0] * 8 + [1, 1, 1, 0, 2, 0, 0]
    assert bins[12]["confidence"] == pytest.approx(0.85) and bins[12]["accuracy"] == 1.0
    assert bins[0]["confidence"] is None and bins[0]["accuracy"] is None


def test_ece_is_zero_when_confidence_matches_accuracy():
    # four images at confidence 0.75, three of them right
    probs = np.array([[0.75, 0.25]] * 4)
    assert metrics.expected_calibration_error(np.array([0, 0, 0, 1]), probs) == pytest.approx(0.0)


def test_confidence_of_one_lands_in_the_last_bin():
    bins = metrics.calibration_bins(np.array([0]), np.array([[1.0, 0.0]]))
    assert bins[-1]["count"] == 1 and bins[-1]["upper"] == 1.0


def test_ece_matches_a_plain_loop_on_random_predictions():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2000, 10)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 10, size=2000)
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    ece = 0.0
    for m in range(15):  # bins (m/15, (m+1)/15]
        inside = [(c, p == y) for c, p, y in zip(confidence, predicted, labels) if m / 15 < c <= (m + 1) / 15]
        if inside:
            ece += len(inside) / 2000 * abs(np.mean([ok for _, ok in inside]) - np.mean([c for c, _ in inside]))
    assert metrics.expected_calibration_error(labels, probs) == pytest.approx(ece, abs=1e-12)


def test_worst_mistakes_are_wrong_answers_most_confident_first():
    assert metrics.worst_mistakes(LABELS, PROBS).tolist() == [1, 3]
    assert metrics.worst_mistakes(LABELS, PROBS, k=1).tolist() == [1]


def test_summarize_gathers_everything():
    summary = metrics.summarize(LABELS, PROBS)
    assert summary["n"] == 5 and summary["errors"] == 2
    assert summary["accuracy"] == pytest.approx(0.6)
    assert summary["ece"] == pytest.approx(0.354)
    assert summary["confusion"] == [[1, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert len(summary["per_class"]) == 3 and len(summary["calibration"]) == 15


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError):
        metrics.accuracy(np.array([0, 1]), PROBS)
    with pytest.raises(ValueError):
        metrics.accuracy(np.array([0, 1, 2, 3, 9]), PROBS)
