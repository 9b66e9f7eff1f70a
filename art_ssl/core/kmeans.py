"""Seeded spherical k-means on embeddings: label-free pseudo-classes for measuring how often a perturbation moves
an embedding to another cluster."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def spherical_kmeans(features: torch.Tensor, k: int, generator: torch.Generator, iters: int = 30) -> torch.Tensor:
    """
    Cluster L2-normalised ``features`` (N, D) into ``k`` groups by cosine similarity: k-means++ seeding (Arthur &
    Vassilvitskii, 2007) then Lloyd iterations. Returns the (k, D) unit centroids.
    """
    if not 1 <= k <= len(features):
        raise ValueError(f"`k` must be in [1, {len(features)}], got {k}.")
    z = F.normalize(features.float(), dim=1)
    first = int(torch.randint(len(z), (1,), generator=generator))
    centroids = z[first : first + 1].clone()
    for _ in range(1, k):
        distance = (1 - (z @ centroids.t()).max(1).values).clamp_min(0).pow(2).cpu()
        weights = distance if distance.sum() > 0 else torch.ones_like(distance)
        pick = int(torch.multinomial(weights, 1, generator=generator))
        centroids = torch.cat([centroids, z[pick : pick + 1]])
    for _ in range(iters):
        labels = (z @ centroids.t()).argmax(1)
        sums = torch.zeros_like(centroids).index_add_(0, labels, z)
        counts = torch.bincount(labels, minlength=k)
        empty = counts == 0
        sums[empty] = centroids[empty]  # keep a centroid that lost all its points
        centroids = F.normalize(sums, dim=1)
    return centroids


def assign(features: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid (by cosine) of each row of ``features``."""
    return (F.normalize(features.float(), dim=1) @ centroids.t()).argmax(1)
