import gzip
import pickle

import numpy as np
import pytest
from PIL import Image

from art_ssl.data import (
    DatasetNotFoundError,
    load_cifar10,
    load_digits,
    load_fashion_mnist,
    load_fashion_mnist_subset,
    load_idx_dataset,
    load_image_folder,
    load_kmnist,
    load_stl10,
    load_task,
    read_idx,
    to_float_nchw,
)


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.fixture
def idx_root(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n, compress in (("train", 30, True), ("t10k", 20, False)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n) % 10
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", images, compress)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels, compress)
    return tmp_path


def test_idx_loader_reads_plain_and_gzip_files(idx_root):
    raw = read_idx(idx_root / "train-images-idx3-ubyte.gz")
    assert raw.shape == (30, 28, 28) and raw.dtype == np.uint8
    x, y = load_idx_dataset(idx_root, "train")
    assert x.shape == (30, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(x[:, 0] * 255, raw, atol=1e-3)
    x_test, y_test = load_fashion_mnist("test", size=64, root=idx_root)
    assert x_test.shape == (20, 1, 64, 64) and 0 <= x_test.min() and x_test.max() <= 1
    np.testing.assert_array_equal(y_test, np.arange(20) % 10)
    x_kmnist, _ = load_kmnist("train", root=idx_root, n=10)
    assert x_kmnist.shape == (10, 1, 28, 28)


def test_corrupt_idx_files_raise(tmp_path, idx_root):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04garbage")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")
    data = (idx_root / "t10k-images-idx3-ubyte").read_bytes()
    (tmp_path / "short").write_bytes(data[:-100])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")


def test_missing_datasets_say_what_to_do(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(root=tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py"):
        load_cifar10(root=tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match="stl10_binary"):
        load_stl10(root=tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match="root="):
        load_kmnist()
    with pytest.raises(DatasetNotFoundError, match="data_batch_1"):
        load_cifar10(root=tmp_path)


def test_cifar10_python_batches(tmp_path):
    rng = np.random.default_rng(1)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, 10, size=4))
        written[name] = (data, labels)
        with open(tmp_path / name, "wb") as f:
            pickle.dump({b"batch_label": b"x", b"labels": [int(v) for v in labels], b"data": data}, f)
    x, y = load_cifar10("train", root=tmp_path)
    assert x.shape == (20, 3, 32, 32) and y.shape == (20,)
    # row-major 3072 = 3 planes of 32x32 (R, G, B)
    np.testing.assert_allclose(x[0] * 255, written["data_batch_1"][0][0].reshape(3, 32, 32), atol=1e-3)
    x_test, y_test = load_cifar10("test", size=64, root=tmp_path)
    assert x_test.shape == (4, 3, 64, 64)
    np.testing.assert_array_equal(y_test, written["test_batch"][1])


def test_cifar10_refuses_pickles_that_carry_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        with open(tmp_path / name, "wb") as f:
            pickle.dump({b"data": Evil(), b"labels": [0]}, f)
    with pytest.raises(ValueError, match="refusing"):
        load_cifar10("train", root=tmp_path)


def test_stl10_binaries_are_read_in_the_right_orientation(tmp_path):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(3, 3, 96, 96), dtype=np.uint8)  # (N, C, H, W)
    images[0, 0, :10, :] = 255  # a bright band at the top of the red plane
    images[0, 0, 10:, :] = 0
    # STL-10 stores each channel column-major: write (N, C, W, H) row-major
    images.transpose(0, 1, 3, 2).tofile(tmp_path / "train_X.bin")
    np.array([1, 5, 10], dtype=np.uint8).tofile(tmp_path / "train_y.bin")
    x, y = load_stl10("train", root=tmp_path)
    assert x.shape == (3, 3, 96, 96)
    np.testing.assert_allclose(x * 255, images, atol=1e-3)
    assert x[0, 0, :10].min() == 1.0 and x[0, 0, 10:].max() == 0.0
    np.testing.assert_array_equal(y, [0, 4, 9])
    assert load_stl10("train", size=64, root=tmp_path)[0].shape == (3, 3, 64, 64)
    (tmp_path / "test_X.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="STL-10"):
        load_stl10("test", root=tmp_path)


def test_image_folder(tmp_path):
    rng = np.random.default_rng(3)
    for cls, value in (("cat", 200), ("dog", 50)):
        (tmp_path / cls).mkdir()
        for i in range(3):
            array = np.full((20, 30, 3), value, dtype=np.uint8)
            array[0, 0] = rng.integers(0, 256, 3)
            Image.fromarray(array).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    x, y, classes = load_image_folder(tmp_path, size=16)
    assert classes == ["cat", "dog"] and x.shape == (6, 3, 16, 16)
    np.testing.assert_array_equal(y, [0, 0, 0, 1, 1, 1])
    assert abs(x[0, :, 8, 8].mean() - 200 / 255) < 1e-2 and abs(x[5, :, 8, 8].mean() - 50 / 255) < 1e-2
    x_native, _, _ = load_image_folder(tmp_path, mode="L")
    assert x_native.shape == (6, 1, 20, 30)
    with pytest.raises(ValueError, match="`mode`"):
        load_image_folder(tmp_path, mode="CMYK")
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_image_folder(tmp_path / "cat")


def test_digits_split_is_fixed_stratified_and_upscaled():
    x_train, y_train = load_digits("train")
    x_test, y_test = load_digits("test", size=64)
    assert x_train.shape[1:] == (1, 28, 28) and x_test.shape[1:] == (1, 64, 64)
    assert len(y_train) + len(y_test) == 1797
    assert np.all(np.bincount(y_test) >= 50)
    again, _ = load_digits("train")
    np.testing.assert_array_equal(again, x_train)
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0 and x_train.max() > 0.9


def test_shipped_subset_and_tasks():
    x, y = load_fashion_mnist_subset("train")
    assert x.shape == (5000, 1, 28, 28) and np.all(np.bincount(y) == 500)
    task = load_task("fashion_mnist_subset", size=64, n_train=100, n_test=50)
    assert task.x_train.shape == (100, 1, 64, 64) and task.input_shape == (1, 64, 64) and task.nb_classes == 10
    assert np.all(np.bincount(task.y_train) == 10)
    assert load_task("digits", size=32).x_test.shape[1:] == (1, 32, 32)
    with pytest.raises(ValueError, match="`name`"):
        load_task("imagenet")


def test_resize_is_bilinear_and_validates():
    x = np.zeros((2, 4, 4), dtype=np.uint8)
    x[:, :2] = 255
    out = to_float_nchw(x, 8)
    assert out.shape == (2, 1, 8, 8) and out[0, 0, 0, 0] == 1.0 and out[0, 0, -1, 0] == 0.0
    assert 0 < out[0, 0, 4, 0] < 1  # interpolated edge
    with pytest.raises(ValueError, match="`size`"):
        to_float_nchw(x, (8,))
    with pytest.raises(ValueError, match="`size`"):
        to_float_nchw(x, -3)
    with pytest.raises(ValueError, match="`split`"):
        load_digits("validation")
