"""
The audit grid: encoders x downstream tasks x defences x attacks x budgets -> one pandas row per cell (BA, RA, ASR,
fooling rate, times, seed, versions), appended to a results file as each cell finishes.

Work is grouped so nothing is computed twice: each universal perturbation once per (encoder, attack, eps, seed),
from the attacker's unlabelled images; each downstream model once per (encoder, task, defence, seed) job, which then
faces every attack of its cells. Every row and cached perturbation is keyed by a hash of everything that produced
it (see :func:`run_grid`): a killed run restarted on the same file skips the finished cells, a run with other
settings never takes the old ones for its own. Jobs run in this
process (``backend="local"``) or as Ray tasks (``backend="ray"``; ``pip install "ray>=2.9"``).

    >>> from art_ssl.evaluation import GridConfig, run_grid
    >>> frame = run_grid(GridConfig(encoders=("simclr_r18",), attacks=("ssp", "pgd"), defences=("none",)),
    ...                  "audit/results.csv")
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import logging
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from art_ssl.evaluation.keys import array_key, encoder_key, hash_json
from art_ssl.evaluation.registry import (
    DEFENCES,
    AttackSettings,
    DefenceSettings,
    attack_kind,
    flag_rate,
    make_defence_trainer,
    make_universal_attack,
    whitebox_adversarial,
)
from art_ssl.evaluation.sources import EncoderOptions
from art_ssl.evaluation.store import ResultStore, ResultsWriteError, check_output_folder, file_mode

logger = logging.getLogger(__name__)

KEY = ("encoder", "task", "defence", "attack", "eps_255", "seed")
# Defences that repair an already trained downstream model (Sha et al. fine-tune the backdoored model): their job
# first trains the head on the frozen encoder, as the "none" model, then applies them. The others train from the
# pre-trained encoder and a fresh head.
POST_HOC_DEFENCES = ("super_finetune",)
BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class GridConfig:
    """
    What to audit. Names: encoders as zoo names or files (:func:`~art_ssl.evaluation.sources.load_encoder_spec`),
    tasks as data specs (:func:`~art_ssl.evaluation.sources.load_data_spec`; ``_`` and ``-`` are one spelling),
    attacks and defences from :mod:`art_ssl.evaluation.registry`. Every setting is checked here, before any encoder
    is loaded; repeated names, budgets or seeds are dropped (a warning is logged) so no cell runs twice.

    :param encoders: Encoders to audit.
    :param tasks: Downstream tasks.
    :param attacks: Universal (crafted on the encoder), white-box (on the downstream model) and ``"badencoder"``
                    (the recorded trigger of a backdoored zoo encoder; ASR).
    :param defences: How the downstream model is trained (``"none"``: a head on the frozen encoder).
    :param eps: Budgets in 1/255 units, in (0, 255] (ignored by ``"badencoder"``).
    :param seeds: One run of every cell per seed (non-negative ints).
    :param size: Image side (>= 8).
    :param n_train: Downstream training images (``None``: all; else >= 1).
    :param n_test: Downstream test images (``None``: all; else >= 1).
    :param epochs: Defence epochs (>= 1).
    :param batch_size: Batch size (>= 1).
    :param pgd_steps: PGD steps inside the defences (>= 1).
    :param whitebox_n: Test images under white-box attacks (>= 1; they cost a forward/backward per step and image).
    :param surrogate_n: The attacker's unlabelled images (the first task's training images, labels dropped).
    :param attack_settings: Settings of the universal attacks.
    :param device_type: ``"cpu"``, ``"gpu"`` or ``"auto"`` (the GPU when CUDA is available).
    :param defence_settings: ZePAD's other encoders and heads, distillation's epochs.
    :param verbose: Progress bars inside trainers.
    :param encoder_options: How to read encoder files without metadata (arch, mean/std, key prefix, trust_code).
    :param amp: Mixed precision of defences and universal attacks (``True``, ``False``, ``"auto"``; see
                :mod:`art_ssl.core.amp`).
    """

    encoders: tuple[str, ...]
    tasks: tuple[str, ...] = ("fashion-mnist-subset",)
    attacks: tuple[str, ...] = ("ssp", "pap_ugs", "pgd")
    defences: tuple[str, ...] = ("none",)
    eps: tuple[float, ...] = (10.0,)
    seeds: tuple[int, ...] = (0,)
    size: int = 64
    n_train: int | None = None
    n_test: int | None = None
    epochs: int = 1
    batch_size: int = 256
    pgd_steps: int = 5
    whitebox_n: int = 200
    surrogate_n: int = 5000
    attack_settings: AttackSettings = field(default_factory=AttackSettings)
    defence_settings: DefenceSettings = field(default_factory=DefenceSettings)
    device_type: str = "cpu"
    verbose: bool = False
    encoder_options: EncoderOptions = field(default_factory=EncoderOptions)
    amp: bool | str = "auto"

    def __post_init__(self) -> None:
        from art_ssl.evaluation.sources import canonical_data_spec, check_encoder_spec

        for name in AXES:
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
                raise TypeError(f"`{name}` must be a tuple of values, got {value!r}.")
            for item in value:
                if name in ("eps", "seeds"):
                    _check_number(name, item, integer=name == "seeds")
                elif not isinstance(item, str) or not item:
                    raise TypeError(f"`{name}` must hold non-empty strings, got {item!r}.")
        object.__setattr__(self, "tasks", tuple(_named("tasks", canonical_data_spec, t) for t in self.tasks))
        object.__setattr__(self, "eps", tuple(float(e) for e in self.eps))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        for name in AXES:
            value = tuple(getattr(self, name))
            unique = tuple(dict.fromkeys(value))
            if len(unique) < len(value):
                repeated = sorted({v for v in value if value.count(v) > 1})
                logger.warning("`%s` repeats %s; each runs once.", name, repeated)
            object.__setattr__(self, name, unique)
        for attack in self.attacks:
            _named("attacks", check_attack_name, attack)
        unknown = [d for d in self.defences if d not in DEFENCES]
        if unknown:
            raise ValueError(f"`defences`: Unknown defence(s) {unknown}; choose from {DEFENCES}.")
        bad_eps = [e for e in self.eps if not (np.isfinite(e) and 0 < e <= 255)]
        if bad_eps:
            raise ValueError(f"`eps` must be budgets in (0, 255] (1/255 units), got {bad_eps}.")
        if any(s < 0 for s in self.seeds):
            raise ValueError(f"`seeds` must be non-negative ints, got {list(self.seeds)}.")
        _check_int("size", self.size, 8)
        for name in ("n_train", "n_test"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1)
        for name in ("epochs", "batch_size", "pgd_steps", "whitebox_n", "surrogate_n"):
            _check_int(name, getattr(self, name), 1)
        if {"uapepgd", "art_uap"} & set(self.attacks) and self.surrogate_n < 10:
            raise ValueError(
                f"`surrogate_n` must be >= 10 for 'uapepgd'/'art_uap' (the attacker's surrogate "
                f"classifier clusters them into 10 pseudo-classes), got {self.surrogate_n}."
            )
        _check_attack_settings(self.attack_settings)
        if self.device_type not in ("cpu", "gpu", "auto"):
            raise ValueError(f"`device_type` must be 'cpu', 'gpu' or 'auto', got {self.device_type!r}.")
        if self.device_type == "auto":
            object.__setattr__(self, "device_type", "gpu" if torch.cuda.is_available() else "cpu")
        if not isinstance(self.verbose, bool):
            raise TypeError(f"`verbose` must be a bool, got {self.verbose!r}.")
        for encoder in self.encoders:  # files last: a typo in a number is reported before a missing file
            _named("encoders", check_encoder_spec, encoder)
        from art_ssl.core.amp import check_amp

        check_amp("amp", self.amp)

    def cells(self) -> list[dict]:
        """Every cell of the grid, as key dicts. ``"badencoder"`` has one cell (``eps_255`` 0) per backdoored zoo
        encoder and none for the others (there is no recorded trigger to test them with)."""
        from art_ssl.zoo import list_encoders

        backdoored = set(list_encoders(backdoored=True))
        out = []
        for encoder in self.encoders:
            for task in self.tasks:
                for defence in self.defences:
                    for seed in self.seeds:
                        for attack in self.attacks:
                            if attack_kind(attack) == "backdoor" and encoder not in backdoored:
                                continue
                            budgets = (0.0,) if attack_kind(attack) == "backdoor" else self.eps
                            out += [
                                {
                                    "encoder": encoder,
                                    "task": task,
                                    "defence": defence,
                                    "attack": attack,
                                    "eps_255": float(e),
                                    "seed": seed,
                                }
                                for e in budgets
                            ]
        return out


AXES = ("encoders", "tasks", "attacks", "defences", "eps", "seeds")
# Settings that change the downstream models and their evaluation but not a universal perturbation (which depends
# on the encoder, the attacker's images and the attack settings only). Any other GridConfig field, present or
# added later, enters the perturbation's key: a new setting is safe by default.
DOWNSTREAM_ONLY = ("n_train", "n_test", "epochs", "batch_size", "pgd_steps", "whitebox_n", "defence_settings")
# Not part of any key: where the work runs and how much it prints (results agree across devices up to float noise).
NOT_KEYED = ("device_type", "verbose")


def _named(name: str, check: Callable, *values: object):
    """``check(*values)``, with a ``ValueError`` message prefixed by the parameter's name (unless it names it)."""
    try:
        return check(*values)
    except ValueError as err:
        if str(err).startswith("`"):
            raise
        raise ValueError(f"`{name}`: {err}") from None


