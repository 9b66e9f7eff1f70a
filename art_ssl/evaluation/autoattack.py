"""Robust accuracy under AutoAttack (Croce & Hein, ICML 2020; PyPI ``pyautoattack``) of an ART classifier."""

from __future__ import annotations

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier

from art_ssl.core.checks import check_images, check_labels, check_positive_int
from art_ssl.core.forward import PreprocessedModel  # re-exported: its home before issue 17

VERSIONS = ("standard", "plus", "rand", "custom")


def autoattack_accuracy(
    classifier: PyTorchClassifier,
    x: np.ndarray,
    y: np.ndarray,
    eps: float,
    version: str = "standard",
    attacks: list[str] | None = None,
    batch_size: int = 250,
    seed: int = 0,
) -> tuple[float, np.ndarray]:
    """
    Accuracy of ``classifier`` on AutoAttack's L-inf adversarial examples, with pyautoattack's
    ``run_standard_evaluation``.

    :param classifier: ART ``PyTorchClassifier`` (its preprocessing is applied inside the attacked model).
    :param x: Clean images in the classifier's clip range.
    :param y: Integer labels.
    :param eps: L-inf budget in pixel units.
    :param version: ``"standard"`` (APGD-CE, APGD-T, FAB-T, Square), ``"plus"``, ``"rand"`` or ``"custom"``.
    :param attacks: The attacks of a ``"custom"`` version, e.g. ``["apgd-ce", "apgd-t"]``.
    :param batch_size: AutoAttack's batch size.
    :param seed: AutoAttack's seed.
    :return: ``(robust accuracy, adversarial images)``.
    """
    from pyautoattack import AutoAttack

    if not isinstance(classifier, PyTorchClassifier):
        raise TypeError(f"`classifier` must be an ART PyTorchClassifier, got {type(classifier).__name__}.")
    if version not in VERSIONS:
        raise ValueError(f"`version` must be one of {VERSIONS}, got {version!r}.")
    if (version == "custom") != (attacks is not None):
        raise ValueError("`attacks` must be given exactly when `version` is 'custom'.")
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 < eps <= 1:
        raise ValueError(f"`eps` must be a number in (0, 1], got {eps!r}.")
    check_positive_int("batch_size", batch_size)
    x = check_images(x, "x", classifier.input_shape, classifier.clip_values)
    y = check_labels(y, len(x), "y", classifier.nb_classes)
    model = PreprocessedModel(classifier).eval()
    adversary = AutoAttack(
        model,
        eps=float(eps),
        norm="Linf",
        version=version,
        device=classifier.device,
        seed=seed,
        **({"attacks": attacks} if attacks else {}),
    )
    x_t, y_t = torch.from_numpy(x).to(classifier.device), torch.from_numpy(y).to(classifier.device)
    x_adv, _ = adversary.run_standard_evaluation(x_t, y_t, batch_size=batch_size)
    x_adv = x_adv.detach().cpu().numpy()
    accuracy = float(np.mean(classifier.predict(x_adv, batch_size=batch_size).argmax(1) == y))
    return accuracy, x_adv
