"""
ZePAD's fused three-branch model (Lei, Yang, Zhang, ICLR 2026, sec. 3.3), shared by the trainer that builds it
(:class:`~art_ssl.defences.trainer.ZePADTrainer`) and the detector that reads its branches
(:class:`~art_ssl.defences.detector.ZePADDetector`). It lives below both so that neither imports the other's module
(``.importlinter``: the trainer layer is above the detector layer).
"""

from __future__ import annotations

from typing import Any

import torch
from art.estimators.classification import PyTorchClassifier
from torch import nn

from art_ssl.core.fusion import FUSIONS, fuse_logits


class ZePADModel(nn.Module):
    """
    The three-branch model: MPAE branches (adversarially fine-tuned encoders with their heads) and the BMP branch
    (the clean public encoder with a head trained on clean data); ``forward`` returns the fused logits.

    :param mpae: The MPAE branches (``EncoderWithHead``).
    :param bmp: The BMP branch, or ``None`` (ablation).
    :param fusion: ``"federal"``, ``"equal"`` or ``"entropy"`` (:func:`art_ssl.core.fusion.fuse_logits`).
    :param k: Sharpness of the federal self-confidence.
    """

    def __init__(self, mpae: list[nn.Module], bmp: nn.Module | None, fusion: str = "federal", k: float = 3.0) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"`fusion` must be one of {FUSIONS}, got {fusion!r}.")
        if not mpae:
            raise ValueError("`mpae` needs at least one branch.")
        self.mpae = nn.ModuleList(mpae)
        self.bmp = bmp
        self.fusion, self.k = fusion, k

    def branch_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, branches, C): the MPAE branches first, then the BMP branch."""
        branches = list(self.mpae) + ([] if self.bmp is None else [self.bmp])
        return torch.stack([branch(x) for branch in branches], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fuse_logits(self.branch_logits(x), self.fusion, self.k)


def is_zepad_classifier(classifier: Any) -> bool:
    """Whether ``classifier`` is an ART ``PyTorchClassifier`` over a :class:`ZePADModel`."""
    return isinstance(classifier, PyTorchClassifier) and isinstance(classifier.model, ZePADModel)
