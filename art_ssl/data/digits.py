"""scikit-learn's bundled 8x8 handwritten digits (UCI), upscaled to 28x28, with a fixed seeded train/test split."""

from __future__ import annotations

import numpy as np

from art_ssl.data._common import check_split, to_float_nchw

DIGITS_NATIVE_SIZE = 28


def load_digits(
    split: str = "train", size: int | tuple[int, int] | None = None, test_fraction: float = 0.3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """
    The 1,797 sklearn digits, pixel values 0..16 scaled to [0, 1], upscaled bilinearly to 28x28 (the size of the
    MNIST family), then to ``size``.

    :param split: ``"train"`` or ``"test"``.
    :param size: Output side length (the benchmark uses 64); ``None`` keeps 28.
    :param test_fraction: Fraction of each class held out for the test split.
    :param seed: Seed of the stratified split; the default split is fixed.
    :return: ``x`` float32 (N, 1, H, W) in [0, 1] and ``y`` int64 (N,).
    """
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    check_split(split)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction}.")
    bunch = sk_load_digits()
    images = (bunch.images / 16.0).astype(np.float32)
    labels = bunch.target.astype(np.int64)
    idx_train, idx_test = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=labels
    )
    idx = np.sort(idx_train if split == "train" else idx_test)
    x = to_float_nchw(images[idx], DIGITS_NATIVE_SIZE)
    if size is not None:
        x = to_float_nchw(x, size)
    return x, labels[idx]
