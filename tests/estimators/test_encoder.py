import numpy as np
import pytest
import torch
from art.attacks.evasion import FeatureAdversariesPyTorch
from art.estimators.estimator import LossGradientsMixin, NeuralNetworkMixin

from art_ssl.estimators import PyTorchEncoder
from art_ssl.models import SmallCNN


def cosine(a, b):
    return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_is_an_art_estimator_with_loss_gradients(trained_encoder):
    assert isinstance(trained_encoder, LossGradientsMixin)
    assert isinstance(trained_encoder, NeuralNetworkMixin)
    assert trained_encoder.embedding_dim == 64
    assert trained_encoder.input_shape == (1, 28, 28)


def test_predict_returns_the_models_embeddings_in_any_batch_size(trained_encoder, test_batch):
    x, _ = test_batch
    emb = trained_encoder.predict(x, batch_size=64)
    assert emb.shape == (200, 64) and emb.dtype == np.float32
    with torch.no_grad():
        direct = trained_encoder.model.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(emb, direct, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(trained_encoder.predict(x, batch_size=7), emb, rtol=1e-4, atol=1e-5)


def test_preprocessing_normalises_inside_and_gradients_are_in_pixel_space(trained_classifier, test_batch):
    x, _ = test_batch
    x = x[:16].astype(np.float64).astype(np.float32)
    mean, std = 0.3, 0.25
    model = trained_classifier.model.encoder
    enc = PyTorchEncoder(model, (1, 28, 28), preprocessing=(mean, std), device_type="cpu")
    with torch.no_grad():
        direct = model.eval()(torch.from_numpy((x - mean) / std)).numpy()
    np.testing.assert_allclose(enc.predict(x), direct, rtol=1e-4, atol=1e-5)
    # The gradient is w.r.t. raw pixels: it equals autograd through an explicit normalisation.
    target = enc.predict(x[::-1].copy())
    grad = enc.loss_gradient(x, target)
    x_t = torch.from_numpy(x).requires_grad_(True)
    loss = -torch.nn.functional.cosine_similarity(model((x_t - mean) / std), torch.from_numpy(target)).sum()
    loss.backward()
    np.testing.assert_allclose(grad, x_t.grad.numpy(), rtol=1e-4, atol=1e-6)
    assert np.abs(grad).sum() > 0


def test_loss_gradient_descent_moves_embeddings_towards_targets(trained_encoder, test_batch):
    x, _ = test_batch
    x, target_x = x[:32], x[100:132]
    target = trained_encoder.predict(target_x)
    before = cosine(trained_encoder.predict(x), target).mean()
    grad = trained_encoder.loss_gradient(x, target)
    x_step = np.clip(x - 0.05 * np.sign(grad), 0, 1).astype(np.float32)
    after = cosine(trained_encoder.predict(x_step), target).mean()
    assert after > before + 0.05
    # torch in -> torch out, same values
    grad_t = trained_encoder.loss_gradient(torch.from_numpy(x), torch.from_numpy(target))
    assert isinstance(grad_t, torch.Tensor)
    np.testing.assert_allclose(grad_t.numpy(), grad, rtol=1e-4, atol=1e-6)


def test_get_activations_by_name_and_index_leaves_no_hooks(trained_encoder, test_batch):
    x, _ = test_batch
    model = trained_encoder.model
    stem = trained_encoder.get_activations(x[:10], "stem", batch_size=4)
    assert stem.shape == (10, 16, 14, 14)
    index = trained_encoder.layer_names.index("layer1")
    by_index = trained_encoder.get_activations(x[:10], index)
    with torch.no_grad():
        manual = model.layer1(model.stem(torch.from_numpy(x[:10]))).numpy()
    np.testing.assert_allclose(by_index, manual, rtol=1e-4, atol=1e-5)
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    # framework=True keeps the graph for attacks that differentiate through activations
    x_t = torch.from_numpy(x[:4]).requires_grad_(True)
    act = trained_encoder.get_activations(x_t, "layer1", framework=True)
    act.sum().backward()
    assert x_t.grad is not None and x_t.grad.abs().sum() > 0


def test_arts_feature_adversaries_runs_on_the_encoder(trained_encoder, test_batch):
    x, _ = test_batch
    source, guide = x[:16], x[100:116]
    attack = FeatureAdversariesPyTorch(
        trained_encoder, delta=0.1, layer="layer2", step_size=0.01, max_iter=20, batch_size=16, random_start=False
    )
    adv = attack.generate(source, guide)
    assert np.abs(adv - source).max() <= 0.1 + 1e-5
    f_src, f_adv, f_guide = (trained_encoder.predict(a) for a in (source, adv, guide))
    assert np.linalg.norm(f_adv - f_guide, axis=1).mean() < 0.8 * np.linalg.norm(f_src - f_guide, axis=1).mean()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda(trained_classifier, test_batch):  # pragma: no cover - GPU machines only
    x, _ = test_batch
    model = SmallCNN(1, (16, 32, 64), 2)
    model.load_state_dict(trained_classifier.model.encoder.state_dict())
    gpu = PyTorchEncoder(model, (1, 28, 28), device_type="gpu")
    assert gpu.device.type == "cuda"
    cpu = PyTorchEncoder(trained_classifier.model.encoder, (1, 28, 28), device_type="cpu")
    np.testing.assert_allclose(gpu.predict(x), cpu.predict(x), rtol=1e-3, atol=1e-4)
    assert gpu.loss_gradient(x[:8], cpu.predict(x[8:16])).shape == x[:8].shape


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "model, input_shape, error, match",
    [
        ("not a module", (1, 28, 28), TypeError, "`model`"),
        (SmallCNN(1, (8,)), (28, 28), ValueError, "`input_shape`"),
        (SmallCNN(1, (8,)), (1, 0, 28), ValueError, "`input_shape`"),
    ],
)
def test_bad_constructor_arguments(model, input_shape, error, match):
    with pytest.raises(error, match=match):
        PyTorchEncoder(model, input_shape, device_type="cpu")


