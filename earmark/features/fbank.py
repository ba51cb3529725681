"""The singer-gender study's log mel filterbank, written from scratch in torch.

Follows H. Fayek, "Speech Processing for Machine Learning: Filter banks, Mel-Frequency Cepstral
Coefficients (MFCCs) and What's In-Between" (2016): pre-emphasis, 25 ms Hamming frames every 10 ms,
power spectrum, triangular mel filters with integer edge bins, 20 log10.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

from earmark.errors import ConfigError
from earmark.features.base import like_input, register_feature
from earmark.features.dsp import (
    _chunked,
    _float_param,
    _freq_range,
    _int_param,
    _power,
    _validated,
    filter_blocks,
    project,
    _waveform_tensor,
)

__all__ = ["fbank", "fbank_filters"]

_EPS = float(np.finfo(float).eps)  # the tutorial's floor, float64 machine epsilon
_DB_OF_EPS = 20.0 * float(np.log10(_EPS))


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def fbank_filters(
    sr: int = 16000, *, n_fft: int = 1024, n_mels: int = 40, fmin: float = 0.0, fmax: float = 8000.0
) -> np.ndarray:
    """Triangular mel filters of the tutorial, shape ``(n_mels, n_fft // 2 + 1)``, float64.

    ``n_mels + 2`` points equally spaced on ``2595 log10(1 + f / 700)`` between ``fmin`` and
    ``fmax``; edge bins ``floor((n_fft + 1) f / sr)``; filter ``m`` rises over
    ``[bin[m-1], bin[m])`` and falls over ``[bin[m], bin[m+1])`` (peak 1 at ``bin[m]``). Filters
    whose edge bins coincide (too many mels for the FFT resolution) are partly or wholly zero.
    """
    hz = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    bins = np.floor((n_fft + 1) * hz / sr)
    n_bins = n_fft // 2 + 1
    k = np.arange(n_bins, dtype=np.float64)[None, :]
    left, centre, right = bins[:-2, None], bins[1:-1, None], bins[2:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        rising = np.where((k >= left) & (k < centre), (k - left) / (centre - left), 0.0)
        falling = np.where((k >= centre) & (k < right), (right - k) / (right - centre), 0.0)
    return rising + falling


@functools.lru_cache(maxsize=32)
def _plan(
    sr: int, pre_emphasis: float, frame_length: int, hop_length: int, n_fft: int, n_mels: int,
    fmin: float, fmax: float | None,
) -> tuple[np.ndarray, int, tuple[tuple[int, int, np.ndarray], ...]]:
    """Validated constants: ``(window, n_used_bins, blocks)``.

    ``blocks`` are :func:`~earmark.features.spectral.filter_blocks` of ``filters.T / n_fft``
    (the filters are sparse: each bin feeds at most two), applied with ``project``.
    """
    sr = _int_param("fbank", "sr", sr)
    _float_param("fbank", "pre_emphasis", pre_emphasis)
    frame_length = _int_param("fbank", "frame_length", frame_length)
    _int_param("fbank", "hop_length", hop_length)
    n_fft = _int_param("fbank", "n_fft", n_fft)
    if frame_length > n_fft:
        raise ConfigError(f"fbank: frame_length must be <= n_fft={n_fft}, got {frame_length!r}")
    n_mels = _int_param("fbank", "n_mels", n_mels)
    fmin, fmax = _freq_range("fbank", sr, fmin, fmax)
    weights = fbank_filters(sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).T / n_fft
    used = np.flatnonzero(weights.any(axis=1))
    n_used = int(used[-1]) + 1 if used.size else 1
    weights = weights[:n_used]

    blocks = filter_blocks(weights) if n_mels > 16 else ((0, n_used, np.ascontiguousarray(weights)),)
    return np.hamming(frame_length), n_used, blocks


@functools.lru_cache(maxsize=64)
def _tensors(
    key: tuple, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, int, tuple[tuple[int, int, torch.Tensor], ...]]:
    window, n_used, blocks = _plan(*key)
    as_t = lambda a: torch.from_numpy(a).to(device, dtype)  # noqa: E731
    return as_t(window), n_used, tuple((lo, hi, as_t(w)) for lo, hi, w in blocks)


# The store reports clips shorter than one 25 ms frame; the function itself zero-pads them to one frame.
@register_feature("fbank", min_samples=lambda params: int(params["frame_length"]))
def fbank(
    y: Any,
    sr: int = 16000,
    *,
    pre_emphasis: float = 0.97,
    frame_length: int = 400,
    hop_length: int = 160,
    n_fft: int = 1024,
    n_mels: int = 40,
    fmin: float = 0.0,
    fmax: float = 8000.0,
    normalize: bool = False,
) -> Any:
    """Log mel filterbank energies in dB (singer-gender study; Fayek's tutorial).

    1. pre-emphasis ``e[0] = y[0]``, ``e[t] = y[t] - pre_emphasis * y[t-1]``;
    2. frames of ``frame_length`` samples every ``hop_length``, the last partial frame zero-padded:
       ``n_frames = 1 + ceil((n_samples - frame_length) / hop_length)``, one frame when
       ``n_samples < frame_length``;
    3. symmetric Hamming window (``np.hamming(frame_length)``), power spectrum
       ``|rfft(frame, n_fft)|**2 / n_fft``;
    4. ``n_mels`` triangular filters (:func:`fbank_filters`), energies ``P @ filters.T``;
    5. exact zeros replaced by ``np.finfo(float).eps``, then ``20 log10``;
    6. ``normalize``: subtract each band's mean over time (+ 1e-8).

    Parameters
    ----------
    y : np.ndarray or torch.Tensor, shape (..., n_samples)
        Waveform(s) at ``sr``, ``n_samples >= 1``.
    sr : int
        Sample rate.
    pre_emphasis : float
        Pre-emphasis coefficient (0 disables).
    frame_length, hop_length, n_fft : int
        Frame size, step and FFT size in samples (``frame_length <= n_fft``).
    n_mels : int
        Number of filters.
    fmin, fmax : float
        Frequency range of the filters in Hz (``0 <= fmin < fmax <= sr / 2``).
    normalize : bool
        Mean-normalise each band over time.

    Returns
    -------
    S : shape (..., n_frames, n_mels)
        dB energies; 3 s at 16 kHz (48000 samples) -> (299, 40).
    """
    key = (sr, pre_emphasis, frame_length, hop_length, n_fft, n_mels, fmin, fmax)
    _validated(_plan, "fbank", *key)
    x, was_numpy = _waveform_tensor(y, "fbank")
    window, n_used, blocks = _tensors(key, x.device, x.dtype)

    n = x.shape[-1]
    n_frames = 1 + max(0, -(-(n - frame_length) // hop_length))
    padded = (n_frames - 1) * hop_length + frame_length

    def core(x: torch.Tensor) -> torch.Tensor:
        emphasised = x.new_zeros(*x.shape[:-1], padded)
        emphasised[..., :n] = x
        if pre_emphasis != 0 and n > 1:
            emphasised[..., 1:n].sub_(x[..., :-1], alpha=pre_emphasis)
        frames = emphasised.unfold(-1, frame_length, hop_length) * window
        power = _power(torch.fft.rfft(frames, n=n_fft)[..., :n_used])
        energy = project(power, blocks)
        # exact zeros -> eps (log10(0) = -inf -> 20 log10(eps)); NaN stays NaN
        S = energy.log10_().mul_(20.0).nan_to_num_(nan=math.nan, posinf=math.inf, neginf=_DB_OF_EPS)
        if normalize:
            S = S.sub_(S.mean(dim=-2, keepdim=True) + 1e-8)
        return S

    S = _chunked(core, x, n_frames * (n_fft + 2) * x.element_size())
    return like_input(S, was_numpy)
