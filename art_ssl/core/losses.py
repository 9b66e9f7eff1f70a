"""
Feature-space losses shared by pre-training, attacks and trainers. Each is a plain function of tensors; callers
decide whether to minimise or maximise it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def negative_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample ``-cos(a_i, b_i)`` over the flattened features, shape (N,)."""
    return -F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """
    NT-Xent (Chen et al., SimCLR, ICML 2020, eq. 1): each of the 2N views' positive is its pair, the other 2N-2
    views of the batch are negatives. Mean over the 2N views.
    """
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.t() / temperature
    n = z1.shape[0]
    sim.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


def info_nce(query: torch.Tensor, key: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """
    InfoNCE (van den Oord et al., 2018) between two aligned batches: query ``i``'s positive is key ``i``, the other
    keys of the batch are its negatives; cross-entropy over cosine logits / ``temperature``, mean over the batch.
    """
    q, k = F.normalize(query.flatten(1), dim=1), F.normalize(key.flatten(1), dim=1)
    logits = q @ k.t() / temperature
    return F.cross_entropy(logits, torch.arange(len(q), device=q.device))


def activation_energy(activation: torch.Tensor) -> torch.Tensor:
    """Mean squared activation, ``mean(a^2)`` (the L4A objective, Ban & Dong, NeurIPS 2022)."""
    return activation.pow(2).mean()


def feature_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of two feature tensors (SSP's feature distortion, Naseer et al., CVPR 2020)."""
    return F.mse_loss(a, b)


def attention_map(features: torch.Tensor, p: float = 2.0, eps: float = 1e-6) -> torch.Tensor:
    """
    Spatial attention of a feature map (Zagoruyko & Komodakis, "Paying More Attention to Attention", ICLR 2017,
    eq. 2, as NAD uses it): ``sum_c |F_c|^p``, L2-normalised over the spatial positions. Shape (N, H*W).
    """
    att = features.abs().pow(p).sum(1).flatten(1)
    return att / (att.norm(dim=1, keepdim=True) + eps)


def attention_transfer(student: torch.Tensor, teacher: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """NAD's attention distillation loss (Li et al., "Neural Attention Distillation", ICLR 2021, eq. 2): MSE between
    the student's and the teacher's attention maps."""
    return F.mse_loss(attention_map(student, p), attention_map(teacher, p))


def channel_kl(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float = 0.5, reduction: str = "batchmean"
) -> torch.Tensor:
    """
    Knowledge distillation (Hinton et al., 2015) on feature maps: ``T^2 KL(softmax(t/T) || softmax(s/T))`` with the
    softmax over the channels at each position.

    :param reduction: ``"batchmean"`` (default, the official KD term of Han et al.'s code, ``KLDivLoss(reduction=
                      'batchmean')`` on the 4-d map): summed over channels *and positions*, divided by the batch;
                      ``"mean"``: summed over channels, averaged over positions and samples (H*W times smaller; what
                      art_ssl computed before issue 16).
    """
    if reduction not in ("batchmean", "mean"):
        raise ValueError(f"`reduction` must be 'batchmean' or 'mean', got {reduction!r}.")
    s = F.log_softmax(student.flatten(2) / temperature, dim=1)
    t = F.log_softmax(teacher.flatten(2) / temperature, dim=1)
    per_position = F.kl_div(s, t, log_target=True, reduction="none").sum(1)  # (N, H*W)
    total = per_position.sum(1).mean() if reduction == "batchmean" else per_position.mean()
    return total * temperature**2
