"""
Adversarial-training objectives on logits (or features), shared by the trainers: TRADES' KL term, MART's
misclassification-aware loss and Gen-AF's genetic regularisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GR_REDUCTIONS = ("sum", "batchmean", "mean")


def trades_kl(logits_adv: torch.Tensor, logits_clean: torch.Tensor, reduction: str = "batchmean") -> torch.Tensor:
    """
    ``KL(softmax(clean) || softmax(adv))`` (Zhang et al., ICML 2019, eq. 5): ``"batchmean"`` for the outer loss,
    ``"sum"`` for the inner maximisation (as the official code).
    """
    return F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits_clean, dim=1), reduction=reduction)


def mart_loss(logits_adv: torch.Tensor, logits_clean: torch.Tensor, y: torch.Tensor, beta: float) -> torch.Tensor:
    """
    MART (Wang et al., ICLR 2020, eq. 9): boosted CE on the adversarial example,
    ``CE(adv, y) - log(1 - max_{k != y} p_adv_k)``, plus ``beta * KL(p_clean || p_adv) * (1 - p_clean_y)`` averaged
    over the batch, so that misclassified clean examples weigh more. Constants as the official code.
    """
    probs_adv = F.softmax(logits_adv, dim=1)
    top2 = probs_adv.topk(2, dim=1).indices
    runner_up = torch.where(top2[:, 0] == y, top2[:, 1], top2[:, 0])
    boosted_ce = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - probs_adv + 1e-12), runner_up)
    probs_clean = F.softmax(logits_clean, dim=1)
    true_prob = probs_clean.gather(1, y[:, None]).squeeze(1)
    kl = (probs_clean * (torch.log(probs_clean + 1e-12) - torch.log(probs_adv + 1e-12))).sum(1)
    return boosted_ce + beta * (kl * (1.0000001 - true_prob)).mean()


def _shifted_cosine_distance(z: torch.Tensor) -> torch.Tensor:
    """``1 - cos`` between the rows of ``z``, minus each row's nearest-neighbour distance (self excluded), with a
    zero diagonal (the local-connectivity shift of UMAP that Gen-AF's graphs use)."""
    z = z.flatten(1)
    z = torch.nan_to_num(z / (z.norm(dim=1, keepdim=True) + 1e-7))
    eye = torch.eye(len(z), device=z.device, dtype=z.dtype)
    dist = 1 - z @ z.t()
    rho = (dist + eye * 1e5).min(dim=1, keepdim=True).values
    return (dist - rho) * (1 - eye)


def _fuzzy_membership(dist: torch.Tensor) -> torch.Tensor:
    """Clamp a distance to (0, 2), map it to a similarity in (0, 1) and normalise each row to sum 1."""
    sim = 1 - dist.clamp(1e-7, 2 - 1e-7) / 2
    return sim / sim.sum(dim=1, keepdim=True)


def genetic_regularization(
    reference: torch.Tensor,
    adjusted: torch.Tensor,
    y: torch.Tensor,
    sample_loss: torch.Tensor,
    temperature: float = 32.0,
    margin: float = 2.0,
    reduction: str = "sum",
) -> torch.Tensor:
    """
    Gen-AF's genetic regularisation L_gr (Zhou et al., IEEE S&P 2024, sec. IV-B; ``utils/gr.py`` of the official
    code): a fuzzy cross-entropy between two similarity graphs over the batch.

    - Graph Q from ``reference``: cosine distance shifted by each row's nearest-neighbour distance, clamped, mapped
      to ``1 - d/2`` and row-normalised.
    - Graph P from ``adjusted``, label-adjusted before the clamp: ``d <- (1 - S) d + margin * M * S`` with
      ``S_ij = tanh((l_i + l_j) / temperature)`` from the per-sample losses ``l`` and ``M_ij = +1`` for different
      classes, ``-1`` for the same class (so classes are pulled together, others pushed apart, more for hard pairs).
    - ``L_gr = sum_ij P log(P/Q) + (1 - P) log((1 - P)/(1 - Q))``, summed over the n^2 pairs as the official code
      (``reduction="sum"``), or divided by n (``"batchmean"``: per-sample, like ``F.kl_div``'s) or by n^2
      (``"mean"``: per pair). The sum grows as n^2 while the cross-entropy it is added to is a mean, so at the
      official batch 256 it outweighs CE by orders of magnitude (see :class:`~art_ssl.defences.trainer.GenAFTrainer`).

    The official Gen-AF stage 1 passes the clean logits as ``reference`` and the adversarial logits as ``adjusted``;
    nothing is detached.

    :param reference: (N, D) outputs that build the model graph Q.
    :param adjusted: (N, D) outputs that build the label-adjusted target graph P.
    :param y: (N,) int labels.
    :param sample_loss: (N,) per-sample losses (the clean cross-entropy in Gen-AF).
    :param temperature: Divisor inside the tanh (32).
    :param margin: Size of the label adjustment (2.0).
    :param reduction: ``"sum"`` (official), ``"batchmean"`` or ``"mean"``.
    """
    if reduction not in GR_REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {GR_REDUCTIONS}, got {reduction!r}.")
    eps = 1e-7
    s = torch.tanh((sample_loss[:, None] + sample_loss[None, :]) / temperature)
    m = (y[:, None] != y[None, :]).to(s.dtype) * 2 - 1
    q = _fuzzy_membership(_shifted_cosine_distance(reference))
    p = _fuzzy_membership((1 - s) * _shifted_cosine_distance(adjusted) + margin * m * s)
    kl = p * (torch.log(p + eps) - torch.log(q + eps))
    kl_complement = (1 - p) * (torch.log(1 - p + eps) - torch.log(1 - q + eps))
    total = (kl + kl_complement).sum()
    return total if reduction == "sum" else total / (len(y) if reduction == "batchmean" else len(y) ** 2)
