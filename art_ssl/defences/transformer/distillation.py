"""
Encoder distillation against backdoors (Han et al., "On the Effectiveness of Distillation in Mitigating Backdoors
in Pre-trained Encoder", arXiv 2403.03846): train a student encoder on a little clean, unlabelled data to mimic a
teacher's intermediate features; the backdoor, which clean data never activates, is not passed on.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from art.defences.transformer.transformer import Transformer
from torch import nn

from art_ssl.core.amp import check_amp
from art_ssl.core.checks import (
    check_bool,
    check_fraction,
    check_images,
    check_positive_int,
    check_positive_number,
    check_seed,
)
from art_ssl.core.distributed import gather_with_local_grad, is_distributed, sum_over_ranks
from art_ssl.core.forward import preprocess
from art_ssl.core.hooks import forward_with_layers
from art_ssl.core.losses import attention_transfer, channel_kl, negative_cosine, nt_xent
from art_ssl.core.seeding import scoped_seed
from art_ssl.estimators.encoder import PyTorchEncoder
from art_ssl.ssl.augment import AUGMENTATIONS
from art_ssl.ssl.methods import SimCLR
from art_ssl.ssl.pretrain import feature_dim_of, pretrain

TEACHERS = ("finetuned", "poisoned")
STUDENTS = ("warmup", "random", "poisoned")
# Distillation losses between one student and one teacher feature map (``cosine`` works on the embeddings).
LAYER_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "attention": attention_transfer,  # NAD / attention transfer, p = 2
    "mse": F.mse_loss,  # FitNet: the raw feature maps
    "kl": channel_kl,  # KD on the channel distribution at each position, T = 0.5
}
FOUR_STAGES = ("layer1", "layer2", "layer3", "layer4")
# Layers of each loss when ``layers=None``: the official code's weights (opt1..opt4) are 1000 at the four stages for
# AT / FitNet / CC, and only at layer1 for KD.
DEFAULT_LAYERS = {"attention": FOUR_STAGES, "mse": FOUR_STAGES, "kl": ("layer1",), "cosine": FOUR_STAGES}
KL_REDUCTIONS = ("batchmean", "mean")
LOSSES = (*LAYER_LOSSES, "cosine")


def reinitialise(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every layer's parameters drawn afresh (the same architecture, untrained)."""
    model = copy.deepcopy(model)
    for module in model.modules():
        for reset in ("reset_parameters", "reset_running_stats"):  # the layers' own initialisations
            reset_fn = getattr(module, reset, None)
            if reset_fn is not None:
                reset_fn()
    return model


def _global_mean(local_mean: torch.Tensor, n_local: int) -> torch.Tensor:
    """Data-parallel: a per-sample mean over this rank's ``n_local`` rows turned into its share of the global batch's
    mean (``n_local / n_global`` of it: the gradient :func:`~art_ssl.core.distributed.sync_gradients` sums) whose
    *value* is the global mean itself, so that every rank logs the loss one process would. Unchanged without a
    group."""
    if not is_distributed():
        return local_mean
    value = float(local_mean.detach())
    n_global, total = sum_over_ranks(float(n_local), value * n_local)  # one all-reduce for both
    share = local_mean * (n_local / n_global)
    return share + (total / n_global - float(share.detach()))  # a constant: the value of the global mean


