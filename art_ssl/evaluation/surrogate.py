"""
A label-free surrogate classifier for the attacker: spherical k-means pseudo-classes of the public encoder's
embeddings of unlabelled images, and a linear probe fitted on them. Classifier-based universal attacks (ART's
``UniversalPerturbation``, UAPEPGD) run on it without any downstream labels or model, as the threat model requires.
"""

from __future__ import annotations

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier

from art_ssl.core.kmeans import assign, spherical_kmeans
from art_ssl.estimators.classifier import encoder_classifier
from art_ssl.estimators.encoder import PyTorchEncoder
from art_ssl.evaluation.probe import fit_linear_probe


def surrogate_classifier(
    encoder: PyTorchEncoder, x_unlabelled: np.ndarray, nb_clusters: int = 10, seed: int = 0, batch_size: int = 256
) -> PyTorchClassifier:
    """
    Fit a linear head on ``nb_clusters`` k-means pseudo-labels of the embeddings of ``x_unlabelled``.

    :param encoder: The public encoder.
    :param x_unlabelled: The attacker's unlabelled surrogate images.
    :param nb_clusters: Number of pseudo-classes.
    :param seed: Seed of the clustering.
    :param batch_size: Embedding batch size.
    :return: An ART ``PyTorchClassifier`` (frozen encoder + linear head over the pseudo-classes).
    """
    if not isinstance(encoder, PyTorchEncoder):
        raise TypeError(f"`encoder` must be a PyTorchEncoder, got {type(encoder).__name__}.")
    features = encoder.predict(x_unlabelled, batch_size=batch_size)
    feats = torch.from_numpy(features)
    pseudo = assign(feats, spherical_kmeans(feats, nb_clusters, torch.Generator().manual_seed(seed))).numpy()
    head = fit_linear_probe(features, pseudo, nb_classes=nb_clusters, seed=seed)
    return encoder_classifier(encoder, nb_clusters, head=head, device_type=encoder.device_type)
