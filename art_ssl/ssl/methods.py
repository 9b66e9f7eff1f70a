"""
Self-supervised objectives as small modules: each wraps an encoder, owns its projector (and predictor/target where
the method has one) and maps two augmented views to a scalar loss.

- SimCLR: Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020
  (NT-Xent, eq. 1).
- BYOL: Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020 (eq. 2, EMA target, sec. 3.1).
- SimSiam: Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021 (eq. 1-2, stop-gradient).
- Barlow Twins: Zbontar et al., "Barlow Twins", ICML 2021 (eq. 1, cross-correlation loss).
- MoCo v2: He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020 (eq. 1-2,
  queue and momentum key encoder), with the MLP head and augmentations of Chen et al., arXiv 2003.04297.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from art_ssl.core.distributed import gather_with_local_grad
from art_ssl.core.losses import negative_cosine, nt_xent


def mlp(in_dim: int, hidden_dim: int, out_dim: int, layers: int = 2, last_bn: bool = False) -> nn.Sequential:
    """Projection/prediction MLP: ``layers`` linear layers, BN+ReLU between them, optional BN on the output."""
    mods: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers - 1):
        mods += [nn.Linear(dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
        dim = hidden_dim
    mods.append(nn.Linear(dim, out_dim, bias=not last_bn))
    if last_bn:
        mods.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*mods)


class SSLMethod(nn.Module):
    """
    Base class: ``forward(x1, x2)`` returns the loss; ``step_end(progress)`` runs after each optimiser step.

    In data-parallel training (:mod:`art_ssl.core.distributed`) each method computes its loss over the global batch
    from all-gathered embeddings (:func:`~art_ssl.core.distributed.gather_with_local_grad`: SimCLR's and MoCo's
    negatives come from every rank), the same loss on every rank; outside it the gather is the identity.
    """

    name = "base"

    def __init__(self, encoder: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.feature_dim = feature_dim

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def step_end(self, progress: float) -> None:
        """Hook after each optimiser step; ``progress`` is the fraction of training done, in [0, 1]."""

    def param_groups(self, lr: float) -> list[dict]:
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]


class SimCLR(SSLMethod):
    """
    SimCLR: NT-Xent loss on projected views.

    :param temperature: Softmax temperature (0.5 in SimCLR's CIFAR-10 setting).
    :param proj_dim: Output size of the projection head.
    """

    name = "simclr"

    def __init__(self, encoder: nn.Module, feature_dim: int, proj_dim: int = 128, temperature: float = 0.5) -> None:
        super().__init__(encoder, feature_dim)
        self.temperature = temperature
        self.projector = mlp(feature_dim, feature_dim * 2, proj_dim)

    def forward(self, x1, x2):
        z1, z2 = gather_with_local_grad(self.projector(self.encoder(x1)), self.projector(self.encoder(x2)))
        return nt_xent(z1, z2, self.temperature)


@torch.no_grad()
def ema_update(pairs, momentum: float) -> None:
    """``target <- momentum * target + (1 - momentum) * online`` for each (online, target) module pair; buffers
    (BatchNorm statistics) are copied."""
    for online, target in pairs:
        for po, pt in zip(online.parameters(), target.parameters(), strict=True):
            pt.mul_(momentum).add_(po.detach(), alpha=1 - momentum)
        for bo, bt in zip(online.buffers(), target.buffers(), strict=True):
            bt.copy_(bo)


def _neg_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean negative cosine with a stop-gradient on ``z`` (BYOL/SimSiam)."""
    return negative_cosine(p, z.detach()).mean()


class BYOL(SSLMethod):
    """
    BYOL: an online network predicts an EMA target network's projection of the other view.

    :param proj_dim: Projection size.
    :param hidden_dim: Hidden size of projector and predictor.
    :param tau_base: Initial EMA rate, raised to 1 on a cosine schedule (BYOL sec. 3.2).
    """

    name = "byol"

    def __init__(
        self, encoder: nn.Module, feature_dim: int, proj_dim: int = 128, hidden_dim: int = 512, tau_base: float = 0.99
    ) -> None:
        super().__init__(encoder, feature_dim)
        self.tau_base = tau_base
        self.projector = mlp(feature_dim, hidden_dim, proj_dim)
        self.predictor = mlp(proj_dim, hidden_dim, proj_dim)
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    def forward(self, x1, x2):
        p1 = self.predictor(self.projector(self.encoder(x1)))
        p2 = self.predictor(self.projector(self.encoder(x2)))
        with torch.no_grad():
            t1 = self.target_projector(self.target_encoder(x1))
            t2 = self.target_projector(self.target_encoder(x2))
        p1, p2, t1, t2 = gather_with_local_grad(p1, p2, t1, t2)
        # 2 - 2 cos, symmetrised (BYOL eq. 2); written as 2 + 2 * mean(-cos) over both directions.
        return 2 + (_neg_cosine(p1, t2) + _neg_cosine(p2, t1))

    def step_end(self, progress: float) -> None:
        tau = 1 - (1 - self.tau_base) * (math.cos(math.pi * progress) + 1) / 2
        ema_update(((self.encoder, self.target_encoder), (self.projector, self.target_projector)), tau)


class SimSiam(SSLMethod):
    """
    SimSiam: symmetric negative cosine between a predictor's output and the stop-gradient projection of the other
    view. The predictor keeps a fixed learning rate (SimSiam sec. 4.4 / official code ``fix_pred_lr``).
    """

    name = "simsiam"

    def __init__(self, encoder: nn.Module, feature_dim: int, proj_dim: int = 512, pred_hidden: int = 128) -> None:
        super().__init__(encoder, feature_dim)
        self.projector = mlp(feature_dim, proj_dim, proj_dim, layers=3, last_bn=True)
        self.predictor = mlp(proj_dim, pred_hidden, proj_dim)

    def forward(self, x1, x2):
        z1, z2 = self.projector(self.encoder(x1)), self.projector(self.encoder(x2))
        p1, p2 = self.predictor(z1), self.predictor(z2)
        z1, z2, p1, p2 = gather_with_local_grad(z1, z2, p1, p2)
        return (_neg_cosine(p1, z2) + _neg_cosine(p2, z1)) / 2

    def param_groups(self, lr: float) -> list[dict]:
        body = list(self.encoder.parameters()) + list(self.projector.parameters())
        return [{"params": body, "lr": lr}, {"params": list(self.predictor.parameters()), "lr": lr, "fixed_lr": True}]


class BarlowTwins(SSLMethod):
    """
    Barlow Twins: push the cross-correlation matrix of the two views' batch-normalised projections to identity.

    :param lambd: Weight of the off-diagonal (redundancy-reduction) term (5e-3 in the paper).
    """

    name = "barlow_twins"

    def __init__(self, encoder: nn.Module, feature_dim: int, proj_dim: int = 512, lambd: float = 5e-3) -> None:
        super().__init__(encoder, feature_dim)
        self.lambd = lambd
        self.projector = mlp(feature_dim, proj_dim, proj_dim, layers=3)
        self.bn = nn.BatchNorm1d(proj_dim, affine=False)

    def forward(self, x1, x2):
        z1, z2 = self.bn(self.projector(self.encoder(x1))), self.bn(self.projector(self.encoder(x2)))
        z1, z2 = gather_with_local_grad(z1, z2)
        c = z1.t() @ z2 / z1.shape[0]
        on_diag = (torch.diagonal(c) - 1).pow(2).sum()
        off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
        return on_diag + self.lambd * off_diag


class MoCo(SSLMethod):
    """
    MoCo v2: InfoNCE between a query and the momentum encoder's key of the other view, with a FIFO queue of past
    keys as extra negatives (MoCo eq. 1). Single-device adaptation: instead of MoCo's shuffled BatchNorm, the keys
    of the current batch are negatives too (as in MoCo v3), so batch statistics cannot single out the positive.
    The loss is symmetrised over the two views.

    :param proj_dim: Projection size.
    :param temperature: Softmax temperature (0.2 in MoCo v2).
    :param momentum: Key-encoder EMA rate.
    :param queue_size: Number of past keys kept as negatives.
    """

    name = "moco"
    if TYPE_CHECKING:  # buffers registered in __init__ (no runtime annotation: TorchScript would read it)
        queue: torch.Tensor
        queue_ptr: torch.Tensor
        queue_filled: torch.Tensor

    def __init__(
        self,
        encoder: nn.Module,
        feature_dim: int,
        proj_dim: int = 128,
        temperature: float = 0.2,
        momentum: float = 0.99,
        queue_size: int = 4096,
    ) -> None:
        super().__init__(encoder, feature_dim)
        self.temperature, self.momentum = temperature, momentum
        self.projector = mlp(feature_dim, feature_dim * 2, proj_dim)
        self.key_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.key_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.register_buffer("queue", nn.functional.normalize(torch.randn(queue_size, proj_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))

    def _contrast(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        q, k = nn.functional.normalize(q, dim=1), nn.functional.normalize(k, dim=1)
        negatives = self.queue[: int(self.queue_filled)].clone()  # the queue is updated before backward
        logits = torch.cat([q @ k.t(), q @ negatives.t()], dim=1) / self.temperature
        return nn.functional.cross_entropy(logits, torch.arange(len(q), device=q.device))

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        keys = nn.functional.normalize(keys, dim=1)[: len(self.queue)]
        idx = (int(self.queue_ptr) + torch.arange(len(keys), device=keys.device)) % len(self.queue)
        self.queue[idx] = keys.to(self.queue.dtype)
        self.queue_ptr.fill_(int(idx[-1] + 1) % len(self.queue))
        self.queue_filled.fill_(min(len(self.queue), int(self.queue_filled) + len(keys)))

    def forward(self, x1, x2):
        q1, q2 = self.projector(self.encoder(x1)), self.projector(self.encoder(x2))
        with torch.no_grad():
            k1, k2 = self.key_projector(self.key_encoder(x1)), self.key_projector(self.key_encoder(x2))
        q1, q2, k1, k2 = gather_with_local_grad(q1, q2, k1, k2)  # data-parallel: keys of every rank, enqueued alike
        loss = (self._contrast(q1, k2) + self._contrast(q2, k1)) / 2
        if self.training:
            self._enqueue(torch.cat([k1, k2]))
        return loss

    def step_end(self, progress: float) -> None:
        ema_update(((self.encoder, self.key_encoder), (self.projector, self.key_projector)), self.momentum)


METHODS: dict[str, type[SSLMethod]] = {m.name: m for m in (SimCLR, BYOL, SimSiam, BarlowTwins, MoCo)}
