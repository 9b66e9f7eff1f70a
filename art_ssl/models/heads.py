"""Downstream heads put on top of an encoder's embedding."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import nn

from art_ssl.core.checks import check_positive_int


def linear_head(in_features: int, nb_classes: int) -> nn.Linear:
    """A linear probe: one ``nn.Linear`` from the embedding to the class logits."""
    check_positive_int("in_features", in_features)
    check_positive_int("nb_classes", nb_classes)
    return nn.Linear(in_features, nb_classes)


class MLPHead(nn.Module):
    """
    The seed papers' downstream classifier: fully connected layers with ReLU and dropout, then the logits
    (``NeuralNet`` in the BadEncoder/AdvEncoder/Gen-AF code: ``in -> 512 -> 512 -> C`` by default here).

    :param in_features: Embedding size.
    :param nb_classes: Number of classes.
    :param hidden: Sizes of the hidden layers.
    :param dropout: Dropout probability after each hidden layer.
    :param normalize_input: L2-normalise the embedding first, as BadEncoder's downstream classifiers do (official
                            ``predict_feature``); a cosine-trained backdoor changes the norm of the embeddings too.
    """

    def __init__(
        self,
        in_features: int,
        nb_classes: int,
        hidden: Sequence[int] = (512, 512),
        dropout: float = 0.5,
        normalize_input: bool = False,
    ) -> None:
        super().__init__()
        check_positive_int("in_features", in_features)
        check_positive_int("nb_classes", nb_classes)
        for h in hidden:
            check_positive_int("hidden", h)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1), got {dropout}.")
        layers: list[nn.Module] = []
        size = in_features
        for h in hidden:
            layers += [nn.Linear(size, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            size = h
        layers.append(nn.Linear(size, nb_classes))
        self.net = nn.Sequential(*layers)
        self.normalize_input = bool(normalize_input)

    def forward(self, x):
        if self.normalize_input:
            x = F.normalize(x.flatten(1), dim=1)
        return self.net(x)
