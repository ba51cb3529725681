"""Hand-crafted statistics features: the FMA study's 518 values and the artist20 study's 849.

``stats518`` reproduces ``compute_features`` of the FMA repository (``features.py``): chroma
(STFT, CQT, CENS), tonnetz, MFCC, zero-crossing rate, RMS and spectral centroid / bandwidth /
contrast / rolloff, each summarised over time by seven statistics. ``artist_stats`` is the artist20
study's set: MFCC + deltas, 128-band log-mel, spectral shape, RMS, ZCR and chroma summarised by
mean / std / max / min, plus the tempo.

Both return one vector per clip, ``(..., n_values)`` float32, not frames. The values are those of
the librosa calls the studies made (the tests compare every block with a plain librosa
implementation), but each clip is analysed once: ONE centred STFT (n_fft 2048, hop 512) feeds
chroma_stft, RMS, the spectral shape features and the mel spectrogram / MFCCs, and ONE constant-Q
transform feeds chroma_cqt, chroma_cens and tonnetz. The tuning estimates (librosa's ``piptrack``),
the CQT octave cascade (soxr halving, as librosa), the filter banks (cached per tuning), the chroma
post-processing and the tempogram are written here in torch / NumPy, so extraction workers never
import librosa or ``scipy.signal`` (about 1.2 s per process).

Batches are analysed clip by clip (equal results, and a clip's spectra stay in the CPU caches).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import numpy as np
import torch

from earmark.errors import ConfigError, DataError
from earmark.features.base import register_feature
from earmark.features.cqt import cqt, cqt_chroma
from earmark.features.dsp import (
    _frames_rfft,
    _int_param,
    _power,
    _power_to_db,
    filter_blocks,
    get_window,
    mel_filters,
    project,
)
from earmark.features.spectral import _dct_matrix, _deltas, _stft_window

__all__ = [
    "ARTIST_STATISTICS",
    "FMA_STATISTICS",
    "artist_stats",
    "artist_stats_names",
    "stats518",
    "stats518_names",
    "summarise",
]

# FMA's features.csv orders its columns by (feature, statistic, number), all alphabetically.
FMA_STATISTICS = ("kurtosis", "max", "mean", "median", "min", "skew", "std")
ARTIST_STATISTICS = ("mean", "std", "max", "min")
_FMA_BLOCKS = (
    ("chroma_cens", 12), ("chroma_cqt", 12), ("chroma_stft", 12), ("mfcc", 20), ("rmse", 1),
    ("spectral_bandwidth", 1), ("spectral_centroid", 1), ("spectral_contrast", 7),
    ("spectral_rolloff", 1), ("tonnetz", 6), ("zcr", 1),
)
_ARTIST_BLOCKS = (
    ("mfcc", 20), ("mfcc_delta", 20), ("mfcc_delta2", 20), ("mel", 128), ("spectral_centroid", 1),
    ("spectral_bandwidth", 1), ("spectral_rolloff", 1), ("spectral_contrast", 7), ("rms", 1),
    ("zcr", 1), ("chroma_stft", 12),
)
_KNOWN_STATS = ("mean", "std", "max", "min", "median", "skew", "kurtosis")

# A row whose variance is below float32 resolution relative to its mean is constant: its skew and
# kurtosis are 0 (scipy.stats returns NaN there; FMA's features were float32).
_CONSTANT_RESOLUTION = 1e-6


# --------------------------------------------------------------------------- names and statistics


def _names(blocks: Sequence[tuple[str, int]], stats: Sequence[str]) -> list[str]:
    out = []
    for name, size in blocks:
        width = max(2, len(str(size)))
        out += [f"{name}_{i + 1:0{width}d}_{s}" for s in stats for i in range(size)]
    return out


def stats518_names() -> list[str]:
    """Names of the 518 :func:`stats518` values, in order (``"chroma_cqt_03_kurtosis"``).

    The order is the column order of FMA's ``features.csv``: feature, then statistic, then number,
    each alphabetically; ``f"{feature}_{number:02d}_{statistic}"`` is FMA's column
    ``(feature, statistic, number)`` (FMA calls RMS ``rmse``).
    """
    return _names(_FMA_BLOCKS, FMA_STATISTICS)


def artist_stats_names() -> list[str]:
    """Names of the 849 :func:`artist_stats` values, in order (``"mfcc_delta_03_std"``, ..., ``"tempo"``).

    Blocks in the order mfcc, mfcc_delta, mfcc_delta2, mel (``mel_001`` ... ``mel_128``), spectral
    centroid, bandwidth, rolloff, contrast, rms, zcr, chroma_stft; within a block statistic by
    statistic (mean, std, max, min); the tempo last.
    """
    return _names(_ARTIST_BLOCKS, ARTIST_STATISTICS) + ["tempo"]


def _summary(rows: np.ndarray, stats: Sequence[str]) -> np.ndarray:
    """``(len(stats), n_rows)`` float64 statistics of ``rows (n_rows, n_frames)`` over frames."""
    x = np.asarray(rows, dtype=np.float64)
    mean = x.mean(axis=-1)
    out = []
    need_moments = any(s in ("std", "skew", "kurtosis") for s in stats)
    if need_moments:
        d = x - mean[..., None]
        d2 = d * d
        m2 = d2.mean(axis=-1)
        constant = m2 <= (_CONSTANT_RESOLUTION * mean) ** 2
        safe = np.where(constant, 1.0, m2)
    for s in stats:
        if s == "mean":
            out.append(mean)
        elif s == "std":
            out.append(np.sqrt(m2))
        elif s == "max":
            out.append(x.max(axis=-1))
        elif s == "min":
            out.append(x.min(axis=-1))
        elif s == "median":
            out.append(np.median(x, axis=-1))
        elif s == "skew":
            out.append(np.where(constant, 0.0, (d2 * d).mean(axis=-1) / safe**1.5))
        elif s == "kurtosis":
            out.append(np.where(constant, 0.0, (d2 * d2).mean(axis=-1) / safe**2 - 3.0))
        else:
            raise ConfigError(f"summarise: unknown statistic {s!r}; known: {', '.join(_KNOWN_STATS)}")
    return np.stack(out)


def summarise(frames: Any, stats: Sequence[str] = FMA_STATISTICS) -> Any:
    """Statistics over time of time-first features.

    Parameters
    ----------
    frames : np.ndarray or torch.Tensor, shape (..., n_frames, n_features)
        Time-first features (as :func:`earmark.features.mfcc` returns them).
    stats : sequence of str
        Any of ``mean``, ``std`` (population, ``ddof=0``), ``max``, ``min``, ``median``, ``skew``
        (biased, as ``scipy.stats.skew``) and ``kurtosis`` (Fisher, biased, as
        ``scipy.stats.kurtosis``). Skew and kurtosis of a constant feature are 0, not NaN.

    Returns
    -------
    values : shape (..., len(stats) * n_features)
        Statistic by statistic: ``values[..., k * n_features + j]`` is statistic ``k`` of feature ``j``,
        computed in float64. NumPy in -> float32 NumPy out; a tensor in -> a tensor on its device
        out (float64 for a float64 tensor, else float32).
    """
    is_tensor = isinstance(frames, torch.Tensor)
    x = frames.detach().cpu().double().numpy() if is_tensor else np.asarray(frames, dtype=np.float64)
    if x.ndim < 2 or x.shape[-2] == 0:
        raise DataError(f"summarise: expected frames of shape (..., n_frames >= 1, n_features), got {x.shape}")
    stats = (stats,) if isinstance(stats, str) else tuple(stats)
    s = _summary(np.swapaxes(x, -1, -2), stats)  # (n_stats, ..., n_features)
    out = np.moveaxis(s, 0, -2).reshape(*x.shape[:-2], len(stats) * x.shape[-1])
    if is_tensor:
        return torch.from_numpy(out).to(frames.device, torch.float64 if frames.dtype == torch.float64 else torch.float32)
    return out.astype(np.float32)


# --------------------------------------------------------------------------- shared spectral analysis


@functools.lru_cache(maxsize=16)
def _stft_plan(sr: int, n_fft: int, dtype: torch.dtype) -> dict[str, Any]:
    """Constants of the shared STFT analysis at ``(sr, n_fft)``."""
    n_bins = n_fft // 2 + 1
    freq = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    mel = mel_filters(sr, n_fft=n_fft, n_mels=128)  # librosa.filters.mel defaults
    rms_w = np.ones(n_bins)
    rms_w[0] = 0.5
    if n_fft % 2 == 0:
        rms_w[-1] = 0.5
    # piptrack's search band (fmin 150 Hz, fmax 4 kHz): bins with 150 <= f < 4000
    band = np.flatnonzero((freq >= 150.0) & (freq < min(4000.0, sr / 2.0)))
    return {
        "window": _stft_window("hann", n_fft, torch.device("cpu"), dtype),
        "freq": freq,
        "moments": torch.from_numpy(np.stack([np.ones(n_bins), freq, freq**2], axis=1)),
        "rms_w": torch.from_numpy(rms_w * 2.0 / n_fft**2).to(dtype),
        "mel": tuple((lo, hi, torch.from_numpy(w).to(dtype)) for lo, hi, w in filter_blocks(np.ascontiguousarray(mel.T))),
        "band": (int(band[0]), int(band[-1]) + 1) if band.size and band[0] >= 1 and band[-1] + 1 < n_bins else None,
        "contrast": _contrast_bands(sr, freq),
    }


def _contrast_bands(sr: int, freq: np.ndarray, n_bands: int = 6, fmin: float = 200.0,
                    quantile: float = 0.02) -> tuple[tuple[int, int, int], ...]:
    """``(start, stop, k)`` per band of ``librosa.feature.spectral_contrast`` (octave bands from fmin)."""
    octa = np.zeros(n_bands + 2)
    octa[1:] = fmin * (2.0 ** np.arange(0, n_bands + 1))
    if np.any(octa[:-1] >= 0.5 * sr):
        raise ConfigError(f"spectral contrast: 6 octave bands from 200 Hz exceed the Nyquist frequency of sr={sr}; "
                          "use sr >= 12801")
    bands = []
    for k, (f_low, f_high) in enumerate(zip(octa[:-1], octa[1:])):
        current = (freq >= f_low) & (freq <= f_high)
        idx = np.flatnonzero(current)
        if idx.size < (2 if k == 0 else 1) or (k > 0 and idx[0] == 0):
            raise ConfigError(f"spectral contrast: too few FFT bins between {f_low:g} and {f_high:g} Hz; "
                              f"n_fft={2 * (len(freq) - 1)} is too small for 6 octave bands from 200 Hz")
        if k > 0:
            current[idx[0] - 1] = True
        if k == n_bands:
            current[idx[-1] + 1 :] = True
        rows = np.flatnonzero(current)
        stop = rows[-1] if k < n_bands else rows[-1] + 1
        q = int(max(np.rint(quantile * current.sum()), 1))
        bands.append((int(rows[0]), int(stop), q))
    return tuple(bands)


def _max_normalize(x: torch.Tensor) -> torch.Tensor:
    """``librosa.util.normalize(x, norm=np.inf)`` over the last axis: frames below ``tiny`` are left as they are."""
    length = x.abs().amax(-1, keepdim=True)
    return x / torch.where(length < torch.finfo(x.dtype).tiny, torch.ones_like(length), length)


def _estimate_tuning(S: torch.Tensor, sr: int, n_fft: int, band: tuple[int, int] | None) -> float:
    """``librosa.estimate_tuning(S=S.T, sr, n_fft, bins_per_octave=12)`` for a time-first ``S``.

    ``piptrack`` (parabolic peak interpolation of frames' local maxima above 0.1 x the frame's
    peak, 150 Hz - 4 kHz), the median-magnitude threshold and the histogram of deviations from
    equal temperament (resolution 0.01 bin); the interpolation is done at the peaks only.
    """
    if band is None:
        return 0.0
    lo, hi = band
    ref = 0.1 * S.amax(-1, keepdim=True)
    seg = S[:, lo - 1 : hi + 1]
    t = seg * (seg > ref)
    t0 = t[:, 1:-1]
    rows, cols = torch.nonzero((t0 > t[:, :-2]) & (t0 >= t[:, 2:]), as_tuple=True)
    if rows.numel() == 0:
        return 0.0
    xm, x0, xp = seg[rows, cols], seg[rows, cols + 1], seg[rows, cols + 2]
    b = (xp - xm) * 0.5
    a = xp + xm - 2.0 * x0
    shift = torch.where(b.abs() >= a.abs(), torch.zeros_like(a), -b / a)
    pitch = ((cols + lo).double() + shift.double()) * (float(sr) / n_fft)
    pitch = pitch.numpy().astype(np.float32)
    mag = (x0 + 0.5 * b * shift).numpy().astype(np.float32)
    freqs = pitch[(mag >= np.median(mag)) & (pitch > 0)]
    if freqs.size == 0:
        return 0.0
    residual = np.mod(12 * np.log2(freqs / (440.0 / 16)), 1.0)
    residual[residual >= 0.5] -= 1.0
    counts, edges = np.histogram(residual, np.linspace(-0.5, 0.5, 101))
    return float(edges[np.argmax(counts)])


@functools.lru_cache(maxsize=256)
def _chroma_fb(sr: int, n_fft: int, tuning: float, dtype: torch.dtype) -> torch.Tensor:
    """``librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=tuning, n_chroma=12).T``: (n_bins, 12)."""
    n_chroma = 12
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    frqbins = n_chroma * np.log2(frequencies / (440.0 * 2.0 ** (tuning / n_chroma) / 16))
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    D = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    half = np.round(float(n_chroma) / 2)
    D = np.remainder(D + half + 10 * n_chroma, n_chroma) - half
    wts = np.exp(-0.5 * (2 * D / np.tile(binwidthbins, (n_chroma, 1))) ** 2)
    length = np.sum(wts**2, axis=0, keepdims=True) ** 0.5
    wts = wts / np.where(length < np.finfo(wts.dtype).tiny, 1.0, length)
    wts *= np.tile(np.exp(-0.5 * (((frqbins / n_chroma - 5.0) / 2) ** 2)), (n_chroma, 1))
    wts = np.roll(wts, -3, axis=0)
    fb = np.ascontiguousarray(wts[:, : 1 + n_fft // 2], dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(fb.T)).to(dtype)


def _spectral(S: torch.Tensor, plan: dict[str, Any]) -> dict[str, np.ndarray]:
    """Centroid, bandwidth, rolloff (85 %) and contrast (6 bands) of a time-first magnitude ``S``.

    Returns rows ``(n_rows, n_frames)`` float64 (freq-first, as librosa).
    """
    freq = plan["freq"]
    m = torch.matmul(S.double(), plan["moments"])  # sum S, sum S f, sum S f^2
    m0, m1, m2 = m[:, 0], m[:, 1], m[:, 2]
    denom = torch.where(m0 < torch.finfo(S.dtype).tiny, torch.ones_like(m0), m0)
    centroid = m1 / denom
    bandwidth = ((m2 - 2.0 * centroid * m1 + centroid * centroid * m0) / denom).clamp_min(0.0).sqrt()
    cs = torch.cumsum(S, dim=-1)  # non-decreasing: the first bin reaching 85 % by binary search
    below = torch.searchsorted(cs, 0.85 * cs[:, -1:]).squeeze(-1).clamp_max(S.shape[-1] - 1)
    rolloff = torch.from_numpy(freq)[below]
    peaks, valleys = [], []
    Sn = S.numpy()
    for start, stop, q in plan["contrast"]:
        ordered = np.sort(Sn[:, start:stop], axis=-1)  # NumPy's SIMD sort: ~10x torch.topk here
        valleys.append(ordered[:, :q].mean(-1, dtype=np.float64))
        peaks.append(ordered[:, -q:].mean(-1, dtype=np.float64))
    peak, valley = torch.from_numpy(np.stack(peaks)), torch.from_numpy(np.stack(valleys))
    contrast = _power_to_db(peak[None], 1.0, 80.0)[0] - _power_to_db(valley[None], 1.0, 80.0)[0]
    return {
        "spectral_centroid": centroid[None].numpy(),
        "spectral_bandwidth": bandwidth[None].numpy(),
        "spectral_rolloff": rolloff[None].numpy(),
        "spectral_contrast": contrast.numpy(),
    }


def _zcr(y: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """``librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length, center=True)``: (1, n_frames)."""
    negative = np.pad(y, n_fft // 2, mode="edge") < -1e-10  # |y| <= 1e-10 counts as 0, 0 as positive
    count = np.zeros(negative.shape[0], dtype=np.int64)
    np.cumsum(negative[1:] != negative[:-1], out=count[1:])  # count[i]: crossings before sample i
    starts = np.arange(1 + (negative.shape[0] - n_fft) // hop_length) * hop_length
    return ((count[starts + n_fft - 1] - count[starts]) / n_fft)[None]


def _rms_time(y: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """``librosa.feature.rms(y=y, frame_length=n_fft, hop_length)`` (centred, zero padding): (1, n_frames)."""
    pad = n_fft // 2
    n_frames = 1 + (y.shape[0] + 2 * pad - n_fft) // hop_length
    g = math.gcd(n_fft, hop_length)  # frames are whole blocks of g samples
    n = -(-(y.shape[0] + 2 * pad) // g) * g
    sq = np.zeros(n, dtype=np.float64)
    sq[pad : pad + y.shape[0]] = y
    sq *= sq
    cum = np.concatenate([[0.0], np.cumsum(sq.reshape(-1, g).sum(axis=1))])
    starts = np.arange(n_frames) * (hop_length // g)
    energy = cum[starts + n_fft // g] - cum[starts]
    return np.sqrt(np.maximum(energy / n_fft, 0.0))[None]


def _tempo(onset: np.ndarray, sr: int, hop_length: int) -> float:
    """``librosa.feature.tempo(onset_envelope=onset, sr, hop_length)``: the global tempo in BPM.

    Autocorrelation tempogram over 8 s Hann windows, averaged over time, weighted by a log-normal
    prior around 120 BPM (one octave wide) with everything from 320 BPM up excluded.
    """
    n = onset.shape[-1]
    win = max(1, int(8.0 * sr) // hop_length)
    env = np.pad(onset.astype(np.float64), (win // 2, win // 2), mode="linear_ramp", end_values=(0, 0))
    frames = torch.from_numpy(env).unfold(0, win, 1)[:n] * torch.from_numpy(get_window("stats518", "hann", win))
    n_pad = 2 * win - 1  # any length >= 2 win - 1 gives the same lags: take a 5-smooth one, fast to transform
    n_pad = min(m for m in (2**a * 3**b * 5**c for a in range(1, 40) for b in range(3) for c in range(3)) if m >= n_pad)
    spec = torch.fft.rfft(torch.nn.functional.pad(frames, (0, n_pad - win)))
    ac = torch.fft.irfft(_power(spec), n=n_pad)[:, :win]
    peak = ac.abs().amax(-1, keepdim=True)
    tg = (ac / torch.where(peak < torch.finfo(ac.dtype).tiny, torch.ones_like(peak), peak)).mean(0).numpy()
    bpms = np.full(win, np.inf)
    bpms[1:] = 60.0 * sr / (hop_length * np.arange(1.0, win))
    with np.errstate(divide="ignore"):
        logprior = -0.5 * ((np.log2(bpms) - np.log2(120.0)) / 1.0) ** 2
    logprior[: int(np.argmax(bpms < 320.0))] = -np.inf
    return float(bpms[np.argmax(np.log1p(1e6 * tg) + logprior)])


# --------------------------------------------------------------------------- the features


def _check(feature: str, sr: Any, n_fft: Any, hop_length: Any) -> tuple[int, int, int]:
    sr = _int_param(feature, "sr", sr)
    n_fft = _int_param(feature, "n_fft", n_fft, minimum=16)
    hop_length = _int_param(feature, "hop_length", hop_length)
    return sr, n_fft, hop_length


def _clips(y: Any, feature: str) -> tuple[np.ndarray, Any]:
    """``(clips (..., n_samples) float32 CPU array, (device, dtype) of a tensor input or None)``."""
    if isinstance(y, torch.Tensor):
        back = (y.device, y.dtype if y.dtype == torch.float64 else torch.float32)
        arr = y.detach().to("cpu", torch.float32).numpy()
    else:
        back, arr = None, np.asarray(y, dtype=np.float32)
    if arr.ndim == 0:
        raise DataError(f"{feature}: expected a waveform of shape (..., n_samples), got a scalar")
    if arr.shape[-1] < 1:
        raise DataError(f"{feature}: input has 0 samples, at least 1 needed")
    if not np.isfinite(arr).all():
        raise DataError(f"{feature}: the waveform holds NaN or Inf")
    return arr, back


def _batched(y: Any, feature: str, n_values: int, fn: Any) -> Any:
    """``fn(clip) -> (n_values,)`` over every clip of ``y (..., n_samples)``, returned like the input."""
    arr, back = _clips(y, feature)
    flat = np.ascontiguousarray(arr.reshape(-1, arr.shape[-1]))
    out = np.empty((flat.shape[0], n_values), dtype=np.float32)
    for i in range(flat.shape[0]):
        out[i] = fn(flat[i])
    out = out.reshape(*arr.shape[:-1], n_values)
    return out if back is None else torch.from_numpy(out).to(*back)


def _analyse(y: np.ndarray, sr: int, n_fft: int, hop_length: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Magnitude and power spectra ``(n_frames, n_bins)`` of the shared centred Hann STFT."""
    x = torch.from_numpy(y)
    plan = _stft_plan(sr, n_fft, x.dtype)
    P = _power(_frames_rfft(x, plan["window"], hop_length, n_fft, n_fft // 2, "constant"))
    return P.sqrt(), P, plan


def _chroma_stft(P: torch.Tensor, sr: int, n_fft: int, plan: dict) -> np.ndarray:
    tuning = _estimate_tuning(P, sr, n_fft, plan["band"])
    return _max_normalize(torch.matmul(P, _chroma_fb(sr, n_fft, tuning, P.dtype))).T.double().numpy()


def _mel_db(P: torch.Tensor, plan: dict) -> torch.Tensor:
    """``power_to_db(melspectrogram(S=P))`` (ref 1, top_db 80), time-first ``(n_frames, 128)``."""
    return _power_to_db(project(P, plan["mel"]), 1.0, 80.0)


def _min_samples(params: dict[str, Any]) -> int:
    return int(params["n_fft"]) // 2 + 1


@register_feature("stats518", min_samples=_min_samples)
def stats518(y: Any, sr: int = 22050, *, n_fft: int = 2048, hop_length: int = 512) -> Any:
    """The FMA study's 518 statistics per clip (``compute_features`` of FMA's ``features.py``).

    74 feature rows, as FMA computed them with librosa: ``chroma_stft(S=|stft|**2)`` (12),
    ``chroma_cqt`` (12) and ``chroma_cens`` (12) of ``|cqt(hop 512, 84 bins, 12 per octave,
    tuning estimated)|`` with librosa's defaults (``n_octaves=7``), ``tonnetz(chroma=chroma_cens)``
    (6), 20 MFCCs of ``power_to_db(melspectrogram(S=|stft|**2))`` (128 mel bands), zero-crossing
    rate, ``rms(S=|stft|)``, spectral centroid, bandwidth, contrast (6 bands -> 7 rows) and rolloff;
    ``stft`` centred, Hann, ``n_fft``/``hop_length``. Each row is summarised over time by
    :data:`FMA_STATISTICS` (skew and kurtosis as ``scipy.stats``, 0 for a constant row).

    Parameters
    ----------
    y : np.ndarray or torch.Tensor, shape (..., n_samples)
        Waveform(s) at ``sr``; every clip of a batch is analysed on its own.
    sr : int
        Sample rate (>= 12801: the contrast bands and the CQT's top octave must fit below Nyquist).
    n_fft, hop_length : int
        STFT frame and hop (also the zero-crossing frames and the CQT hop).

    Returns
    -------
    values : shape (..., 518), float32
        In the column order of FMA's ``features.csv``; names from :func:`stats518_names`.
        Computed on the CPU in float32 (as FMA's librosa code); NumPy in -> NumPy out; a tensor
        in -> a tensor on its device out (float64 for a float64 tensor).
    """
    sr, n_fft, hop_length = _check("stats518", sr, n_fft, hop_length)
    _contrast_bands(sr, np.fft.rfftfreq(n_fft, 1.0 / sr))  # parameter errors before any work

    def clip(y: np.ndarray) -> np.ndarray:
        S, P, plan = _analyse(y, sr, n_fft, hop_length)
        C = cqt(y, sr, hop_length, _estimate_tuning(S, sr, n_fft, plan["band"]))
        mfcc = torch.matmul(_mel_db(P, plan), _dct_matrix(128, 20, torch.device("cpu"), P.dtype))
        rows = {
            "chroma_stft": _chroma_stft(P, sr, n_fft, plan),
            "mfcc": mfcc.T.double().numpy(),
            "rmse": torch.matmul(P, plan["rms_w"]).sqrt()[None].double().numpy(),
            "zcr": _zcr(y, n_fft, hop_length),
            **cqt_chroma(C),
            **_spectral(S, plan),
        }
        return np.concatenate([_summary(rows[name], FMA_STATISTICS).ravel() for name, _ in _FMA_BLOCKS])

    return _batched(y, "stats518", 518, clip)


@register_feature("artist_stats", min_samples=_min_samples)
def artist_stats(y: Any, sr: int = 22050, *, n_fft: int = 2048, hop_length: int = 512) -> Any:
    """The artist20 study's 849 statistics per clip.

    Rows, as the librosa calls on ``y`` give them (centred Hann STFT ``n_fft``/``hop_length``):
    ``mfcc(n_mfcc=20)`` with ``delta`` and ``delta(order=2)`` (60), ``power_to_db(melspectrogram(
    n_mels=128), ref=np.max)`` (128), spectral centroid, bandwidth, rolloff, contrast (7 rows),
    ``rms(y=y)``, ``zero_crossing_rate`` and ``chroma_stft`` (12), each summarised by mean, std,
    max and min (:data:`ARTIST_STATISTICS`); then ``tempo(onset_envelope=onset_strength(S=mel dB))``.

    Parameters
    ----------
    y : np.ndarray or torch.Tensor, shape (..., n_samples)
        Waveform(s) at ``sr``; every clip of a batch is analysed on its own.
    sr : int
        Sample rate (>= 12801, for the contrast bands).
    n_fft, hop_length : int
        STFT frame and hop (also the RMS / zero-crossing frames).

    Returns
    -------
    values : shape (..., 849), float32
        Names from :func:`artist_stats_names`. Computed on the CPU in float32; NumPy in -> NumPy
        out; a tensor in -> a tensor on its device out (float64 for a float64 tensor).
    """
    sr, n_fft, hop_length = _check("artist_stats", sr, n_fft, hop_length)
    _contrast_bands(sr, np.fft.rfftfreq(n_fft, 1.0 / sr))

    def clip(y: np.ndarray) -> np.ndarray:
        S, P, plan = _analyse(y, sr, n_fft, hop_length)
        db = _mel_db(P, plan)
        mfcc = torch.matmul(db, _dct_matrix(128, 20, torch.device("cpu"), P.dtype))
        d = _deltas(mfcc - mfcc[:1], 9)  # the same deltas (the kernels sum to 0), exactly 0 for constant rows
        mel_db = db - db.amax()  # ref=np.max
        onset = torch.clamp_min(db[1:] - db[:-1], 0.0).mean(-1)  # onset_strength(S=mel dB): lag 1, mean
        lead = 1 + n_fft // (2 * hop_length)
        onset = torch.nn.functional.pad(onset, (lead, 0))[: db.shape[0]]
        tempo = _tempo(onset.numpy(), sr, hop_length)
        rows = {
            "mfcc": mfcc.T.double().numpy(),
            "mfcc_delta": d[..., 0].T.double().numpy(),
            "mfcc_delta2": d[..., 1].T.double().numpy(),
            "mel": mel_db.T.double().numpy(),
            "rms": _rms_time(y, n_fft, hop_length),
            "zcr": _zcr(y, n_fft, hop_length),
            "chroma_stft": _chroma_stft(P, sr, n_fft, plan),
            **_spectral(S, plan),
        }
        values = [_summary(rows[name], ARTIST_STATISTICS).ravel() for name, _ in _ARTIST_BLOCKS]
        return np.concatenate(values + [[tempo]])

    return _batched(y, "artist_stats", 849, clip)
