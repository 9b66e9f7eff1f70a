"""A fused ZePAD classifier written with save_zepad and read back with load_zepad; files that are not one refused."""

import json

import numpy as np
import pytest
import torch
from art.estimators.classification import PyTorchClassifier
from safetensors.torch import load_file, save_file

from art_ssl.defences import load_zepad, save_zepad
from art_ssl.defences.detector import ZePADDetector
from art_ssl.defences.trainer import ZePADModel
from art_ssl.defences.zepad_io import ZEPAD_KEY, read_zepad_info
from art_ssl.estimators import EncoderWithHead
from art_ssl.models import build_encoder
from art_ssl.models.heads import MLPHead

SHAPE = (3, 8, 8)


def _branch(seed: int, arch: str = "zoo_resnet18", hidden=(16, 8)) -> EncoderWithHead:
    torch.manual_seed(seed)
    kwargs = {"in_channels": 3, "width": 4, "stem_stride": 1} if arch == "zoo_resnet18" else {"in_channels": 3}
    encoder = build_encoder(arch, **kwargs)
    with torch.no_grad():  # BatchNorm running statistics away from their initial values: they must be written too
        dim = encoder(torch.rand(4, *SHAPE)).shape[1]
    return EncoderWithHead(encoder, MLPHead(dim, 4, hidden, dropout=0.3))


def _fused(bmp: bool = True, arch: str = "zoo_resnet18") -> PyTorchClassifier:
    model = ZePADModel([_branch(0), _branch(1, hidden=(8,))], _branch(2, arch) if bmp else None, "federal", k=2.5)
    return PyTorchClassifier(
        model.eval(),
        torch.nn.CrossEntropyLoss(),
        SHAPE,
        4,
        clip_values=(0.0, 1.0),
        preprocessing=(np.array([0.4, 0.5, 0.6]).reshape(3, 1, 1), np.array([0.2, 0.25, 0.3]).reshape(3, 1, 1)),
        device_type="cpu",
    )


def test_round_trip_gives_the_same_fused_logits_and_detector(tmp_path):
    fused = _fused()
    path = save_zepad(fused, tmp_path / "z.safetensors", info={"task": "digits"})
    loaded = load_zepad(path, device_type="cpu")
    x = np.random.default_rng(0).random((6, *SHAPE), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(x), fused.predict(x))  # preprocessing and fusion k included
    assert loaded.model.fusion == "federal" and loaded.model.k == 2.5 and loaded.input_shape == SHAPE
    assert len(loaded.model.mpae) == 2 and loaded.model.bmp is not None
    a, b = ZePADDetector(fused).detect(x), ZePADDetector(loaded).detect(x)
    np.testing.assert_array_equal(a[1], b[1])
    info = read_zepad_info(path)
    assert info["task"] == "digits" and info["zepad"]["mpae"][1]["head"]["hidden"] == [8]
    # the preprocessing matters: without it the logits differ (so the equality above checks it was kept)
    bare = PyTorchClassifier(loaded.model, torch.nn.CrossEntropyLoss(), SHAPE, 4, clip_values=(0, 1))
    assert not np.allclose(bare.predict(x), fused.predict(x))


def test_no_bmp_ablation_and_torchvision_layout_branch(tmp_path):
    fused = _fused(bmp=False)
    loaded = load_zepad(save_zepad(fused, tmp_path / "a.safetensors"))
    assert loaded.model.bmp is None
    x = np.random.default_rng(1).random((3, *SHAPE), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(x), fused.predict(x))
    fused = _fused(arch="resnet18_cifar")
    loaded = load_zepad(save_zepad(fused, tmp_path / "b.safetensors"))
    np.testing.assert_array_equal(loaded.predict(x), fused.predict(x))


def test_save_refuses_what_it_cannot_rebuild(tmp_path):
    with pytest.raises(ValueError, match=r"\.safetensors"):
        save_zepad(_fused(), tmp_path / "z.pt")
    plain = PyTorchClassifier(_branch(0), torch.nn.CrossEntropyLoss(), SHAPE, 4, clip_values=(0, 1))
    with pytest.raises(ValueError, match="ZePADModel"):
        save_zepad(plain, tmp_path / "z.safetensors")
    with pytest.raises(ValueError, match="only ResNet encoders"):
        save_zepad(_fused(arch="small_cnn"), tmp_path / "z.safetensors")
    with pytest.raises(ValueError, match="'zepad'"):
        save_zepad(_fused(), tmp_path / "z.safetensors", info={"zepad": "x"})
    assert not (tmp_path / "z.safetensors").exists()


def test_load_refuses_files_that_are_not_a_zepad_model(tmp_path):
    good = save_zepad(_fused(), tmp_path / "z.safetensors")
    state, meta = load_file(good), read_zepad_info(good)["zepad"]
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        load_zepad(junk)
    plain = tmp_path / "plain.safetensors"
    save_file(state, str(plain))  # the weights alone: nothing says how to rebuild them
    with pytest.raises(ValueError, match="holds no ZePAD model"):
        load_zepad(plain)
    bad = tmp_path / "bad.safetensors"
    save_file(state, str(bad), metadata={ZEPAD_KEY: "{not json"})
    with pytest.raises(ValueError, match="malformed ZePAD metadata"):
        load_zepad(bad)
    for change, message in (
        ({"fusion": "vote"}, "fusion 'vote'"),
        ({"mpae": []}, "no MPAE branch"),
        ({"format_version": 99}, "format_version 99"),
        ({"mean": [0.1, 0.2]}, r"mean/std"),
    ):
        save_file(state, str(bad), metadata={ZEPAD_KEY: json.dumps({**meta, **change})})
        with pytest.raises(ValueError, match=message):
            load_zepad(bad)
    wrong_arch = json.loads(json.dumps(meta))
    wrong_arch["mpae"][0]["arch_kwargs"]["width"] = 8  # metadata that no longer fits the stored weights
    save_file(state, str(bad), metadata={ZEPAD_KEY: json.dumps(wrong_arch)})
    with pytest.raises(ValueError, match="do not fit"):
        load_zepad(bad)
    with pytest.raises(ValueError, match="device_type"):
        load_zepad(good, device_type="tpu")
