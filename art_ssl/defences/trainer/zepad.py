"""
ZePAD: Lei, Yang, Zhang, "Zero-Loss Robustness for Pre-trained Encoders against Downstream-agnostic Adversarial
Examples" (ICLR 2026, arXiv 2602.11204; official code github.com/Lawliet0o/ZePAD).
"""

from __future__ import annotations

import copy
import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_ssl.core.checks import check_bool, check_images, check_labels, check_positive_int, check_positive_number
from art_ssl.core.fusion import FUSIONS
from art_ssl.core.probing import output_dim
from art_ssl.core.seeding import scoped_seed
from art_ssl.defences.trainer.base import EncoderHeadTrainer
from art_ssl.defences.trainer.finetune import FineTuningTrainer
from art_ssl.defences.trainer.genaf import GenAFTrainer, check_lambda_gr
from art_ssl.defences.trainer.mart import MARTTrainer
from art_ssl.defences.trainer.trades import TRADESTrainer

# ZePADModel and is_zepad_classifier live below the trainer and the detector; re-exported here, where they were
from art_ssl.defences.zepad_model import ZePADModel as ZePADModel
from art_ssl.defences.zepad_model import is_zepad_classifier as is_zepad_classifier
from art_ssl.estimators.classifier import encoder_classifier
from art_ssl.estimators.encoder import PyTorchEncoder
from art_ssl.models.heads import MLPHead

logger = logging.getLogger(__name__)

MPAE_TRAINERS = ("genaf", "trades", "mart", "pgd_at")
MPAE_HEADS = ("clean", "finetuned")
# BMP candidates when ``bmp_encoder="auto"``, in order of preference (the official build's BMP is SimCLR).
BMP_PREFERENCE = ("simclr_r18", "moco_r18", "barlow_twins_r18", "simclr_r18_s1")


