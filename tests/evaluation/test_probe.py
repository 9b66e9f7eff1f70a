import numpy as np
import pytest
import torch

from art_ssl.evaluation import fit_linear_probe, linear_probe, probe_features, raw_pixel_probe


def test_probe_separates_separable_data_and_takes_raw_features():
    rng = np.random.default_rng(0)
    centers = np.array([[10.0, 0.0, 500.0], [-10.0, 0.0, 500.0], [0.0, 10.0, 500.0]])  # large offset and scale
    y = np.repeat(np.arange(3), 50)
    f = centers[y] + rng.standard_normal((150, 3))
    head = fit_linear_probe(f, y)
    with torch.no_grad():
        pred = head(torch.from_numpy(f.astype(np.float32))).argmax(1).numpy()
    assert np.mean(pred == y) == 1.0  # the standardisation is folded into the layer


def test_a_trained_encoder_beats_raw_pixels(trained_encoder, fmnist28):
    x_train, y_train = fmnist28.x_train[:2000], fmnist28.y_train[:2000]
    encoder_result = linear_probe(trained_encoder, x_train, y_train, fmnist28.x_test, fmnist28.y_test)
    raw = raw_pixel_probe(x_train, y_train, fmnist28.x_test, fmnist28.y_test)
    assert 0.6 < raw.accuracy < encoder_result.accuracy
    assert encoder_result.head.in_features == trained_encoder.embedding_dim


def test_probe_rejects_bad_labels():
    f = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match="`labels`"):
        fit_linear_probe(f, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="`labels`"):
        fit_linear_probe(f, np.array([0, 1, -1, 0]))
    with pytest.raises(ValueError, match="`l2`"):
        probe_features(f, np.array([0, 1, 0, 1]), f, np.array([0, 1, 0, 1]), l2=-1)
    with pytest.raises(TypeError, match="`encoder`"):
        linear_probe("encoder", f, np.array([0, 1, 0, 1]), f, np.array([0, 1, 0, 1]))