def test_bad_device_and_loss():
    with pytest.raises(ValueError, match="`device_type`"):
        PyTorchEncoder(SmallCNN(1, (8,)), (1, 28, 28), device_type="tpu")
    with pytest.raises(TypeError, match="`loss`"):
        PyTorchEncoder(SmallCNN(1, (8,)), (1, 28, 28), loss="cosine", device_type="cpu")


@pytest.mark.parametrize(
    "x, error, match",
    [
        (np.zeros((4, 1, 28, 28), dtype=np.uint8), TypeError, "dtype uint8"),
        (np.zeros((4, 28, 28), dtype=np.float32), ValueError, "shape"),
        (np.zeros((4, 1, 32, 32), dtype=np.float32), ValueError, "shape"),
        (np.zeros((0, 1, 28, 28), dtype=np.float32), ValueError, "empty"),
        (np.full((4, 1, 28, 28), np.nan, dtype=np.float32), ValueError, "NaN"),
        (np.full((4, 1, 28, 28), 255.0, dtype=np.float32), ValueError, "clip_values"),
        ([[0.0]], TypeError, "numpy array"),
    ],
)
def test_bad_inputs_are_rejected(trained_encoder, x, error, match):
    with pytest.raises(error, match=match):
        trained_encoder.predict(x)


def test_bad_targets_layers_and_batch_sizes(trained_encoder, test_batch):
    x, _ = test_batch
    with pytest.raises(ValueError, match="`y`"):
        trained_encoder.loss_gradient(x[:4], np.zeros((4, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="`y`"):
        trained_encoder.loss_gradient(x[:4], np.zeros((3, 64), dtype=np.float32))
    with pytest.raises(ValueError, match="`layer`"):
        trained_encoder.get_activations(x[:4], "no_such_layer")
    with pytest.raises(ValueError, match="`layer`"):
        trained_encoder.get_activations(x[:4], 10_000)
    with pytest.raises(ValueError, match="`batch_size`"):
        trained_encoder.predict(x[:4], batch_size=0)
    with pytest.raises(NotImplementedError, match="pretrain"):
        trained_encoder.fit(x[:4], x[:4])
