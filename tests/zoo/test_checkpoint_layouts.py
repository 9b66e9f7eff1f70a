"""
Evidence that published checkpoint layouts load exactly: each test writes a checkpoint with the key names the
project writes (built as its code builds them, no network), loads it with ``load_encoder`` and compares embeddings
with the original module to 1e-5.
"""

import argparse
import os

import numpy as np
import pytest
import torch
from torch import nn

from art_ssl.models import build_encoder
from art_ssl.zoo import load_encoder, read_metadata, save_encoder
from art_ssl.zoo.checkpoints import UnsafeCheckpointError


def images(n=4, channels=3, side=32, seed=0):
    return np.random.default_rng(seed).random((n, channels, side, side), dtype=np.float32)


def reference(module: nn.Module, x: np.ndarray) -> np.ndarray:
    module.eval()
    with torch.no_grad():
        out = module(torch.from_numpy(x))
    return torch.flatten(out, 1).numpy()


def randomise_bn(model: nn.Module, seed=0) -> nn.Module:
    """Non-trivial BatchNorm statistics, so a wrong mapping of any BN key changes the embeddings."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
    return model.eval()


def tv_children(model):
    return [
        getattr(model, n)
        for n in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool")
    ]


def assert_same(encoder, module, x):
    np.testing.assert_allclose(encoder.predict(x), reference(module, x), atol=1e-5, rtol=0)


def test_plain_torchvision_state_dict_with_fc_and_dataparallel(tmp_path):
    model = randomise_bn(build_encoder("resnet18"))
    state = {**model.state_dict(), "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}
    torch.save(state, tmp_path / "resnet18.pth")
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "dp.pth")
    x = images(side=64)
    for name in ("resnet18.pth", "dp.pth"):
        encoder = load_encoder(str(tmp_path / name), "cpu", input_shape=(3, 64, 64))
        assert type(encoder.model).__name__ == "TorchvisionResNet" and encoder.model.stem_kind == "imagenet"
        assert_same(encoder, model, x)


def test_solo_learn_lightning_ckpt_uses_its_padding_2_cifar_stem(tmp_path):
    # solo-learn: backbone = torchvision resnet18, conv1 = 3x3/1 padding 2, maxpool = Identity, fc = Identity;
    # Lightning saves the module's state_dict (backbone, projector, classifier, momentum copies) and hparams.
    model = randomise_bn(build_encoder("resnet18_cifar", stem_padding=2))
    state = {f"backbone.{k}": v for k, v in model.state_dict().items()}
    state |= {f"momentum_backbone.{k}": v + 1 for k, v in model.state_dict().items() if v.is_floating_point()}
    state |= {"projector.0.weight": torch.randn(2048, 512), "classifier.weight": torch.randn(10, 512)}
    ckpt = {
        "epoch": 999,
        "global_step": 1,
        "pytorch-lightning_version": "1.9.0",
        "state_dict": state,
        "hyper_parameters": {"method": "byol", "backbone": {"name": "resnet18"}},
        "callbacks": {},
    }
    torch.save(ckpt, tmp_path / "byol-cifar10.ckpt")
    encoder = load_encoder(str(tmp_path / "byol-cifar10.ckpt"), "cpu")
    assert encoder.input_shape == (3, 32, 32) and encoder.model.conv1.padding == (2, 2)
    assert_same(encoder, model, images())
    # old solo-learn releases called the backbone ``encoder``
    torch.save(
        {**ckpt, "state_dict": {k.replace("backbone.", "encoder.", 1): v for k, v in state.items()}},
        tmp_path / "old.ckpt",
    )
    assert_same(load_encoder(str(tmp_path / "old.ckpt"), "cpu"), model, images())


def test_lightly_sequential_backbone(tmp_path):
    # lightly's examples: backbone = nn.Sequential(*list(torchvision.models.resnet18().children())[:-1])
    source = randomise_bn(build_encoder("resnet18"))
    backbone = nn.Sequential(*tv_children(source))
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    state["projection_head.layers.0.weight"] = torch.randn(512, 512)
    torch.save({"pytorch-lightning_version": "2.1", "state_dict": state}, tmp_path / "lightly.ckpt")
    encoder = load_encoder(str(tmp_path / "lightly.ckpt"), "cpu", input_shape=(3, 64, 64))
    assert_same(encoder, backbone, images(side=64))


def test_moco_v2_pth_tar_ignores_the_key_encoder_and_queue(tmp_path):
    # MoCo v1/v2 (facebookresearch/moco): DataParallel MoCo module; encoder_q/encoder_k are torchvision ResNets whose
    # fc became an MLP (fc.0, fc.2); the queue is a buffer; arch and optimizer saved alongside.
    model = randomise_bn(build_encoder("resnet18"))
    state = {f"module.encoder_q.{k}": v for k, v in model.state_dict().items()}
    state |= {f"module.encoder_k.{k}": torch.zeros_like(v) for k, v in model.state_dict().items()}
    state |= {
        "module.encoder_q.fc.0.weight": torch.randn(8, 512),
        "module.encoder_q.fc.2.weight": torch.randn(8, 8),
        "module.queue": torch.randn(128, 4096),
        "module.queue_ptr": torch.zeros(1, dtype=torch.long),
    }
    torch.save(
        {"epoch": 200, "arch": "resnet18", "state_dict": state, "optimizer": {"state": {}, "param_groups": []}},
        tmp_path / "moco_v2_200ep.pth.tar",
    )
    encoder = load_encoder(str(tmp_path / "moco_v2_200ep.pth.tar"), "cpu", input_shape=(3, 64, 64))
    assert_same(encoder, model, images(side=64))


@pytest.mark.resnet50
def test_moco_v3_resnet50_with_args_namespace(tmp_path):
    # MoCo v3: module.base_encoder (fc = projection MLP), module.momentum_encoder, module.predictor; args saved too.
    model = randomise_bn(build_encoder("resnet50"))
    state = {f"module.base_encoder.{k}": v for k, v in model.state_dict().items()}
    state |= {
        "module.base_encoder.fc.0.weight": torch.randn(8, 2048),
        "module.predictor.0.weight": torch.randn(8, 8),
        "module.momentum_encoder.conv1.weight": torch.randn(64, 3, 7, 7),
    }
    torch.save(
        {"epoch": 100, "arch": "resnet50", "state_dict": state, "args": argparse.Namespace(lr=0.6, arch="r50")},
        tmp_path / "r-50-100ep.pth.tar",
    )
    encoder = load_encoder(str(tmp_path / "r-50-100ep.pth.tar"), "cpu", input_shape=(3, 32, 32))
    assert encoder.embedding_dim == 2048
    assert_same(encoder, model, images(n=2))


def test_badencoder_f_f_sequential_layout(tmp_path):
    # BadEncoder (jinyuan-jia/BadEncoder, models/simclr_model.py): self.f = Sequential of the children of a
    # torchvision resnet18 with conv1 -> 3x3/1 padding 1, skipping Linear and MaxPool2d; the model holds it as
    # ``f`` (SimCLRBase) inside ``f`` and a projection head ``g``. Checkpoint: {'epoch', 'state_dict', 'optimizer'}.
    source = randomise_bn(build_encoder("resnet18_cifar"))
    f = nn.Sequential(*[c for c in tv_children(source) if not isinstance(c, nn.Identity)])  # no max-pool
    state = {f"f.f.{k}": v for k, v in f.state_dict().items()}
    state |= {"g.0.weight": torch.randn(512, 512), "g.2.weight": torch.randn(128, 512)}
    torch.save({"epoch": 200, "state_dict": state, "optimizer": {}}, tmp_path / "model_200.pth")
    assert sorted(k for k in state if k.startswith("f.f.3.0.conv1"))  # layer1 sits at index 3
    encoder = load_encoder(str(tmp_path / "model_200.pth"), "cpu")
    assert encoder.model.conv1.kernel_size == (3, 3)
    assert_same(encoder, f, images())


def test_key_prefix_override_and_missing_keys_are_listed(tmp_path):
    model = build_encoder("resnet18_cifar")
    state = {f"net.trunk.{k}": v for k, v in model.state_dict().items()}
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(ValueError, match="No encoder backbone recognised.*--key-prefix"):
        load_encoder(str(tmp_path / "odd.pth"), "cpu")
    assert_same(load_encoder(str(tmp_path / "odd.pth"), "cpu", key_prefix="net.trunk."), model, images())
    partial = {k: v for k, v in model.state_dict().items() if not k.startswith("layer4.1.")}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"missing \[layer4\.1\.conv1\.weight"):
        load_encoder(str(tmp_path / "partial.pth"), "cpu")
    with pytest.raises(ValueError, match="unexpected"):
        load_encoder(str(tmp_path / "partial.pth"), "cpu", arch="resnet34_cifar")


def test_hostile_pickle_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"state_dict": build_encoder("resnet18_cifar").state_dict(), "x": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(UnsafeCheckpointError, match=r"(?s)system.*weights_only=True.*convert"):
        load_encoder(str(tmp_path / "evil.pth"), "cpu")
    assert not marker.exists()


def test_torchscript_needs_trust_code_and_is_refused_before_it_runs(tmp_path, monkeypatch):
    model = randomise_bn(build_encoder("resnet18_cifar"))
    path = tmp_path / "enc.pth"  # a pickle suffix must not hide an archive
    torch.jit.save(torch.jit.script(model), str(path))
    marker = tmp_path / "ran"
    real_load = torch.jit.load

    def spy(*args, **kwargs):  # loading TorchScript executes the archive's code: record that it happened
        marker.touch()
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch.jit, "load", spy)
    with pytest.raises(UnsafeCheckpointError, match="runs the code.*trust_code=True"):
        load_encoder(str(path), "cpu")
    assert not marker.exists()
    encoder = load_encoder(str(path), "cpu", trust_code=True)
    assert marker.exists() and encoder.input_shape == (3, 32, 32)
    x = images()
    assert_same(encoder, model, x)
    # the loaded archive works where the audit needs it: hooks by layer name, freezing, gradients
    np.testing.assert_allclose(
        encoder.get_activations(x, "layer2"),
        reference(nn.Sequential(model.conv1, model.bn1, model.relu, model.layer1, model.layer2), x).reshape(
            4, 128, 16, 16
        ),
        atol=1e-5,
    )
    encoder.model.requires_grad_(False)
    assert not any(p.requires_grad for p in encoder.model.parameters())
    grad = encoder.loss_gradient(x, encoder.predict(x[::-1].copy()))
    assert grad.shape == x.shape and np.abs(grad).sum() > 0


def test_metadata_round_trip_needs_no_flag(tmp_path):
    model = randomise_bn(build_encoder("zoo_resnet18", in_channels=3, width=8, stem_stride=1))
    path = save_encoder(
        model,
        tmp_path / "enc.safetensors",
        arch="zoo_resnet18",
        arch_kwargs={"in_channels": 3, "width": 8, "stem_stride": 1},
        input_shape=(3, 32, 32),
        mean=(0.5, 0.4, 0.3),
        std=(0.2, 0.25, 0.3),
        method="simclr",
    )
    meta = read_metadata(path)
    assert meta["method"] == "simclr" and meta["arch_kwargs"]["stem_stride"] == 1 and meta["input_shape"] == [3, 32, 32]
    encoder = load_encoder(str(path), "cpu")
    assert encoder.input_shape == (3, 32, 32) and encoder.model.stem_stride == 1
    x = images()
    mean, std = np.array([0.5, 0.4, 0.3]).reshape(1, 3, 1, 1), np.array([0.2, 0.25, 0.3]).reshape(1, 3, 1, 1)
    assert_same(encoder, model, x) if False else np.testing.assert_allclose(
        encoder.predict(x), reference(model, ((x - mean) / std).astype(np.float32)), atol=1e-5
    )
    with pytest.raises(ValueError, match="given together"):
        save_encoder(model, tmp_path / "bad.safetensors", arch="zoo_resnet18", input_shape=(3, 32, 32), mean=(0.5,))


def test_a_scriptmodule_given_directly_to_the_estimator_is_hookable():
    from art_ssl.estimators import PyTorchEncoder

    model = randomise_bn(build_encoder("resnet18_cifar"))
    encoder = PyTorchEncoder(torch.jit.script(model), (3, 32, 32), device_type="cpu")
    x = images(n=2)
    assert_same(encoder, model, x)
    assert encoder.get_activations(x, "stem").shape == (2, 64, 32, 32)
    imagenet = randomise_bn(build_encoder("resnet18"))
    scripted = PyTorchEncoder(torch.jit.script(imagenet), (3, 32, 32), device_type="cpu")
    assert scripted.model.chain is not None and scripted.get_activations(x, "stem").shape == (2, 64, 8, 8)
