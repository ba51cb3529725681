"""Array-level audio transforms: resample, downmix, pad/crop, segment.

Every function works along the last axis, so a clip ``(n,)``, a multichannel clip
``(channels, n)`` and a batch ``(batch, n)`` are all accepted.
"""

from __future__ import annotations


import numpy as np
import soxr

from earmark.checks import is_int
from earmark.errors import ConfigError

__all__ = ["fix_length", "resample", "segment", "to_mono"]

_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")
_SOXR_MAX_CHANNELS = 65536  # python-soxr's limit on channels per call
FIX_MODES = ("start", "center", "random")


def _check_rate(value, name: str) -> int:
    """``value`` as a positive int, else a ConfigError naming ``name``."""
    if not is_int(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer (Hz), got {value!r}")
    return int(value)


def _check_positive_int(value, name: str) -> int:
    if not is_int(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _as_signal(y, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 0:
        raise ConfigError(f"{where}: y must have at least one axis (..., n_samples), got a scalar")
    return y


def resample(y: np.ndarray, orig_sr: int, target_sr: int, *, quality: str = "HQ") -> np.ndarray:
    """Resample along the last axis with soxr (band-limited).

    Matches ``librosa.resample(y, orig_sr=..., target_sr=..., res_type="soxr_hq")`` (the default of
    ``librosa.load``), including its output length ``ceil(n * target_sr / orig_sr)``.

    Parameters
    ----------
    y : np.ndarray
        Shape ``(..., n)``: ``(n,)``, ``(channels, n)``, ``(batch, n)``, ... float32 and float64 are
        kept; other dtypes are converted to float32.
    orig_sr, target_sr : int
        Sample rates in Hz.
    quality : {"HQ", "VHQ", "MQ", "LQ", "QQ"}
        soxr quality (``"soxr_hq"``-style names are accepted too).

    Returns
    -------
    np.ndarray
        Shape ``(..., ceil(n * target_sr / orig_sr))``, same dtype as ``y`` (float32 or float64).
        When the rates are equal, ``y`` itself is returned (no copy).
    """
    y = _as_signal(y, "resample")
    orig_sr = _check_rate(orig_sr, "orig_sr")
    target_sr = _check_rate(target_sr, "target_sr")
    q = str(quality).upper().removeprefix("SOXR_")
    if q not in _QUALITIES:
        raise ConfigError(f"resample: quality must be one of {', '.join(_QUALITIES)}, got {quality!r}")
    if orig_sr == target_sr:
        return y
    if y.dtype not in (np.float32, np.float64):
        y = y.astype(np.float32)
    n = y.shape[-1]
    m = -(-n * target_sr // orig_sr)  # ceil, in integers
    lead = y.shape[:-1]
    if n == 0 or 0 in lead:
        return np.zeros(lead + (m,), dtype=y.dtype)

    if y.ndim == 1:
        out = soxr.resample(y, orig_sr, target_sr, quality=q)
    else:
        flat = y.reshape(-1, n)
        if not (flat.flags.c_contiguous or flat.flags.f_contiguous):
            flat = np.ascontiguousarray(flat)
        # soxr takes (frames, channels): C-ordered rows become its split-channel layout, no copy.
        if flat.shape[0] <= _SOXR_MAX_CHANNELS:
            out = soxr.resample(flat.T, orig_sr, target_sr, quality=q).T
        else:
            out = np.concatenate(
                [
                    soxr.resample(flat[i : i + _SOXR_MAX_CHANNELS].T, orig_sr, target_sr, quality=q).T
                    for i in range(0, flat.shape[0], _SOXR_MAX_CHANNELS)
                ]
            )
    got = out.shape[-1]
    if got > m:
        out = out[..., :m]
    elif got < m:
        padded = np.zeros(out.shape[:-1] + (m,), dtype=out.dtype)
        padded[..., :got] = out
        out = padded
    return out.reshape(lead + (m,))


def _downmix_interleaved(data: np.ndarray) -> np.ndarray:
    """``(n, channels)`` -> ``(n,)`` mean over channels (column sums: far faster than ``mean(axis=1)``)."""
    y = data[:, 0].copy()
    for c in range(1, data.shape[1]):
        y += data[:, c]
    y /= data.shape[1]
    return y


def to_mono(y: np.ndarray) -> np.ndarray:
    """Average the channels.

    Parameters
    ----------
    y : np.ndarray
        ``(n,)`` (returned unchanged), ``(channels, n)``, or ``(..., channels, n)``.

    Returns
    -------
    np.ndarray
        ``(n,)``, or ``(..., n)`` for batched input; float32 stays float32.
    """
    y = _as_signal(y, "to_mono")
    if y.ndim == 1:
        return y
    if not np.issubdtype(y.dtype, np.floating):
        y = y.astype(np.float32)
    return y.mean(axis=-2)


def _rng(seed) -> np.random.Generator:
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"seed must be None, an int or a numpy Generator, got {seed!r} ({exc})") from None


def fix_length(
    y: np.ndarray,
    length: int,
    *,
    mode: str = "start",
    seed: int | np.random.Generator | None = None,
    pad_value: float = 0.0,
) -> np.ndarray:
    """Pad or crop along the last axis to exactly ``length`` samples.

    Parameters
    ----------
    y : np.ndarray
        Shape ``(..., n)``.
    length : int
        Target number of samples (> 0).
    mode : {"start", "center", "random"}
        ``"start"`` keeps the beginning and pads at the end; ``"center"`` crops or pads equally on
        both sides (an odd remainder goes to the end); ``"random"`` draws the crop offset, or where
        the signal sits inside the padded output, from ``seed``. One offset is drawn per call and
        shared by all leading (batch/channel) rows.
    seed : None, int or np.random.Generator
        Randomness for ``mode="random"``: the same int gives the same result; a Generator is
        advanced; None draws fresh entropy.
    pad_value : float
        Value written into padding.

    Returns
    -------
    np.ndarray
        Shape ``(..., length)``. ``y`` itself when already ``length`` long; a view of ``y`` when
        cropped; a new array when padded.

    Raises
    ------
    ConfigError
        ``length`` is not a positive integer or ``mode`` is unknown.
    """
    y = _as_signal(y, "fix_length")
    length = _check_positive_int(length, "fix_length: length")
    if mode not in FIX_MODES:
        raise ConfigError(f"fix_length: mode must be one of {', '.join(map(repr, FIX_MODES))}, got {mode!r}")
    n = y.shape[-1]
    if n == length:
        return y
    spare = abs(n - length)
    if mode == "start":
        shift = 0
    elif mode == "center":
        shift = spare // 2
    else:
        shift = int(_rng(seed).integers(0, spare + 1))
    if n > length:
        return y[..., shift : shift + length]
    out = np.full(y.shape[:-1] + (length,), pad_value, dtype=y.dtype)
    out[..., shift : shift + n] = y
    return out


def segment(
    y: np.ndarray, length: int, hop: int | None = None, *, pad_last: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Cut long audio into windows of ``length`` samples every ``hop`` samples.

    Parameters
    ----------
    y : np.ndarray
        Shape ``(..., n)``.
    length : int
        Window length in samples (> 0).
    hop : int, optional
        Step between window starts (> 0); defaults to ``length`` (no overlap).
    pad_last : bool
        When the full windows leave samples at the end uncovered, add one more window on the hop
        grid, zero-padded, so the tail is not lost. ``False`` drops that tail. Either way a
        non-empty clip shorter than ``length`` gives one zero-padded window.

    Returns
    -------
    windows : np.ndarray
        Shape ``(..., n_windows, length)``, ``y``'s dtype. Without padding this is a read-only
        strided view of ``y`` (copy it before writing); with padding, a new array.
    starts : np.ndarray of int64
        Shape ``(n_windows,)``: each window's first sample in ``y``.

    Notes
    -----
    Empty input (``n == 0``) gives zero windows.

    Examples
    --------
    >>> w, s = segment(np.arange(10.0), 4)
    >>> w.shape, s.tolist()
    ((3, 4), [0, 4, 8])
    >>> segment(np.arange(10.0), 4, pad_last=False)[1].tolist()
    [0, 4]
    """
    y = _as_signal(y, "segment")
    length = _check_positive_int(length, "segment: length")
    hop = length if hop is None else _check_positive_int(hop, "segment: hop")
    n = y.shape[-1]
    lead = y.shape[:-1]
    if n == 0:
        return np.zeros(lead + (0, length), dtype=y.dtype), np.zeros(0, dtype=np.int64)
    n_full = (n - length) // hop + 1 if n >= length else 0
    if n_full == 0:
        extra = True
    else:
        extra = pad_last and (n_full - 1) * hop + length < n and n_full * hop < n
    n_windows = n_full + int(extra)
    starts = np.arange(n_windows, dtype=np.int64) * hop
    if n_full:
        full = np.lib.stride_tricks.sliding_window_view(y, length, axis=-1)[..., ::hop, :]
        if not extra:
            return full, starts
    windows = np.zeros(lead + (n_windows, length), dtype=y.dtype)
    if n_full:
        windows[..., :n_full, :] = full
    last = int(starts[-1])
    windows[..., -1, : n - last] = y[..., last:]
    return windows, starts
