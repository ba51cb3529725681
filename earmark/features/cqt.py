"""Constant-Q transform and the chroma / CENS / tonnetz computed from it, as librosa does them.

``cqt`` reproduces ``np.abs(librosa.cqt(y, sr, hop_length, bins_per_octave=12, n_bins=84, tuning=...))``
(the octave cascade with soxr halving, as librosa), and ``cqt_chroma`` gives ``chroma_cqt``,
``chroma_cens`` and ``tonnetz`` from it with the FMA study's calls. Written here, in NumPy / torch
and checked against librosa in ``tests/test_stats_features.py``, so extraction workers never import
librosa (about 1.2 s per process). Used by :mod:`earmark.features.stats`.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from earmark.errors import ConfigError
from earmark.features.dsp import get_window

__all__ = ["cqt", "cqt_chroma"]

_C1_HZ = 440.0 * 2.0 ** ((24 - 69.0) / 12.0)  # librosa.note_to_hz("C1")
_HANN_BANDWIDTH = 1.50018310546875  # librosa.filters.window_bandwidth("hann")


def _wavelet_fft(freqs: np.ndarray, Q: np.ndarray, sr: float) -> np.ndarray:
    """Sparsified FFT of the Hann-windowed complex wavelets of ``freqs`` at ``sr``: (n_filters, n_fft // 2 + 1).

    ``librosa.filters.wavelet(norm=1, pad_fft=True)`` scaled by ``lengths / n_fft``, transformed, and
    ``librosa.util.sparsify_rows(quantile=0.01)``, as ``librosa.cqt`` builds each octave's basis.
    """
    lengths = Q * sr / freqs
    n_fft = int(2.0 ** np.ceil(np.log2(lengths.max())))
    basis = np.zeros((len(freqs), n_fft), dtype=np.complex64)
    for i, (ilen, freq) in enumerate(zip(lengths, freqs)):
        phase = np.arange(-ilen // 2, ilen // 2, dtype=float) * 2 * np.pi * freq / sr
        sig = (np.cos(phase) + 1j * np.sin(phase)) * get_window("stats518", "hann", len(phase))
        sig /= np.abs(sig).sum()
        lpad = (n_fft - len(sig)) // 2
        basis[i, lpad : lpad + len(sig)] = sig
    basis *= lengths[:, None] / float(n_fft)
    fft = np.fft.fft(basis, n=n_fft, axis=1)[:, : n_fft // 2 + 1]
    mags = np.abs(fft)
    ordered = np.sort(mags, axis=1)
    cumulative = np.cumsum(ordered / mags.sum(axis=1, keepdims=True), axis=1)
    floor = ordered[np.arange(len(freqs)), np.argmin(cumulative < 0.01, axis=1)]
    return np.where(mags >= floor[:, None], fft, 0).astype(np.complex64)


@functools.lru_cache(maxsize=256)
def _cqt_plan(sr: int, hop_length: int, tuning: float) -> tuple[int, tuple, np.ndarray]:
    """The octave filters of ``librosa.cqt(sr, hop_length, fmin=C1, n_bins=84, bins_per_octave=12, tuning)``.

    Returns ``(early_downsample_factor, octaves, 1 / sqrt(lengths))``; each octave is
    ``(n_fft, hop, lo, hi, basis (hi - lo, 12) complex64, resample_after)``, highest octave first.
    """
    n_bins, bpo = 84, 12
    n_octaves = n_bins // bpo
    ratios = 2.0 ** (np.arange(0, bpo, dtype=float) / bpo)  # librosa.interval_frequencies("equal")
    freqs = np.sort(np.multiply.outer(2.0 ** np.arange(n_octaves), ratios).flatten()[:n_bins])
    freqs = freqs * (_C1_HZ * 2.0 ** (tuning / bpo))
    logf = np.log2(freqs)  # librosa.filters._relative_bandwidth
    local_bpo = np.empty_like(freqs)
    local_bpo[0] = 1 / (logf[1] - logf[0])
    local_bpo[-1] = 1 / (logf[-1] - logf[-2])
    local_bpo[1:-1] = 2 / (logf[2:] - logf[:-2])
    alpha = (2.0 ** (2 / local_bpo) - 1) / (2.0 ** (2 / local_bpo) + 1)
    Q = 1.0 / alpha
    cutoff = np.max(freqs * (1 + 0.5 * _HANN_BANDWIDTH / Q))
    nyquist = sr / 2.0
    if cutoff > nyquist:
        raise ConfigError(f"constant-Q transform: 7 octaves from C1 need sr > {2 * cutoff:.0f}, got sr={sr}")
    count1 = max(0, int(np.ceil(np.log2(nyquist / cutoff)) - 1) - 1)
    twos = (hop_length & -hop_length).bit_length() - 1
    factor = 2 ** min(count1, max(0, twos - n_octaves + 1))
    sr_e = sr / factor
    octaves = []
    my_sr, my_hop = sr_e, hop_length // factor
    for i in range(n_octaves):
        sl = slice(n_bins - bpo * (i + 1), n_bins - bpo * i)
        fft_basis = _wavelet_fft(freqs[sl], Q[sl], my_sr) * np.float32(np.sqrt(sr_e / my_sr))
        cols = np.flatnonzero(np.abs(fft_basis).sum(axis=0) > 0)
        lo, hi = int(cols[0]), int(cols[-1]) + 1
        n_fft = 2 * (fft_basis.shape[1] - 1)
        resample = my_hop % 2 == 0 and i < n_octaves - 1
        octaves.append((n_fft, my_hop, lo, hi, torch.from_numpy(np.ascontiguousarray(fft_basis[:, lo:hi].T)), resample))
        if my_hop % 2 == 0:
            my_hop //= 2
            my_sr /= 2.0
    return factor, tuple(octaves), (1.0 / np.sqrt(Q * sr_e / freqs)).astype(np.float32)


def _halve(y: np.ndarray, factor: int = 2) -> np.ndarray:
    """``librosa.resample(y, orig_sr=factor, target_sr=1, res_type="soxr_hq", scale=True)``."""
    import soxr

    n = int(np.ceil(y.shape[-1] / factor))
    out = soxr.resample(y, factor, 1, quality="soxr_hq")
    if out.shape[-1] != n:
        out = np.pad(out, (0, n - out.shape[-1])) if out.shape[-1] < n else out[:n]
    out = out.astype(y.dtype, copy=False)
    out /= np.sqrt(1.0 / factor)
    return out


def cqt(y: np.ndarray, sr: int, hop_length: int, tuning: float) -> np.ndarray:
    """``np.abs(librosa.cqt(y, sr, hop_length, n_bins=84, bins_per_octave=12, tuning=tuning))``: (84, n_frames)."""
    factor, octaves, scale = _cqt_plan(sr, hop_length, tuning)
    my_y = _halve(y, factor) if factor > 1 else y
    responses = []
    for n_fft, my_hop, lo, hi, basis, resample in octaves:
        x = torch.from_numpy(my_y)
        pad = n_fft // 2
        short = max(0, n_fft - (x.shape[-1] + 2 * pad))
        x = torch.nn.functional.pad(x[None], (pad, pad + short))[0]
        frames = x.unfold(-1, n_fft, my_hop)
        spec = torch.fft.rfft(frames, dim=-1)[:, lo:hi]
        responses.append(torch.matmul(spec.to(basis.dtype), basis))  # (T_i, 12)
        if resample:
            my_y = _halve(my_y)
    n_frames = min(r.shape[0] for r in responses)
    C = torch.cat([r[:n_frames] for r in reversed(responses)], dim=-1).abs()
    return (C.numpy() * scale).T


@functools.lru_cache(maxsize=1)
def _cq_to_chroma() -> np.ndarray:
    """``librosa.filters.cq_to_chroma(84, bins_per_octave=36, n_chroma=12)``: (12, 84).

    36 bins per octave is ``chroma_cqt``'s default, which FMA's call ``chroma_cqt(C=cqt,
    n_chroma=12, n_octaves=7)`` on its 12-bin-per-octave CQT kept; reproduced as FMA computed it.
    """
    cq = np.roll(np.repeat(np.eye(12), 3, axis=1), -1, axis=1)
    cq = np.tile(cq, 3)[:, :84]
    midi_0 = np.mod(12 * (np.log2(_C1_HZ) - np.log2(440.0)) + 69, 12)
    return np.roll(cq, int(np.round(midi_0)), axis=0).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _tonnetz_matrix() -> np.ndarray:
    """``librosa.feature.tonnetz``'s projection of 12 chroma onto fifths, minor and major thirds: (6, 12)."""
    scale = np.asarray([7.0 / 6, 7.0 / 6, 3.0 / 2, 3.0 / 2, 2.0 / 3, 2.0 / 3])
    V = np.multiply.outer(scale, np.linspace(0, 12, num=12, endpoint=False))
    V[::2] -= 0.5
    return np.array([1, 1, 1, 1, 0.5, 0.5])[:, None] * np.cos(np.pi * V)


def _normalize_rows(x: np.ndarray, norm: float) -> np.ndarray:
    """``librosa.util.normalize(x, norm, axis=-2)`` for freq-first ``x``: tiny columns are left as they are."""
    mag = np.abs(x).astype(np.float64)
    length = mag.max(axis=-2, keepdims=True) if norm == math.inf else np.sum(mag**norm, axis=-2, keepdims=True) ** (1.0 / norm)
    return (x / np.where(length < np.finfo(x.dtype).tiny, 1.0, length)).astype(x.dtype)


def cqt_chroma(C: np.ndarray) -> dict[str, np.ndarray]:
    """``chroma_cqt``, ``chroma_cens`` (n_chroma 12, n_octaves 7) of a ``|cqt|`` and ``tonnetz`` of the CENS."""
    raw = np.maximum(_cq_to_chroma() @ C, 0.0)
    quant = np.zeros_like(raw)
    l1 = _normalize_rows(raw, 1)
    for step in (0.4, 0.2, 0.1, 0.05):
        quant += (l1 > step) * np.float32(0.25)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(43) / 42)  # symmetric Hann of 41 + 2
    win = torch.from_numpy(win / win.sum()).to(torch.float32)
    smooth = torch.nn.functional.conv1d(torch.from_numpy(quant)[:, None], win[None, None], padding=21)[:, 0]
    cens = _normalize_rows(smooth.numpy(), 2)
    return {
        "chroma_cqt": _normalize_rows(raw, math.inf),
        "chroma_cens": cens,
        "tonnetz": _tonnetz_matrix() @ _normalize_rows(cens, 1),
    }
