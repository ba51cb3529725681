"""Building blocks of REPET-SIM vocal separation (:mod:`earmark.audio.separate`), vectorised over a batch.

* :func:`nn_filter` -- each frame replaced by the median of its most similar frames (librosa
  ``decompose.nn_filter`` with ``aggregate=np.median, metric="cosine"``), searched in blocks of frames;
* :func:`softmask` -- librosa ``util.softmask``;
* :func:`hpss_masks` -- harmonic/percussive soft masks by median filtering (librosa ``decompose.hpss``).

Magnitudes are torch tensors of shape ``(batch, n_bins, n_frames)``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

_TINY = float(np.finfo(np.float32).tiny)
_GATHER_BUDGET = 1 << 23  # neighbour values gathered at once by the nearest-neighbour filter (floats)
_NETWORK_MAX = 32  # medians of up to this many values use a sorting network


def stft(y: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """(batch, n) -> complex (batch, n_fft // 2 + 1, frames); zero-padded centred frames (librosa's default)."""
    window = torch.hann_window(n_fft, dtype=y.dtype)
    return torch.stft(y, n_fft, hop, window=window, center=True, pad_mode="constant", return_complex=True)


def istft(X: torch.Tensor, n_fft: int, hop: int, length: int) -> torch.Tensor:
    """Inverse of :func:`stft`, cut or padded to ``length`` samples: (batch, n_bins, frames) -> (batch, length)."""
    window = torch.hann_window(n_fft, dtype=torch.float32)
    return torch.istft(X, n_fft, hop, window=window, center=True, length=length)


def softmask(X: torch.Tensor, X_ref: torch.Tensor, power: float = 2.0) -> torch.Tensor:
    """``X**p / (X**p + X_ref**p)``, computed without overflow, 0 where both are 0 (librosa ``util.softmask``)."""
    Z = torch.maximum(X, X_ref)
    silent = Z < _TINY
    Z = torch.where(silent, torch.ones_like(Z), Z)
    m, r = (X / Z) ** power, (X_ref / Z) ** power
    return torch.where(silent, torch.zeros_like(Z), m / (m + r))


def nn_filter(S: torch.Tensor, *, width: int, k: int | None = None) -> torch.Tensor:
    """Median of each frame's ``k`` most similar frames (cosine similarity) at least ``width`` frames away.

    Like ``librosa.decompose.nn_filter(S, aggregate=np.median, metric="cosine", width=width, k=k)``,
    vectorised over a batch, with the similarity searched in blocks of frames so that long clips
    need little memory. (librosa keeps ``k`` of the ``k + 2 width`` nearest frames in frame order;
    this keeps the ``k`` nearest: the two agree when a frame has exactly ``k`` frames outside the band.)

    Parameters
    ----------
    S : torch.Tensor, shape (batch, n_bins, n_frames)
        Non-negative magnitudes.
    width : int
        Frames closer than ``width`` (``|i - j| < width``) are never neighbours; >= 1.
    k : int, optional
        Neighbours per frame; default ``2 ceil(sqrt(n_frames - 2 width + 1))`` (librosa's). It is
        capped at ``n_frames - 2 width + 1``, the neighbours every frame has.

    Returns
    -------
    torch.Tensor, shape (batch, n_bins, n_frames)
        Frames with no neighbour (``n_frames < 2 width``) are returned unchanged.
    """
    B, F, T = S.shape
    available = T - 2 * width + 1
    if available < 1:
        return S.clone()
    if k is None:
        k = 2 * math.ceil(math.sqrt(available))
    k = max(1, min(int(k), available))
    frames = S.transpose(1, 2).reshape(B * T, F)  # one row per frame
    unit = frames / frames.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    unit = unit.view(B, T, F)
    out = torch.empty(B, T, F, dtype=S.dtype)
    lag = torch.arange(T)
    block = max(1, min(T, _GATHER_BUDGET // max(1, B * k * F)))
    offsets = (torch.arange(B) * T)[None, :, None]
    for start in range(0, T, block):  # blocks of query frames, not single frames
        stop = min(T, start + block)
        sim = unit[:, start:stop] @ unit.transpose(1, 2)  # (B, block, T)
        band = (lag[start:stop, None] - lag[None, :]).abs() < width
        sim.masked_fill_(band, -torch.inf)
        idx = sim.topk(k, dim=-1).indices.permute(2, 0, 1) + offsets  # (k, B, block): rows of `frames`
        neighbours = frames.index_select(0, idx.reshape(-1)).view(k, B, stop - start, F)
        out[:, start:stop] = _median(list(neighbours.unbind(0)))
    return out.transpose(1, 2)


@functools.lru_cache(maxsize=None)
def _sorting_network(n: int) -> tuple[tuple[int, int], ...]:
    """Comparators ``(i, j)``, ``i < j``, of Batcher's odd-even merge sort for ``n`` values."""
    size = 1 << max(0, (n - 1).bit_length())
    pairs = []
    p = 1
    while p < size:
        step = p
        while step >= 1:
            for j in range(step % p, size - step, 2 * step):
                for i in range(min(step, size - j - step)):
                    a, b = i + j, i + j + step
                    if a // (2 * p) == b // (2 * p) and b < n:  # b >= n: a padding +inf, never moves
                        pairs.append((a, b))
            step //= 2
        p *= 2
    return tuple(pairs)


def _median(values: list[torch.Tensor]) -> torch.Tensor:
    """Element-wise median of equally shaped tensors (``np.median``: the mean of the middle two for even counts).

    A sorting network of element-wise minima and maxima: for the ~10 values of a neighbour filter
    it is several times faster than ``torch.sort`` or ``torch.median`` along a short axis.
    """
    n = len(values)
    if n > _NETWORK_MAX:  # the network grows as n log^2 n; selection is cheaper there
        stacked = torch.stack(values)
        lower = stacked.kthvalue((n + 1) // 2, dim=0).values
        return lower if n % 2 else 0.5 * (lower + stacked.kthvalue(n // 2 + 1, dim=0).values)
    v = list(values)
    for i, j in _sorting_network(n):
        v[i], v[j] = torch.minimum(v[i], v[j]), torch.maximum(v[i], v[j])
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def median_filter(S: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Running median of an odd number ``size`` of values along ``dim`` (-1 or -2 of a 3-D tensor),
    edges mirrored as in ``scipy.ndimage.median_filter``'s ``"reflect"`` mode (``d c b a | a b c d | d c b a``).

    Computed in blocks along the other axis, so that long clips need little memory; shape of ``S``.
    """
    n = S.shape[dim]
    period = 2 * n
    idx = torch.arange(-(size // 2), n + size - 1 - size // 2) % period
    idx = torch.where(idx >= n, period - 1 - idx, idx)
    other = -1 if dim == -2 else -2
    block = max(1, _GATHER_BUDGET // max(1, S.shape[0] * n * size))
    out = torch.empty_like(S)
    for start in range(0, S.shape[other], block):  # blocks of bins or frames, not single ones
        part = S.narrow(other, start, min(block, S.shape[other] - start)).index_select(dim, idx)
        out.narrow(other, start, part.shape[other]).copy_(_median([part.narrow(dim, i, n) for i in range(size)]))
    return out


def hpss_masks(S: torch.Tensor, *, kernel: int = 31, power: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft harmonic and percussive masks of magnitudes ``S`` (batch, n_bins, n_frames), as librosa ``hpss``
    (``mask=True``, margin 1): medians over ``kernel`` frames (harmonic) and ``kernel`` bins (percussive)."""
    H = median_filter(S, kernel, dim=-1)
    P = median_filter(S, kernel, dim=-2)
    return softmask(H, P, power), softmask(P, H, power)


def default_n_fft(sr: int) -> int:
    """The power of two nearest to 93 ms at ``sr`` (2048 at 16 and 22.05 kHz, 4096 at 44.1 kHz)."""
    return int(2 ** round(math.log2(0.093 * sr)))


