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
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from earmark.errors import ConfigError
from earmark.features.base import as_tensor, like_input, register_feature
from earmark.features.dsp import (
    _PAD_MODES,
    _check_db,
    _chunked,
    _compute_dtype,
    _float_param,
    _frames_rfft,
    _framewise,
    _freq_range,
    _int_param,
    _magnitude,
    _n_centred,
    _pad_both,
    _power_to_db,
    _validated,
    _waveform_tensor,
    filter_blocks,
    get_window,
    mel_filters,
    project,
)

__all__ = ["stft", "logmel", "mfcc", "waveform", "delta"]


# --------------------------------------------------------------------------- stft


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

    def frames(seg: torch.Tensor) -> torch.Tensor:
        return _magnitude(_frames_rfft(seg, win, hop_length, n_fft, 0, pad_mode), power)

    def core(x: torch.Tensor) -> torch.Tensor:
        S = _framewise(frames, _pad_both(x, pad, pad_mode), frame_length, hop_length, (n_fft + 2) * x.element_size())
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

    def frames(seg: torch.Tensor) -> torch.Tensor:
        return project(_magnitude(_frames_rfft(seg, window, hop_length, n_fft, 0, pad_mode), power), blocks)

    return _framewise(frames, _pad_both(x, pad, pad_mode), n_fft, hop_length, (n_fft + 2) * x.element_size())


def _spectrum_bytes(x: torch.Tensor, n_fft: int, hop_length: int, center: bool) -> int:
    """Bytes of one item's complex spectrum (for :func:`_chunked`)."""
    n = x.shape[-1]
    n_frames = _n_centred(n, n_fft, hop_length) if center else 1 + (n - n_fft) // hop_length
    return n_frames * (n_fft + 2) * x.element_size()


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
        Mel filters as ``librosa.filters.mel`` (:func:`earmark.features.dsp.mel_filters`) (``fmax=None`` -> ``sr / 2``; ``fmax > sr / 2`` is
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
