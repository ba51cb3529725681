"""mixup (Zhang et al., 2018): train on convex combinations of example pairs and of their labels.

Used by the singer-gender and artist20 studies. Label smoothing is the loss's job, not mixup's:
the soft targets here are exact mixtures of one-hot vectors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from earmark.augment._common import (
    Invalid,
    Rng,
    _real,
    as_generator,
    integer,
    validated,
)
from earmark.errors import DataError

__all__ = ["mixup"]


def _alpha(value: Any) -> float:
    a = _real(value, "a positive number")
    if a <= 0:
        raise Invalid(f"must be > 0, got {value!r}")
    return a


def _soft_targets_numpy(y: Any, n_classes: int, batch: int, dtype: Any) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2:
        if y.shape != (batch, n_classes):
            raise DataError(f"mixup: soft targets y must have shape ({batch}, {n_classes}), got {y.shape}")
        return y.astype(dtype)
    if y.shape != (batch,) or (y.size and not np.issubdtype(y.dtype, np.integer)):
        raise DataError(f"mixup: y must be {batch} integer labels or ({batch}, n_classes) soft targets, got shape {y.shape}, dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        bad = y[(y < 0) | (y >= n_classes)][0]
        raise DataError(f"mixup: labels must be in [0, {n_classes}), got {bad}")
    return np.eye(n_classes, dtype=dtype)[y]


def _soft_targets_torch(y: Any, n_classes: int, batch: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    y = torch.as_tensor(y, device=device)
    if y.ndim == 2:
        if tuple(y.shape) != (batch, n_classes):
            raise DataError(f"mixup: soft targets y must have shape ({batch}, {n_classes}), got {tuple(y.shape)}")
        return y.to(dtype)
    if tuple(y.shape) != (batch,) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise DataError(f"mixup: y must be {batch} integer labels or ({batch}, n_classes) soft targets, got shape {tuple(y.shape)}, dtype {y.dtype}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        bad = y[(y < 0) | (y >= n_classes)][0]
        raise DataError(f"mixup: labels must be in [0, {n_classes}), got {int(bad)}")
    return torch.nn.functional.one_hot(y.long(), n_classes).to(dtype)


@validated(alpha=_alpha, n_classes=integer(minimum=1))
def mixup(x: Any, y: Any, *, alpha: float = 0.2, n_classes: int, rng: Rng) -> tuple[Any, Any]:
    """Mix each example with a partner from a random permutation of the batch.

    For item ``i``: ``lam_i ~ Beta(alpha, alpha)`` (one weight per item, not one per batch, so a
    batch sees the whole range of mixtures), ``j = perm[i]``::

        x_mixed[i] = lam_i * x[i] + (1 - lam_i) * x[j]
        y_soft[i]  = lam_i * onehot(y[i]) + (1 - lam_i) * onehot(y[j])

    Parameters
    ----------
    x : np.ndarray or torch.Tensor
        Shape ``(batch, ...)``: waveforms, spectrograms or feature vectors (any device).
    y : array-like or torch.Tensor
        ``(batch,)`` integer labels in ``[0, n_classes)``, or ``(batch, n_classes)`` soft targets
        (e.g. the output of an earlier mixup).
    alpha : float
        Beta distribution parameter (> 0); small values keep most mixtures close to one example.
    n_classes : int
        Number of classes (width of the one-hot targets).
    rng : int, np.random.Generator, torch.Generator or None
        Draws the weights, then the permutation (on the CPU, so results do not depend on device).

    Returns
    -------
    x_mixed : same kind, device, shape and float dtype as ``x``
    y_soft : ``(batch, n_classes)`` in ``x``'s kind and float dtype (a tensor on ``x``'s device for
        tensor input); rows are non-negative and sum to 1.

    Raises
    ------
    DataError
        ``y`` does not match the batch, or a label is out of range.
    """
    g = as_generator(rng)
    if isinstance(x, torch.Tensor):
        xt = x if x.is_floating_point() else x.float()
        if xt.ndim == 0:
            raise DataError("mixup: x must have a batch axis (batch, ...), got a scalar")
        batch = xt.shape[0]
        Y = _soft_targets_torch(y, n_classes, batch, xt.dtype, xt.device)
        lam_np = g.beta(alpha, alpha, size=batch)
        perm_np = g.permutation(batch)
        lam = torch.as_tensor(lam_np, dtype=xt.dtype, device=xt.device)
        perm = torch.as_tensor(perm_np, dtype=torch.long, device=xt.device)
        lx = lam.reshape((batch,) + (1,) * (xt.ndim - 1))
        x_mixed = lx * xt + (1 - lx) * xt[perm]
        ly = lam[:, None]
        return x_mixed, ly * Y + (1 - ly) * Y[perm]

    xn = np.asarray(x)
    if xn.ndim == 0:
        raise DataError("mixup: x must have a batch axis (batch, ...), got a scalar")
    if xn.dtype not in (np.float32, np.float64):
        xn = xn.astype(np.float32)
    batch = xn.shape[0]
    Y = _soft_targets_numpy(y, n_classes, batch, xn.dtype)
    lam = g.beta(alpha, alpha, size=batch).astype(xn.dtype)
    perm = g.permutation(batch)
    lx = lam.reshape((batch,) + (1,) * (xn.ndim - 1))
    x_mixed = lx * xn + (1 - lx) * xn[perm]
    ly = lam[:, None]
    return x_mixed.astype(xn.dtype, copy=False), (ly * Y + (1 - ly) * Y[perm]).astype(xn.dtype, copy=False)
