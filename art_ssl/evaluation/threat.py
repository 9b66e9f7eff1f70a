"""
The benchmark's threat model in three steps, shared by the audit grid and the evaluation scripts (``evaluations/``)
so that a table and an audit cell mean the same thing:

1. :func:`craft_perturbation`: the attacker learns one universal perturbation on the *public* encoder from unlabelled
   images (Zhou et al., AdvEncoder, ICCV 2023, §3: the downstream-agnostic threat model);
2. :func:`build_victim`: the downstream user puts the papers' MLP head (512-512-C, dropout 0.2) on a copy of the
   encoder, which a defence then trains;
3. :func:`apply_perturbation`: the victim is scored on its test images plus the perturbation, clipped to the valid
   pixel range as ART's attacks return them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace
from functools import partial

import numpy as np
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_ssl.core.checks import check_seed
from art_ssl.core.seeding import scoped_seed
from art_ssl.estimators.encoder import PyTorchEncoder
from art_ssl.evaluation.registry import AttackSettings, make_universal_attack


def apply_perturbation(x: np.ndarray, noise: np.ndarray, clip_values: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """
    ``x + noise`` clipped to ``clip_values``, as float32 (the official codes add DAEs without clipping; we keep
    the images valid, as ART does).

    :param x: Images ``(N, C, H, W)``.
    :param noise: A perturbation broadcastable to ``x`` (a universal one is ``(1, C, H, W)``).
    :param clip_values: Valid pixel range.
    :raises ValueError: ``noise`` does not broadcast to ``x`` (a perturbation of another image size).
    """
    x, noise = np.asarray(x), np.asarray(noise)
    try:
        shape = np.broadcast_shapes(x.shape, noise.shape)
    except ValueError as err:
        raise ValueError(f"`noise` of shape {noise.shape} does not fit images of shape {x.shape}.") from err
    if shape != x.shape:
        raise ValueError(f"`noise` of shape {noise.shape} does not fit images of shape {x.shape}.")
    return np.clip(x + noise, clip_values[0], clip_values[1]).astype(np.float32)


def craft_perturbation(
    name: str,
    encoder: PyTorchEncoder,
    eps_255: float,
    x_surrogate: np.ndarray,
    surrogate: PyTorchClassifier | None = None,
    settings: AttackSettings | None = None,
    seed: int = 0,
    amp: bool | str | None = None,
) -> dict:
    """
    Learn one universal perturbation (:func:`~art_ssl.evaluation.registry.make_universal_attack`) on ``encoder``
    from the attacker's unlabelled images. Seeded within a scope (:func:`~art_ssl.core.seeding.scoped_seed`: ART's
    ``UniversalPerturbation`` shuffles with numpy's global generator): the same call gives the same perturbation and
    the caller's generators are left as they were.

    :param name: Attack (:data:`~art_ssl.evaluation.registry.UNIVERSAL_ATTACKS`).
    :param encoder: The public encoder.
    :param eps_255: L-inf budget in 1/255 units.
    :param x_surrogate: The attacker's images.
    :param surrogate: The attacker's label-free classifier (:func:`~art_ssl.evaluation.surrogate_classifier`),
                      needed by ``uapepgd`` and ``art_uap``.
    :param settings: Attack settings; their ``seed`` is replaced by ``seed``.
    :param seed: Seed of the attack.
    :param amp: Mixed precision for the attacks that take it (``None``: their default).
    :return: ``{"noise": (1, C, H, W) float32, "attack_seconds": float, "fooling_rate": float}`` (NaN where the
             attack reports no fooling rate).
    """

    settings = replace(settings or AttackSettings(), seed=seed)
    with scoped_seed(seed):  # ART's UniversalPerturbation shuffles with numpy's global generator
        attack = make_universal_attack(name, encoder, eps_255 / 255, surrogate, settings)
        if amp is not None and "amp" in getattr(attack, "attack_params", ()):
            attack.set_params(amp=amp)
        start = time.perf_counter()
        attack.generate(x_surrogate)
        seconds = time.perf_counter() - start
    fooling = getattr(attack, "fooling_rate", None)
    return {
        "noise": np.asarray(attack.noise, np.float32),
        "attack_seconds": seconds,
        "fooling_rate": float("nan") if fooling is None else float(fooling),
    }


def defended_encoder(classifier: PyTorchClassifier, public: PyTorchEncoder, device_type: str = "cpu") -> PyTorchEncoder:
    """
    The encoder of a trained downstream ``classifier`` (as :func:`build_victim` builds it, after a defence) as a
    :class:`PyTorchEncoder` with ``public``'s input shape, clip values and preprocessing: what an attacker who knows
    the defence crafts an *adaptive* DAE on. The module is shared with ``classifier`` and left in eval mode.

    :raises ValueError: the model has no single ``encoder`` (ZePAD's fused model has several).
    """
    encoder = getattr(classifier.model, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise ValueError(
            f"adaptive DAEs need a downstream model with one `encoder` module; {type(classifier.model).__name__} "
            "has none (ZePAD's fused model has several branches: attack it with a white-box attack instead)."
        )
    return PyTorchEncoder(
        encoder.eval(),
        tuple(public.input_shape),
        clip_values=public.clip_values,
        preprocessing=public.preprocessing,
        device_type=device_type,
    )


def build_victim(
    encoder: PyTorchEncoder | nn.Module,
    nb_classes: int,
    seed: int = 0,
    device_type: str = "cpu",
    input_shape: tuple[int, ...] | None = None,
    normalize_input: bool = False,
) -> PyTorchClassifier:
    """
    The downstream victim every defence starts from: a copy of ``encoder`` (fine-tunable; the caller's module is
    never trained) with the papers' MLP head (512-512-C, dropout 0.2; Gen-AF, ZePAD), its weights drawn with
    ``seed``. A :class:`PyTorchEncoder` passes on its input shape, clip values and preprocessing (its normalisation
    stays in front of the encoder).

    :param encoder: The public encoder, or a bare module with ``input_shape``.
    :param nb_classes: Downstream classes.
    :param seed: Seed of the head's initial weights, drawn inside :func:`~art_ssl.core.seeding.scoped_seed`: the
                 same head as torch's global generator seeded with ``seed`` gives, and the caller's torch, numpy
                 and ``random`` states are left as they were.
    :param device_type: ``"cpu"`` or ``"gpu"``.
    :param input_shape: ``(C, H, W)``; needed for a bare module.
    :param normalize_input: L2-normalise the embeddings before the head (BadEncoder's downstream classifiers).
    """
    from art_ssl.estimators import encoder_classifier
    from art_ssl.models import MLPHead

    check_seed(seed)  # before probing the encoder's output size
    if isinstance(encoder, PyTorchEncoder):
        input_shape, dim = tuple(encoder.input_shape), encoder.embedding_dim
    elif isinstance(encoder, nn.Module):
        if input_shape is None:
            raise ValueError("`input_shape` is needed when `encoder` is a bare module.")
        dim = _output_dim(encoder, tuple(input_shape))
    else:
        raise TypeError(f"`encoder` must be a PyTorchEncoder or an nn.Module, got {type(encoder).__name__}.")
    with scoped_seed(seed):
        head = MLPHead(dim, nb_classes, dropout=0.2, normalize_input=normalize_input)
        return encoder_classifier(
            encoder,
            nb_classes,
            head=head,
            freeze_encoder=False,
            input_shape=input_shape,
            device_type=device_type,
        )


def _output_dim(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    from art_ssl.ssl.pretrain import feature_dim_of

    return feature_dim_of(model, input_shape)


def universal_perturbations(
    encoder: PyTorchEncoder,
    attacks: Sequence[str],
    eps_255: Sequence[float],
    x_surrogate: np.ndarray,
    settings: AttackSettings | None = None,
    seed: int = 0,
    cache: str | os.PathLike | None = None,
    label: str = "encoder",
    amp: bool | str | None = None,
) -> dict[tuple[str, float], dict]:
    """
    Every ``(attack, budget)`` perturbation of the threat model on the public ``encoder`` (:func:`craft_perturbation`;
    the attacker's label-free surrogate classifier is built once, for the attacks that need it). With ``cache`` each
    is kept in the perturbation cache (:func:`~art_ssl.evaluation.cache.cached_perturbation`) under a key that hashes
    the encoder's weights and preprocessing, the attacker's images, the attack, budget, seed, every setting and the
    art_ssl version, so that a perturbation of other settings or of another encoder is never reused.

    :param encoder: The public encoder.
    :param attacks: Universal attacks (:data:`~art_ssl.evaluation.registry.UNIVERSAL_ATTACKS`).
    :param eps_255: Budgets in 1/255 units.
    :param x_surrogate: The attacker's unlabelled images.
    :param settings: Attack settings (their ``seed`` is replaced by ``seed``).
    :param seed: Seed of the attacks and of the surrogate classifier.
    :param cache: Folder of the perturbation cache; ``None``: learn every one.
    :param label: The encoder's name in the cache's file names (readability only: the key decides reuse).
    :param amp: Mixed precision for the attacks that take it (``None``: their default; not part of the key).
    :return: ``{(attack, eps_255): {"noise", "attack_seconds", "fooling_rate"}}``.
    """
    import art_ssl
    from art_ssl.evaluation.cache import cached_perturbation, perturbation_key
    from art_ssl.evaluation.keys import array_key, encoder_key
    from art_ssl.evaluation.surrogate import surrogate_classifier

    settings = replace(settings or AttackSettings(), seed=seed)
    surrogate: list[PyTorchClassifier] = []

    def learn(attack: str, eps: float) -> dict:
        needs_surrogate = attack in ("uapepgd", "art_uap")
        if needs_surrogate and not surrogate:
            surrogate.append(surrogate_classifier(encoder, x_surrogate, seed=seed))
        head = surrogate[0] if needs_surrogate else None
        return craft_perturbation(attack, encoder, eps, x_surrogate, head, settings, seed=seed, amp=amp)

    out = {}
    if cache is not None:
        keys = (encoder_key(encoder), array_key(x_surrogate))
    for attack in attacks:
        for eps in eps_255:
            eps = float(eps)
            if cache is None:
                out[(attack, eps)] = learn(attack, eps)
                continue
            pkey = perturbation_key(*keys, attack, eps, seed, settings, art_ssl.__version__)
            out[(attack, eps)] = cached_perturbation(
                cache,
                (pkey, label, attack, eps, seed),
                partial(learn, attack, eps),
                shape=(1, *encoder.input_shape),
            )
    return out
