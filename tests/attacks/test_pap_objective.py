"""PAP (L4A) lifts the activation energy of its layer: more than the clean images have, and more than random noise of
the same budget gives (a perturbation that lowered it would still change the images, so this is checked directly)."""

from __future__ import annotations

import numpy as np

from art_ssl.attacks.evasion import PAP
from art_ssl.data import load_fashion_mnist_subset
from art_ssl.zoo import load_encoder

EPS = 10 / 255


def energy(encoder, x: np.ndarray, layer: str = "stem") -> float:
    return float(np.mean(np.square(encoder.get_activations(x, layer, batch_size=32))))


def test_pap_raises_the_stem_energy_above_clean_and_random_noise():
    encoder = load_encoder("simclr_r18", device_type="cpu")
    x = load_fashion_mnist_subset("test", size=64)[0][:32]
    attack = PAP(encoder, eps=EPS, step_size=2e-3, max_iter=10, batch_size=16, seed=0, verbose=False)
    x_adv = attack.generate(x)
    noise = np.random.default_rng(0).uniform(-EPS, EPS, size=(1, *x.shape[1:])).astype(np.float32)
    x_noise = np.clip(x + noise, 0, 1)
    clean, random, pap = energy(encoder, x), energy(encoder, x_noise), energy(encoder, x_adv)
    assert pap > max(clean, random) * 1.01, (clean, random, pap)  # measured: 0.569, 0.574, 0.588
