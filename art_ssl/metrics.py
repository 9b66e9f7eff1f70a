"""
The one place where art_ssl's evaluation words are defined (DESIGN §5). All functions take numpy predictions:
class labels ``(N,)`` or scores/logits ``(N, C)`` (arg-maxed), so one prediction pass serves every metric.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def to_labels(y: np.ndarray, name: str = "y") -> np.ndarray:
    """
    Class labels from labels ``(N,)`` or scores ``(N, C)`` (C >= 2, arg-maxed).

    :raises ValueError: another shape, scores with NaN or inf (an arg-max would call them class 0), a single score
                        column, or 1-D values that are not integer labels (such as probabilities or margins).
    """
    y = np.asarray(y)
    if y.dtype == object or not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise ValueError(f"`{name}` must be numeric labels (N,) or scores (N, C), got dtype {y.dtype}.")
    if y.ndim == 2:
        if y.shape[1] < 2:
            raise ValueError(f"`{name}` scores (N, C) need C >= 2 columns, got shape {y.shape}.")
        if not np.isfinite(y).all():
            raise ValueError(f"`{name}` holds NaN or infinite scores: no class can be read from them.")
        return np.argmax(y, axis=1)
    if y.ndim != 1:
        raise ValueError(f"`{name}` must be labels (N,) or scores (N, C), got shape {y.shape}.")
    if y.dtype == bool:
        raise ValueError(f"`{name}` must be integer class labels, got booleans.")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.isfinite(y).all() or not np.all(np.mod(y, 1) == 0):
            raise ValueError(
                f"`{name}` 1-D values must be integer class labels, got non-integer or NaN values "
                "(pass scores as (N, C), or arg-max them first)."
            )
        y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError(f"`{name}` holds negative class labels (min {y.min()}).")
    return y


def _pair(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = to_labels(a, name_a), to_labels(b, name_b)
    if a.shape != b.shape:
        raise ValueError(f"`{name_a}` and `{name_b}` must hold as many samples, got {a.shape[0]} and {b.shape[0]}.")
    if a.size == 0:
        raise ValueError(f"`{name_a}` is empty.")
    return a, b


def accuracy(y_pred: np.ndarray, y_true: np.ndarray) -> float:
    """Fraction of samples whose predicted class equals the true class."""
    y_pred, y_true = _pair(y_pred, y_true, "y_pred", "y_true")
    return float(np.mean(y_pred == y_true))


def benign_accuracy(y_pred_clean: np.ndarray, y_true: np.ndarray) -> float:
    """BA: accuracy of the downstream model on clean test inputs."""
    return accuracy(y_pred_clean, y_true)


def robust_accuracy(y_pred_adv: np.ndarray, y_true: np.ndarray) -> float:
    """RA: accuracy of the downstream model on adversarial inputs (clean test inputs + the perturbation)."""
    return accuracy(y_pred_adv, y_true)


def error_rate(y_pred: np.ndarray, y_true: np.ndarray) -> float:
    """1 - accuracy."""
    return 1.0 - accuracy(y_pred, y_true)


def fooling_rate(y_pred_clean: np.ndarray, y_pred_adv: np.ndarray) -> float:
    """Fraction of samples whose predicted class changes under the perturbation (Moosavi-Dezfooli et al., 2017)."""
    y_pred_clean, y_pred_adv = _pair(y_pred_clean, y_pred_adv, "y_pred_clean", "y_pred_adv")
    return float(np.mean(y_pred_clean != y_pred_adv))


def attack_success_rate(
    y_pred: np.ndarray, target: int, y_true: np.ndarray | None = None, exclude_target_class: bool = True
) -> float:
    """
    ASR of a backdoor: fraction of triggered inputs classified as the attacker's ``target`` class. As in BadEncoder
    (Jia et al., S&P 2022, sec. 5.1), inputs whose true class already is the target are left out when
    ``exclude_target_class`` (then ``y_true`` is required).

    :param y_pred: Predictions on triggered inputs.
    :param target: The target class.
    :param y_true: True classes of the inputs.
    :param exclude_target_class: Leave out inputs of the target class.
    """
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or target < 0:
        raise ValueError(f"`target` must be a class label (an int >= 0), got {target!r}.")
    y_pred = to_labels(y_pred, "y_pred")
    if exclude_target_class:
        if y_true is None:
            raise ValueError("`y_true` is required when `exclude_target_class` is True.")
        y_pred, y_true = _pair(y_pred, y_true, "y_pred", "y_true")
        y_pred = y_pred[y_true != target]
    if y_pred.size == 0:
        raise ValueError("No samples left to compute the attack success rate on.")
    return float(np.mean(y_pred == target))


def clean_accuracy(y_pred: np.ndarray, y_true: np.ndarray) -> float:
    """CA (BadEncoder): accuracy on clean inputs of a downstream model built on the *clean* encoder."""
    return accuracy(y_pred, y_true)


def backdoored_accuracy(y_pred: np.ndarray, y_true: np.ndarray) -> float:
    """BA (BadEncoder): accuracy on clean inputs of a downstream model built on the *backdoored* encoder."""
    return accuracy(y_pred, y_true)


def detection_accuracy(is_adv_pred: np.ndarray, is_adv_true: np.ndarray) -> float:
    """Fraction of inputs a detector labels correctly as adversarial or clean."""
    a, b = np.asarray(is_adv_pred).astype(bool).ravel(), np.asarray(is_adv_true).astype(bool).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"`is_adv_pred` and `is_adv_true` must be non-empty and equal length, got {a.size}, {b.size}.")
    return float(np.mean(a == b))


def detection_auroc(scores: np.ndarray, is_adv_true: np.ndarray) -> float:
    """
    Area under the ROC curve of a detector score (higher = more adversarial), as the Mann-Whitney statistic:
    the probability that a random adversarial input scores above a random clean one (ties count one half).
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positive = np.asarray(is_adv_true).astype(bool).ravel()
    if scores.shape != positive.shape:
        raise ValueError(f"`scores` and `is_adv_true` must be equal length, got {scores.size} and {positive.size}.")
    if not np.isfinite(scores).all():
        raise ValueError("`scores` holds NaN or infinite values: a ranking of them means nothing.")
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("`is_adv_true` must contain both adversarial and clean inputs.")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


__all__ = [
    "accuracy",
    "attack_success_rate",
    "backdoored_accuracy",
    "benign_accuracy",
    "clean_accuracy",
    "detection_accuracy",
    "detection_auroc",
    "error_rate",
    "fooling_rate",
    "robust_accuracy",
    "to_labels",
]