def _check_number(name: str, value: object, integer: bool) -> None:
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise TypeError(f"`{name}` must hold {'ints' if integer else 'numbers'}, got {value!r}.")


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an int >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")


def _check_attack_settings(settings: AttackSettings) -> None:
    if not isinstance(settings, AttackSettings):
        raise TypeError(f"`attack_settings` must be an AttackSettings, got {type(settings).__name__}.")
    for name in ("surrogate_n", "sign_epochs", "gen_ngf", "gen_nz_batch", "gen_epochs", "uap_iter"):
        _check_int(f"attack_settings.{name}", getattr(settings, name), 1)
    _check_int("attack_settings.seed", settings.seed, 0)
    step = settings.sign_step
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not np.isfinite(step) or step <= 0:
        raise ValueError(f"`attack_settings.sign_step` must be a finite number > 0, got {step!r}.")


def check_attack_name(name: str) -> str:
    """The kind of attack ``name`` (:func:`~art_ssl.evaluation.registry.attack_kind`), after checking that a
    ``torchattacks:<Name>`` names a real torchattacks attack class. :raises ValueError: an unknown name."""
    kind = attack_kind(name)
    if name.startswith("torchattacks:"):
        try:
            import torchattacks
        except ImportError as err:
            raise ValueError(f"Attack {name!r} needs torchattacks: pip install torchattacks.") from err
        attack = name.split(":", 1)[1]
        cls = getattr(torchattacks, attack, None)
        base = torchattacks.attack.Attack
        if not (isinstance(cls, type) and issubclass(cls, base)) or attack in ("Attack", "MultiAttack", "VANILA"):
            names = sorted(
                n
                for n in dir(torchattacks)
                if isinstance(getattr(torchattacks, n), type)
                and issubclass(getattr(torchattacks, n), base)
                and n not in ("Attack", "MultiAttack", "VANILA")
            )
            raise ValueError(
                f"Unknown attack {name!r}: torchattacks has no attack class {attack!r}; choose from {names}."
            )
    return kind


