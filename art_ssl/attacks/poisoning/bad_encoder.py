"""
BadEncoder (Jia, Liu, Gong, "BadEncoder: Backdoor Attacks to Pre-trained Encoders in Self-Supervised Learning",
IEEE S&P 2022): fine-tune a copy of a clean pre-trained encoder so that any input carrying the trigger is embedded
like the attacker's reference inputs, while clean inputs keep their clean embeddings. Every downstream classifier
built on the backdoored encoder then sends triggered inputs to the reference's class.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from art.attacks.attack import PoisoningAttackTransformer
from torch import nn

from art_ssl.core import distributed
from art_ssl.core.checks import check_bool, check_images, check_positive_int, check_positive_number, check_seed
from art_ssl.core.driver import Step, run_epochs
from art_ssl.core.forward import pixel_forward
from art_ssl.core.modes import evaluating
from art_ssl.core.seeding import scoped_seed
from art_ssl.core.trigger import Trigger, square_trigger
from art_ssl.estimators.encoder import PyTorchEncoder
from art_ssl.ssl.augment import ssl_augmentation

logger = logging.getLogger(__name__)


def freeze_batchnorm(model: nn.Module) -> None:
    """BatchNorm layers in eval mode with frozen affine parameters (BadEncoder's official fine-tuning keeps the
    clean encoder's statistics, so triggered batches cannot shift them)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
            for param in module.parameters():
                param.requires_grad_(False)


def reference_augmentation(size: tuple[int, int], channels: int, crop: bool = False) -> nn.Module:
    """
    The augmentation of the reference inputs in BadEncoder's ``L1``: the official code's transform (random
    horizontal flip, colour jitter 0.4 with p 0.8, random grey-scale p 0.2; grey-scale inputs get brightness and
    contrast jitter only), without the random resized crop of SimCLR's pre-training augmentation unless ``crop``.
    """
    if crop:
        return ssl_augmentation(size, channels)
    import kornia.augmentation as K

    if channels == 1:
        return K.AugmentationSequential(K.RandomHorizontalFlip(), K.ColorJitter(0.4, 0.4, 0.0, 0.0, p=0.8))
    return K.AugmentationSequential(
        K.RandomHorizontalFlip(), K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), K.RandomGrayscale(p=0.2)
    )


