import numpy as np
import pytest

from art_ssl import metrics

Y_TRUE = np.array([0, 1, 2, 2, 1, 0, 3, 3])
Y_CLEAN = np.array([0, 1, 2, 1, 1, 0, 3, 0])  # 6 of 8 right
Y_ADV = np.array([1, 1, 0, 1, 2, 0, 3, 0])  # 3 of 8 right; differs from Y_CLEAN at indices 0, 2, 4


def test_accuracies_and_error_rate_by_hand():
    assert metrics.benign_accuracy(Y_CLEAN, Y_TRUE) == 6 / 8
    assert metrics.robust_accuracy(Y_ADV, Y_TRUE) == 3 / 8
    assert metrics.error_rate(Y_ADV, Y_TRUE) == 5 / 8
    scores = np.eye(4)[Y_CLEAN] * 0.9 + 0.01  # scores are arg-maxed
    assert metrics.accuracy(scores, Y_TRUE) == 6 / 8


def test_fooling_rate_counts_changed_predictions():
    assert metrics.fooling_rate(Y_CLEAN, Y_ADV) == 3 / 8
    assert metrics.fooling_rate(Y_CLEAN, Y_CLEAN) == 0.0


def test_attack_success_rate_leaves_out_the_target_class():
    y_true = np.array([0, 1, 2, 3, 3, 1])
    y_pred = np.array([3, 3, 2, 3, 0, 3])  # target 3: samples 3, 4 are of class 3 and are left out
    assert metrics.attack_success_rate(y_pred, 3, y_true) == 3 / 4
    assert metrics.attack_success_rate(y_pred, 3, exclude_target_class=False) == 4 / 6
    with pytest.raises(ValueError, match="`y_true`"):
        metrics.attack_success_rate(y_pred, 3)
    with pytest.raises(ValueError, match="No samples"):
        metrics.attack_success_rate(np.array([3]), 3, np.array([3]))


def test_badencoder_accuracies_are_accuracies_of_two_models():
    assert metrics.clean_accuracy(Y_CLEAN, Y_TRUE) == 6 / 8
    assert metrics.backdoored_accuracy(Y_ADV, Y_TRUE) == 3 / 8


def test_detection_accuracy_and_auroc_by_hand():
    truth = np.array([1, 1, 0, 0, 1, 0])
    assert metrics.detection_accuracy(np.array([1, 0, 0, 1, 1, 0]), truth) == 4 / 6
    # positives score 0.9, 0.4, 0.6; negatives 0.1, 0.4, 0.3. Pairs (pos > neg): 0.9 beats 3, 0.6 beats 3,
    # 0.4 beats 0.1 and 0.3 and ties 0.4 (half) -> (3 + 3 + 2.5) / 9
    scores = np.array([0.9, 0.4, 0.1, 0.4, 0.6, 0.3])
    assert metrics.detection_auroc(scores, truth) == pytest.approx(8.5 / 9)
    assert metrics.detection_auroc(np.array([2.0, 1.0]), np.array([1, 0])) == 1.0
    with pytest.raises(ValueError, match="both"):
        metrics.detection_auroc(scores, np.ones(6))


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="as many samples"):
        metrics.accuracy(Y_CLEAN, Y_TRUE[:3])
    with pytest.raises(ValueError, match="empty"):
        metrics.accuracy(np.array([]), np.array([]))
    with pytest.raises(ValueError, match="labels"):
        metrics.accuracy(np.zeros((2, 2, 2)), Y_TRUE[:2])