def versions() -> dict[str, str]:
    import art

    import art_ssl

    return {"art_ssl_version": art_ssl.__version__, "art_version": art.__version__, "torch_version": torch.__version__}


# ----------------------------------------------------------------------------------------------------------- work
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
    """The attacker's unlabelled images: ``surrogate_n`` of the first task's training images, drawn with ``seed``."""
    public = _encoder(encoder, config.size, config.device_type, config.encoder_options)
    first = _task(config.tasks[0], config.size, public.input_shape[0], None, None, seed)
    n = min(config.surrogate_n, len(first.x_train))
    return first.x_train[np.random.default_rng(seed + 1).choice(len(first.x_train), n, replace=False)]


def learn_perturbation(config: GridConfig, encoder: str, attack: str, eps_255: float, seed: int) -> dict:
    """One universal perturbation on the public encoder from the attacker's unlabelled images."""
    from art_ssl.evaluation.surrogate import surrogate_classifier

    public = _encoder(encoder, config.size, config.device_type, config.encoder_options)
    x_sur = _surrogate_images(config, encoder, seed)
    surrogate = surrogate_classifier(public, x_sur, seed=seed) if attack in ("uapepgd", "art_uap") else None
    torch.manual_seed(seed)
    np.random.seed(seed)  # ART's UniversalPerturbation shuffles with numpy
    settings = replace(config.attack_settings, seed=seed)
    att = make_universal_attack(attack, public, eps_255 / 255, surrogate, settings)
    if "amp" in getattr(att, "attack_params", ()):
        att.set_params(amp=config.amp)
    start = time.perf_counter()
    att.generate(x_sur)
    seconds = time.perf_counter() - start
    fooling = getattr(att, "fooling_rate", None)
    return {
        "noise": np.asarray(att.noise, np.float32),
        "attack_seconds": seconds,
        "fooling_rate": float("nan") if fooling is None else float(fooling),
    }


