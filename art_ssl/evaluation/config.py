"""
What an audit grid runs: :class:`GridConfig` (encoders x tasks x defences x attacks x budgets x seeds, and every
setting), checked in full before any encoder is loaded, and the names of its axes and keys.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from art_ssl.evaluation.registry import (
    ANNEALED_DEFENCES,
    DEFENCES,
    AttackSettings,
    DefenceSettings,
    attack_kind,
    dae_source,
)
from art_ssl.evaluation.sources import EncoderOptions

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
    :param surrogate_n: The attacker's unlabelled images (training images of ``surrogate_data``, labels dropped).
    :param surrogate_data: The data spec the attacker's images come from (``None``: the first task). A grid of
                           one task crafts its DAEs on that task's images unless this names other data; the
                           benchmark presets name Fashion-MNIST so every task faces the same DAEs.
    :param attack_settings: Settings of the universal attacks.
    :param device_type: ``"cpu"``, ``"gpu"`` or ``"auto"`` (the GPU when CUDA is available).
    :param defence_settings: ZePAD's other encoders and heads, distillation's epochs.
    :param verbose: Progress bars inside trainers.
    :param encoder_options: How to read encoder files without metadata (arch, mean/std, key prefix, trust_code).
    :param amp: Mixed precision of defences and universal attacks (``True``, ``False``, ``"auto"``; see
                :mod:`art_ssl.core.amp`).
    :param task_epochs: Defence epochs of named tasks instead of ``epochs``: ``{"digits": 10}`` or
                        ``("digits=10",)`` (a small task needs more epochs for the same optimiser steps). Each task
                        must be one of ``tasks``.
    :param attack_eps: Budgets of named attacks instead of ``eps``: ``{"autoattack": 2}`` or ``("autoattack=2",)``
                       (``"pgd=2,4"`` for two). Each attack must be one of ``attacks``.
    :param transfer_encoder: Where ``transfer:<attack>`` perturbations are crafted (zoo name or file); ``None``: the
                             first clean zoo encoder that is not audited (else not the cell's encoder).
    :param anneal_epochs: The defences that fine-tune the encoder
                          (:data:`~art_ssl.evaluation.registry.ANNEALED_DEFENCES`) run their last ``anneal_epochs``
                          epochs at 0.1 times their learning rates (the trainers' ``lr_milestones``: the step decay
                          of TRADES' and MART's codes, which lets a run end on a flat curve); 0: none (exponential
                          decay only). Fewer than every task's defence epochs.
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
    surrogate_data: str | None = None
    attack_settings: AttackSettings = field(default_factory=AttackSettings)
    defence_settings: DefenceSettings = field(default_factory=DefenceSettings)
    device_type: str = "cpu"
    verbose: bool = False
    encoder_options: EncoderOptions = field(default_factory=EncoderOptions)
    amp: bool | str = "auto"
    task_epochs: tuple[tuple[str, int], ...] = ()
    attack_eps: tuple[tuple[str, tuple[float, ...]], ...] = ()
    transfer_encoder: str | None = None
    anneal_epochs: int = 0

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
        if self.surrogate_data is not None:
            object.__setattr__(self, "surrogate_data", _surrogate_spec(self.surrogate_data))
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
        object.__setattr__(self, "task_epochs", _per_name("task_epochs", self.task_epochs, self.tasks, _epochs_value))
        object.__setattr__(self, "attack_eps", _per_name("attack_eps", self.attack_eps, self.attacks, _budgets_value))
        for attack, _ in self.attack_eps:
            if attack_kind(attack) == "backdoor":
                raise ValueError(f"`attack_eps`: {attack!r} takes no budget (it applies a recorded trigger).")
        if self.transfer_encoder is not None:
            _named("transfer_encoder", check_encoder_spec, self.transfer_encoder)
        _check_int("anneal_epochs", self.anneal_epochs, 0)
        shortest = min(self.epochs_for(t) for t in self.tasks)
        if self.anneal_epochs and self.anneal_epochs >= shortest:
            raise ValueError(
                f"`anneal_epochs` must be fewer than every task's defence epochs ({shortest} here: `epochs` / "
                f"`task_epochs`), got {self.anneal_epochs}."
            )
        if any(a.startswith("transfer:") for a in self.attacks):
            for encoder in self.encoders:
                self.transfer_source(encoder)  # fails now, not after hours of work

    def epochs_for(self, task: str) -> int:
        """Defence epochs of ``task`` (its ``task_epochs`` entry, else ``epochs``)."""
        return dict(self.task_epochs).get(task, self.epochs)

    def lr_milestones_for(self, task: str, defence: str) -> tuple[int, ...]:
        """The trainer's ``lr_milestones`` for ``defence`` on ``task``: ``(epochs - anneal_epochs,)`` for the
        :data:`~art_ssl.evaluation.registry.ANNEALED_DEFENCES` when ``anneal_epochs`` is set, else none."""
        if not self.anneal_epochs or defence not in ANNEALED_DEFENCES:
            return ()
        return (self.epochs_for(task) - self.anneal_epochs,)

    def budgets_for(self, attack: str) -> tuple[float, ...]:
        """Budgets of ``attack`` in 1/255 units (its ``attack_eps`` entry, else ``eps``; ``(0.0,)`` for the
        backdoor, which has none)."""
        if attack_kind(attack) == "backdoor":
            return (0.0,)
        return dict(self.attack_eps).get(attack, self.eps)

    def transfer_source(self, encoder: str) -> str:
        """The encoder that ``transfer:<attack>`` perturbations against ``encoder``'s victims are crafted on.

        :raises ValueError: it would be ``encoder`` itself, or there is no other clean zoo encoder.
        """
        if self.transfer_encoder is not None:
            if self.transfer_encoder == encoder:
                raise ValueError(
                    f"`transfer_encoder` {encoder!r} is the audited encoder itself: a transfer DAE is crafted on "
                    "another encoder (use the plain attack name for the standard DAE)."
                )
            return self.transfer_encoder
        from art_ssl.zoo import list_encoders

        clean = [n for n in list_encoders(backdoored=False) if n != encoder]
        unaudited = [n for n in clean if n not in self.encoders]
        if not clean:
            raise ValueError(f"`attacks`: no clean zoo encoder other than {encoder!r} to craft transfer DAEs on.")
        return (unaudited or clean)[0]

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
                            budgets = self.budgets_for(attack)
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
# ``attack_eps`` only says which budgets exist (a perturbation's key holds its own budget); ``transfer_encoder``
# enters a transfer perturbation's key as that encoder's weights.
DOWNSTREAM_ONLY = (
    "n_train",
    "n_test",
    "epochs",
    "batch_size",
    "pgd_steps",
    "whitebox_n",
    "defence_settings",
    "task_epochs",
    "attack_eps",
    "transfer_encoder",
    "anneal_epochs",
)
# Not part of any key: where the work runs and how much it prints (results agree across devices up to float noise).
NOT_KEYED = ("device_type", "verbose")
# Keyed by content instead of by name: the attacker's images enter every universal perturbation's key (and so its
# cells' keys) as an array key, so the same images named twice are one perturbation, and existing keys do not move.
KEYED_BY_CONTENT = ("surrogate_data",)
# Keyed only when set: a setting added after results were committed, whose default is the behaviour before it, stays
# out of the key at that default, so that those results keep their keys (and a rerun finds them).
KEYED_WHEN_SET = {"anneal_epochs": 0}


def _surrogate_spec(spec: object) -> str:
    """``surrogate_data`` checked and spelt as :func:`~art_ssl.evaluation.sources.canonical_data_spec` spells
    tasks, its messages naming ``surrogate_data``."""
    from art_ssl.evaluation.sources import canonical_data_spec

    if not isinstance(spec, str):
        raise TypeError(f"`surrogate_data` must be a data spec (str) or None, got {spec!r}.")
    try:
        return canonical_data_spec(spec)
    except ValueError as err:
        message = str(err)
        if message.startswith("`data` "):
            raise ValueError("`surrogate_data` " + message.removeprefix("`data` ")) from None
        raise ValueError(f"`surrogate_data`: {message}") from None


def _named(name: str, check: Callable, *values: object):
    """``check(*values)``, with a ``ValueError`` message prefixed by the parameter's name (unless it names it)."""
    try:
        return check(*values)
    except ValueError as err:
        if str(err).startswith("`"):
            raise
        raise ValueError(f"`{name}`: {err}") from None


