"""``ffnn``: the FMA study's feed-forward network on feature vectors (518-512-256-8).

[dense(w)-ReLU-dropout] for each width, the last dropout moved into ``head`` ->
dense(n_classes). The embedding is the last hidden layer's activation (256 by default).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from earmark.errors import ConfigError, DataError
from earmark.models.nets import (
    NETWORKS,
    SeededLazyLinear,
    check_positive_ints,
    check_probability,
)


@NETWORKS.register("ffnn")
class FFNN(nn.Module):
    """Multi-layer perceptron.

    Parameters
    ----------
    n_classes : int
    in_channels : int
        Must be 1 (the input is a vector); accepted for a uniform factory.
    widths : ints
        Hidden layer widths.
    dropout : float
        After every hidden layer.
    in_features : int, optional
        Input size (518 for the FMA statistics); None: sized by the first forward.

    Input ``(batch, d)``; output ``(batch, n_classes)``.
    """

    arch = "ffnn"
    size_dims = 0

    def __init__(self, n_classes: int, in_channels: int = 1, widths: tuple[int, ...] = (512, 256),
                 dropout: float = 0.3, in_features: int | None = None):
        super().__init__()
        if in_channels != 1:
            raise ConfigError(f"network {self.arch!r}: in_channels must be 1 (input is (batch, d)), "
                              f"got {in_channels!r}")
        widths = check_positive_ints(widths, self.arch, "widths")
        dropout = check_probability(dropout, self.arch)
        if in_features is None:
            first: nn.Module = SeededLazyLinear(widths[0])
        else:
            (n_in,) = check_positive_ints(in_features, self.arch, "in_features", length=1)
            first = nn.Linear(n_in, widths[0])
        layers: list[nn.Module] = [first, nn.ReLU(inplace=True)]
        for w_in, w_out in itertools.pairwise(widths):
            layers += [nn.Dropout(dropout), nn.Linear(w_in, w_out), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.embedding_dim = widths[-1]
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(widths[-1], n_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, d)`` -> ``(batch, widths[-1])``."""
        if x.dim() != 2:
            raise DataError(f"{self.arch}: expected input (batch, d); got shape {tuple(x.shape)}")
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))