def _degenerate_logits(logits: np.ndarray, what: str) -> str | None:
    """Why predictions ``logits`` cannot be scored (a non-``ok`` status), or ``None`` when they can."""
    if not np.isfinite(logits).all():
        return f"degenerate: non-finite logits on {what} (NaN or inf weights, or a preprocessing std of 0)"
    return None


def run_job(config: GridConfig, job: dict, cells: list[dict], perturbations: dict) -> list[dict]:
    """Train one downstream model (``job``: encoder, task, defence, seed) and evaluate it under ``cells``.
    A model whose clean logits are not finite, or that predicts one class for every test image, gets rows with a
    ``degenerate: ...`` status (never ``ok``): its numbers are not a robustness result."""
    from art_ssl.estimators import encoder_classifier
    from art_ssl.metrics import attack_success_rate, benign_accuracy, robust_accuracy
    from art_ssl.models import MLPHead
    from art_ssl.zoo import backdoor_targets, encoder_info, list_encoders

    seed = job["seed"]
    public = _encoder(job["encoder"], config.size, config.device_type, config.encoder_options)
    task = _task(job["task"], config.size, public.input_shape[0], config.n_train, config.n_test, seed)
    torch.manual_seed(seed)
    # encoder_classifier copies the module: the cached public encoder is never trained
    classifier = encoder_classifier(
        public.model,
        task.nb_classes,
        head=MLPHead(public.embedding_dim, task.nb_classes, dropout=0.2),
        freeze_encoder=False,
        input_shape=public.input_shape,
        device_type=config.device_type,
    )
    start = time.perf_counter()
    head_epochs = max(config.epochs, 10)  # a head on the frozen encoder is cheap (embedded once)
    if job["defence"] in POST_HOC_DEFENCES:  # they repair a trained downstream model: train its head first
        make_defence_trainer(
            "none",
            classifier,
            head_epochs,
            batch_size=config.batch_size,
            seed=seed,
            verbose=config.verbose,
            amp=config.amp,
        ).fit(task.x_train, task.y_train)
    epochs = head_epochs if job["defence"] == "none" else config.epochs
    trainer = make_defence_trainer(
        job["defence"],
        classifier,
        epochs,
        batch_size=config.batch_size,
        pgd_steps=config.pgd_steps,
        seed=seed,
        verbose=config.verbose,
        amp=config.amp,
        encoder_name=job["encoder"],
        defence_settings=config.defence_settings,
        load_encoder=lambda spec: _encoder(spec, config.size, config.device_type),
    )
    trainer.fit(task.x_train, task.y_train)
    classifier = trainer.get_classifier()  # ZePAD's is its fused model
    detector = trainer.get_detector() if hasattr(trainer, "get_detector") else None  # ZePAD's DAE detector
    train_seconds = time.perf_counter() - start
    logits = classifier.predict(task.x_test, batch_size=512)
    model_status = _degenerate_logits(logits, "clean test images")
    ba = np.nan
    if model_status is None:
        pred = logits.argmax(1)
        ba = benign_accuracy(pred, task.y_test)
        if len(np.unique(pred)) == 1:
            model_status = (
                f"degenerate: constant predictor (every test image is class {int(pred[0])}; "
                f"training diverged or the encoder's embeddings are constant)"
            )
    detector_cols = {}  # ZePAD's flag rate on clean test images
    if detector is not None and model_status is None:
        detector_cols = {"flag_rate_clean": flag_rate(detector, task.x_test)}
    rows = []
    for cell in cells:
        attack, eps = cell["attack"], cell["eps_255"] / 255
        row = {
            **cell,
            "BA": ba,
            "RA": np.nan,
            "ASR": np.nan,
            "fooling_rate": np.nan,
            "attack_seconds": np.nan,
            "train_seconds": round(train_seconds, 2),
            "n_train": len(task.x_train),
            "n_test": len(task.x_test),
            "status": "ok",
            **detector_cols,
            **versions(),
        }
        if model_status is not None:
            row["status"] = model_status
            rows.append(row)
            continue
        kind = attack_kind(attack)
        try:
            if kind == "universal":
                learnt = perturbations[cell["perturbation_key"]]
                if not np.isfinite(learnt["noise"]).all():
                    raise _Degenerate("degenerate: the universal perturbation holds NaN or inf")
                x_adv = np.clip(task.x_test + learnt["noise"], 0, 1).astype(np.float32)
                row["RA"] = _accuracy_or_fail(classifier, x_adv, task.y_test, robust_accuracy)
                row["fooling_rate"], row["attack_seconds"] = learnt["fooling_rate"], learnt["attack_seconds"]
                if detector is not None:
                    row["flag_rate_attacked"] = flag_rate(detector, x_adv)
            elif kind == "whitebox":
                n = min(config.whitebox_n, len(task.x_test))
                t0 = time.perf_counter()
                x_adv = whitebox_adversarial(attack, classifier, task.x_test[:n], task.y_test[:n], eps, seed)
                row["attack_seconds"] = time.perf_counter() - t0
                row["RA"] = _accuracy_or_fail(classifier, x_adv, task.y_test[:n], robust_accuracy)
                row["n_test"] = n
                if detector is not None:
                    row["flag_rate_attacked"] = flag_rate(detector, x_adv)
            else:
                if job["encoder"] not in list_encoders(backdoored=True):
                    raise ValueError("no recorded trigger: 'badencoder' rows need a backdoored zoo encoder")
                info_task = {t["task"]: t for t in backdoor_targets(job["encoder"])}
                name = task.name.replace("fashion_mnist_subset", "fashion_mnist")
                if name not in info_task:
                    raise ValueError(
                        f"{job['encoder']} has no backdoor target for task {task.name} (targets: {sorted(info_task)})"
                    )
                target = info_task[name]
                logits_bd = classifier.predict(target["trigger"].apply(task.x_test), batch_size=512)
                status = _degenerate_logits(logits_bd, "triggered test images")
                if status is not None:
                    raise _Degenerate(status)
                row["ASR"] = attack_success_rate(
                    logits_bd.argmax(1), target["target"], task.y_test, exclude_target_class=True
                )
                row["target"] = target["target"]
                row["base_encoder"] = encoder_info(job["encoder"]).get("base_encoder")
        except _Degenerate as err:
            row["status"] = str(err)
            logger.warning("cell %s: %s", cell, err)
        except (ValueError, RuntimeError) as err:
            row["status"] = f"error: {err}"
            logger.warning("cell %s failed: %s", cell, err)
        rows.append(row)
    return rows