class DistillationObjective(SimCLR):
    """
    The student's loss in the official code: SimCLR's NT-Xent on the student's two views plus ``beta`` times the
    distillation loss between student and frozen teacher at each of ``layers`` (teacher on the first view).
    """

    name = "simclr"

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        feature_dim: int,
        loss: str,
        layers: Sequence[str],
        beta: float,
        preprocess,
        temperature: float = 0.5,
        kl_reduction: str = "batchmean",
    ) -> None:
        super().__init__(student, feature_dim, temperature=temperature)
        self.kl_reduction = kl_reduction
        self.teacher = teacher.requires_grad_(False)
        self.loss_name, self.layers, self.beta, self.preprocess = loss, list(layers), beta, preprocess

    def train(self, mode: bool = True) -> DistillationObjective:
        super().train(mode)
        self.teacher.eval()  # the teacher's BatchNorm statistics stay those of the teacher
        return self

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.preprocess(x1), self.preprocess(x2)
        z1, student_maps = forward_with_layers(self.encoder, x1, self.layers)
        z2 = self.encoder(x2)
        # data-parallel: negatives from every rank (the contrastive loss of the global batch on every rank), the
        # distillation mean as this rank's share of the global mean
        p1, p2 = gather_with_local_grad(self.projector(z1), self.projector(z2))
        contrastive = nt_xent(p1, p2, self.temperature)
        with torch.no_grad():
            t1, teacher_maps = forward_with_layers(self.teacher, x1, self.layers)
        if self.loss_name == "cosine":
            distill = negative_cosine(z1, t1).mean()
        else:
            fn = LAYER_LOSSES[self.loss_name]
            kwargs = {"reduction": self.kl_reduction} if self.loss_name == "kl" else {}
            terms = [fn(student_maps[n], teacher_maps[n], **kwargs) for n in self.layers]  # layers: never empty
            distill = sum(terms[1:], terms[0])
        return contrastive + self.beta * _global_mean(distill, len(x1))


