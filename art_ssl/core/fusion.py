"""
Fusion of several branches' logits into one decision (ZePAD's robust federal decision and its ablations; Lei, Yang,
Zhang, ICLR 2026, sec. 3.3; ``utils/confidence.py`` of the official code).
"""

from __future__ import annotations

import torch

FUSIONS = ("federal", "equal", "entropy")


def max_confidence(logits: torch.Tensor) -> torch.Tensor:
    """Top-1 softmax probability ``m = max_c softmax(z)_c`` along the last dimension."""
    return torch.softmax(logits, dim=-1).max(dim=-1).values


def fusion_weights(branch_logits: torch.Tensor, rule: str = "federal", k: float = 3.0) -> torch.Tensor:
    """
    Per-sample branch weights (summing to 1 over branches) for logits of shape (N, B, C):

    - ``"federal"``: ``c_b = m_b * exp(k (m_b - 0.5))``, normalised (ZePAD's self-confidence, k = 3);
    - ``"equal"``: ``1 / B``;
    - ``"entropy"``: proportional to each branch's softmax entropy (the official ablation; it favours the *less*
      confident branches).
    """
    if rule not in FUSIONS:
        raise ValueError(f"`fusion` must be one of {FUSIONS}, got {rule!r}.")
    if branch_logits.dim() != 3:
        raise ValueError(f"branch logits must have shape (N, branches, classes), got {tuple(branch_logits.shape)}.")
    if rule == "equal":
        return torch.full(branch_logits.shape[:2], 1.0 / branch_logits.shape[1], device=branch_logits.device)
    if rule == "federal":
        m = max_confidence(branch_logits)
        scores = m * torch.exp(k * (m - 0.5))
    else:
        log_p = torch.log_softmax(branch_logits, dim=-1)
        scores = -(log_p.exp() * log_p).sum(-1)
    return scores / scores.sum(dim=1, keepdim=True).clamp_min(1e-12)


def fuse_logits(branch_logits: torch.Tensor, rule: str = "federal", k: float = 3.0) -> torch.Tensor:
    """Weighted sum of the branches' logits (N, B, C) -> (N, C) with :func:`fusion_weights`."""
    return (fusion_weights(branch_logits, rule, k)[..., None] * branch_logits).sum(dim=1)
