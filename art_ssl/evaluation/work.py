"""
The work of an audit grid: loading its encoders and tasks (once per process), the attacker's images, learning a
universal perturbation, and the work plan's content keys (:class:`_Keys`: which cells and perturbations a results
file and the perturbation cache already hold).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import fields

import numpy as np

from art_ssl.evaluation.cache import perturbation_key
from art_ssl.evaluation.config import (
    AXES,
    DOWNSTREAM_ONLY,
    KEYED_BY_CONTENT,
    KEYED_WHEN_SET,
    NOT_KEYED,
    GridConfig,
    _named,
)
from art_ssl.evaluation.keys import array_key, encoder_key, hash_json
from art_ssl.evaluation.registry import attack_kind, dae_source
from art_ssl.evaluation.sources import EncoderOptions
from art_ssl.evaluation.threat import craft_perturbation

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _encoder(spec: str, size: int, device_type: str, options: EncoderOptions | None = None):
    """Encoders are loaded once per process (jobs deep-copy the model before training it)."""
    from art_ssl.evaluation.sources import load_encoder_spec

    return load_encoder_spec(spec, size, device_type, options)


@functools.lru_cache(maxsize=4)
def _task(spec: str, size: int, channels: int, n_train: int | None, n_test: int | None, seed: int):
    """Datasets are loaded once per process (read only afterwards)."""
    from art_ssl.evaluation.sources import load_data_spec

    return load_data_spec(spec, size, channels, n_train, n_test, seed)


def _surrogate_images(config: GridConfig, encoder: str, seed: int) -> np.ndarray:
    """The attacker's unlabelled images: ``surrogate_n`` training images of ``surrogate_data`` (else of the first
    task), drawn with ``seed``."""
    public = _encoder(encoder, config.size, config.device_type, config.encoder_options)
    name, spec = ("surrogate_data", config.surrogate_data) if config.surrogate_data else ("tasks", config.tasks[0])
    try:
        data = _task(spec, config.size, public.input_shape[0], None, None, seed)
    except (ValueError, FileNotFoundError) as err:  # name the setting the images come from
        raise type(err)(f"`{name}` {spec!r}: {err}") from err
    n = min(config.surrogate_n, len(data.x_train))
    return data.x_train[np.random.default_rng(seed + 1).choice(len(data.x_train), n, replace=False)]


def learn_perturbation(config: GridConfig, encoder: str, attack: str, eps_255: float, seed: int) -> dict:
    """One universal perturbation on the public encoder from the attacker's unlabelled images
    (:func:`~art_ssl.evaluation.threat.craft_perturbation`)."""
    from art_ssl.evaluation.surrogate import surrogate_classifier

    public = _encoder(encoder, config.size, config.device_type, config.encoder_options)
    x_sur = _surrogate_images(config, encoder, seed)
    surrogate = surrogate_classifier(public, x_sur, seed=seed) if attack in ("uapepgd", "art_uap") else None
    return craft_perturbation(
        attack, public, eps_255, x_sur, surrogate, config.attack_settings, seed=seed, amp=config.amp
    )


class _Keys:
    """
    The content keys of a grid's cells (:mod:`art_ssl.evaluation.keys`): each row's ``cell_key`` hashes the
    encoder's weights and loading options, the task's arrays (so its spec, size, count and seed), the cell's
    defence, attack, budget and seed, every setting of the configuration but the device and verbosity, the
    perturbation's key for universal attacks, and the art_ssl version. Encoders and data are loaded here (once per
    process, cached for the work), and an encoder whose embeddings of real images are not finite is refused.
    """

    def __init__(self, config: GridConfig) -> None:
        import art_ssl

        self.config, self.version = config, art_ssl.__version__
        unkeyed = AXES + NOT_KEYED + KEYED_BY_CONTENT
        settings = {f.name: getattr(config, f.name) for f in fields(config) if f.name not in unkeyed}
        for name, default in KEYED_WHEN_SET.items():
            if settings[name] == default:
                del settings[name]
        self.settings = settings
        self.attack_settings = {k: v for k, v in settings.items() if k not in DOWNSTREAM_ONLY}
        self._encoders: dict[str, str] = {}
        self._tasks: dict[tuple, str] = {}
        self._surrogates: dict[tuple, str] = {}

    def encoder(self, spec: str) -> str:
        if spec not in self._encoders:
            encoder = _named(
                "encoders", _encoder, spec, self.config.size, self.config.device_type, self.config.encoder_options
            )
            first = self.config.tasks[0]
            try:
                # the entry the attacker's images come from (seed 0): no second copy of a large training set
                probe = _task(first, self.config.size, encoder.input_shape[0], None, None, 0).x_test[:8]
            except (ValueError, FileNotFoundError) as err:
                raise type(err)(f"`tasks` {first!r}: {err}") from err
            embeddings = encoder.predict(probe, batch_size=8)
            if not np.isfinite(embeddings).all():
                raise ValueError(
                    f"Encoder {spec!r} gives non-finite embeddings (NaN or inf) on real images: its "
                    "weights or its preprocessing (a std of 0?) are broken."
                )
            self._encoders[spec] = encoder_key(encoder)
        return self._encoders[spec]

    def task(self, spec: str, encoder: str, seed: int) -> str:
        config = self.config
        channels = _encoder(encoder, config.size, config.device_type, config.encoder_options).input_shape[0]
        key = (spec, channels, seed)
        if key not in self._tasks:
            try:
                t = _task(spec, self.config.size, channels, self.config.n_train, self.config.n_test, seed)
            except (ValueError, FileNotFoundError) as err:  # name the setting: a run may have several tasks
                raise type(err)(f"`tasks` {spec!r}: {err}") from err
            for name, split in (("n_train", t.x_train), ("n_test", t.x_test)):
                wanted = getattr(self.config, name)
                if wanted is not None and len(split) < wanted:
                    logger.warning(
                        "`%s`=%d but task %r has %d such images: all of them are used (the rows' %s column says so)",
                        name,
                        wanted,
                        spec,
                        len(split),
                        name,
                    )
            self._tasks[key] = array_key(t.x_train, t.y_train, t.x_test, t.y_test)
        return self._tasks[key]

    def perturbation(self, encoder: str, attack: str, eps_255: float, seed: int) -> str:
        key = (encoder, seed)
        if key not in self._surrogates:
            self._surrogates[key] = array_key(_surrogate_images(self.config, encoder, seed))
        return perturbation_key(
            self.encoder(encoder),
            self._surrogates[key],
            attack,
            eps_255,
            seed,
            self.attack_settings,
            self.version,
        )

    def annotate(self, cell: dict) -> dict:
        """``cell`` with its ``cell_key``, ``encoder_key``, (universal attacks) ``perturbation_key`` and
        ``dae_encoder``: the encoder its perturbation is crafted on (the cell's own, the transfer source, or
        ``"defended"`` for an adaptive one, crafted per trained model and not cached)."""
        kind = attack_kind(cell["attack"])
        pkey, dae_encoder = "", ""
        if kind == "universal":
            source, base = dae_source(cell["attack"])
            dae_encoder = self.config.transfer_source(cell["encoder"]) if source == "transfer" else cell["encoder"]
            pkey = self.perturbation(dae_encoder, base, cell["eps_255"], cell["seed"])
        elif kind == "adaptive":
            dae_encoder = "defended"
        # the spec beside the content: one encoder listed under two names keeps a row under each name
        description = {
            "encoder": [cell["encoder"], self.encoder(cell["encoder"])],
            "task": [cell["task"], self.task(cell["task"], cell["encoder"], cell["seed"])],
            **{k: cell[k] for k in ("defence", "attack", "eps_255", "seed")},
            "settings": self.settings,
            "perturbation": pkey,
            "art_ssl": self.version,
        }
        return {
            **cell,
            "cell_key": "c" + hash_json(description),
            "encoder_key": self.encoder(cell["encoder"]),
            "perturbation_key": pkey,
            "dae_encoder": dae_encoder,
        }
