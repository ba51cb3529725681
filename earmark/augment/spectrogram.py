"""SpecAugment and FilterAugment on time-first spectrograms ``(..., time, bins)``.

* :func:`spec_augment` — online: frequency and time masks, drawn independently for every item of
  the batch (every index of the leading axes), applied on each training step.
* :func:`filter_augment` — online: a random smooth frequency response per item (FilterAugment), so
  that a model does not learn one recording's colour.
* :func:`spec_augment_copies` / :func:`spec_augment_dataset` — the FMA study's offline mode: keep
  each original and add ``k`` masked copies, growing the training set ``k + 1`` times.

NumPy arrays and torch tensors on any device are accepted and returned as the same kind, device and
dtype. The mask positions are drawn with NumPy on the CPU (a few integers per item) from the same
``rng`` kinds as the waveform augmentations (int seed, NumPy or torch Generator, None), so a
NumPy array and a tensor with the same seed get the same masks; the masking itself runs on the
tensor's device and keeps autograd.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from earmark.augment._common import (
    Invalid,
    Rng,
    as_generator,
    boolean,
    choice,
    integer,
    number_or_range,
    validated,
)
from earmark.checks import is_int, is_number
from earmark.errors import ConfigError, DataError

__all__ = ["filter_augment", "spec_augment", "spec_augment_copies", "spec_augment_dataset"]


def _mask_value(value: Any) -> str | float:
    if isinstance(value, str):
        if value != "mean":
            raise Invalid(f"expected 'mean' or a finite number, got {value!r}")
        return value
    if not is_number(value):
        raise Invalid(f"expected 'mean' or a finite number, got {value!r}")
    return float(value)


_CHECKS = {
    "freq_masks": integer(minimum=0),
    "freq_width": integer(minimum=0),
    "time_masks": integer(minimum=0),
    "time_width": integer(minimum=0),
    "mask_value": _mask_value,
}


def _bands(rng: np.random.Generator, items: int, size: int, n_masks: int, max_width: int) -> np.ndarray:
    """``(items, size)`` bool: the union of ``n_masks`` bands per item, each of width uniform in
    ``0..min(max_width, size)`` starting uniformly where it fits (Park et al., 2019)."""
    widths = rng.integers(0, min(max_width, size) + 1, size=(items, n_masks))
    starts = rng.integers(0, size - widths + 1)
    pos = np.arange(size)
    inside = (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])
    return inside.any(axis=1)


def _as_spectrogram(S: Any, where: str) -> Any:
    if isinstance(S, torch.Tensor):
        S = S if S.is_floating_point() else S.float()
    else:
        S = np.asarray(S)
        if S.dtype not in (np.float32, np.float64):
            S = S.astype(np.float32)
    if S.ndim < 2:
        raise ConfigError(f"{where}: S must have shape (..., time, bins), got shape {tuple(S.shape)}")
    return S


@validated(**_CHECKS, per_item=boolean)
def spec_augment(
    S: Any,
    *,
    freq_masks: int = 2,
    freq_width: int = 8,
    time_masks: int = 2,
    time_width: int = 20,
    mask_value: str | float = "mean",
    rng: Rng,
    per_item: bool = True,
) -> Any:
    """Mask random frequency bands and time spans (SpecAugment without time warping).

    Parameters
    ----------
    S : np.ndarray or torch.Tensor
        Shape ``(..., time, bins)`` (time first, as earmark's features), e.g. a log-mel batch.
    freq_masks, time_masks : int
        Number of masks along each axis (0 disables that axis). Masks may overlap.
    freq_width, time_width : int
        Maximum mask width; each mask's width is uniform in ``0..width`` (clipped to the axis).
    mask_value : "mean" or float
        Fill value: each item's own mean over ``(time, bins)`` (right for log-scaled features),
        or a constant such as 0.0.
    rng : int, np.random.Generator, torch.Generator or None
    per_item : bool
        Independent masks for every item of the leading axes (True), or one set of masks shared
        by the whole array (False).

    Returns
    -------
    Same kind, device, shape and dtype as ``S``; a new array (``S`` is not modified). Entries
    outside the masks are exactly ``S``'s.
    """
    S = _as_spectrogram(S, "spec_augment")
    g = as_generator(rng)
    lead, (n_time, n_bins) = tuple(S.shape[:-2]), tuple(S.shape[-2:])
    items = math.prod(lead) if per_item else 1
    fmask = _bands(g, items, n_bins, freq_masks, freq_width)
    tmask = _bands(g, items, n_time, time_masks, time_width)
    mask = tmask[:, :, None] | fmask[:, None, :]
    mask = mask.reshape((lead if per_item else ()) + (n_time, n_bins))
    if isinstance(S, torch.Tensor):
        m = torch.from_numpy(mask).to(S.device)
        fill = S.mean(dim=(-2, -1), keepdim=True) if mask_value == "mean" else torch.tensor(mask_value, dtype=S.dtype, device=S.device)
        return torch.where(m, fill.to(S.dtype), S)
    fill = S.mean(axis=(-2, -1), keepdims=True) if mask_value == "mean" else mask_value
    return np.where(mask, fill, S).astype(S.dtype, copy=False)


def _band_count(value: Any) -> tuple[int, int]:
    """An integer ``n >= 1`` (exactly n bands) or a ``(low, high)`` pair of them (uniform in low..high)."""
    pair = tuple(value) if isinstance(value, (list, tuple)) else (value, value)
    if len(pair) != 2 or not all(is_int(v) and v >= 1 for v in pair):
        raise Invalid(f"expected an integer >= 1 or a (low, high) pair of them, got {value!r}")
    if pair[0] > pair[1]:
        raise Invalid(f"expected low <= high, got {value!r}")
    return int(pair[0]), int(pair[1])


def _responses(rng: np.random.Generator, items: int, n_bins: int, bands: tuple[int, int],
               db: tuple[float, float], kind: str) -> np.ndarray:
    """``(items, n_bins)`` gains in dB: per item, a number of bands uniform in ``bands``, band edges at
    distinct random bins, a gain uniform in ``db`` per band (``step``) or per band edge, joined by
    straight lines (``linear``)."""
    out = np.empty((items, n_bins))
    pos = np.arange(n_bins)
    for i in range(items):
        n = int(rng.integers(bands[0], bands[1] + 1))
        inner = np.sort(rng.choice(np.arange(1, n_bins), size=min(n - 1, n_bins - 1), replace=False))
        if kind == "step":
            gains = rng.uniform(db[0], db[1], size=len(inner) + 1)
            out[i] = np.repeat(gains, np.diff(np.concatenate(([0], inner, [n_bins]))))
        else:
            points = np.concatenate(([0], inner, [n_bins - 1])).astype(float)
            out[i] = np.interp(pos, points, rng.uniform(db[0], db[1], size=len(points)))
    return out


@validated(db=number_or_range(symmetric=True), bands=_band_count, kind=choice("linear", "step"),
           scale=choice("log", "linear"), per_item=boolean)
def filter_augment(
    S: Any,
    *,
    db: float | tuple[float, float] = 6.0,
    bands: int | tuple[int, int] = (3, 6),
    kind: str = "linear",
    scale: str = "log",
    rng: Rng,
    per_item: bool = True,
) -> Any:
    """Apply a random frequency response: FilterAugment (Nam et al., ICASSP 2022).

    The frequency axis is cut at random bins into a random number of bands and each band (``step``)
    or each band edge (``linear``, joined by straight lines) gets a random gain, the same for every
    frame of the item: as if the clip had gone through an unknown equaliser, microphone or room. It
    trains a model to rely on what survives such colouring, which is what changes between one
    recording (sound font, studio, singer's microphone) and another.

    Parameters
    ----------
    S : np.ndarray or torch.Tensor
        Shape ``(..., time, bins)`` (time first, as earmark's features).
    db : float or (low, high)
        Gains are drawn uniformly in ``[-db, db]`` (or ``[low, high]``), in the spectrogram's dB
        units (``fbank``, ``logmel``).
    bands : int or (low, high)
        Number of bands, uniform in ``low..high`` for each item (at most one per bin).
    kind : "linear" or "step"
        Piecewise-linear response through random gains at the band edges (the paper's better
        variant), or a constant gain per band.
    scale : "log" or "linear"
        ``log``: ``S`` is dB-scaled and the response is added. ``linear``: ``S`` is a magnitude
        (``stft``) and is multiplied by ``10 ** (gain / 20)``.
    rng : int, np.random.Generator, torch.Generator or None
    per_item : bool
        A response for every item of the leading axes (True), or one shared by the whole array.

    Returns
    -------
    Same kind, device, shape and dtype as ``S``; a new array (``S`` is not modified).
    """
    S = _as_spectrogram(S, "filter_augment")
    g = as_generator(rng)
    lead, n_bins = tuple(S.shape[:-2]), S.shape[-1]
    items = math.prod(lead) if per_item else 1
    gain = _responses(g, items, n_bins, bands, db, kind)
    gain = gain.reshape((lead if per_item else ()) + (1, n_bins))
    if scale == "linear":
        gain = 10.0 ** (gain / 20.0)
    if isinstance(S, torch.Tensor):
        t = torch.from_numpy(gain).to(device=S.device, dtype=S.dtype)
        return S * t if scale == "linear" else S + t
    gain = gain.astype(S.dtype)  # as the tensor path: the same result for an array and a tensor
    return S * gain if scale == "linear" else S + gain


def spec_augment_copies(S: Any, k: int, *, rng: Rng, **params: Any) -> Any:
    """The original plus ``k`` independently masked copies (offline SpecAugment).

    Parameters
    ----------
    S : np.ndarray or torch.Tensor
        Shape ``(..., time, bins)``.
    k : int
        Number of masked copies (>= 0).
    rng : int, np.random.Generator, torch.Generator or None
    **params
        Any :func:`spec_augment` parameter (``freq_masks``, ``time_width``, ``mask_value``, ...).

    Returns
    -------
    Same kind as ``S``, shape ``(k + 1, ..., time, bins)``: index 0 is ``S`` itself (copied),
    1..k the masked copies.
    """
    try:
        k = integer(minimum=0)(k)
    except Invalid as exc:
        raise ConfigError(f"spec_augment_copies: k: {exc}") from None
    S = _as_spectrogram(S, "spec_augment_copies")
    g = as_generator(rng)
    copies = [S] + [spec_augment(S, rng=g, **params) for _ in range(k)]
    return torch.stack(copies) if isinstance(S, torch.Tensor) else np.stack(copies)


def spec_augment_dataset(X: Any, y: Any, k: int, *, rng: Rng, **params: Any) -> tuple[Any, Any]:
    """Expand a training set with ``k`` masked copies of every example (the FMA study's offline mode).

    Parameters
    ----------
    X : np.ndarray or torch.Tensor
        Shape ``(n, ..., time, bins)``.
    y : array-like or torch.Tensor
        Shape ``(n, ...)``: labels (or any per-example targets).
    k : int
        Masked copies per example (>= 0).
    rng : int, np.random.Generator, torch.Generator or None
    **params
        Any :func:`spec_augment` parameter.

    Returns
    -------
    X_aug : same kind as ``X``, shape ``(n * (k + 1), ..., time, bins)``
        Example-major: rows ``i * (k + 1) .. i * (k + 1) + k`` are example ``i`` (original first)
        then its ``k`` copies, so ``i = row // (k + 1)`` finds the source (keep copies on the same
        side of any split as their source).
    y_aug : same kind as ``y``, shape ``(n * (k + 1), ...)``
        Each label repeated ``k + 1`` times.
    """
    X = _as_spectrogram(X, "spec_augment_dataset")
    if X.ndim < 3:
        raise ConfigError(f"spec_augment_dataset: X must have shape (n, ..., time, bins), got shape {tuple(X.shape)}")
    y_t = y if isinstance(y, torch.Tensor) else np.asarray(y)
    if y_t.ndim == 0 or y_t.shape[0] != X.shape[0]:
        raise DataError(f"spec_augment_dataset: y must have one entry per example ({X.shape[0]}), got shape {tuple(y_t.shape)}")
    copies = spec_augment_copies(X, k, rng=rng, **params)  # (k + 1, n, ...)
    n_out = X.shape[0] * (k + 1)
    X_aug = copies.transpose(0, 1) if isinstance(X, torch.Tensor) else copies.swapaxes(0, 1)
    X_aug = X_aug.reshape((n_out,) + tuple(X.shape[1:]))
    if isinstance(y_t, torch.Tensor):
        y_aug = torch.repeat_interleave(y_t, k + 1, dim=0)
    else:
        y_aug = np.repeat(y_t, k + 1, axis=0)
    return X_aug, y_aug
