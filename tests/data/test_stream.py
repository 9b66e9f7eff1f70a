"""Streaming data (art_ssl.data.stream): training and evaluation read batch by batch, equal to the in-memory run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from art_ssl.data.digits import load_digits
from art_ssl.data.stream import (
    ArrayDataset,
    ImageFolderDataset,
    StreamedImages,
    accuracy_on_dataset,
    as_dataset,
    memmap_dataset,
    predict_dataset,
    save_npy,
    stl10_dataset,
)
from art_ssl.estimators import encoder_classifier
from art_ssl.models import SmallCNN

N, BATCH = 96, 32


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: one thread is several times faster than oversubscribed ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits("train", size=8)
    return x[:N], y[:N]


def _classifier():
    torch.manual_seed(0)
    encoder = SmallCNN(in_channels=1, widths=(8, 16), stem_stride=2)
    return encoder_classifier(encoder, 10, freeze_encoder=False, input_shape=(1, 8, 8), device_type="cpu")


def _trainer(classifier):
    from art_ssl.defences.trainer import FineTuningTrainer

    return FineTuningTrainer(
        classifier,
        adversarial=True,  # uniform random starts: the generator's stream must match too
        nb_epochs=2,
        batch_size=BATCH,
        pgd_steps=2,
        validation_pgd_steps=0,
        amp=False,
        verbose=False,
    )


def test_training_from_a_memmap_reads_batches_and_equals_the_array(digits, tmp_path):
    x, y = digits
    dataset = memmap_dataset(save_npy(tmp_path / "x.npy", x), save_npy(tmp_path / "y.npy", y))
    assert isinstance(dataset.x, np.memmap)  # mapped, not loaded
    streamed, in_memory = _classifier(), _classifier()
    _trainer(streamed).fit_generator(dataset)
    _trainer(in_memory).fit(x, y)
    # batch by batch: never more than one batch of rows read at a time; each row once per epoch (+ one shape probe)
    assert dataset.largest_read == BATCH
    assert dataset.rows_read == 2 * N + 1
    a, b = streamed.model.state_dict(), in_memory.model.state_dict()
    assert max(float((a[k].double() - b[k].double()).abs().max()) for k in a) < 1e-6


def test_fit_generator_takes_a_dataloader_and_an_art_generator(digits):
    from art.data_generators import PyTorchDataGenerator

    x, y = digits
    loader = DataLoader(ArrayDataset(x, y), batch_size=BATCH, shuffle=True)
    generator = PyTorchDataGenerator(loader, size=N, batch_size=BATCH)
    assert as_dataset(loader)[1] == BATCH and as_dataset(generator)[1] == BATCH
    clf = _classifier()
    trainer = _trainer(clf)
    trainer.fit_generator(generator, nb_epochs=1)
    assert len(trainer.history_) == 1 and np.isfinite(trainer.history_["loss"]).all()
    with pytest.raises(TypeError, match="`generator`"):
        trainer.fit_generator(x)


def test_pretraining_from_a_dataset_equals_the_array(digits):
    from art_ssl.ssl import pretrain

    x, _ = digits
    results = []
    for data in (x, DataLoader(ArrayDataset(x), batch_size=BATCH)):
        torch.manual_seed(0)
        encoder = SmallCNN(in_channels=1, widths=(8, 16), stem_stride=2)
        results.append(
            pretrain(
                encoder, data, "simclr", nb_epochs=1, batch_size=BATCH, device_type="cpu", amp=False, verbose=False
            )
        )
    a, b = (r.encoder.state_dict() for r in results)
    assert results[0].history["loss"].tolist() == pytest.approx(results[1].history["loss"].tolist(), rel=1e-6)
    assert max(float((a[k].double() - b[k].double()).abs().max()) for k in a) < 1e-6


def test_image_folder_dataset_reads_lazily_what_the_loader_reads(tmp_path):
    from PIL import Image

    from art_ssl.data import load_image_folder

    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(tmp_path / label / f"{i}.png")
    dataset = ImageFolderDataset(tmp_path, size=8)
    x, y, classes = load_image_folder(tmp_path, size=8)
    assert dataset.classes == classes and np.array_equal(dataset.labels, y)
    assert np.allclose(dataset.read(np.arange(len(dataset))), x, atol=1e-6)
    image, label = dataset[4]
    assert tuple(image.shape) == (3, 8, 8) and label == 1


def test_evaluation_from_a_dataset_equals_predict(digits):
    x, y = digits
    clf = _classifier()
    dataset = ArrayDataset(x, y)
    assert np.allclose(predict_dataset(clf, dataset, batch_size=40), clf.predict(x), atol=1e-6)
    assert accuracy_on_dataset(clf, dataset) == pytest.approx(float(np.mean(clf.predict(x).argmax(1) == y)))


def test_bad_streams_are_refused(digits):
    x, y = digits
    with pytest.raises(ValueError, match=r"pixels in \[0, 1\]"):
        StreamedImages(ArrayDataset(x * 3, y), name="generator")
    with pytest.raises(ValueError, match="shape"):
        StreamedImages(ArrayDataset(x, y), input_shape=(3, 8, 8))
    with pytest.raises(ValueError, match="`y`"):
        ArrayDataset(x, y[:-1])
    with pytest.raises(TypeError, match="`data`"):
        predict_dataset(_classifier(), [1, 2, 3])


def test_stl10_dataset_maps_the_binary_file_and_reads_what_the_loader_reads(tmp_path):
    from art_ssl.data import load_stl10

    rng = np.random.default_rng(0)
    rng.integers(0, 256, 4 * 3 * 96 * 96, dtype=np.uint8).tofile(tmp_path / "train_X.bin")
    np.array([1, 2, 10, 3], dtype=np.uint8).tofile(tmp_path / "train_y.bin")
    dataset = stl10_dataset("train", size=32, root=tmp_path)
    x, y = load_stl10("train", size=32, root=tmp_path)
    assert isinstance(dataset.x.base, np.memmap)  # a transposed view of the mapped file, not a copy
    assert np.array_equal(dataset.labels, y)
    assert np.allclose(dataset.read(np.arange(4)), x, atol=1e-6)
    assert dataset.largest_read == 4
