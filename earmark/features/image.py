"""8-bit image export of spectrogram-like features (the FMA study's 128 x 1280 log-mel PNGs)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from earmark.checks import is_number
from earmark.errors import ConfigError, DataError
from earmark.fsutil import atomic_path

__all__ = ["to_image", "save_image"]


def to_image(S: Any, *, top_db: float | None = 80.0) -> np.ndarray:
    """A time-first feature matrix as an 8-bit grey image, low frequencies at the bottom.

    Values are clipped to ``[max - top_db, max]`` and mapped linearly to ``[0, 255]`` (rounded);
    ``top_db=None`` uses ``[min, max]``. A constant matrix maps to 255.

    Parameters
    ----------
    S : np.ndarray or torch.Tensor, shape (n_frames, n_bins)
        One clip's features, e.g. :func:`~earmark.features.logmel` in dB.
    top_db : float or None
        Dynamic range shown, in the units of ``S``.

    Returns
    -------
    img : np.ndarray of uint8, shape (n_bins, n_frames)
        Row 0 is the highest band, column 0 the first frame.
    """
    if top_db is not None:
        if not is_number(top_db) or top_db <= 0:
            raise ConfigError(f"to_image: top_db must be a number > 0 or None, got {top_db!r}")
    if isinstance(S, torch.Tensor):
        S = S.detach().cpu().numpy()
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2 or S.size == 0:
        raise DataError(f"to_image: expected a non-empty (n_frames, n_bins) matrix, got shape {S.shape}")
    if not np.isfinite(S).all():
        raise DataError("to_image: the matrix holds NaN or infinite values")
    hi = float(S.max())
    lo = hi - float(top_db) if top_db is not None else float(S.min())
    if hi <= lo:
        scaled = np.full(S.shape, 255.0)
    else:
        scaled = (np.clip(S, lo, hi) - lo) * (255.0 / (hi - lo))
    return np.ascontiguousarray(np.rint(scaled).astype(np.uint8).T[::-1])


def save_image(path: str | os.PathLike, S: Any, **kw: Any) -> Path:
    """Write :func:`to_image` ``(S, **kw)`` as a grey PNG, atomically (temp file + rename).

    Parameters
    ----------
    path : str or PathLike
        Destination; its folder is created if missing.
    S : np.ndarray or torch.Tensor, shape (n_frames, n_bins)
        Features of one clip.
    **kw
        Passed to :func:`to_image` (``top_db``).

    Returns
    -------
    Path
        ``path``.
    """
    from PIL import Image

    img = to_image(S, **kw)
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")
    return path
