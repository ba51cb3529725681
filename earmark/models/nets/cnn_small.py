"""``cnn_small``: the NSynth study's 3-layer CNN on a spectrogram.

conv3x3(16)-ReLU-maxpool2 -> conv3x3(32)-ReLU-maxpool2 -> conv3x3(64)-ReLU-maxpool2 -> dropout(0.25)
-> flatten -> dense(128)-ReLU [embedding] -> dropout(0.5) -> dense(n_classes).

The study flattened the last feature map, which ties the dense layer to one input size. Here an
``AdaptiveAvgPool2d(pool)`` (default ``(8, 8)``, 64 x 8 x 8 = 4096 inputs to the dense layer) precedes
the flatten, so any input of at least 8 x 8 works. ``pool=None`` flattens the map as the study did
(the dense layer is then sized by the first forward and keeps that input size). Convolutions are
"same"-padded.
"""

from __future__ import annotations

import torch
from torch import nn

from earmark.models.nets import (
    NETWORKS,
    SeededLazyLinear,
    as_image,
    check_positive_ints,
    check_probability,
)


@NETWORKS.register("cnn_small")
class CNNSmall(nn.Module):
    """The NSynth study's small CNN.

    Parameters
    ----------
    n_classes : int
    in_channels : int
        Input channels; ``(batch, time, bins)`` inputs are taken as one channel.
    dropout : float
        After the convolutional stack.
    dense_dropout : float
        Between the 128-unit dense layer and the classifier.
    pool : (int, int) or None
        Size the last feature map is average-pooled to before the flatten; None: no pooling.

    Input ``(batch, time, bins)`` or ``(batch, in_channels, time, bins)``; output ``(batch, n_classes)``.
    """

    arch = "cnn_small"
    size_dims = 2
    size_names = ("time", "bins")

    def __init__(self, n_classes: int, in_channels: int = 1, dropout: float = 0.25,
                 dense_dropout: float = 0.5, pool: tuple[int, int] | None = (8, 8)):
        super().__init__()
        dropout = check_probability(dropout, self.arch)
        dense_dropout = check_probability(dense_dropout, self.arch, "dense_dropout")
        self.in_channels = in_channels
        layers: list[nn.Module] = []
        c = in_channels
        for width in (16, 32, 64):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = width
        layers.append(nn.Dropout(dropout))
        self.features = nn.Sequential(*layers)
        if pool is None:
            self.pool = nn.Identity()
            dense: nn.Module = SeededLazyLinear(128)
        else:
            h, w = check_positive_ints(pool, self.arch, "pool", length=2)
            self.pool = nn.AdaptiveAvgPool2d((h, w))
            dense = nn.Linear(64 * h * w, 128)
        self.dense = nn.Sequential(nn.Flatten(), dense, nn.ReLU(inplace=True))
        self.embedding_dim = 128
        self.head = nn.Sequential(nn.Dropout(dense_dropout), nn.Linear(128, n_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, [in_channels,] time, bins)`` -> ``(batch, 128)``."""
        x = self.features(as_image(x, self.in_channels, self.arch))
        return self.dense(self.pool(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))