def _per_name(name: str, value: object, allowed: tuple[str, ...], parse: Callable) -> tuple:
    """A ``{name: value}`` mapping, or ``("name=value", ...)`` strings, as a sorted tuple of ``(name, value)`` pairs
    (hashable, one spelling), each name one of ``allowed`` and each value checked by ``parse(name, text_or_value)``."""
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, (tuple, list)) and not isinstance(value, str):
        items = []
        for item in value:
            if isinstance(item, str):
                key, sep, text = item.partition("=")
                if not sep or not key or not text:
                    raise ValueError(f"`{name}` entries are NAME=VALUE, got {item!r}.")
                items.append((key, text))
            elif isinstance(item, (tuple, list)) and len(item) == 2:
                items.append(tuple(item))
            else:
                raise TypeError(f"`{name}` entries are NAME=VALUE strings or (name, value) pairs, got {item!r}.")
    else:
        raise TypeError(f"`{name}` must be a dict or a tuple of NAME=VALUE strings, got {value!r}.")
    out: dict[str, object] = {}
    for key, raw in items:
        if name == "task_epochs" and isinstance(key, str):
            key = _named(name, _canonical_task, key)
        if key not in allowed:
            raise ValueError(f"`{name}` names {key!r}, which is not in the grid's {allowed}.")
        if key in out:
            raise ValueError(f"`{name}` names {key!r} twice.")
        out[key] = parse(name, raw)
    return tuple(sorted(out.items()))


def _canonical_task(spec: str) -> str:
    from art_ssl.evaluation.sources import canonical_data_spec

    return canonical_data_spec(spec)


def _epochs_value(name: str, raw: object) -> int:
    value = int(raw) if isinstance(raw, str) and raw.strip().isdigit() else raw
    _check_int(name, value, 1)
    assert isinstance(value, (int, np.integer))  # checked just above
    return int(value)


def _budgets_value(name: str, raw: object) -> tuple[float, ...]:
    if isinstance(raw, str):
        try:
            values: list[object] = [float(v) for v in raw.split(",")]
        except ValueError:
            raise ValueError(f"`{name}` budgets are numbers in (0, 255], got {raw!r}.") from None
    elif isinstance(raw, (tuple, list)):
        values = list(raw)
    else:
        values = [raw]
    budgets = []
    for v in values:
        _check_number(name, v, integer=False)
        assert isinstance(v, (int, float, np.integer, np.floating))  # checked just above
        budgets.append(float(v))
    if not budgets or not all(np.isfinite(b) and 0 < b <= 255 for b in budgets):
        raise ValueError(f"`{name}` budgets must be in (0, 255] (1/255 units), got {raw!r}.")
    return tuple(dict.fromkeys(budgets))


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
    if kind in ("universal", "adaptive"):
        dae_source(name)  # a prefix names a universal attack
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
