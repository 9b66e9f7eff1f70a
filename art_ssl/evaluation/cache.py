"""
The universal-perturbation cache: each perturbation learnt once and kept as ``.npz`` beside its key (a hash of
everything that produced it: :func:`perturbation_key`), its noise's SHA-256, fooling rate and time. A cached file is
reused only when its recorded key is the one asked for and its contents check out (hash, shape, finite, within the
budget), so a run with other settings, another encoder or other attacker images never takes it for its own. Used by
the audit grid and by the evaluation scripts (``evaluations/``).

A perturbation is named by ``need = (key, encoder, attack, eps_255, seed)``: its key, then the readable parts of its
file name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from art_ssl.evaluation.keys import hash_json
from art_ssl.evaluation.store import ResultsWriteError, replace_atomically

logger = logging.getLogger(__name__)


def perturbation_key(
    encoder_key: str, surrogate_key: str, attack: str, eps_255: float, seed: int, settings: object, version: str
) -> str:
    """
    The key of one universal perturbation: ``"p"`` and the hash of what produced it.

    :param encoder_key: :func:`~art_ssl.evaluation.keys.encoder_key` of the public encoder it is crafted on.
    :param surrogate_key: :func:`~art_ssl.evaluation.keys.array_key` of the attacker's images.
    :param attack: Attack name (:data:`~art_ssl.evaluation.registry.UNIVERSAL_ATTACKS`).
    :param eps_255: Budget in 1/255 units.
    :param seed: Seed of the attack.
    :param settings: Every other setting that changes the perturbation (JSON-serialisable; dataclasses allowed).
    :param version: The art_ssl version (a new release never reuses an old perturbation).
    """
    return "p" + hash_json(
        {
            "encoder": encoder_key,
            "surrogate_images": surrogate_key,
            "attack": attack,
            "eps_255": float(eps_255),
            "seed": seed,
            "settings": settings,
            "art_ssl": version,
        }
    )


def perturbation_file(folder: Path, need: tuple) -> Path:
    """Where the perturbation ``need`` is kept in ``folder``."""
    pkey, encoder, attack, eps_255, seed = need
    return Path(folder) / f"{Path(str(encoder)).stem}_{attack}_eps{eps_255:g}_s{seed}_{pkey}.npz"


def cached_perturbation(
    folder: str | os.PathLike, need: tuple, learn: Callable[[], dict], shape: tuple[int, ...] | None = None
) -> dict:
    """
    The perturbation ``need`` from ``folder`` when a trusted copy is there (:func:`load_perturbation`), else
    ``learn()``, saved atomically (:func:`save_perturbation`) before it is returned.

    :param folder: The cache folder (created when missing).
    :param need: ``(key, encoder, attack, eps_255, seed)``.
    :param learn: Learns it: returns ``{"noise", "fooling_rate", "attack_seconds"}``.
    :param shape: The noise's shape (a cached file of another shape is not trusted).
    :return: ``{"noise": float32 array, "fooling_rate": float, "attack_seconds": float}``.
    """
    learnt = load_perturbation(Path(folder), need, shape)
    if learnt is None:
        learnt = learn()
        save_perturbation(Path(folder), need, learnt)
    return learnt


def save_perturbation(folder: Path, need: tuple, learnt: dict) -> None:
    """Write atomically (a unique temporary file, then ``os.replace``); on failure remove the temporary file and
    raise :class:`ResultsWriteError` (the results written so far stay)."""
    pkey, encoder, attack, eps_255, seed = need
    meta = {
        "key": pkey,
        "encoder": encoder,
        "attack": attack,
        "eps_255": eps_255,
        "seed": seed,
        "noise_sha256": hashlib.sha256(np.ascontiguousarray(learnt["noise"]).tobytes()).hexdigest(),
        "fooling_rate": learnt["fooling_rate"],
        "attack_seconds": learnt["attack_seconds"],
    }
    path = perturbation_file(folder, need)
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ResultsWriteError(
            err.errno, f"Could not create the perturbation folder '{folder}': {err.strerror}"
        ) from err
    replace_atomically(
        path,
        lambda f: np.savez(f, noise=learnt["noise"], meta=json.dumps(meta)),
        "Could not save the perturbation '{path}': {reason}. The results written so far are kept; a restarted run "
        "resumes.",
        binary=True,
    )


def load_perturbation(folder: Path, need: tuple, shape: tuple[int, ...] | None = None) -> dict | None:
    """The cached perturbation of ``need``, or ``None`` when there is none or it cannot be trusted: its recorded
    key differs, its noise does not match its recorded hash, or it is not finite, of shape ``shape`` and within the
    budget."""
    path = perturbation_file(folder, need)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            noise = np.asarray(data["noise"], np.float32)
        ok = (
            meta.get("key") == need[0]
            and meta.get("noise_sha256") == hashlib.sha256(np.ascontiguousarray(noise).tobytes()).hexdigest()
            and (shape is None or noise.shape == shape)
            and np.isfinite(noise).all()
            and float(np.abs(noise).max(initial=0)) <= need[3] / 255 + 1e-5
        )
        if ok:
            return {
                "noise": noise,
                "fooling_rate": float(meta["fooling_rate"]),
                "attack_seconds": float(meta["attack_seconds"]),
            }
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, json.JSONDecodeError):
        pass
    logger.warning("ignoring '%s': its recorded key or contents do not match this run; learning it again", path)
    return None
