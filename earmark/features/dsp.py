"""Building blocks shared by the feature modules (spectral, fbank, stats, cqt): parameter checks,
windows, framing and FFTs, power spectra, mel filters, block-sparse filter projection, dB conversion,
and CPU batch slicing. All torch, device-agnostic; constant matrices are cached by their callers.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from earmark.checks import is_int
from earmark.errors import ConfigError, DataError
from earmark.features.base import as_tensor

_AMIN = 1e-10
_PAD_MODES = ("constant", "reflect")


def _compute_dtype(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the compute dtype: float64 stays float64, everything else becomes float32."""
    if x.dtype == torch.float64 or x.dtype == torch.float32:
        return x
    return x.to(torch.float32)


def _waveform_tensor(y: Any, feature: str, min_samples: int = 1) -> tuple[torch.Tensor, bool]:
    """``(tensor in compute dtype, was_numpy)``; a ``DataError`` for a scalar or a too-short input."""
    x, was_numpy = as_tensor(y)
    if x.ndim == 0:
        raise DataError(f"{feature}: expected a waveform of shape (..., n_samples), got a scalar")
    if x.shape[-1] < min_samples:
        raise DataError(
            f"{feature}: input has {x.shape[-1]} samples, at least {min_samples} needed"
        )
    return _compute_dtype(x), was_numpy