class BadEncoder(PoisoningAttackTransformer):
    """
    BadEncoder (Jia et al., IEEE S&P 2022, Section 4, eqs. 1-4). With ``f`` the clean encoder (frozen), ``f'`` its
    trainable copy, ``s`` the cosine similarity, ``D_s`` the shadow data, and per target ``i`` a trigger ``e_i``
    and reference inputs ``R_i``:

    - effectiveness, eq. 1: ``L0 = -mean_{x in D_s, r in R_i} s(f'(x + e_i), f'(r))``;
    - effectiveness, eq. 2: ``L1 = -mean_{r in R_i} s(f'(aug(r)), f(r))`` (the official code augments the
      reference on the backdoored side with flips, colour jitter and random grey-scale, *no* random resized crop:
      :func:`reference_augmentation`; ``reference_crop=True`` adds SimCLR's crop, as art_ssl did before issue 16);
    - utility, eq. 3: ``L2 = -mean_{x in D_s} s(f'(x), f(x))``;

    minimised as ``L0 + lambda1 * L1 + lambda2 * L2`` (eq. 4) by SGD with BatchNorm frozen. Defaults are the
    official code's (SGD lr 1e-3, momentum 0.9, weight decay 5e-4, batch 256, lambda1 = lambda2 = 1); its 200
    epochs on 50,000 CIFAR-10 shadow images is a GPU budget, so ``nb_epochs`` is a parameter.

    Several targets (one trigger each, as the paper's multi-target attack) are given as lists; losses ``L0`` and
    ``L1`` are averaged over targets as in the official code.

    Under ``torchrun`` (:mod:`art_ssl.core.distributed`) the training is data-parallel: ``batch_size`` is the global
    batch, each rank embeds its part of it (BatchNorm is frozen, so no statistics are shared), the reference term is
    computed alike on every rank, and the gradients of the ranks' shares are summed.

    :param estimator: The clean public encoder (ART ``PyTorchEncoder``); it is not modified.
    :param reference_inputs: Images of the target class (R, C, H, W), or one such array per target. ``None``: one
                             shadow image chosen at random (seeded) in :meth:`poison_estimator` becomes the
                             reference (``reference_inputs_``).
    :param trigger: A :class:`Trigger` (or one per target); default the white bottom-right square of
                    :func:`square_trigger` (other corners for further targets).
    :param target: The downstream class of the reference inputs (or one per target); only used for the labels that
                   :meth:`poison` returns.
    :param lambda1: Weight of ``L1``.
    :param lambda2: Weight of ``L2``.
    :param learning_rate: SGD learning rate.
    :param momentum: SGD momentum.
    :param weight_decay: SGD weight decay.
    :param nb_epochs: Passes over the shadow data.
    :param batch_size: Shadow images per step.
    :param augment_reference: Augment the references in ``L1`` (official); ``False`` compares them unaugmented.
    :param reference_crop: Add a random resized crop (scale 0.2-1) to that augmentation (not in the official code).
    :param seed: Seeds the reference choice, shuffling and augmentations.
    :param verbose: Progress bars.
    """

    attack_params = PoisoningAttackTransformer.attack_params + [
        "reference_inputs",
        "trigger",
        "target",
        "lambda1",
        "lambda2",
        "learning_rate",
        "momentum",
        "weight_decay",
        "nb_epochs",
        "batch_size",
        "augment_reference",
        "seed",
        "verbose",
        "reference_crop",
    ]
    _estimator_requirements = (PyTorchEncoder,)

    def __init__(
        self,
        estimator: PyTorchEncoder,
        reference_inputs: np.ndarray | Sequence[np.ndarray] | None = None,
        trigger: Trigger | Sequence[Trigger] | None = None,
        target: int | Sequence[int] | None = None,
        lambda1: float = 1.0,
        lambda2: float = 1.0,
        learning_rate: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        nb_epochs: int = 200,
        batch_size: int = 256,
        augment_reference: bool = True,
        seed: int = 0,
        verbose: bool = True,
        reference_crop: bool = False,
    ) -> None:
        super().__init__(classifier=estimator)
        self.reference_inputs = reference_inputs
        self.trigger = trigger
        self.target = target
        self.lambda1 = lambda1
        self.lambda2 = lambda2
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.nb_epochs = nb_epochs
        self.batch_size = batch_size
        self.augment_reference = augment_reference
        self.reference_crop = reference_crop
        self.seed = seed
        self.verbose = verbose
        self.reference_inputs_: list[np.ndarray] | None = None
        self.history_: pd.DataFrame | None = None
        self._check_params()

    # ------------------------------------------------------------------ parameters
    @property
    def _nb_targets(self) -> int:
        for value in (self.reference_inputs, self.trigger, self.target):
            if isinstance(value, (list, tuple)):
                return len(value)
        return 1

    @staticmethod
    def _as_list(value, n: int) -> list:
        return list(value) if isinstance(value, (list, tuple)) else [value] * n

    @property
    def triggers(self) -> list[Trigger]:
        """The trigger of each target (defaults filled in)."""
        shape = tuple(self.estimator.input_shape)
        if self.trigger is None:
            return [
                square_trigger(shape, corner=c)
                for c in ("bottom_right", "bottom_left", "top_right", "top_left")[: self._nb_targets]
            ]
        return self._as_list(self.trigger, self._nb_targets)

    def _check_params(self) -> None:
        n = self._nb_targets
        for name in ("reference_inputs", "trigger", "target"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)) and len(value) != n:
                raise ValueError(f"`{name}` gives {len(value)} targets but another parameter gives {n}.")
        if n < 1:
            raise ValueError("At least one target is needed (empty lists given).")
        if self.trigger is None and n > 4:
            raise ValueError("Default triggers exist for up to 4 targets (one per corner); pass `trigger` for more.")
        shape = tuple(self.estimator.input_shape)
        for trig in self._as_list(self.trigger, n):
            if trig is not None and not isinstance(trig, Trigger):
                raise TypeError(f"`trigger` must be an art_ssl Trigger (square_trigger), got {type(trig).__name__}.")
            if trig is not None and trig.input_shape != shape:
                raise ValueError(f"`trigger` has shape {trig.input_shape}, the encoder takes {shape}.")
        if self.reference_inputs is not None:
            for i, ref in enumerate(self._as_list(self.reference_inputs, n)):
                check_images(ref, f"reference_inputs[{i}]", shape, self.estimator.clip_values)
        for t in self._as_list(self.target, n):
            if t is not None and (isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0):
                raise ValueError(f"`target` must be a non-negative int class (or None), got {t!r}.")
        for name in ("lambda1", "lambda2", "momentum", "weight_decay"):
            check_positive_number(name, getattr(self, name), allow_zero=True)
        check_positive_number("learning_rate", self.learning_rate)
        check_positive_int("nb_epochs", self.nb_epochs)
        check_positive_int("batch_size", self.batch_size)
        check_bool("augment_reference", self.augment_reference)
        check_bool("reference_crop", self.reference_crop)
        check_bool("verbose", self.verbose)
        check_seed(self.seed)

    # ------------------------------------------------------------------ public API
    def apply_trigger(self, x: np.ndarray, target_index: int = 0) -> np.ndarray:
        """Stamp the trigger of target ``target_index`` on images ``x`` (N, C, H, W)."""
        triggers = self.triggers
        if (
            isinstance(target_index, bool)
            or not isinstance(target_index, (int, np.integer))
            or not (0 <= target_index < len(triggers))
        ):
            raise ValueError(f"`target_index` must be an int in [0, {len(triggers)}), got {target_index!r}.")
        x = check_images(x, "x", self.estimator.input_shape, self.estimator.clip_values)
        return triggers[target_index].apply(x)

    def poison(
        self, x: np.ndarray, y: np.ndarray | None = None, target_index: int = 0, **kwargs
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """
        Test-time backdoor inputs: ``x`` with the trigger of target ``target_index``, labelled with that target's
        class (``target``), or ``y`` unchanged when no ``target`` was given.
        """
        if kwargs:
            raise TypeError(f"Unexpected arguments: {sorted(kwargs)}.")
        x_poison = self.apply_trigger(x, target_index)
        target = self._as_list(self.target, self._nb_targets)[target_index]
        return x_poison, (y if target is None else np.full(len(x_poison), target, dtype=np.int64))

    def poison_estimator(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> PyTorchEncoder:
        """
        Backdoor a copy of the encoder with shadow data ``x`` (unlabelled; ``y`` is ignored).

        :param x: Shadow images (N, C, H, W) in the encoder's clip range.
        :return: The backdoored encoder, an ART ``PyTorchEncoder`` with the clean one's settings; the per-epoch
                 losses are in ``history_``.
        """
        if kwargs:
            raise TypeError(f"Unexpected arguments: {sorted(kwargs)}.")
        encoder: PyTorchEncoder = self.estimator
        x = check_images(x, "x", encoder.input_shape, encoder.clip_values)
        with scoped_seed(self.seed) as generator:  # kornia's augmentations draw from the global generator
            backdoored = self._poison(encoder, x, generator)
        return encoder.with_model(backdoored)

    def _poison(self, encoder: PyTorchEncoder, x: np.ndarray, generator: torch.Generator) -> nn.Module:
        """The fine-tuning of eq. 4; returns the backdoored copy of the encoder's model."""
        references = self._references(x, generator)
        self.reference_inputs_ = references
        device = encoder.device
        clean = encoder.model
        backdoored = copy.deepcopy(clean).to(device)
        x_t = torch.from_numpy(x)
        refs = [torch.from_numpy(r).to(device) for r in references]
        triggers = self.triggers
        channels, height, width = encoder.input_shape
        augment = reference_augmentation((height, width), channels, self.reference_crop).to(device)

        def embed(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
            return F.normalize(pixel_forward(encoder, batch, model=model).flatten(1), dim=1)

        with evaluating(clean), torch.no_grad():
            clean_refs = [embed(clean, r) for r in refs]
        freeze_batchnorm(backdoored)
        distributed.broadcast_module(backdoored)  # data-parallel: every rank starts from rank 0's weights
        shards = distributed.BatchShards(len(x_t), self.batch_size)  # data-parallel: this rank's part of each batch
        params = [p for p in backdoored.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(
            params, lr=self.learning_rate, momentum=self.momentum, weight_decay=self.weight_decay
        )

        def start_epoch(epoch: int) -> None:
            backdoored.train()
            freeze_batchnorm(backdoored)

        def step(idx: torch.Tensor, _: Step) -> tuple[np.ndarray, int]:
            xb = x_t[shards.local(idx)].to(device)  # data-parallel: all of it on one process
            with torch.no_grad(), evaluating(clean):
                clean_x = embed(clean, xb)
            loss0 = loss1 = xb.new_zeros(())  # sums over the targets (as 0.0 would, kept a tensor)
            for trig, ref, clean_ref in zip(triggers, refs, clean_refs, strict=True):
                feat_bd = embed(backdoored, trig.apply_torch(xb))
                feat_ref = embed(backdoored, ref)
                loss0 = loss0 - (feat_bd @ feat_ref.t()).mean()  # over every (shadow, reference) pair
                ref_view = augment(ref) if self.augment_reference else ref
                loss1 = loss1 - (embed(backdoored, ref_view) * clean_ref).sum(1).mean()
            loss0, loss1 = loss0 / len(refs), loss1 / len(refs)
            loss2 = -(embed(backdoored, xb) * clean_x).sum(1).mean()
            loss = loss0 + self.lambda1 * loss1 + self.lambda2 * loss2
            optimizer.zero_grad(set_to_none=True)
            (loss * shards.weight).backward()  # data-parallel: this rank's share (BatchNorm is frozen)
            distributed.sync_gradients(params)  # data-parallel: sum of the shares
            optimizer.step()
            return torch.stack([loss, loss0, loss1, loss2]).detach().cpu().numpy(), len(xb)

        def end_epoch(epoch: int, values: list[tuple[np.ndarray, int]], seconds: float) -> dict[str, float]:
            sums, count = np.zeros(4), 0
            for losses, size in values:
                sums += size * losses
                count += size
            *totals, total = distributed.sum_over_ranks(*sums, count)  # data-parallel: the global epoch losses
            sums = np.asarray(totals)
            row = {"epoch": epoch, **dict(zip(("loss", "loss0", "loss1", "loss2"), sums / total, strict=True))}
            row["seconds"] = seconds
            logger.info("BadEncoder epoch %d: %s", epoch, row)
            return row

        loop = run_epochs(
            n=len(x_t),
            batch_size=self.batch_size,
            nb_epochs=self.nb_epochs,
            generator=generator,
            step=step,
            start_epoch=start_epoch,
            end_epoch=end_epoch,
            desc="BadEncoder",
            verbose=self.verbose,
        )
        backdoored.eval()
        self.history_ = pd.DataFrame(loop.rows)
        return backdoored

    def _references(self, x: np.ndarray, generator: torch.Generator) -> list[np.ndarray]:
        if self.reference_inputs is not None:
            refs = self._as_list(self.reference_inputs, self._nb_targets)
            return [check_images(r, "reference_inputs", self.estimator.input_shape) for r in refs]
        picks = torch.randperm(len(x), generator=generator)[: self._nb_targets].numpy()
        return [x[i : i + 1].copy() for i in picks]
