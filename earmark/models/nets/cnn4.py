"""``cnn4``: the FMA study's 4-layer CNN on a log-mel spectrogram.

4 x [conv(kernel_size, "same")-BatchNorm-ReLU-maxpool2] -> global average pooling [embedding]
-> dropout -> dense(n_classes). The study's tuned hyperparameters (Hyperband) are the parameters:
``kernel_size``, ``filters`` and ``dropout``. Any input of at least 16 x 16 works (four 2 x 2 poolings).
"""

from __future__ import annotations

import torch
from torch import nn

from earmark.checks import is_int
from earmark.models.nets import (
    NETWORKS,
    as_image,
    check_positive_ints,
    check_probability,
)


@NETWORKS.register("cnn4")
class CNN4(nn.Module):
    """The FMA study's 4-block CNN.

    Parameters
    ----------
    n_classes : int
    in_channels : int
    kernel_size : int
        Square kernel of every convolution.
    filters : int or 4 ints
        Filters per block; one int ``f`` means ``(f, 2f, 4f, 8f)``.
    dropout : float
        Before the classifier.

    Input ``(batch, time, bins)`` or ``(batch, in_channels, time, bins)``; output ``(batch, n_classes)``.
    """

    arch = "cnn4"
    size_dims = 2
    size_names = ("time", "bins")

    def __init__(self, n_classes: int, in_channels: int = 1, kernel_size: int = 3,
                 filters: int | tuple[int, ...] = (32, 64, 128, 256), dropout: float = 0.3):
        super().__init__()
        (k,) = check_positive_ints(kernel_size, self.arch, "kernel_size", length=1)
        if is_int(filters):
            filters = tuple(filters * 2**i for i in range(4))
        filters = check_positive_ints(filters, self.arch, "filters", length=4)
        dropout = check_probability(dropout, self.arch)
        self.in_channels = in_channels
        blocks: list[nn.Module] = []
        c = in_channels
        for width in filters:
            blocks.append(nn.Sequential(
                nn.Conv2d(c, width, k, padding=k // 2, bias=False), nn.BatchNorm2d(width),
                nn.ReLU(inplace=True), nn.MaxPool2d(2)))
            c = width
        self.features = nn.Sequential(*blocks)
        self.embedding_dim = filters[-1]
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(filters[-1], n_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, [in_channels,] time, bins)`` -> ``(batch, filters[-1])``."""
        return self.features(as_image(x, self.in_channels, self.arch)).mean(dim=(-2, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))
