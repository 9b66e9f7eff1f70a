import shutil
from importlib import resources

import numpy as np
import pytest

from art_ssl.data import load_task
from art_ssl.estimators import PyTorchEncoder
from art_ssl.evaluation import linear_probe, raw_pixel_probe
from art_ssl.zoo import backdoor_targets, encoder_info, list_encoders, load_encoder, load_state_dict, zoo_table


def weight_file(name: str):
    return resources.files("art_ssl.zoo").joinpath("weights", encoder_info(name)["file"])


def test_zoo_ships_four_small_encoders_by_three_methods_with_recorded_probes():
    names = list_encoders(backdoored=False)
    assert len(names) >= 4
    assert len({encoder_info(n)["method"] for n in names}) >= 3
    for name in names:
        info = encoder_info(name)
        assert weight_file(name).stat().st_size <= 8e6
        assert info["input_shape"] == [1, 64, 64]
        assert "pretrain_zoo.py" in info["command"] and isinstance(info["seed"], int)
        assert info["probe_acc"] >= 0.85 and info["probe_acc"] > info["raw_pixel_probe_acc"]
    assert list(zoo_table()["name"]) == list_encoders()


def test_the_backdoored_zoo_encoder_records_its_targets_and_triggers():
    (name,) = list_encoders(backdoored=True)
    info = encoder_info(name)
    assert info["base_encoder"] in list_encoders(backdoored=False) and "backdoor_zoo.py" in info["command"]
    targets = backdoor_targets(name)
    assert [(t["task"], t["target"]) for t in targets] == [("fashion_mnist", 9), ("digits", 1)]
    square = targets[0]["trigger"].mask[0]
    assert square[42:62, 42:62].all() and square.sum() == 400  # 20 px, 2 px from the bottom-right corner
    assert zoo_table().set_index("name").loc[name, "backdoored"]
    with pytest.raises(ValueError, match="clean"):
        backdoor_targets(info["base_encoder"])
    with pytest.raises(ValueError, match="backdoored"):
        list_encoders(backdoored="yes")


@pytest.fixture(scope="module")
def task64():
    return load_task("fashion_mnist_subset", size=64, n_train=2000, n_test=500)


def test_a_zoo_encoder_loads_offline_and_beats_raw_pixels_on_real_data(task64):
    name = list_encoders()[0]
    encoder = load_encoder(name, device_type="cpu")
    assert isinstance(encoder, PyTorchEncoder) and encoder.input_shape == (1, 64, 64)
    assert encoder.embedding_dim == 128
    probe = linear_probe(encoder, task64.x_train, task64.y_train, task64.x_test, task64.y_test)
    raw = raw_pixel_probe(task64.x_train, task64.y_train, task64.x_test, task64.y_test)
    assert probe.accuracy > raw.accuracy + 0.02
    assert probe.accuracy > 0.8


def test_unknown_names_and_corrupt_weights_raise(tmp_path):
    with pytest.raises(ValueError, match="neither a zoo encoder"):
        load_encoder("resnet50_imagenet")
    name = list_encoders()[0]
    info = encoder_info(name)
    with resources.as_file(weight_file(name)) as path:
        good = tmp_path / "good.safetensors"
        shutil.copy(path, good)
    state = load_state_dict(good, info["sha256"])
    assert all(np.isfinite(v.numpy()).all() for v in state.values())
    corrupt = tmp_path / "corrupt.safetensors"
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt"):
        load_state_dict(corrupt, info["sha256"])
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(ValueError, match="not a valid safetensors"):
        load_state_dict(truncated)
    pickled = tmp_path / "model.pt"
    pickled.write_bytes(b"\x80\x04\x95not safetensors")
    with pytest.raises(ValueError, match="not a valid safetensors"):
        load_state_dict(pickled)


def test_weights_that_do_not_fit_the_architecture_raise():
    from art_ssl.zoo import build_from_info

    name = list_encoders()[0]
    info = dict(encoder_info(name), arch_kwargs={"in_channels": 1, "width": 8, "stem_stride": 2})
    with resources.as_file(weight_file(name)) as path:
        state = load_state_dict(path)
    with pytest.raises(ValueError, match="do not fit"):
        build_from_info(info, state)