class ZePADTrainer(EncoderHeadTrainer):
    """
    ZePAD's training: each MPAE encoder (the public victim encoder and ``auxiliary_encoder``, from another SSL
    method) is adversarially fine-tuned once, as Gen-AF stage 1 (``aft_epochs``, 20 in the official code), and its
    head is discarded; then every branch gets a new head trained on clean data with its encoder frozen (Adam 5e-3,
    weight decay 8e-4, ``ExponentialLR(0.96)``, ``head_epochs`` = 20): the two MPAE encoders and the BMP branch, a
    clean public encoder *other than the victim*, as the official code builds it (victim W-MSE, auxiliary BYOL, BMP
    SimCLR). A BMP branch on the victim's own clean encoder, the encoder the DAE was crafted on, is confidently
    fooled by it and drags the federal decision (our table: RA 0.349 with it, 0.426 without the BMP branch), so that
    build is kept only as the explicit ablation ``bmp_encoder="victim"`` (with a warning). :meth:`get_classifier`
    returns an ART ``PyTorchClassifier`` over the fused :class:`ZePADModel` (robust federal decision), so that every
    ART attack runs on it; :meth:`get_detector` the training-free DAE detector.

    **Gen-AF's balanced weight in the MPAE fine-tuning (deviation from the official code, issue 16).** The official
    ``lambda_gr=20`` on ``L_gr`` summed over the batch's pairs drowns the label signal at our scale (see
    :class:`GenAFTrainer`), and the MPAE encoders it leaves keep little robustness once their heads are retrained on
    clean data. Measured with ``evaluations/zepad_eval.py`` (victim simclr_r18, auxiliary barlow_twins_r18, BMP
    moco_r18, Fashion-MNIST 4,000 images, 3 fine-tuning epochs, PGD-5, DAEs at 10/255; results
    ``zepad_lambda20_64.md`` and ``zepad_64.md``): with 20 the fused model reaches BA 0.826 and RA 0.342 / 0.574 /
    0.412 under AdvEncoder / PAP-ugs / SSP; with ``"auto"`` BA 0.825 and RA 0.734 / 0.756 / 0.746 (0.89-0.92 of
    BA; the paper: 0.89). So ``lambda_gr="auto"`` is the default, as Gen-AF's.

    Under ``torchrun`` the training is data-parallel: each fine-tuning and each head is trained by an
    :class:`~art_ssl.defences.trainer.base.EncoderHeadTrainer` (global batches, summed gradients, global BatchNorm
    statistics and dropout masks), so every branch equals a single process's up to float32 rounding.

    Persistent robustness: after one :meth:`fit`, ``mpae_encoders_`` holds the fine-tuned encoders; pass them as
    ``mpae_encoders`` to a trainer for another task to train only new heads.

    :param classifier: ART ``PyTorchClassifier`` over an ``EncoderWithHead`` whose encoder is the public (victim)
                       encoder; neither is modified (the branches are copies).
    :param auxiliary_encoder: The second MPAE encoder (``nn.Module`` or ``PyTorchEncoder``), same input format.
    :param mpae_encoders: Already fine-tuned MPAE encoders to reuse (skips the adversarial fine-tuning).
    :param fusion: ``"federal"`` (default), ``"equal"`` or ``"entropy"``.
    :param k: Federal sharpness (3).
    :param use_bmp: Keep the BMP branch (``False``: ablation).
    :param use_auxiliary: Two MPAE encoders (``False``: the victim's only; ablation).
    :param aft_epochs: Epochs of the adversarial fine-tuning.
    :param head_epochs: Epochs of each head.
    :param lambda_gr: Gen-AF's regulariser weight during the fine-tuning: ``"auto"`` (default, Gen-AF's balanced weight,
                      :meth:`GenAFTrainer.balanced_lambda`, as :class:`GenAFTrainer` defaults to) or a number (the
                      official 20, which :meth:`official` keeps; see the deviation below).
    :param head_hidden: Hidden sizes of the heads (the official 512-512).
    :param head_dropout: Their dropout (0.2).
    :param detection_threshold: Confidence gap above which :meth:`get_detector` flags an input (0.1).
    :param bmp_encoder: The BMP branch's clean encoder (``nn.Module`` or ``PyTorchEncoder``, same input format), a zoo
                        name, ``"auto"`` (default: the first clean zoo encoder of :data:`BMP_PREFERENCE` with the
                        victim's input shape whose SSL method differs from the victim's and the auxiliary's when
                        they are zoo encoders, and whose weights differ from both; when none fits, e.g. another
                        input shape, the victim, with the warning) or ``"victim"`` (the clean victim encoder: the
                        pre-issue-16 build, not the official one; warns). An encoder equal to the victim warns too.
                        Chosen in :meth:`fit`; ``bmp_encoder_`` names it.
    :param mpae_trainer: Adversarial fine-tuning of the MPAE encoders: ``"genaf"`` (stage 1 of Gen-AF, the official
                         choice), ``"trades"``, ``"mart"`` or ``"pgd_at"``.
    :param mpae_options: Extra keyword arguments of that trainer (e.g. ``{"gr_reduction": "sum", "head_init":
                         "random"}`` for the official Gen-AF recipe; :meth:`official` sets them).

    :param mpae_heads: ``"clean"`` (default, the official build: each MPAE encoder gets a new head trained on clean
                       data with the encoder frozen) or ``"finetuned"`` (a deviation: keep the head that the
                       adversarial fine-tuning trained jointly with the encoder; needs that fine-tuning, so not with
                       ``mpae_encoders``).

    :param amp: Mixed precision of every sub-trainer (fine-tuning and heads), as
                :class:`~art_ssl.defences.trainer.FineTuningTrainer`'s.

    Other parameters as :class:`~art_ssl.defences.trainer.FineTuningTrainer`; ``eps``, ``step_size`` and
    ``pgd_steps`` are the adversarial fine-tuning's (Gen-AF's 0.03, 0.007, 10).
    """

    trainer_params = EncoderHeadTrainer.trainer_params + [
        "fusion",
        "k",
        "use_bmp",
        "use_auxiliary",
        "aft_epochs",
        "head_epochs",
        "lambda_gr",
        "head_hidden",
        "head_dropout",
        "detection_threshold",
        "bmp_encoder",
        "mpae_trainer",
        "mpae_options",
        "mpae_heads",
    ]

    def __init__(
        self,
        classifier: PyTorchClassifier,
        auxiliary_encoder: nn.Module | PyTorchEncoder | None = None,
        mpae_encoders: list[nn.Module] | None = None,
        fusion: str = "federal",
        k: float = 3.0,
        use_bmp: bool = True,
        use_auxiliary: bool = True,
        aft_epochs: int = 20,
        head_epochs: int = 20,
        batch_size: int = 256,
        encoder_lr: float = 1e-4,
        head_lr: float = 5e-3,
        weight_decay: float = 8e-4,
        lr_decay: float = 0.96,
        eps: float = 0.03,
        step_size: float = 0.007,
        pgd_steps: int = 10,
        lambda_gr: float | str = "auto",
        head_hidden: tuple[int, ...] = (512, 512),
        head_dropout: float = 0.2,
        detection_threshold: float = 0.1,
        amp: bool | str = "auto",
        channels_last: bool = True,
        seed: int = 0,
        verbose: bool = True,
        bmp_encoder: nn.Module | PyTorchEncoder | str = "auto",
        mpae_trainer: str = "genaf",
        mpae_options: dict[str, Any] | None = None,
        mpae_heads: str = "clean",
    ) -> None:
        self.mpae_heads = mpae_heads
        self.bmp_encoder = bmp_encoder.model if isinstance(bmp_encoder, PyTorchEncoder) else bmp_encoder
        self.mpae_trainer = mpae_trainer
        self.mpae_options = {} if mpae_options is None else mpae_options
        self.bmp_encoder_: str | None = None
        self.auxiliary_encoder = (
            auxiliary_encoder.model if isinstance(auxiliary_encoder, PyTorchEncoder) else auxiliary_encoder
        )
        self.mpae_encoders = mpae_encoders
        self.fusion, self.k = fusion, k
        self.use_bmp, self.use_auxiliary = use_bmp, use_auxiliary
        self.aft_epochs, self.head_epochs = aft_epochs, head_epochs
        self.lambda_gr = lambda_gr
        self.head_hidden, self.head_dropout = tuple(head_hidden), head_dropout
        self.detection_threshold = detection_threshold
        self.mpae_encoders_: list[nn.Module] | None = None
        # each adversarial fine-tuning's own model (its encoder, ``mpae_encoders_[i]``, and the head trained with it):
        # the branches ``mpae_heads="finetuned"`` uses, kept with ``"clean"`` too (an ablation at no training cost)
        self.finetuned_models_: list[nn.Module] = []
        self.histories_: dict[str, pd.DataFrame] = {}
        self._fused: PyTorchClassifier | None = None
        super().__init__(
            classifier,
            aft_epochs,
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
            0,
            amp,
            channels_last,
            seed,
            verbose,
        )

    @classmethod
    def official(
        cls, classifier: PyTorchClassifier, auxiliary_encoder: nn.Module | PyTorchEncoder | None = None, **kwargs
    ) -> ZePADTrainer:
        """The official build: MPAE by the official Gen-AF stage 1 (:meth:`GenAFTrainer.official`'s L_gr sum at
        lambda 20, random head, no warm-up) and a BMP encoder other than the victim (``"auto"`` unless given);
        ``kwargs`` override."""
        from art_ssl.defences.trainer.genaf import OFFICIAL

        kwargs.setdefault("lambda_gr", OFFICIAL["lambda_gr"])
        options = {**{k: v for k, v in OFFICIAL.items() if k != "sensitivity_start"}, **kwargs.pop("mpae_options", {})}
        return cls(classifier, auxiliary_encoder, mpae_trainer="genaf", mpae_options=options, **kwargs)

    def _check_params(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"`fusion` must be one of {FUSIONS}, got {self.fusion!r}.")
        check_positive_number("k", self.k, allow_zero=True)
        check_bool("use_bmp", self.use_bmp)
        check_bool("use_auxiliary", self.use_auxiliary)
        check_positive_int("aft_epochs", self.aft_epochs)
        check_positive_int("head_epochs", self.head_epochs)
        check_lambda_gr(self.lambda_gr)
        check_positive_number("head_dropout", self.head_dropout, allow_zero=True)
        check_positive_number("detection_threshold", self.detection_threshold, allow_zero=True)
        if self.mpae_trainer not in MPAE_TRAINERS:
            raise ValueError(f"`mpae_trainer` must be one of {MPAE_TRAINERS}, got {self.mpae_trainer!r}.")
        if not isinstance(self.mpae_options, dict):
            raise TypeError(f"`mpae_options` must be a dict, got {type(self.mpae_options).__name__}.")
        if isinstance(self.bmp_encoder, str):
            from art_ssl.zoo import list_encoders

            if self.bmp_encoder not in ("auto", "victim", *list_encoders(backdoored=False)):
                raise ValueError(
                    f"`bmp_encoder` must be an nn.Module, PyTorchEncoder, 'auto', 'victim' or a clean zoo name "
                    f"{list_encoders(backdoored=False)}, got {self.bmp_encoder!r}."
                )
        elif not isinstance(self.bmp_encoder, nn.Module):
            raise TypeError(
                f"`bmp_encoder` must be an nn.Module, PyTorchEncoder or str, got {type(self.bmp_encoder).__name__}."
            )
        if self.mpae_heads not in MPAE_HEADS:
            raise ValueError(f"`mpae_heads` must be one of {MPAE_HEADS}, got {self.mpae_heads!r}.")
        if self.mpae_heads == "finetuned" and self.mpae_encoders is not None:
            raise ValueError(
                "`mpae_heads='finetuned'` keeps the heads of the adversarial fine-tuning, which `mpae_encoders` "
                "skips: use mpae_heads='clean' to reuse fine-tuned encoders."
            )
        if self.head_dropout >= 1:
            raise ValueError(f"`head_dropout` must be in [0, 1), got {self.head_dropout!r}.")
        n_mpae = 2 if self.use_auxiliary else 1
        if self.mpae_encoders is not None:
            if not isinstance(self.mpae_encoders, (list, tuple)) or not all(
                isinstance(m, nn.Module) for m in self.mpae_encoders
            ):
                raise TypeError("`mpae_encoders` must be a list of nn.Module.")
            if len(self.mpae_encoders) != n_mpae:
                raise ValueError(f"`mpae_encoders` must hold {n_mpae} encoders, got {len(self.mpae_encoders)}.")
        elif self.use_auxiliary and not isinstance(self.auxiliary_encoder, nn.Module):
            raise TypeError(
                "`auxiliary_encoder` must be an nn.Module or PyTorchEncoder (or pass `use_auxiliary=False`), got "
                f"{type(self.auxiliary_encoder).__name__}."
            )
        super()._check_params()

    def _classifier_for(self, encoder: nn.Module, nb_classes: int) -> PyTorchClassifier:
        """A copy of ``encoder`` with a fresh head, in the victim classifier's input format."""
        victim = self._classifier
        dim = output_dim(encoder, input_shape=victim.input_shape, device=victim.device, flatten=True)
        head = MLPHead(dim, nb_classes, self.head_hidden, self.head_dropout)
        return encoder_classifier(
            copy.deepcopy(encoder),
            nb_classes,
            head=head,
            freeze_encoder=False,
            input_shape=victim.input_shape,
            clip_values=victim.clip_values,
            preprocessing=victim.preprocessing,
            device_type=_device_type(victim),
        )

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None,
        nb_epochs: int | None = None,
        batch_size: int | None = None,
        verbose: bool | None = None,
        checkpoint_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        """
        Fine-tune the MPAE encoders (unless ``mpae_encoders`` were given), train every branch's head, and build the
        fused classifier. ``nb_epochs`` overrides ``aft_epochs``. ``checkpoint_dir`` is not supported (``TypeError``).
        """
        if checkpoint_dir is not None:  # in the signature of EncoderHeadTrainer.fit, which ZePAD's does not honour
            raise TypeError("`checkpoint_dir`: ZePADTrainer.fit does not checkpoint its runs.")
        aft_epochs, batch_size, verbose = self._fit_settings(nb_epochs, batch_size, verbose, kwargs)
        x = check_images(x, "x", self._classifier.input_shape, self._classifier.clip_values)
        y = check_labels(y, len(x), "y", self._classifier.nb_classes)
        with scoped_seed(self.seed):  # heads' initialisation; every sub-trainer seeds itself too
            self._fit(x, y, validation_data, aft_epochs, batch_size, verbose)

    def _fit(
        self, x: np.ndarray, y: np.ndarray, validation_data, aft_epochs: int, batch_size: int, verbose: bool
    ) -> None:
        nb_classes = self._classifier.nb_classes
        victim_encoder = self._classifier.model.encoder
        common: dict[str, Any] = {
            "batch_size": batch_size,
            "encoder_lr": self.encoder_lr,
            "head_lr": self.head_lr,
            "weight_decay": self.weight_decay,
            "lr_decay": self.lr_decay,
            "amp": self.amp,
            "channels_last": self.channels_last,
            "seed": self.seed,
            "verbose": verbose,
            "validation_pgd_steps": 0,
        }
        finetuned: list[nn.Module] = []  # the fine-tunings' own models (encoder + jointly trained head)
        if self.mpae_encoders is None:
            sources = [victim_encoder] + ([self.auxiliary_encoder] if self.use_auxiliary else [])
            self.mpae_encoders_ = []
            for i, encoder in enumerate(sources):
                clf = self._classifier_for(encoder, nb_classes)
                aft = self._mpae_fine_tuner(clf, aft_epochs, common)
                aft.fit(x, y, validation_data=validation_data)
                self.histories_[f"aft_{i}"] = aft.history_
                self.mpae_encoders_.append(clf.model.encoder)
                finetuned.append(clf.model.eval())
        else:
            self.mpae_encoders_ = list(self.mpae_encoders)
        self.finetuned_models_ = finetuned
        branches = list(finetuned) if self.mpae_heads == "finetuned" else []
        named = [] if branches else [(f"mpae_{i}", e) for i, e in enumerate(self.mpae_encoders_)]
        if self.use_bmp:
            named.append(("bmp", self._resolve_bmp(victim_encoder)))
        for name, encoder in named:
            clf = self._classifier_for(encoder, nb_classes)
            head_trainer = FineTuningTrainer(clf, train_encoder=False, nb_epochs=self.head_epochs, **common)
            head_trainer.fit(x, y, validation_data=validation_data)
            self.histories_[f"head_{name}"] = head_trainer.history_
            branches.append(clf.model.eval())
        bmp = branches.pop() if self.use_bmp else None
        fused = ZePADModel(branches, bmp, self.fusion, self.k).eval()
        victim = self._classifier
        self._fused = PyTorchClassifier(
            fused,
            loss=nn.CrossEntropyLoss(),
            input_shape=victim.input_shape,
            nb_classes=nb_classes,
            clip_values=victim.clip_values,
            preprocessing=victim.preprocessing,
            device_type=_device_type(victim),
        )
        self.history_ = pd.concat([h.assign(phase=k) for k, h in self.histories_.items()], ignore_index=True)

    def _mpae_fine_tuner(self, clf: PyTorchClassifier, nb_epochs: int, common: dict) -> EncoderHeadTrainer:
        """The trainer of one MPAE encoder's adversarial fine-tuning (``mpae_trainer``, ``mpae_options``)."""
        budget = {"nb_epochs": nb_epochs, "eps": self.eps, "step_size": self.step_size, "pgd_steps": self.pgd_steps}
        kwargs = {**common, **budget, **self.mpae_options}
        if self.mpae_trainer == "genaf":
            return GenAFTrainer(clf, **{"stages": (1,), "lambda_gr": self.lambda_gr, **kwargs})
        if self.mpae_trainer == "trades":
            return TRADESTrainer(clf, **kwargs)
        if self.mpae_trainer == "mart":
            return MARTTrainer(clf, **kwargs)
        return FineTuningTrainer(clf, adversarial=True, **kwargs)

    def _resolve_bmp(self, victim_encoder: nn.Module) -> nn.Module:
        """The BMP branch's clean encoder (``bmp_encoder``); sets ``bmp_encoder_`` to what was used."""
        from art_ssl.zoo import encoder_info, list_encoders, load_encoder

        choice = self.bmp_encoder
        if isinstance(choice, nn.Module):
            self.bmp_encoder_ = "given"
            encoder = choice
        elif choice == "victim":
            self.bmp_encoder_ = "victim"
            encoder = victim_encoder
        elif choice != "auto":
            self.bmp_encoder_ = choice
            encoder = load_encoder(choice, _device_type(self._classifier)).model
        else:
            zoo = {
                name: load_encoder(name, _device_type(self._classifier)).model
                for name in BMP_PREFERENCE
                if name in list_encoders(backdoored=False)
                and tuple(encoder_info(name)["input_shape"]) == tuple(self._classifier.input_shape)
            }
            used = [victim_encoder] + ([self.auxiliary_encoder] if self.auxiliary_encoder is not None else [])
            methods = {encoder_info(n)["method"] for n, m in zoo.items() if any(_same_weights(m, u) for u in used)}
            candidates = [
                n
                for n, m in zoo.items()
                if not any(_same_weights(m, u) for u in used) and encoder_info(n)["method"] not in methods
            ]
            candidates = candidates or [n for n, m in zoo.items() if not any(_same_weights(m, u) for u in used)]
            if candidates:
                self.bmp_encoder_ = candidates[0]
                encoder = zoo[candidates[0]]
                logger.info("ZePAD BMP branch: zoo encoder %s", self.bmp_encoder_)
            else:  # e.g. a victim of another input shape: the old build, with the warning below
                self.bmp_encoder_ = "victim (no other clean zoo encoder fits)"
                encoder = victim_encoder
        if encoder is victim_encoder or _same_weights(encoder, victim_encoder):
            warnings.warn(
                "ZePAD's BMP branch is the victim's own clean encoder, the one the DAE is crafted on; the official "
                "build uses a different clean public encoder (`bmp_encoder=`), and a fooled BMP branch drags the "
                "federal decision.",
                UserWarning,
                stacklevel=3,
            )
        return encoder

    def get_classifier(self) -> PyTorchClassifier:
        """The fused three-branch classifier (after :meth:`fit`)."""
        if self._fused is None:
            raise ValueError("Call `fit` first.")
        return self._fused

    def get_detector(self, threshold: float | None = None, score: str = "gap"):
        """ZePAD's training-free DAE detector on the fused model (needs the BMP branch); see
        :class:`~art_ssl.defences.detector.ZePADDetector`."""
        from art_ssl.defences.detector import ZePADDetector

        threshold = self.detection_threshold if threshold is None else threshold
        return ZePADDetector(self.get_classifier(), threshold, score=score)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    """Whether two encoders hold the same parameters (same keys, shapes and values)."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and torch.equal(sa[k].detach().cpu(), sb[k].detach().cpu()) for k in sa
    )


def _device_type(classifier: PyTorchClassifier) -> str:
    return "gpu" if classifier.device.type == "cuda" else "cpu"
