"""Summarise frame-level features over time so classical models get one vector per clip."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from earmark.errors import ConfigError

_STATS = {
    "mean": lambda x: x.mean(axis=-2),
    "std": lambda x: x.std(axis=-2),
    "min": lambda x: x.min(axis=-2),
    "max": lambda x: x.max(axis=-2),
    "median": lambda x: np.median(x, axis=-2),
}


def pool(x: np.ndarray, stats: Sequence[str] = ("mean", "std")) -> np.ndarray:
    """One vector per clip from a feature array.

    Parameters
    ----------
    x : np.ndarray
        ``(..., n_frames, n_bins)`` frame features, pooled over frames; or ``(n_values,)`` (one clip's
        vector, e.g. ``stats518``), returned as it is.
    stats : sequence of {"mean", "std", "min", "max", "median"}
        Statistics concatenated in this order.

    Returns
    -------
    np.ndarray, float32
        ``(..., n_bins * len(stats))``, or ``x`` itself for 1-D input.
    """
    x = np.asarray(x)
    if x.ndim == 1:
        return x.astype(np.float32, copy=False)
    unknown = [s for s in stats if s not in _STATS]
    if unknown or not stats:
        raise ConfigError(f"features.pool: expected a non-empty list of {', '.join(_STATS)}, got {list(stats)!r}")
    x = x.astype(np.float32, copy=False)
    return np.concatenate([_STATS[s](x) for s in stats], axis=-1)


def vectors(arrays: Sequence[np.ndarray], stats: Sequence[str] = ("mean", "std")) -> np.ndarray:
    """``(n_clips, n_dims)`` matrix of :func:`pool` of each clip's array (clips may differ in length)."""
    if not len(arrays):
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([pool(a, stats) for a in arrays])