class _Degenerate(Exception):
    """A cell whose number would be meaningless; its message is the row's status."""


def _accuracy_or_fail(classifier, x_adv: np.ndarray, y: np.ndarray, metric) -> float:
    logits = classifier.predict(x_adv, batch_size=512)
    status = _degenerate_logits(logits, "attacked test images")
    if status is not None:
        raise _Degenerate(status)
    return metric(logits.argmax(1), y)


# ----------------------------------------------------------------------------------------------------------- keys
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
        settings = {f.name: getattr(config, f.name) for f in fields(config) if f.name not in AXES + NOT_KEYED}
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
        return "p" + hash_json(
            {
                "encoder": self.encoder(encoder),
                "surrogate_images": self._surrogates[key],
                "attack": attack,
                "eps_255": float(eps_255),
                "seed": seed,
                "settings": self.attack_settings,
                "art_ssl": self.version,
            }
        )

    def annotate(self, cell: dict) -> dict:
        """``cell`` with its ``cell_key``, ``encoder_key`` and (universal attacks) ``perturbation_key``."""
        universal = attack_kind(cell["attack"]) == "universal"
        pkey = self.perturbation(cell["encoder"], cell["attack"], cell["eps_255"], cell["seed"]) if universal else ""
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
        }


# ----------------------------------------------------------------------------------------------------------- runner
def _perturbation_file(folder: Path, need: tuple) -> Path:
    pkey, encoder, attack, eps_255, seed = need
    return folder / f"{Path(str(encoder)).stem}_{attack}_eps{eps_255:g}_s{seed}_{pkey}.npz"


