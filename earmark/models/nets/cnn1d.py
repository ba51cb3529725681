"""``cnn1d``: the NSynth study's 1-D CNN on the raw waveform (64,000 samples = 4 s at 16 kHz).

conv1d(16, kernel 64, stride 4)-BN-ReLU-maxpool4 -> 3 x [conv1d(kernel 9, "same")-BN-ReLU-maxpool4]
with 32, 64, 128 filters -> global average pooling [embedding] -> dropout -> dense(n_classes).

For 64,000 samples the time axis goes 16,000 -> 4,000 -> 1,000 -> 250 -> 62 before the pooling.
The shortest input that works with the defaults is 1,024 samples.
"""

from __future__ import annotations

import torch
from torch import nn

from earmark.errors import DataError
from earmark.models.nets import NETWORKS, check_positive_ints, check_probability


@NETWORKS.register("cnn1d")
class CNN1D(nn.Module):
    """Strided 1-D CNN on waveforms.

    Parameters
    ----------
    n_classes : int
    in_channels : int
        Audio channels; ``(batch, n_samples)`` inputs are taken as one channel.
    filters : 4 ints
        Filters of the four blocks.
    first_kernel, first_stride : int
        The first (strided) convolution.
    kernel_size : int
        Kernel of the three later convolutions.
    pool : int
        Max-pooling size after every block.
    dropout : float
        Before the classifier.

    Input ``(batch, n_samples)`` or ``(batch, in_channels, n_samples)``; output ``(batch, n_classes)``.
    """

    arch = "cnn1d"
    size_dims = 1
    size_names = ("n_samples",)

    def __init__(self, n_classes: int, in_channels: int = 1, filters: tuple[int, ...] = (16, 32, 64, 128),
                 first_kernel: int = 64, first_stride: int = 4, kernel_size: int = 9, pool: int = 4,
                 dropout: float = 0.25):
        super().__init__()
        filters = check_positive_ints(filters, self.arch, "filters", length=4)
        (k0,) = check_positive_ints(first_kernel, self.arch, "first_kernel", length=1)
        (s0,) = check_positive_ints(first_stride, self.arch, "first_stride", length=1)
        (k,) = check_positive_ints(kernel_size, self.arch, "kernel_size", length=1)
        (p,) = check_positive_ints(pool, self.arch, "pool", length=1)
        dropout = check_probability(dropout, self.arch)
        self.in_channels = in_channels
        blocks: list[nn.Module] = []
        c = in_channels
        for i, width in enumerate(filters):
            conv = (nn.Conv1d(c, width, k0, stride=s0, padding=max(0, (k0 - s0) // 2), bias=False) if i == 0
                    else nn.Conv1d(c, width, k, padding=k // 2, bias=False))
            blocks.append(nn.Sequential(conv, nn.BatchNorm1d(width), nn.ReLU(inplace=True), nn.MaxPool1d(p)))
            c = width
        self.features = nn.Sequential(*blocks)
        self.embedding_dim = filters[-1]
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(filters[-1], n_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, [in_channels,] n_samples)`` -> ``(batch, filters[-1])``."""
        if x.dim() == 2 and self.in_channels == 1:
            x = x.unsqueeze(1)
        elif not (x.dim() == 3 and x.shape[1] == self.in_channels):
            raise DataError(f"{self.arch}: expected input (batch, n_samples) or "
                            f"(batch, {self.in_channels}, n_samples); got shape {tuple(x.shape)}")
        return self.features(x).mean(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))
