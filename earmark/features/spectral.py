"""Spectral features in torch: magnitude STFT, log-mel spectrogram, MFCC (+ deltas), raw waveform.

Every function follows the feature contract of :mod:`earmark.features.base`: input
``(..., n_samples)`` NumPy or torch (CPU or GPU), output ``(..., n_frames, n_bins)`` time first
(``waveform`` excepted: ``(..., n_samples)``), NumPy float32 in -> NumPy float32 out, tensor in ->
tensor on the same device out. Computation runs in float32, or in float64 when the input is float64.
Constant matrices and windows are built once per (parameters, device, dtype) and cached.

``logmel`` and ``mfcc`` reproduce librosa (``melspectrogram`` + ``power_to_db``, ``feature.mfcc``,
``feature.delta``), librosa >= 0.10 defaults included: centred frames are padded with zeros
(``pad_mode="constant"``); ``pad_mode="reflect"`` gives the older librosa behaviour.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from earmark.errors import ConfigError, DataError
from earmark.features.base import as_tensor, like_input, register_feature

__all__ = ["stft", "logmel", "mfcc", "waveform", "delta"]

_AMIN = 1e-10
_PAD_MODES = ("constant", "reflect")


# --------------------------------------------------------------------------- shared helpers


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
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
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
    about 2 MiB (``item_bytes`` per item). On other devices the batch is done in one call.
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


def _n_centred(n: int, n_fft: int, hop_length: int) -> int:
    return 1 + (n + 2 * (n_fft // 2) - n_fft) // hop_length


# --------------------------------------------------------------------------- stft


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


@functools.lru_cache(maxsize=64)
def _stft_window(
    window: str, frame_length: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    return torch.from_numpy(get_window("stft", window, frame_length)).to(device, dtype)


def _stft_min_samples(params: dict[str, Any]) -> int:
    # Shortest clip the store accepts: one full frame, or when centred more than half an FFT
    # (librosa's classic reflect-padding limit); the function itself pads anything shorter.
    return int(params["n_fft"]) // 2 + 1 if params.get("center") else int(params["frame_length"])


@register_feature("stft", min_samples=_stft_min_samples)
def stft(
    y: Any,
    sr: int = 16000,
    *,
    frame_length: int = 255,
    hop_length: int = 128,
    n_fft: int = 256,
    window: str = "hann",
    center: bool = False,
    pad_mode: str = "constant",
    power: float = 1.0,
    log: bool = False,
) -> Any:
    """Magnitude short-time Fourier transform, ``tf.signal.stft`` semantics (NSynth study).

    Frames of ``frame_length`` samples every ``hop_length``, multiplied by a periodic window of
    ``frame_length`` (``scipy.signal.get_window(window, frame_length, fftbins=True)``), zero-padded
    at the end to ``n_fft``. Without centring only whole frames are kept (no end padding).

    Parameters
    ----------
    y : np.ndarray or torch.Tensor, shape (..., n_samples)
        Waveform(s) at ``sr``.
    sr : int
        Sample rate (not used by the computation; declares the feature's rate).
    frame_length, hop_length, n_fft : int
        Frame size, step and FFT size (``frame_length <= n_fft``).
    window : str
        Any window name ``scipy.signal.get_window`` knows ("hann", "hamming", ...).
    center : bool
        Pad ``frame_length // 2`` samples on both sides (``pad_mode``) so frame ``t`` is centred on
        sample ``t * hop_length``.
    pad_mode : {"constant", "reflect"}
        Padding used when ``center``.
    power : float
        Exponent of the magnitude (1 magnitude, 2 power).
    log : bool
        Return ``log(max(S, 1e-6))`` (natural log).

    Returns
    -------
    S : shape (..., n_frames, n_fft // 2 + 1)
        ``n_frames = 1 + (n_samples - frame_length) // hop_length`` (not centred) or
        ``1 + (n_samples + 2 * (frame_length // 2) - frame_length) // hop_length`` (centred);
        64000 samples -> (499, 129) with the defaults.
    """
    frame_length, n_fft, hop_length, pad = _validated(
        _stft_plan, "stft", sr, frame_length, hop_length, n_fft, window, bool(center), pad_mode, power
    )
    x, was_numpy = _waveform_tensor(y, "stft", 1 if center else frame_length)
    win = _stft_window(window, frame_length, x.device, x.dtype)
    power = float(power)

    def core(x: torch.Tensor) -> torch.Tensor:
        S = _magnitude(_frames_rfft(x, win, hop_length, n_fft, pad, pad_mode), power)
        return S.clamp_min_(1e-6).log_() if log else S

    n_frames = 1 + (x.shape[-1] + 2 * pad - frame_length) // hop_length
    return like_input(_chunked(core, x, n_frames * (n_fft + 2) * x.element_size()), was_numpy)


@functools.lru_cache(maxsize=64)
def _stft_plan(
    sr: int, frame_length: int, hop_length: int, n_fft: int, window: str, center: bool,
    pad_mode: str, power: float,
) -> tuple[int, int, int, int]:
    _int_param("stft", "sr", sr)
    frame_length = _int_param("stft", "frame_length", frame_length)
    hop_length = _int_param("stft", "hop_length", hop_length)
    n_fft = _int_param("stft", "n_fft", n_fft)
    if frame_length > n_fft:
        raise ConfigError(f"stft: frame_length must be <= n_fft={n_fft}, got {frame_length!r}")
    if pad_mode not in _PAD_MODES:
        raise ConfigError(f"stft: pad_mode must be one of {_PAD_MODES}, got {pad_mode!r}")
    if _float_param("stft", "power", power) <= 0:
        raise ConfigError(f"stft: power must be > 0, got {power!r}")
    _stft_window(window, frame_length, torch.device("cpu"), torch.float64)  # validates the name
    return frame_length, n_fft, hop_length, (frame_length // 2 if center else 0)


# --------------------------------------------------------------------------- mel spectrogram


@functools.lru_cache(maxsize=64)
def _mel_plan(
    feature: str, sr: int, n_fft: int, hop_length: int, win_length: int | None, window: str,
    n_mels: int, fmin: float, fmax: float | None, htk: bool, norm: Any, power: float,
    center: bool, pad_mode: str,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Validated constants: ``(window of n_fft, mel matrix (n_bins, n_mels), pad)`` as float64."""
    sr = _int_param(feature, "sr", sr)
    n_fft = _int_param(feature, "n_fft", n_fft)
    _int_param(feature, "hop_length", hop_length)
    win_length = n_fft if win_length is None else _int_param(feature, "win_length", win_length)
    if win_length > n_fft:
        raise ConfigError(f"{feature}: win_length must be <= n_fft={n_fft}, got {win_length!r}")
    n_mels = _int_param(feature, "n_mels", n_mels)
    fmin, fmax = _freq_range(feature, sr, fmin, fmax)
    if _float_param(feature, "power", power) <= 0:
        raise ConfigError(f"{feature}: power must be > 0, got {power!r}")
    if pad_mode not in _PAD_MODES:
        raise ConfigError(f"{feature}: pad_mode must be one of {_PAD_MODES}, got {pad_mode!r}")
    win = get_window(feature, window, win_length)
    lpad = (n_fft - win_length) // 2  # librosa.util.pad_center
    full = np.zeros(n_fft)
    full[lpad : lpad + win_length] = win

    mel = mel_filters(sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=bool(htk), norm=norm, feature=feature)
    return full, np.ascontiguousarray(mel.T.astype(np.float64)), (n_fft // 2 if center else 0)


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


@functools.lru_cache(maxsize=64)
def _mel_tensors(
    plan_key: tuple, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, tuple[tuple[int, int, torch.Tensor], ...], int]:
    window, mel, pad = _mel_plan(*plan_key)
    # On CPU a block-sparse product is ~5x faster; on a GPU one dense product is better.
    blocks = filter_blocks(mel) if device.type == "cpu" else ((0, mel.shape[0], mel),)
    as_t = lambda a: torch.from_numpy(a).to(device, dtype)  # noqa: E731
    return as_t(window), tuple((lo, hi, as_t(w)) for lo, hi, w in blocks), pad


def _mel_power(
    x: torch.Tensor, plan_key: tuple, hop_length: int, n_fft: int, power: float, pad_mode: str
) -> torch.Tensor:
    """Mel spectrogram ``(..., n_frames, n_mels)`` of a compute-dtype waveform tensor."""
    window, blocks, pad = _mel_tensors(plan_key, x.device, x.dtype)
    spec = _frames_rfft(x, window, hop_length, n_fft, pad, pad_mode)
    return project(_magnitude(spec, power), blocks)


def _spectrum_bytes(x: torch.Tensor, n_fft: int, hop_length: int, center: bool) -> int:
    """Bytes of one item's complex spectrum (for :func:`_chunked`)."""
    n = x.shape[-1]
    n_frames = _n_centred(n, n_fft, hop_length) if center else 1 + (n - n_fft) // hop_length
    return n_frames * (n_fft + 2) * x.element_size()


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


def _centred_min_samples(params: dict[str, Any]) -> int:
    # See _stft_min_samples: more than half an FFT when centred, else one full frame.
    return int(params["n_fft"]) // 2 + 1 if params.get("center", True) else int(params["n_fft"])


@register_feature("logmel", min_samples=_centred_min_samples)
def logmel(
    y: Any,
    sr: int = 22050,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str = "hann",
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    power: float = 2.0,
    center: bool = True,
    pad_mode: str = "constant",
    htk: bool = False,
    norm: Any = "slaney",
    db: bool = True,
    top_db: float | None = 80.0,
    ref: Any = "max",
) -> Any:
    """Log-mel spectrogram, equal to ``librosa.power_to_db(librosa.feature.melspectrogram(...))``.

    Parameters
    ----------
    y : np.ndarray or torch.Tensor, shape (..., n_samples)
        Waveform(s) at ``sr``.
    sr : int
        Sample rate.
    n_fft, hop_length, win_length, window :
        STFT as ``librosa.stft`` (the window of ``win_length`` is centred in ``n_fft``).
    n_mels, fmin, fmax, htk, norm :
        Mel filters from ``librosa.filters.mel`` (``fmax=None`` -> ``sr / 2``; ``fmax > sr / 2`` is
        an error).
    power : float
        Exponent of the magnitude before the mel projection.
    center, pad_mode :
        Centre frames by padding ``n_fft // 2`` on both sides with zeros (``"constant"``, librosa
        >= 0.10 default) or by reflection (``"reflect"``, librosa < 0.10); any length >= 1 works.
    db : bool
        Convert to dB as ``librosa.power_to_db``: ``10 log10(max(S, 1e-10)) - 10 log10(ref)``.
    top_db : float or None
        Floor at ``max - top_db`` (per clip); None disables.
    ref : "max" or float
        Reference power; ``"max"`` is each clip's (batch item's) maximum, so its peak is 0 dB.

    Returns
    -------
    S : shape (..., n_frames, n_mels)
        ``n_frames = 1 + n_samples // hop_length`` when centred (even ``n_fft``), else
        ``1 + (n_samples - n_fft) // hop_length``; 29.7 s at 22.05 kHz -> (1280, 128).
    """
    key = (
        "logmel", sr, n_fft, hop_length, win_length, window, n_mels, fmin, fmax, htk, norm,
        power, bool(center), pad_mode,
    )
    _validated(_mel_plan, "logmel", *key)
    if db:
        _check_db("logmel", ref, top_db)
    x, was_numpy = _waveform_tensor(y, "logmel", 1 if center else n_fft)
    power = float(power)

    def core(x: torch.Tensor) -> torch.Tensor:
        S = _mel_power(x, key, hop_length, n_fft, power, pad_mode)
        return _power_to_db(S, ref, top_db) if db else S

    return like_input(_chunked(core, x, _spectrum_bytes(x, n_fft, hop_length, center)), was_numpy)


# --------------------------------------------------------------------------- mfcc and deltas


@functools.lru_cache(maxsize=32)
def _dct_matrix(n_mels: int, n_mfcc: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(n_mels, n_mfcc)`` matrix ``D`` with ``S @ D == scipy.fft.dct(S, type=2, norm="ortho")[:n_mfcc]``."""
    import scipy.fft

    dct = scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)  # (k, n)
    return torch.from_numpy(np.ascontiguousarray(dct[:n_mfcc].T)).to(device, dtype)


@functools.lru_cache(maxsize=32)
def _delta_operators(
    width: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Savitzky-Golay derivative operators of orders 1 and 2 as used by ``librosa.feature.delta``.

    Returns ``kernel (width, 2)`` for interior frames (``out[t] = x[t-h : t+h+1] @ kernel``) and
    ``head``/``tail`` ``(2, h, width)``: ``mode="interp"`` outputs of the first/last ``h`` frames
    as combinations of the first/last ``width`` frames.
    """
    h = width // 2
    edges = np.stack([_savgol_matrix(width, order) for order in (1, 2)])  # (2, width, width)
    kernel = edges[:, h, :].T  # interior frames use the centre row
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device, dtype)  # noqa: E731
    return as_t(kernel), as_t(edges[:, :h]), as_t(edges[:, width - h :])


def _savgol_matrix(width: int, order: int) -> np.ndarray:
    """``(width, width)`` matrix: row ``i`` gives the ``order``-th derivative at position ``i`` of the
    degree-``order`` least-squares polynomial through ``width`` samples (scipy's savgol_filter with
    ``polyorder=deriv=order``, ``mode="interp"``; computed here so workers never import scipy.signal)."""
    t = np.arange(width, dtype=np.float64) - width // 2
    A = np.vander(t, order + 1, increasing=True)  # samples -> polynomial coefficients via pinv
    coef = np.linalg.pinv(A)  # (order + 1, width)
    # the order-th derivative of sum_k c_k t^k is c_order * order! (degree == order)
    return np.tile(coef[order] * math.factorial(order), (width, 1))


def _check_width(feature: str, width: Any) -> int:
    width = _int_param(feature, "width", width, minimum=3)
    if width % 2 != 1:
        raise ConfigError(f"{feature}: width must be an odd integer >= 3, got {width!r}")
    return width


def delta(M: Any, *, width: int = 9) -> Any:
    """First and second time derivatives of time-first features, as ``librosa.feature.delta``.

    Parameters
    ----------
    M : np.ndarray or torch.Tensor, shape (..., n_frames, n_features)
        Time-first features.
    width : int
        Odd window length >= 3 of the Savitzky-Golay filter.

    Returns
    -------
    (d1, d2) : pair of arrays, each shape (..., n_frames, n_features)
        Equal to ``librosa.feature.delta(M.T, width=width, order=1)`` / ``order=2`` (``.T``) when
        ``n_frames >= width`` (``mode="interp"``). Shorter inputs, which librosa rejects, are
        extended by repeating the edge frames (``scipy.signal.savgol_filter(mode="nearest")``).
    """
    width = _check_width("delta", width)
    x, was_numpy = as_tensor(M)
    d = _deltas(_compute_dtype(x), width)
    return like_input(d[..., 0], was_numpy), like_input(d[..., 1], was_numpy)


def _deltas(M: torch.Tensor, width: int) -> torch.Tensor:
    """``(..., n_frames, n_features, 2)``: orders 1 and 2 along the frame axis."""
    kernel, head, tail = _delta_operators(width, M.device, M.dtype)
    h = width // 2
    T = M.shape[-2]
    if T < width:  # edge replication == savgol mode="nearest"
        lead = M[..., :1, :].expand(*M.shape[:-2], h, M.shape[-1])
        trail = M[..., -1:, :].expand(*M.shape[:-2], h, M.shape[-1])
        padded = torch.cat([lead, M, trail], dim=-2)
        return torch.matmul(padded.unfold(-2, width, 1), kernel)
    out = M.new_empty(*M.shape, 2)
    out[..., h : T - h, :, :] = torch.matmul(M.unfold(-2, width, 1), kernel)
    first = torch.matmul(head, M[..., None, :width, :])  # (..., 2, h, n_features)
    last = torch.matmul(tail, M[..., None, T - width :, :])
    out[..., :h, :, :] = first.movedim(-3, -1)
    out[..., T - h :, :, :] = last.movedim(-3, -1)
    return out


@register_feature("mfcc", min_samples=_centred_min_samples)
def mfcc(
    y: Any,
    sr: int = 22050,
    *,
    n_mfcc: int = 20,
    deltas: bool = True,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    pad_mode: str = "constant",
    width: int = 9,
) -> Any:
    """MFCCs as ``librosa.feature.mfcc``, optionally followed by their deltas and delta-deltas.

    Log-mel power (centred frames, Hann window, slaney mel filters, ``power_to_db`` with
    ``ref=1.0``, ``top_db=80`` per clip) -> orthonormal DCT-II -> first ``n_mfcc`` coefficients.

    Parameters
    ----------
    y : np.ndarray or torch.Tensor, shape (..., n_samples)
        Waveform(s) at ``sr``.
    n_mfcc : int
        Number of coefficients (<= ``n_mels``).
    deltas : bool
        Append Δ and ΔΔ (``librosa.feature.delta(M, width=width, order=1 / 2)``; see :func:`delta`
        for clips with fewer than ``width`` frames).
    n_fft, hop_length, n_mels, fmin, fmax, pad_mode :
        As :func:`logmel`.
    width : int
        Delta window (odd, >= 3).

    Returns
    -------
    M : shape (..., n_frames, n_mfcc * 3) with deltas (``[mfcc, Δ, ΔΔ]``), else (..., n_frames, n_mfcc)
        ``n_frames = 1 + n_samples // hop_length`` (even ``n_fft``).
    """
    key = (
        "mfcc", sr, n_fft, hop_length, None, "hann", n_mels, fmin, fmax, False, "slaney",
        2.0, True, pad_mode,
    )
    _validated(_mel_plan, "mfcc", *key)
    n_mfcc = _int_param("mfcc", "n_mfcc", n_mfcc)
    if n_mfcc > n_mels:
        raise ConfigError(f"mfcc: n_mfcc must be <= n_mels={n_mels}, got {n_mfcc!r}")
    if deltas:
        width = _check_width("mfcc", width)
    x, was_numpy = _waveform_tensor(y, "mfcc")
    dct = _dct_matrix(n_mels, n_mfcc, x.device, x.dtype)

    def core(x: torch.Tensor) -> torch.Tensor:
        S = _power_to_db(_mel_power(x, key, hop_length, n_fft, 2.0, pad_mode), 1.0, 80.0)
        M = torch.matmul(S, dct)
        if not deltas:
            return M
        d = _deltas(M, width)
        return torch.cat([M, d[..., 0], d[..., 1]], dim=-1)

    return like_input(_chunked(core, x, _spectrum_bytes(x, n_fft, hop_length, True)), was_numpy)


# --------------------------------------------------------------------------- waveform


@register_feature("waveform", min_samples=lambda params: 1)
def waveform(y: Any, sr: int = 16000, *, length: int | None = None, mode: str = "start") -> Any:
    """The waveform itself, optionally padded / cropped to ``length`` (input of 1-D CNNs).

    Unlike the other features the output is NOT time-first frames: it keeps the shape of the input.

    Parameters
    ----------
    y : np.ndarray or torch.Tensor, shape (..., n_samples)
        Waveform(s) at ``sr``.
    length : int or None
        Target number of samples: shorter input is zero-padded at the end, longer input is cropped
        from the start (``mode="start"``) or around the centre (``mode="center"``).
    mode : {"start", "center"}
        Where a crop is taken.

    Returns
    -------
    y : shape (..., n_samples) or (..., length)
    """
    if mode not in ("start", "center"):
        raise ConfigError(f"waveform: mode must be 'start' or 'center', got {mode!r}")
    if length is not None:
        length = _int_param("waveform", "length", length)
    x, was_numpy = _waveform_tensor(y, "waveform")
    n = x.shape[-1]
    if length is None or length == n:
        out = x.clone()  # never hand back (a view of) the caller's array
    elif n < length:
        out = F.pad(x, (0, length - n))
    else:
        start = (n - length) // 2 if mode == "center" else 0
        out = x[..., start : start + length].clone()
    return like_input(out, was_numpy)
