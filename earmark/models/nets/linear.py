"""``linear``: flatten + one dense layer, the NSynth study's logistic regression as a network.

Trained with cross-entropy this is multinomial logistic regression on the flattened input. The
input size is either given (``in_features``) or taken from the first forward (a lazy layer), and
then fixed. ``pool=(h, w)`` average-pools the last two dims to ``h x w`` first, so that one network
takes any spectrogram size (no longer the study's exact model; documented choice, off by default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from earmark.errors import DataError
from earmark.models.nets import NETWORKS, SeededLazyLinear, check_positive_ints


@NETWORKS.register("linear")
class LinearNet(nn.Module):
    """Flatten + ``Linear(in_features, n_classes)``.

    Parameters
    ----------
    n_classes : int
    in_channels : int
        Unused (everything after the batch dim is flattened); accepted for a uniform factory.
    in_features : int, optional
        Flattened input size; None: sized by the first forward.
    pool : (int, int), optional
        Adaptive average pooling of the last two dims before the flatten.

    Input ``(batch, ...)``; output ``(batch, n_classes)``. ``forward_features`` is the flattened input.
    """

    arch = "linear"
    size_dims = 0

    def __init__(self, n_classes: int, in_channels: int = 1, in_features: int | None = None,
                 pool: tuple[int, int] | None = None):
        super().__init__()
        self.pool = None if pool is None else check_positive_ints(pool, self.arch, "pool", length=2)
        if self.pool is not None:
            in_features = in_channels * self.pool[0] * self.pool[1]
        if in_features is None:
            self.head: nn.Module = SeededLazyLinear(n_classes)
        else:
            (n_in,) = check_positive_ints(in_features, self.arch, "in_features", length=1)
            self.head = nn.Linear(n_in, n_classes)

    @property
    def embedding_dim(self) -> int | None:
        """Flattened input size; None until a lazy network has seen its first input."""
        return None if isinstance(self.head, nn.LazyLinear) else self.head.in_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, ...)`` -> ``(batch, in_features)``."""
        if self.pool is not None:
            if x.dim() not in (3, 4):
                raise DataError(f"{self.arch}: pool needs input (batch, [channels,] time, bins); "
                                f"got shape {tuple(x.shape)}")
            x = F.adaptive_avg_pool2d(x, self.pool)
        if x.dim() < 2:
            raise DataError(f"{self.arch}: expected input (batch, ...); got shape {tuple(x.shape)}")
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))