class EncoderDistillation(Transformer):
    """
    Distil a (possibly backdoored) encoder into a clean student (Han et al., arXiv 2403.03846, Section 3; official
    code wssun/SSLBackdoorMitigation). The student minimises SimCLR's NT-Xent (temperature 0.5) on two augmented
    views plus ``beta`` times a distillation loss to the frozen teacher at ``layers`` (the four ResNet stages; for
    ``"kl"`` layer1 only, as the official KD option),
    Adam lr 1e-3, weight decay 1e-6, batch 128: the official code's settings. The paper's best combination is the
    default: a *fine-tuned* teacher, a *warm-up* student and the *attention* loss (NAD's attention transfer).

    Options, as the paper compares them:

    - ``teacher``: ``"poisoned"`` (the given encoder as is) or ``"finetuned"`` (a copy of it trained further with
      SimCLR on the clean data for ``teacher_epochs``, done in :meth:`fit`).
    - ``student``: ``"warmup"`` (fresh weights trained with SimCLR on the clean data for ``warmup_epochs``),
      ``"random"`` (fresh weights) or ``"poisoned"`` (a copy of the given encoder); or pass any ``PyTorchEncoder``
      as ``transformed_classifier``.
    - ``loss``: ``"attention"`` (NAD, p = 2), ``"mse"`` (FitNet, raw maps), ``"kl"`` (KD over channels,
      T = 0.5, the official ``DistillKL``: summed over channels and positions, divided by the batch; ``kl_reduction=
      "mean"`` averages over positions instead, H*W times smaller, as art_ssl did before issue 16) at ``layers``,
      or ``"cosine"`` (negative cosine of the embeddings: what the official ``SP`` option computes).
      The official code's AFD and CC losses are not provided.

    The official code does not contain the teacher fine-tuning or the student warm-up, and the paper's epoch counts
    for them are not public: ``teacher_epochs`` and ``warmup_epochs`` are our choices (named parameters).
    ``beta`` defaults to the official 1000 per layer for the layer losses and 1 for ``"cosine"``.

    Under ``torchrun`` the three runs are data-parallel (:func:`~art_ssl.ssl.pretrain.pretrain`): the NT-Xent over
    the all-gathered global batch, the distillation mean as each rank's share of the global batch's (the logged loss
    is the global one); with the same augmentations the student equals a single process's up to float32 rounding.

    :param classifier: The encoder to clean (ART ``PyTorchEncoder``), the teacher's starting point; not modified.
    :param teacher: ``"finetuned"`` or ``"poisoned"``.
    :param student: ``"warmup"``, ``"random"`` or ``"poisoned"``.
    :param loss: ``"attention"``, ``"mse"``, ``"kl"`` or ``"cosine"``.
    :param layers: Module names of the feature maps compared by the layer losses (``None``: the official layers of
                   ``loss``, :data:`DEFAULT_LAYERS`).
    :param beta: Weight of the distillation term (default per ``loss``, see above).
    :param data_fraction: Fraction of the clean images given to :meth:`fit` / ``__call__`` that is used (seeded
                          subsample; the paper uses 5% of the pre-training set).
    :param nb_epochs: Distillation epochs (official: 500).
    :param batch_size: Images per step (official: 128).
    :param learning_rate: Adam learning rate (constant).
    :param weight_decay: Adam weight decay.
    :param teacher_epochs: SimCLR epochs of the ``"finetuned"`` teacher.
    :param warmup_epochs: SimCLR epochs of the ``"warmup"`` student.
    :param seed: Seeds the subsample, the fresh weights, augmentations and shuffling.
    :param verbose: Progress bars.
    :param kl_reduction: ``"batchmean"`` (official) or ``"mean"``, for ``loss="kl"``
                         (:func:`~art_ssl.core.losses.channel_kl`).
    :param augmentation: The two views of every SimCLR run (teacher fine-tuning, warm-up, distillation): ``None``
                         (:func:`~art_ssl.ssl.pretrain.pretrain`'s default, the official SimCLR views), a name of
                         :func:`~art_ssl.ssl.augment.ssl_augmentation`'s implementations or a module producing one
                         random view of a batch.
    :param amp: Mixed precision of the three runs' forward passes (``True``, ``False`` or ``"auto"``,
                :mod:`art_ssl.core.amp`).
    """

    params = [
        "teacher",
        "student",
        "loss",
        "layers",
        "beta",
        "data_fraction",
        "nb_epochs",
        "batch_size",
        "learning_rate",
        "weight_decay",
        "teacher_epochs",
        "warmup_epochs",
        "seed",
        "verbose",
        "kl_reduction",
        "augmentation",
        "amp",
    ]

    def __init__(
        self,
        classifier: PyTorchEncoder,
        teacher: str = "finetuned",
        student: str = "warmup",
        loss: str = "attention",
        layers: Sequence[str] | None = None,
        beta: float | None = None,
        data_fraction: float = 1.0,
        nb_epochs: int = 500,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-6,
        teacher_epochs: int = 20,
        warmup_epochs: int = 20,
        seed: int = 0,
        verbose: bool = True,
        kl_reduction: str = "batchmean",
        augmentation: nn.Module | str | None = None,
        amp: bool | str = "auto",
    ) -> None:
        if not isinstance(classifier, PyTorchEncoder):
            raise TypeError(f"`classifier` must be an art_ssl PyTorchEncoder, got {type(classifier).__name__}.")
        super().__init__(classifier=classifier)
        self.teacher = teacher
        self.student = student
        self.loss = loss
        self.kl_reduction = kl_reduction
        self.augmentation = augmentation
        self.amp = amp
        if layers is None and loss in DEFAULT_LAYERS:
            layers = DEFAULT_LAYERS[loss]
        self.layers = tuple(layers) if isinstance(layers, (list, tuple)) else layers
        self.beta = beta
        self.data_fraction = data_fraction
        self.nb_epochs = nb_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.teacher_epochs = teacher_epochs
        self.warmup_epochs = warmup_epochs
        self.seed = seed
        self.verbose = verbose
        self.teacher_: nn.Module | None = None
        self.history_: pd.DataFrame | None = None
        self._check_params()

    def _check_params(self) -> None:
        for name, allowed in (("teacher", TEACHERS), ("student", STUDENTS), ("loss", LOSSES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"`{name}` must be one of {allowed}, got {getattr(self, name)!r}.")
        modules = dict(self.classifier.model.named_modules())
        if not isinstance(self.layers, tuple) or not self.layers or not all(isinstance(n, str) for n in self.layers):
            raise ValueError(f"`layers` must be a non-empty sequence of module names, got {self.layers!r}.")
        missing = [n for n in self.layers if n not in modules]
        if missing:
            raise ValueError(
                f"`layers` {missing} are not modules of the encoder; choose from {[n for n in modules if n][:12]}..."
            )
        if self.beta is not None:
            check_positive_number("beta", self.beta, allow_zero=True)
        check_fraction("data_fraction", self.data_fraction)
        for name in ("nb_epochs", "batch_size"):
            check_positive_int(name, getattr(self, name))
        for name in ("teacher_epochs", "warmup_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"`{name}` must be an int >= 0, got {value!r}.")
        check_positive_number("learning_rate", self.learning_rate)
        check_positive_number("weight_decay", self.weight_decay, allow_zero=True)
        check_bool("verbose", self.verbose)
        check_seed(self.seed)
        check_amp("amp", self.amp)
        if self.kl_reduction not in KL_REDUCTIONS:
            raise ValueError(f"`kl_reduction` must be one of {KL_REDUCTIONS}, got {self.kl_reduction!r}.")
        if self.augmentation is not None and not isinstance(self.augmentation, (str, nn.Module)):
            raise TypeError(
                f"`augmentation` must be an nn.Module, a name or None, got {type(self.augmentation).__name__}."
            )
        if isinstance(self.augmentation, str) and self.augmentation not in AUGMENTATIONS:
            raise ValueError(
                f"`augmentation` must be an nn.Module or one of {AUGMENTATIONS}, got {self.augmentation!r}."
            )

    @property
    def _beta(self) -> float:
        if self.beta is not None:
            return float(self.beta)
        return 1.0 if self.loss == "cosine" else 1000.0

    def _clean_data(self, x: np.ndarray) -> np.ndarray:
        encoder: PyTorchEncoder = self.classifier
        x = check_images(x, "x", encoder.input_shape, encoder.clip_values)
        n = max(2, int(round(self.data_fraction * len(x))))
        if n > len(x):
            raise ValueError(f"`x` must hold at least 2 images, got {len(x)}.")
        if n < len(x):
            x = x[np.sort(np.random.default_rng(self.seed).choice(len(x), n, replace=False))]
        return x

    def _simclr(self, model: nn.Module, x: np.ndarray, epochs: int) -> None:
        """Train ``model`` in place with SimCLR on ``x`` (teacher fine-tuning, student warm-up)."""
        pretrain(
            model,
            x,
            method="simclr",
            nb_epochs=epochs,
            batch_size=min(self.batch_size, len(x)),
            optimizer="adam",
            lr=self.learning_rate,
            weight_decay=self.weight_decay,
            warmup_epochs=0,
            lr_schedule="constant",
            seed=self.seed,
            device_type=self._device_type,
            augmentation=self.augmentation,
            amp=self.amp,
            verbose=self.verbose,
        )

    @property
    def _device_type(self) -> str:
        return "cpu" if self.classifier.device.type == "cpu" else "gpu"

    def fit(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> None:
        """Prepare the teacher from clean images ``x`` (unlabelled; ``y`` is ignored): a copy of the encoder,
        SimCLR-fine-tuned on the clean subsample for ``teacher="finetuned"``."""
        if kwargs:
            raise TypeError(f"Unexpected arguments: {sorted(kwargs)}.")
        x = self._clean_data(x)
        teacher = copy.deepcopy(self.classifier.model)
        if self.teacher == "finetuned" and self.teacher_epochs > 0:
            self._simclr(teacher, x, self.teacher_epochs)
        self.teacher_ = teacher.eval().requires_grad_(False)
        self._is_fitted = True

    def use_teacher(self, teacher: nn.Module) -> None:
        """Take ``teacher`` as the prepared teacher instead of calling :meth:`fit` (e.g. the ``teacher_`` of an
        earlier instance with the same teacher settings, to share one fine-tuned teacher across variants).

        :param teacher: An encoder of the same architecture as the given one; it is frozen (``requires_grad``
                        off, eval mode), not copied.
        :raises TypeError: ``teacher`` is not an ``nn.Module``.
        :raises ValueError: its parameters do not have the given encoder's names and shapes.
        """
        if not isinstance(teacher, nn.Module):
            raise TypeError(f"`teacher` must be an nn.Module, got {type(teacher).__name__}.")
        mine = {k: tuple(v.shape) for k, v in self.classifier.model.state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in teacher.state_dict().items()}
        if mine != theirs:
            raise ValueError("`teacher` must have the architecture of the encoder being cleaned (same weight shapes).")
        self.teacher_ = teacher.eval().requires_grad_(False)
        self._is_fitted = True

    def initial_student(self, x: np.ndarray) -> nn.Module:
        """The student before distillation, as ``student`` says: a copy of the given encoder (``"poisoned"``),
        fresh weights (``"random"``), or fresh weights trained with SimCLR on the clean subsample of ``x`` for
        ``warmup_epochs`` (``"warmup"``). Seeded: the same for every call with the same settings."""
        encoder: PyTorchEncoder = self.classifier
        with scoped_seed(self.seed):
            student = copy.deepcopy(encoder.model) if self.student == "poisoned" else reinitialise(encoder.model)
        if self.student == "warmup" and self.warmup_epochs > 0:
            self._simclr(student, self._clean_data(x), self.warmup_epochs)
        return student

    def __call__(self, x: np.ndarray, transformed_classifier: PyTorchEncoder | None = None) -> PyTorchEncoder:
        """
        Distil the teacher into the student on clean images ``x`` and return the student, an ART
        ``PyTorchEncoder`` with the original encoder's settings. Calls :meth:`fit` first when needed.

        :param x: Clean unlabelled images (N, C, H, W); ``data_fraction`` of them are used.
        :param transformed_classifier: The student to train in place (a ``PyTorchEncoder`` of the same input
                                       shape); default built from ``student``.
        """
        if not self.is_fitted:
            self.fit(x)
        encoder: PyTorchEncoder = self.classifier
        if transformed_classifier is None:
            student = self.initial_student(x)
        else:
            if not isinstance(transformed_classifier, PyTorchEncoder):
                raise TypeError(
                    "`transformed_classifier` must be an art_ssl PyTorchEncoder, got "
                    f"{type(transformed_classifier).__name__}."
                )
            if tuple(transformed_classifier.input_shape) != tuple(encoder.input_shape):
                raise ValueError(
                    f"`transformed_classifier` takes {transformed_classifier.input_shape}, the teacher "
                    f"{encoder.input_shape}."
                )
            student = transformed_classifier.model
        x = self._clean_data(x)
        assert self.teacher_ is not None  # fit and use_teacher set it with is_fitted
        assert isinstance(self.layers, tuple)  # a non-empty tuple of names: _check_params
        with scoped_seed(self.seed):
            objective = DistillationObjective(
                student,
                self.teacher_,
                feature_dim_of(student, encoder.input_shape),
                self.loss,
                self.layers,
                self._beta,
                lambda t: preprocess(encoder, t),
                kl_reduction=self.kl_reduction,
            )
        result = pretrain(
            student,
            x,
            method=objective,
            nb_epochs=self.nb_epochs,
            batch_size=min(self.batch_size, len(x)),
            optimizer="adam",
            lr=self.learning_rate,
            weight_decay=self.weight_decay,
            warmup_epochs=0,
            lr_schedule="constant",
            seed=self.seed,
            device_type=self._device_type,
            augmentation=self.augmentation,
            amp=self.amp,
            verbose=self.verbose,
        )
        self.history_ = result.history
        student = result.encoder.to(encoder.device).eval()
        if transformed_classifier is not None:
            return transformed_classifier
        return encoder.with_model(student)