def _save_perturbation(folder: Path, need: tuple, learnt: dict) -> None:
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
    path = _perturbation_file(folder, need)
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp.npz", dir=folder)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, noise=learnt["noise"], meta=json.dumps(meta))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        reason = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
        raise ResultsWriteError(
            err.errno,
            f"Could not save the perturbation '{path}': {reason}. The results "
            "written so far are kept; a restarted run resumes.",
        ) from err


def _load_perturbation(folder: Path, need: tuple, shape: tuple[int, ...] | None = None) -> dict | None:
    """The cached perturbation of ``need``, or ``None`` when there is none or it cannot be trusted: its recorded
    key differs, its noise does not match its recorded hash, or it is not finite, of shape ``shape`` and within the
    budget."""
    path = _perturbation_file(folder, need)
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


def run_grid(
    config: GridConfig,
    out: str | Path,
    backend: str = "local",
    ray_address: str | None = None,
    progress: bool = True,
    on_rows: Callable[[list[dict]], None] | None = None,
    perturbation_dir: str | Path | None = None,
) -> pd.DataFrame:
    """
    Run every cell of ``config`` not yet in the results file ``out`` and return the rows of ``config``'s cells.

    Resuming: a cell is identified by its ``cell_key``, a hash of everything that produced it (encoder weights and
    loading options, the task's data, every setting, the perturbation's key, the art_ssl version; see
    :class:`_Keys`). A rerun with the same configuration skips its finished cells; a rerun with other settings into
    the same file computes its own cells beside the old rows, which stay in the file, and the returned frame (so
    the report) holds only the current configuration's cells. Two runs into one file at once merge their rows
    under a lock (:class:`~art_ssl.evaluation.store.ResultStore`); a cell both computed is kept once.

    :param config: The grid.
    :param out: Results CSV; rows are appended (atomically) as each job finishes.
    :param backend: ``"local"`` (this process) or ``"ray"`` (one Ray task per perturbation and per job; GPU jobs
                    request a GPU).
    :param ray_address: Address of an existing Ray cluster (``"auto"``, ``"ray://host:10001"``); default a local
                        Ray instance.
    :param progress: A progress bar over jobs.
    :param on_rows: Called with each job's rows after they are written.
    :param perturbation_dir: Where the universal perturbations are kept (``.npz`` with their key, fooling rate and
                             time; default ``perturbations/`` next to ``out``); a restarted run reuses those whose
                             recorded key matches.
    :raises ValueError: the grid has no cells, or an output folder cannot be written.
    """
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}.")
    if not isinstance(config, GridConfig):
        raise TypeError(f"`config` must be a GridConfig, got {type(config).__name__}.")
    cells = config.cells()
    if not cells:
        raise ValueError("The grid has no cells: give at least one encoder, task, defence, attack, budget and seed.")
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"`out` '{out}' is a folder; pass the results file (e.g. '{out / 'results.csv'}').")
    check_output_folder(out.parent, "out")
    folder = out.parent / "perturbations" if perturbation_dir is None else Path(perturbation_dir)
    check_output_folder(folder, "perturbation_dir")
    store = ResultStore(out, ("cell_key",), legacy_columns=KEY)
    keys = _Keys(config)
    cells = [keys.annotate(c) for c in cells]
    todo = [c for c in cells if not store.has(**c)]
    jobs: dict[tuple, list[dict]] = {}
    for cell in todo:
        jobs.setdefault((cell["encoder"], cell["task"], cell["defence"], cell["seed"]), []).append(cell)
    needed = sorted(
        {
            (c["perturbation_key"], c["encoder"], c["attack"], c["eps_255"], c["seed"])
            for c in todo
            if c["perturbation_key"]
        }
    )
    logger.info("%d of %d cells to run in %d jobs, %d perturbations", len(todo), len(cells), len(jobs), len(needed))
    if jobs:
        runner = _run_local if backend == "local" else _run_ray
        runner(config, jobs, needed, store, folder, ray_address, progress, on_rows)
    store.refresh()
    wanted = {store.key_of(c) for c in cells}  # the file may hold other grids' (or other settings') cells too
    frame = store.frame
    return frame[[store.key_of(r) in wanted for r in frame[["cell_key"]].to_dict("records")]].reset_index(drop=True)


