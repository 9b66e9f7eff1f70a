"""pyautoattack's AutoAttack on an art_ssl classifier (its normalisation applied inside the attacked model)."""

import numpy as np
import pytest

from art_ssl.evaluation import autoattack_accuracy
from art_ssl.evaluation.autoattack import PreprocessedModel


def test_autoattack_lowers_accuracy_within_budget(trained_classifier, test_batch):
    x, y = test_batch[0][:64], test_batch[1][:64]
    clean = float(np.mean(trained_classifier.predict(x).argmax(1) == y))
    robust, x_adv = autoattack_accuracy(trained_classifier, x, y, eps=0.05, version="custom", attacks=["apgd-ce"])
    assert np.abs(x_adv - x).max() <= 0.05 + 1e-5 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert robust < clean - 0.2, (clean, robust)


def test_preprocessing_is_applied_inside(trained_classifier, test_batch):
    import torch

    x = test_batch[0][:8]
    logits = PreprocessedModel(trained_classifier).eval()(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(logits, trained_classifier.predict(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"version": "fast"}, "`version`"),
        ({"eps": 0}, "`eps`"),
        ({"version": "custom"}, "`attacks`"),
        ({"batch_size": 0}, "`batch_size`"),
    ],
)
def test_bad_arguments(trained_classifier, test_batch, kwargs, match):
    with pytest.raises(ValueError, match=match):
        autoattack_accuracy(trained_classifier, test_batch[0][:4], test_batch[1][:4], **{"eps": 0.01, **kwargs})
