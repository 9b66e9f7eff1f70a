"""
Gen-AF: Zhou et al., "Securely Fine-tuning Pre-trained Encoders Against Adversarial Examples", IEEE S&P 2024
(official code: github.com/CGCL-codes/Gen-AF).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from art.estimators.classification import PyTorchClassifier
from torch import nn
from tqdm.auto import tqdm

from art_ssl.core.batching import map_batches
from art_ssl.core.checks import check_fraction, check_positive_int, check_positive_number
from art_ssl.core.distributed import BatchShards, gather_with_local_grad, sum_tensors_over_ranks, world_size
from art_ssl.core.driver import epoch_batches
from art_ssl.core.modes import evaluating
from art_ssl.core.robust_losses import GR_REDUCTIONS, genetic_regularization
from art_ssl.defences.trainer.base import MILESTONE_PARAMS, EncoderHeadTrainer
from art_ssl.defences.trainer.warm_start import (
    EPS_WARMUP_FRACTION,
    EpsWarmup,
    check_eps_warmup_fraction,
    check_head_init,
    with_warm_start,
)

GRAPH_ON = ("logits", "features")
STAGES = (1, 2)
SENSITIVITY_STARTS = ("zero", "original")
# What the official code does where art_ssl's defaults differ (GenAFTrainer.official).
logger = logging.getLogger(__name__)

OFFICIAL = {
    "gr_reduction": "sum",
    "head_init": "random",
    "sensitivity_start": "zero",
    "lambda_gr": 20.0,
    "eps_warmup_fraction": 0.0,
}


def check_lambda_gr(lambda_gr: object) -> None:
    """``lambda_gr`` of Gen-AF (and of ZePAD's Gen-AF fine-tuning): a finite number >= 0 or ``"auto"``.

    :raises ValueError: naming ``lambda_gr``.
    """
    if isinstance(lambda_gr, str) and lambda_gr != "auto":
        raise ValueError(f"`lambda_gr` must be a finite number >= 0 or 'auto', got {lambda_gr!r}.")
    if lambda_gr != "auto":
        check_positive_number("lambda_gr", lambda_gr, allow_zero=True)


class GenAFTrainer(EpsWarmup, EncoderHeadTrainer):
    """
    Gen-AF's two stages; run both (default) or either alone with ``stages``.

    **Stage 1, genetic-driven dual-track adversarial fine-tuning.** Per batch, PGD on the cross-entropy from the
    clean image (no random start; eps 0.03, step 0.007, 10 steps, eval mode), then
    ``CE(f(x_adv), y) + lambda_gr * L_gr`` where ``L_gr`` (:func:`~art_ssl.core.robust_losses.genetic_regularization`)
    compares the clean outputs' graph with the label-adjusted graph of the adversarial outputs, weighted by the
    per-sample clean loss. ``graph_on="logits"`` is what the official code does; ``"features"`` builds the graphs
    on the encoder's embeddings, as the paper's figure draws it. Two Adam optimisers (the dual track): encoder
    1e-4, head 5e-3, weight decay 8e-4, each with ``ExponentialLR(0.96)`` per epoch.

    **Stage 2, evolutionary adaptability fine-tuning.** PGD examples (eps 8/255, step 2/255, 10 steps, uniform
    start) of ``sensitivity_samples`` training images form a robustness probe set. For each ``Conv2d``/``Linear``
    weight alone, ``sensitivity_epochs`` passes of gradient *ascent* (SGD, ``sensitivity_lr``) on the probe set's
    cross-entropy, projected after each pass to ``||W - W0|| <= sensitivity_radius * ||W0||``; the sensitivity is
    the largest loss reached minus the original loss (``layer_sensitivity_``); as the official code, the running
    maximum starts at 0 (``sensitivity_start="zero"``), so a layer whose ascent only lowers the loss scores
    negative; ``"original"`` starts it at the original loss (scores clipped at 0, art_ssl's pre-issue-16 rule; the
    ranking, hence the selected layers, can differ). The ``trainable_fraction`` least
    sensitive layers (``trainable_layers_``) are then fine-tuned alone on clean data (Adam 1e-3, weight decay
    8e-4, ``stage2_epochs``; the official code re-creates Adam every epoch, ``reset_stage2_optimizer``).

    **Data-parallel training** (``torchrun``, :mod:`art_ssl.core.distributed`): the ``L_gr`` graph is built over the
    global batch (outputs, labels and clean losses all-gathered, each rank's rows keeping their gradient), as one
    process builds it, so every ``gr_reduction`` keeps its scale. Stage 2's layer sensitivity runs whole,
    identically, on every rank; its fine-tuning is data-parallel.

    **Balance of the stage-1 loss (deviation from the official code, issue 16).** The official ``L_gr`` is summed
    over the batch's n^2 pairs (``gr_reduction="sum"``) while CE is a batch mean: at lambda 20 and batch 256 on
    10-d logits its gradient is ~3,400x CE's on the head and ~760x on the encoder, where it points against clean CE
    (cosine -0.37); under Adam the label signal is lost and the official loop, run on our encoders, ends its first
    epoch near chance. Measured (one stage-1 epoch, simclr_r18, 2,000 Fashion-MNIST images, PGD-5; validation BA /
    white-box PGD accuracy on 300 test images; ``evaluations/results/genaf_balance.md``): official 0.197 / 0.030;
    ``gr_reduction="batchmean"`` 0.290 / 0.117; head fitted on clean data first (``head_init="probe"``, LP-FT, as
    ZePAD trains its heads) 0.677 / 0.053; both 0.407 / 0.163; TRADES at the same budget 0.677 / 0.077. At a
    budget where the curves flatten (H200, 20,000 images, PGD-10, 15 epochs, stage 1;
    ``evaluations/results/gpu_h200/curves.md``) the head warm start alone ends at 0.842 / 0.559 and
    ``lambda_gr="auto"`` (the weight at which ``L_gr``'s gradient starts equal to CE's, :meth:`balanced_lambda`)
    at 0.828 / 0.755; TRADES 0.852 / 0.788, PGD-AT 0.849 / 0.790, MART 0.819 / 0.779. ``lambda_gr="auto"`` is
    therefore the default (a deviation, measured); at our scale it stays below TRADES (-2.4 points BA, -3.3 RA), so
    the paper's claim that Gen-AF beats TRADES does not reproduce here. ``gr_reduction`` (per-sample
    ``"batchmean"``, per-pair ``"mean"``) stays an option. :meth:`official` (``head_init="random"``,
    ``lambda_gr=20``, no warm-up) is the official recipe.

    **Budget warm-up of stage 1 (deviation from the official code, issue 16, digits).** With the full budget from the
    first step, stage 1 collapses on scikit-learn digits as PGD-AT and MART do (:mod:`~.warm_start`: the budget is out
    of proportion to the class signal in the zoo encoders' features): with the pre-warm-up defaults (probe head,
    ``lambda_gr="auto"``) both zoo encoders end as constant predictors (``defences_64``: BA 0.100 / 0.102).
    ``eps_warmup_fraction`` ramps stage 1's PGD budget step by step over that fraction of its steps, as for PGD-AT and
    MART. Measured (stage 1, all 1,257 digits, 10 epochs, PGD-5 at eps 0.03, validation BA / white-box PGD-5 RA on 300
    test images, seed 0; ``evaluations/results/genaf_curves_digits_warmup.md`` and ``genaf_curves_digits_levers.md``),
    simclr_r18 / barlow_twins_r18: probe head, no warm-up 0.100 / 0.100 and 0.100 / 0.100; probe head, warm-up 0.8:
    0.300 / 0.047 and 0.793 / 0.323 (0.5: 0.100 / 0.100 and 0.643 / 0.103); random head, no warm-up 0.100 / 0.100 and
    0.100 / 0.100; **random head, warm-up 0.8: 0.797 / 0.507 and 0.893 / 0.607** (seed 1: 0.843 / 0.510 and 0.940 /
    0.630; the probe head 0.320 / 0.100 on simclr_r18). The clean-probe head, chosen before the warm-up existed to
    protect the label signal from the full budget at the first steps, hurts once the budget ramps: its confident logits
    give the first adversarial batches a large loss (as for PGD-AT, ``evaluations/results/digits_collapse_probes.md``:
    ``probe_ramp20``). On Fashion-MNIST (2,000 images, 3 epochs; ``evaluations/results/genaf_curves_fmnist_warmup.md``)
    the new defaults are not worse: 0.700 / 0.443 against 0.593 / 0.360 with the old ones on simclr_r18, 0.687 / 0.430
    against 0.607 / 0.370 on barlow_twins_r18. art_ssl's defaults are therefore ``eps_warmup_fraction=0.8`` (as PGD-AT
    and MART) and ``head_init="random"`` (as the official code); ``head_init="probe"`` stays an option. Not measured at
    the H200 budget above, where the probe head was used.

    Deliberate differences from the official code (each a bug there, not a design choice): PGD here runs on the
    normalised model that is trained (the official PGD skips the normalisation); PGD's parameter gradients are not
    added to the update; the probe set is made from the training data (the official code hard-codes STL-10); the
    sensitivity PGD step is 2/255 (officially 2/225, a typo); a layer is selected by its exact module name (the
    official substring match also unfreezes every ``layerN.0.conv1`` when ``conv1`` is selected).

    :param classifier: ART ``PyTorchClassifier`` whose model is an ``EncoderWithHead`` (the official head is
                       ``encoder_classifier(..., head=MLPHead(d, C, (512, 512), dropout=0.2))``); trained in place.
    :param stages: ``(1, 2)``, ``(1,)`` or ``(2,)``.
    :param nb_epochs: Stage-1 epochs (50 officially).
    :param lambda_gr: Weight of ``L_gr`` (official: 20), or ``"auto"`` (default): chosen before stage 1 so that
                      ``L_gr``'s gradient starts at ``gr_balance`` times CE's (:meth:`balanced_lambda`); the weight
                      used is ``lambda_gr_`` after :meth:`fit`.
    :param graph_on: ``"logits"`` or ``"features"``.
    :param gr_temperature: Divisor inside ``L_gr``'s tanh (32).
    :param gr_margin: ``L_gr``'s label adjustment (2).
    :param stage2_epochs: Stage-2 epochs (50).
    :param stage2_lr: Stage-2 Adam learning rate (1e-3).
    :param stage2_weight_decay: Stage-2 weight decay (8e-4).
    :param trainable_fraction: Fraction of layers kept trainable in stage 2 (0.2; at least one layer).
    :param sensitivity_samples: Training images turned into the probe set (the official STL-10 set has 5,000).
    :param sensitivity_eps: Probe PGD budget.
    :param sensitivity_step_size: Probe PGD step.
    :param sensitivity_pgd_steps: Probe PGD steps.
    :param sensitivity_radius: Relative radius of the weight ball (0.1).
    :param sensitivity_lr: Ascent learning rate (1.0).
    :param sensitivity_epochs: Ascent passes per layer (10).
    :param sensitivity_batch_size: Batch of the ascent (512).
    :param reset_stage2_optimizer: Re-create stage 2's Adam at every epoch, as the official code.
    :param gr_reduction: ``L_gr`` summed over pairs (``"sum"``, official, default), per sample (``"batchmean"``) or
                         per pair (``"mean"``); see :func:`~art_ssl.core.robust_losses.genetic_regularization`.
    :param head_init: ``"random"`` (default, official): the head as given; ``"probe"``: fit the head on clean data,
                      encoder frozen, for ``head_init_epochs`` before stage 1 (or stage 2 alone; LP-FT, the default
                      before the budget warm-up, which it hurts: see above).
    :param head_init_epochs: Epochs of that head fit (10).
    :param sensitivity_start: ``"zero"`` (official) or ``"original"``: where stage 2's running maximum starts.
    :param gr_balance: With ``lambda_gr="auto"``: the ratio of ``lambda_gr * ||grad L_gr||`` to ``||grad CE||`` at
                       the start of stage 1 (1).
    :param eps_warmup_epochs: Stage 1's PGD budget grows linearly over these first epochs (0: none; see
                              :mod:`~.warm_start`).
    :param eps_warmup_fraction: Stage 1's PGD budget (``eps`` and ``step_size``) grows linearly, step by step, over
                                this fraction of stage 1's optimiser steps (:func:`~.warm_start.eps_ramp`); 0.8 by
                                default (0: the official recipe; see above); validation, ``lambda_gr="auto"``'s
                                measurement and stage 2's probe set always use their full budgets.

    Other parameters as :class:`~art_ssl.defences.trainer.FineTuningTrainer`.
    """

    # Read by stage 2 only (and ``stages``, which says whether it runs): the head warm start's and stage 1's
    # checkpoints do not depend on them, so a run with a longer stage 2 resumes a finished stage 1.
    STAGE2_PARAMS = (
        "stages",
        "stage2_epochs",
        "stage2_lr",
        "stage2_weight_decay",
        "trainable_fraction",
        "sensitivity_samples",
        "sensitivity_eps",
        "sensitivity_step_size",
        "sensitivity_pgd_steps",
        "sensitivity_radius",
        "sensitivity_lr",
        "sensitivity_epochs",
        "sensitivity_batch_size",
        "sensitivity_start",
        "reset_stage2_optimizer",
    )
    trainer_params = EncoderHeadTrainer.trainer_params + [
        *MILESTONE_PARAMS,
        "lambda_gr",
        "graph_on",
        "gr_temperature",
        "gr_margin",
        "gr_reduction",
        "head_init",
        "head_init_epochs",
        "gr_balance",
        "eps_warmup_epochs",
        "eps_warmup_fraction",
        *STAGE2_PARAMS,
    ]

    head_init_history_: pd.DataFrame | None = None  # the head warm start's epochs (``head_init="probe"``)

    def __init__(
        self,
        classifier: PyTorchClassifier,
        stages: tuple[int, ...] = (1, 2),
        nb_epochs: int = 50,
        batch_size: int = 256,
        encoder_lr: float = 1e-4,
        head_lr: float = 5e-3,
        weight_decay: float = 8e-4,
        lr_decay: float = 0.96,
        eps: float = 0.03,
        step_size: float = 0.007,
        pgd_steps: int = 10,
        lambda_gr: float | str = "auto",
        graph_on: str = "logits",
        gr_temperature: float = 32.0,
        gr_margin: float = 2.0,
        stage2_epochs: int = 50,
        stage2_lr: float = 1e-3,
        stage2_weight_decay: float = 8e-4,
        trainable_fraction: float = 0.2,
        sensitivity_samples: int = 5000,
        sensitivity_eps: float = 8 / 255,
        sensitivity_step_size: float = 2 / 255,
        sensitivity_pgd_steps: int = 10,
        sensitivity_radius: float = 0.1,
        sensitivity_lr: float = 1.0,
        sensitivity_epochs: int = 10,
        sensitivity_batch_size: int = 512,
        reset_stage2_optimizer: bool = True,
        validation_pgd_steps: int = 10,
        amp: bool | str = "auto",
        channels_last: bool = True,
        seed: int = 0,
        verbose: bool = True,
        gr_reduction: str = "sum",
        head_init: str = "random",
        head_init_epochs: int = 10,
        sensitivity_start: str = "zero",
        gr_balance: float = 1.0,
        eps_warmup_epochs: int = 0,
        eps_warmup_fraction: float = EPS_WARMUP_FRACTION,
        lr_milestones: Sequence[int] = (),
        lr_milestone_factor: float = 0.1,
    ) -> None:
        self.gr_balance = gr_balance
        self.eps_warmup_epochs = eps_warmup_epochs
        self.eps_warmup_fraction = eps_warmup_fraction
        self.lambda_gr_: float | None = None
        self.gr_reduction = gr_reduction
        self.head_init = head_init
        self.head_init_epochs = head_init_epochs
        self.sensitivity_start = sensitivity_start
        self.stages = tuple(stages) if isinstance(stages, (tuple, list)) else stages
        self.lambda_gr = lambda_gr
        self.graph_on = graph_on
        self.gr_temperature = gr_temperature
        self.gr_margin = gr_margin
        self.stage2_epochs = stage2_epochs
        self.stage2_lr = stage2_lr
        self.stage2_weight_decay = stage2_weight_decay
        self.trainable_fraction = trainable_fraction
        self.sensitivity_samples = sensitivity_samples
        self.sensitivity_eps = sensitivity_eps
        self.sensitivity_step_size = sensitivity_step_size
        self.sensitivity_pgd_steps = sensitivity_pgd_steps
        self.sensitivity_radius = sensitivity_radius
        self.sensitivity_lr = sensitivity_lr
        self.sensitivity_epochs = sensitivity_epochs
        self.sensitivity_batch_size = sensitivity_batch_size
        self.reset_stage2_optimizer = reset_stage2_optimizer
        self.layer_sensitivity_: dict[str, float] | None = None
        self.trainable_layers_: list[str] | None = None
        super().__init__(
            classifier,
            nb_epochs,
            batch_size,
            encoder_lr,
            head_lr,
            weight_decay,
            lr_decay,
            True,
            eps,
            step_size,
            pgd_steps,
            None,
            validation_pgd_steps,
            amp,
            channels_last,
            seed,
            verbose,
            lr_milestones=lr_milestones,
            lr_milestone_factor=lr_milestone_factor,
        )

    @classmethod
    def official(cls, classifier: PyTorchClassifier, **kwargs) -> GenAFTrainer:
        """
        The official code's recipe (``gr_reduction="sum"``, ``head_init="random"``, ``sensitivity_start="zero"``,
        ``lambda_gr=20``, ``eps_warmup_fraction=0``,
        and the official defaults of every other constant); ``kwargs`` override any of them (e.g. ``nb_epochs``).
        On our small encoders its stage 1 stalls at chance (see the class docstring).
        """
        return cls(classifier, **{**OFFICIAL, **kwargs})

    def _check_params(self) -> None:
        super()._check_params()
        if (
            not isinstance(self.stages, tuple)
            or not self.stages
            or not set(self.stages) <= set(STAGES)
            or len(set(self.stages)) != len(self.stages)
        ):
            raise ValueError(f"`stages` must be (1, 2), (1,) or (2,), got {self.stages!r}.")
        if self.graph_on not in GRAPH_ON:
            raise ValueError(f"`graph_on` must be one of {GRAPH_ON}, got {self.graph_on!r}.")
        check_lambda_gr(self.lambda_gr)
        check_positive_number("gr_balance", self.gr_balance)
        for name in (
            "gr_temperature",
            "gr_margin",
            "stage2_lr",
            "sensitivity_eps",
            "sensitivity_step_size",
            "sensitivity_radius",
            "sensitivity_lr",
        ):
            check_positive_number(name, getattr(self, name))
        check_positive_number("stage2_weight_decay", self.stage2_weight_decay, allow_zero=True)
        check_fraction("trainable_fraction", self.trainable_fraction)
        for name in (
            "stage2_epochs",
            "sensitivity_samples",
            "sensitivity_pgd_steps",
            "sensitivity_epochs",
            "sensitivity_batch_size",
        ):
            check_positive_int(name, getattr(self, name))
        if self.gr_reduction not in GR_REDUCTIONS:
            raise ValueError(f"`gr_reduction` must be one of {GR_REDUCTIONS}, got {self.gr_reduction!r}.")
        check_head_init(self.head_init, self.head_init_epochs, self.eps_warmup_epochs)
        check_eps_warmup_fraction(self.eps_warmup_fraction)
        if self.sensitivity_start not in SENSITIVITY_STARTS:
            raise ValueError(
                f"`sensitivity_start` must be one of {SENSITIVITY_STARTS}, got {self.sensitivity_start!r}."
            )
        if not isinstance(self.reset_stage2_optimizer, bool):
            raise ValueError(f"`reset_stage2_optimizer` must be a bool, got {self.reset_stage2_optimizer!r}.")

    # ------------------------------------------------------------------ stage 1
    def _batch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ce, l_gr = self._stage1_terms(x, y)
        assert self.lambda_gr_ is not None  # set by _run before stage 1
        return ce + self.lambda_gr_ * l_gr

    def _stage1_terms(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 1's two loss terms on one batch: ``CE(f(x_adv), y)`` and ``L_gr`` (in data-parallel training, this
        rank's share of ``L_gr`` over the global batch; see below)."""
        x_adv = self._ce_pgd(x, y)
        feats_adv, logits_adv = self._features_and_logits(x_adv)
        feats_clean, logits_clean = self._features_and_logits(x)
        sample_loss = F.cross_entropy(logits_clean, y, reduction="none")
        reference, adjusted = (logits_clean, logits_adv) if self.graph_on == "logits" else (feats_clean, feats_adv)
        ce = F.cross_entropy(logits_adv, y)
        if self._shard_rows is None:
            l_gr = genetic_regularization(
                reference, adjusted, y, sample_loss, self.gr_temperature, self.gr_margin, reduction=self.gr_reduction
            )
            return ce, l_gr
        # data-parallel: the graph over the global batch (all-gathered, this rank's rows keep their gradient), the same
        # L_gr on every rank. The loop weights this rank's loss by its share and sums the ranks' gradients: the
        # gradient term is L_gr / share (its local rows' exact gradient, once), the value L_gr / (world * share) (the
        # logged epoch loss counts L_gr once).
        reference, adjusted, y_graph, sample_loss = gather_with_local_grad(reference, adjusted, y, sample_loss)
        l_gr = genetic_regularization(
            reference, adjusted, y_graph, sample_loss, self.gr_temperature, self.gr_margin, reduction=self.gr_reduction
        )
        share = len(x) / self._shard_rows[1]
        graph = (l_gr - l_gr.detach()) / share + l_gr.detach() / (world_size() * share)
        return ce, graph

    def balanced_lambda(self, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
        """
        ``lambda_gr="auto"``: the weight at which ``L_gr``'s gradient starts at ``gr_balance`` times CE's, over
        every trainable parameter (encoder and head), on one batch of ``batch_size`` training images drawn with a
        generator seeded by ``seed`` (so a resumed run finds the same weight), at the full PGD budget (with
        ``eps_warmup_fraction``, the weight that balances the terms once the warm-up ends; the warm-up changes the
        budget schedule, not the weight). The model's BatchNorm statistics are restored afterwards: the measurement
        changes nothing.

        Why (issue 16): the official ``lambda_gr=20`` with ``L_gr`` summed over n^2 pairs starts ~3,400x CE on the
        head of our encoders, and the label signal is lost; a fixed ratio at the start keeps both terms in play
        whatever the batch size, reduction or logit scale.
        """
        pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))[:batch_size]
        # data-parallel: measured as a training step is, each rank on its rows of the one global batch (its global
        # BatchNorm statistics, dropout masks and random starts, then the ranks' gradients summed); measured on the
        # whole batch by every rank, the global layers would take each rank's copy for a shard (issue 16's CI
        # failure: the weight differed between the ranks and from one process)
        shards = BatchShards(len(pick), len(pick))
        local = shards.local(pick.to(self.device))
        xb, yb = x[local], y[local]
        buffers = {name: b.detach().clone() for name, b in self.model.named_buffers()}
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.model.train()
        self._shard_rows = shards.rows
        try:
            with self._autocast():
                ce, l_gr = self._stage1_terms(xb, yb)
            g_ce = torch.autograd.grad(ce * shards.weight, params, retain_graph=True, allow_unused=True)
            g_gr = torch.autograd.grad(l_gr * shards.weight, params, allow_unused=True)
        finally:
            self._shard_rows = None
        sum_tensors_over_ranks([g for grads in (g_ce, g_gr) for g in grads if g is not None])
        for name, b in self.model.named_buffers():
            b.copy_(buffers[name])
        norm_ce, norm_gr = (
            # summed from a zero tensor (not 0): a tensor even when no parameter got a gradient
            torch.sqrt(
                sum(((g.float() ** 2).sum() for g in grads if g is not None), torch.zeros((), device=self.device))
            )
            for grads in (g_ce, g_gr)
        )
        if not torch.isfinite(norm_ce) or not torch.isfinite(norm_gr) or norm_gr == 0:
            raise FloatingPointError(
                f"`lambda_gr='auto'`: gradient norms CE {float(norm_ce):.3g}, L_gr {float(norm_gr):.3g}; "
                "give `lambda_gr` a number."
            )
        return float(self.gr_balance * norm_ce / norm_gr)

    def _features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.encoder(self._preprocess(x))
        return features, self.model.head(features)

    def _loop_params(self, stage: str | None) -> list[str]:
        names = super()._loop_params(stage)
        return names if stage == "2" else [n for n in names if n not in self.STAGE2_PARAMS]

    # ------------------------------------------------------------------ the stages
    def _run(self, x, y, val, nb_epochs: int, batch_size: int, verbose: bool) -> pd.DataFrame:
        """Stage 1 and/or stage 2 as selected; the history gets a ``stage`` column."""
        return with_warm_start(self, self._stages, x, y, val, nb_epochs, batch_size, verbose)

    def _stages(self, x, y, val, nb_epochs: int, batch_size: int, verbose: bool) -> pd.DataFrame:
        histories = []
        if 1 in self.stages:
            self.model.freeze_encoder = False
            auto = self.lambda_gr == "auto"
            self.lambda_gr_ = self.balanced_lambda(x, y, batch_size) if auto else float(self.lambda_gr)
            if auto:
                logger.info("Gen-AF: lambda_gr='auto' -> %.4g", self.lambda_gr_)
            optimizers = self._optimizers(self.encoder_lr, self.head_lr, self.weight_decay)
            histories.append(
                self._train(x, y, val, nb_epochs, batch_size, verbose, self._batch_loss, optimizers, stage="1")
            )
        if 2 in self.stages:
            histories.append(self._stage2(x, y, val, batch_size, verbose))
        return pd.concat(histories, ignore_index=True)

    # ------------------------------------------------------------------ stage 2
    def _stage2(self, x: torch.Tensor, y: torch.Tensor, val, batch_size: int, verbose: bool) -> pd.DataFrame:
        self.model.freeze_encoder = False
        pick = torch.randperm(len(x), generator=self._generator)[: self.sensitivity_samples].to(self.device)
        x_probe, y_probe = x[pick], y[pick]
        x_probe = map_batches(
            lambda xb, yb: self._ce_pgd(
                xb,
                yb,
                eps=self.sensitivity_eps,
                step_size=self.sensitivity_step_size,
                steps=self.sensitivity_pgd_steps,
                random_start="uniform",
            ),
            x_probe,
            y_probe,
            batch_size=batch_size,
        )
        sensitivity = self.layer_sensitivity_ = self.layer_sensitivity(x_probe, y_probe, verbose)
        n_keep = max(1, int(self.trainable_fraction * len(sensitivity)))
        self.trainable_layers_ = sorted(sensitivity, key=sensitivity.__getitem__)[:n_keep]
        modules = dict(self.model.named_modules())
        self.model.requires_grad_(False)
        for name in self.trainable_layers_:
            modules[name].requires_grad_(True)
        params = [p for p in self.model.parameters() if p.requires_grad]

        def new_optimizer() -> dict[str, torch.optim.Optimizer]:
            return {"stage2": torch.optim.Adam(params, lr=self.stage2_lr, weight_decay=self.stage2_weight_decay)}

        try:
            return self._train(
                x,
                y,
                val,
                self.stage2_epochs,
                batch_size,
                verbose,
                lambda xb, yb: F.cross_entropy(self._logits(xb), yb),
                new_optimizer(),
                stage="2",
                reset_optimizers=new_optimizer if self.reset_stage2_optimizer else None,
                lr_decay=1.0,
                lr_milestones=(),  # a constant rate, as the official stage 2; the milestones are stage 1's
            )
        finally:
            self.model.requires_grad_(True)

    def layer_sensitivity(
        self, x_probe: torch.Tensor, y_probe: torch.Tensor, verbose: bool = False
    ) -> dict[str, float]:
        """
        Robust sensitivity of every ``Conv2d``/``Linear`` weight of the model: how far the probe set's mean
        cross-entropy can be raised by moving that weight alone within its relative ball (Gen-AF stage 2).

        :param x_probe: Adversarial probe images (torch, on the device).
        :param y_probe: Their labels.
        :return: ``{module name: max loss - original loss}``.
        """
        model = self.model
        layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        flags = {p: p.requires_grad for p in model.parameters()}
        bs = self.sensitivity_batch_size
        sensitivity = {}
        try:
            model.requires_grad_(False)
            with evaluating(model):
                original = self._mean_loss(x_probe, y_probe, bs)
                start = 0.0 if self.sensitivity_start == "zero" else original
                for name, module in tqdm(layers, desc="Gen-AF layer sensitivity", disable=not verbose, leave=False):
                    weight = module.weight
                    w0 = weight.detach().clone()
                    weight.requires_grad_(True)
                    worst = start
                    for _ in range(self.sensitivity_epochs):
                        for idx in epoch_batches(len(x_probe), batch_size=bs, generator=self._generator):
                            idx = idx.to(self.device)
                            loss = F.cross_entropy(self._logits(x_probe[idx]), y_probe[idx])
                            (grad,) = torch.autograd.grad(loss, weight)
                            with torch.no_grad():
                                weight.add_(grad, alpha=self.sensitivity_lr)  # ascent on the robust loss
                        with torch.no_grad():
                            diff = weight - w0
                            ratio = float(diff.norm() / w0.norm().clamp_min(1e-12))
                            if ratio > self.sensitivity_radius:
                                weight.copy_(w0 + diff * (self.sensitivity_radius / ratio))
                        worst = max(worst, self._mean_loss(x_probe, y_probe, bs))
                    with torch.no_grad():
                        weight.copy_(w0)
                    weight.requires_grad_(False)
                    sensitivity[name] = worst - original
        finally:
            for p, flag in flags.items():
                p.requires_grad_(flag)
        return sensitivity

    @torch.no_grad()
    def _mean_loss(self, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
        batch_sums = map_batches(
            lambda xb, yb: F.cross_entropy(self._logits(xb), yb, reduction="sum").reshape(1),
            x,
            y,
            batch_size=batch_size,
        )
        return sum(batch_sums.tolist()) / len(x)  # the per-batch sums added in float64, in order