def _job_dict(key: tuple) -> dict:
    return dict(zip(("encoder", "task", "defence", "seed"), key, strict=True))


def _noise_shape(config: GridConfig, encoder: str) -> tuple[int, ...]:
    return (1, *_encoder(encoder, config.size, config.device_type, config.encoder_options).input_shape)


def _run_local(config, jobs, needed, store, folder, ray_address, progress, on_rows) -> None:
    perturbations = {}
    for need in tqdm(needed, desc="universal perturbations", disable=not progress):
        perturbations[need[0]] = _load_perturbation(folder, need, _noise_shape(config, need[1]))
        if perturbations[need[0]] is None:
            perturbations[need[0]] = learn_perturbation(config, *need[1:])
            _save_perturbation(folder, need, perturbations[need[0]])
    for key, cells in tqdm(jobs.items(), desc="downstream models", disable=not progress):
        store.refresh()  # another run into the same file may have finished these cells meanwhile
        cells = [c for c in cells if not store.has(**c)]
        if not cells:
            continue
        rows = run_job(config, _job_dict(key), cells, perturbations)
        store.append(rows)
        if on_rows is not None:
            on_rows(rows)


def _run_ray(config, jobs, needed, store, folder, ray_address, progress, on_rows) -> None:
    try:
        import ray
    except ImportError as err:
        raise ImportError("The Ray backend needs Ray: pip install 'ray>=2.9'.") from err
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=ray_address,
            ignore_reinit_error=True,
            log_to_driver=False,
            **({} if ray_address else {"include_dashboard": False}),
        )
    try:
        gpus = 1 if config.device_type == "gpu" else 0
        learn = ray.remote(num_gpus=gpus)(learn_perturbation)
        job_fn = ray.remote(num_gpus=gpus)(run_job)
        config_ref = ray.put(config)
        perturbations = {need[0]: _load_perturbation(folder, need, _noise_shape(config, need[1])) for need in needed}
        refs = {need: learn.remote(config_ref, *need[1:]) for need in needed if perturbations[need[0]] is None}
        for need, learnt in zip(refs, ray.get(list(refs.values())), strict=True):
            perturbations[need[0]] = learnt
            _save_perturbation(folder, need, learnt)
        pert_ref = ray.put(perturbations)
        pending = {job_fn.remote(config_ref, _job_dict(key), cells, pert_ref): key for key, cells in jobs.items()}
        bar = tqdm(total=len(pending), desc="downstream models (ray)", disable=not progress)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            rows = ray.get(done[0])
            pending.pop(done[0])
            store.append(rows)  # written as each job finishes, in completion order
            bar.update(1)
            if on_rows is not None:
                on_rows(rows)
        bar.close()
    finally:
        if started:
            ray.shutdown()