def _int_param(feature: str, name: str, value: Any, minimum: int = 1) -> int:
    if not is_int(value) or value < minimum:
        raise ConfigError(f"{feature}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _float_param(feature: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{feature}: {name} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ConfigError(f"{feature}: {name} must be finite, got {value!r}")
    return float(value)


def _freq_range(feature: str, sr: int, fmin: Any, fmax: Any) -> tuple[float, float]:
    """Validated ``(fmin, fmax)`` with ``0 <= fmin < fmax <= sr / 2`` (``fmax=None`` -> ``sr / 2``)."""
    fmin = _float_param(feature, "fmin", fmin)
    fmax = sr / 2.0 if fmax is None else _float_param(feature, "fmax", fmax)
    if fmin < 0:
        raise ConfigError(f"{feature}: fmin must be >= 0, got {fmin!r}")
    if fmax > sr / 2.0:
        raise ConfigError(f"{feature}: fmax must be <= sr / 2 = {sr / 2.0:g}, got {fmax!r}")
    if fmin >= fmax:
        raise ConfigError(f"{feature}: fmin must be < fmax, got fmin={fmin!r}, fmax={fmax!r}")
    return fmin, fmax


def _validated(plan: Callable[..., Any], feature: str, *key: Any) -> Any:
    """``plan(*key)`` (a cached, validating constructor); unhashable values are a ``ConfigError``."""
    try:
        return plan(*key)
    except TypeError:
        import inspect

        for name, value in zip(inspect.signature(plan).parameters, key):
            try:
                hash(value)
            except TypeError:
                raise ConfigError(
                    f"{feature}: {name} must be a scalar (or a tuple), got {value!r}"
                ) from None
        raise


@functools.lru_cache(maxsize=64)
def _reflect_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices reproducing ``np.pad(x, pad, mode="reflect")`` for any ``pad`` (also ``pad >= n``)."""
    return torch.from_numpy(np.pad(np.arange(n), pad, mode="reflect")).to(device)


def _pad_both(x: torch.Tensor, pad: int, mode: str) -> torch.Tensor:
    """Pad the last axis by ``pad`` on each side with zeros or NumPy-style reflection."""
    if pad == 0:
        return x
    if mode == "constant":
        return F.pad(x, (pad, pad))
    n = x.shape[-1]
    if pad < n:
        flat = x.reshape(-1, n)
        return F.pad(flat, (pad, pad), mode="reflect").reshape(*x.shape[:-1], n + 2 * pad)
    return x.index_select(-1, _reflect_index(n, pad, x.device))


def _frames_rfft(
    x: torch.Tensor, window: torch.Tensor, hop_length: int, n_fft: int, pad: int, pad_mode: str
) -> torch.Tensor:
    """Complex spectrum ``(..., n_frames, n_fft // 2 + 1)`` of windowed frames of ``len(window)``.

    Frame ``t`` holds samples ``[t * hop, t * hop + len(window))`` of ``x`` padded by ``pad`` on
    both sides; frames shorter than ``n_fft`` are zero-padded at the end before the FFT.
    """
    x = _pad_both(x, pad, pad_mode)
    frames = x.unfold(-1, window.shape[0], hop_length) * window
    return torch.fft.rfft(frames, n=n_fft)


def _power(spec: torch.Tensor) -> torch.Tensor:
    """``|spec| ** 2``, contiguous; squares ``spec``'s memory in place (pass a fresh spectrum)."""
    sq = torch.view_as_real(spec).square_()
    return torch.add(sq[..., 0], sq[..., 1])


def _magnitude(spec: torch.Tensor, power: float) -> torch.Tensor:
    """``|spec| ** power`` (power 2 without the square root); may overwrite ``spec``."""
    if power == 2.0:
        return _power(spec)
    mag = spec.abs()
    return mag if power == 1.0 else mag.pow_(power)


_CPU_CHUNK_BYTES = 2 << 20


def _chunked(core: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, item_bytes: int) -> torch.Tensor:
    """``core(x)`` for ``x`` of shape ``(..., n_samples)``; on CPU, in slices of the batch.

    A whole batch's intermediate spectra overflow the CPU caches and run up to 3x slower per
    clip than one clip at a time, so on CPU the batch is processed in slices whose spectra take
    about 2 MiB (``item_bytes`` per item). On other devices the batch is done in one call. An item
    larger than that (a long clip) goes alone, and a framewise ``core`` splits it further in time
    with :func:`_framewise`.
    """
    if x.ndim < 2 or x.device.type != "cpu":
        return core(x)
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    n = flat.shape[0]
    step = max(1, _CPU_CHUNK_BYTES // max(1, item_bytes))
    if step >= n:
        return core(x)
    first = core(flat[:step])
    out = first.new_empty(n, *first.shape[1:])
    out[:step] = first
    for start in range(step, n, step):
        out[start : start + step] = core(flat[start : start + step])
    return out.reshape(*lead, *first.shape[1:])


def _framewise(
    block: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, frame_length: int, hop_length: int,
    frame_bytes: int,
) -> torch.Tensor:
    """``block(x)`` for a (padded) waveform ``x (..., n)`` whose frames are computed independently;
    on CPU, in runs of consecutive frames.

    ``block(segment)`` maps any stretch of ``x`` to one row per whole frame in it,
    ``(..., 1 + (m - frame_length) // hop_length, k)``. A long clip's frames and spectra overflow the
    CPU caches (30 s at n_fft 2048: 10 MB each) and a framewise pipeline (window, FFT, power, mel
    projection) runs ~20% faster in runs whose spectra take about 2 MiB (``frame_bytes`` per frame
    and batch item), as ``librosa.stft`` works in blocks too; the transient memory then stays that
    small. The rows are the same either way. On other devices ``block(x)`` is called once.
    """
    n_frames = 1 + (x.shape[-1] - frame_length) // hop_length
    per = max(1, _CPU_CHUNK_BYTES // max(1, frame_bytes * math.prod(x.shape[:-1])))
    if x.device.type != "cpu" or per >= n_frames:
        return block(x)
    out = None
    for t0 in range(0, n_frames, per):
        t1 = min(n_frames, t0 + per)
        rows = block(x[..., t0 * hop_length : (t1 - 1) * hop_length + frame_length])
        if out is None:
            out = rows.new_empty(*rows.shape[:-2], n_frames, rows.shape[-1])
        out[..., t0:t1, :] = rows
    return out


def _n_centred(n: int, n_fft: int, hop_length: int) -> int:
    return 1 + (n + 2 * (n_fft // 2) - n_fft) // hop_length

# Periodic generalised-cosine windows, equal to scipy.signal.get_window(name, n, fftbins=True).
_COSINE_WINDOWS = {
    "hann": (0.5, 0.5), "hanning": (0.5, 0.5), "hamming": (0.54, 0.46),
    "blackman": (0.42, 0.5, 0.08), "boxcar": (1.0,), "rectangular": (1.0,), "ones": (1.0,),
}


def get_window(feature: str, window: Any, n: int) -> np.ndarray:
    """Periodic window of ``n`` samples (float64), as ``scipy.signal.get_window(window, n, fftbins=True)``.

    The common windows are computed here: importing ``scipy.signal`` costs ~0.8 s in every
    extraction worker. Other names and ``(name, parameter)`` tuples go to scipy.
    """
    if isinstance(window, str) and window.lower() in _COSINE_WINDOWS:
        k = 2.0 * np.pi * np.arange(n) / n
        return sum((-1) ** i * a * np.cos(i * k) for i, a in enumerate(_COSINE_WINDOWS[window.lower()]))
    import scipy.signal

    try:
        return np.asarray(scipy.signal.get_window(window, n, fftbins=True), dtype=np.float64)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{feature}: unknown window {window!r} ({err})") from None

def _hz_to_mel(f: np.ndarray, htk: bool) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    # Slaney's Auditory Toolbox: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), f / (200.0 / 3))


def _mel_to_hz(m: np.ndarray, htk: bool) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), (200.0 / 3) * m)


def mel_filters(
    sr: int, *, n_fft: int, n_mels: int = 128, fmin: float = 0.0, fmax: float | None = None,
    htk: bool = False, norm: Any = "slaney", feature: str = "mel_filters",
) -> np.ndarray:
    """Triangular mel filters, shape ``(n_mels, 1 + n_fft // 2)``, float32: ``librosa.filters.mel``.

    Written here (checked against librosa in the tests) so extraction workers never import librosa,
    whose import costs about a second per process. ``norm``: ``"slaney"`` (area normalisation),
    ``None``, or a number p (each filter scaled to unit p-norm).
    """
    fmax = sr / 2.0 if fmax is None else float(fmax)
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin, htk), _hz_to_mel(fmax, htk), n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(np.float32)  # librosa's float32 rounding
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None].astype(np.float32)
    elif norm is not None:
        try:
            p = float(norm)
        except (TypeError, ValueError):
            raise ConfigError(f"{feature}: norm must be 'slaney', None or a number, got {norm!r}") from None
        if p <= 0:
            raise ConfigError(f"{feature}: norm must be 'slaney', None or a number > 0, got {norm!r}")
        length = np.linalg.norm(weights, ord=p, axis=-1, keepdims=True) if np.isfinite(p) else np.abs(weights).max(-1, keepdims=True)
        weights = np.where(length > 0, weights / np.where(length > 0, length, 1.0), weights).astype(np.float32)
    return weights


def filter_blocks(weights: np.ndarray, block: int = 16) -> tuple[tuple[int, int, np.ndarray], ...]:
    """Split a sparse filter matrix ``(n_bins, n_filters)`` into dense blocks of consecutive filters.

    Returns ``(lo, hi, w)`` triples, ``w`` the ``(hi - lo, <= block)`` slice of rows (bins) that the
    block's filters touch; :func:`project` applies them. Mel-type filters touch few bins each, so the
    blocks hold ~1/8 of the matrix and the projection runs ~5x faster than a dense product on CPU.
    """
    out = []
    for start in range(0, weights.shape[1], block):
        w = weights[:, start : start + block]
        rows = np.flatnonzero(w.any(axis=1))
        lo, hi = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, 1)
        out.append((lo, hi, np.ascontiguousarray(w[lo:hi])))
    return tuple(out)


def project(power: torch.Tensor, blocks: tuple[tuple[int, int, torch.Tensor], ...]) -> torch.Tensor:
    """``power @ weights`` for ``power (..., n_bins)`` and :func:`filter_blocks` of ``weights``."""
    if len(blocks) == 1:
        lo, hi, w = blocks[0]
        return torch.matmul(power[..., lo:hi], w)
    return torch.cat([torch.matmul(power[..., lo:hi], w) for lo, hi, w in blocks], dim=-1)

def _power_to_db(S: torch.Tensor, ref: Any, top_db: float | None) -> torch.Tensor:
    """``librosa.power_to_db`` per clip: the max (``ref="max"``, ``top_db``) is over each item."""
    db = S.clamp_min_(_AMIN).log10_().mul_(10.0)
    if ref == "max":
        peak = db.amax(dim=(-2, -1), keepdim=True)
        db = db.sub_(peak)
        if top_db is not None:
            db = db.clamp_min_(-float(top_db))
        return db
    if ref != 1.0:
        db = db.sub_(10.0 * math.log10(max(_AMIN, abs(float(ref)))))
    if top_db is not None:
        db = torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - float(top_db))
    return db


def _check_db(feature: str, ref: Any, top_db: Any) -> None:
    if not (isinstance(ref, str) and ref == "max"):
        if isinstance(ref, str) or _float_param(feature, "ref", ref) <= 0:
            raise ConfigError(f"{feature}: ref must be 'max' or a number > 0, got {ref!r}")
    if top_db is not None and _float_param(feature, "top_db", top_db) < 0:
        raise ConfigError(f"{feature}: top_db must be >= 0 or None, got {top_db!r}")
