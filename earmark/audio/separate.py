"""Vocal separation: split a mixture into vocals and accompaniment.

>>> from earmark.audio.separate import separate, separate_files
>>> vocals, accompaniment = separate(y, sr=16000)                     # doctest: +SKIP
>>> vocals, accompaniment = separate(y, sr=44100, method="demucs")    # doctest: +SKIP
>>> report = separate_files(["song.mp3", "folder/"], "stems/")        # doctest: +SKIP

(``separate_files`` and ``SeparateReport`` live in :mod:`earmark.audio.stems`, the resumable
driver of ``earmark separate``, and import from here too.)

Methods (``SEPARATORS.names()``):

``repet`` (default, no weights)
    REPET-SIM (Rafii & Pardo 2012) as in librosa's "Vocal separation" example: each frame of the
    magnitude STFT is replaced by the median of its ``k`` most similar frames (cosine similarity)
    at least ``width`` seconds away, which keeps what recurs (the accompaniment) and drops what does
    not (the voice); the minimum of that and the mixture is the accompaniment's magnitude, and a soft
    mask with a margin (``margin_v``, ``power``) cuts the vocals out of the mixture;
    ``accompaniment = y - vocals``. ``hpss="before"`` first splits the mixture into harmonic and
    percussive parts by median filtering (Fitzgerald 2010) and looks for vocals in the harmonic part
    only; ``"after"`` moves the percussive part of the vocals to the accompaniment.
    The defaults were chosen by SDR on the vocal-gender benchmark's stems (``benchmarks/separation.py``):
    3 s clips, where a short ``width`` (0.06 s), ``k=10``, ``margin_v=1`` and no HPSS do best (HPSS
    costs 2.7-3.5 dB there, probably because a voice's consonants are percussive and the accompaniment
    has no drums); librosa's example values for whole songs are ``width=2.0, k=None, margin_v=10``.
``demucs`` / ``spleeter``
    Pretrained networks, used when their packages and weights are installed (``pip install demucs``,
    ``pip install spleeter``); they are not earmark dependencies.

Every method takes mono audio ``(..., n_samples)`` (clips of one length are processed as one batch)
and returns two float32 arrays of the same shape with finite values: silence, or audio without a
voice, gives (near-)silent vocals, never NaN.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from earmark.checks import is_int, is_number
from earmark.errors import ConfigError, DataError
from earmark.registry import Registry

__all__ = ["SEPARATORS", "SeparateReport", "Separator", "apply_separation", "check_separation",
           "resolve_separation", "sdr", "separate", "separate_files", "si_sdr"]

STEMS = ("vocals", "accompaniment")


@dataclass(frozen=True)
class Separator:
    """A registered separation method.

    Attributes
    ----------
    name : str
    fn : callable
        ``fn(y (batch, n_samples) float32, sr, **params) -> (vocals, accompaniment)``, same shapes.
    check : callable
        ``check(params) -> [(key, problem), ...]`` for resolved parameters (values, and whether the
        backend is installed: key ``""``), so that configs fail before any audio is decoded.
    version : int
        Raised when the method's output changes for the same parameters (part of the feature store's key).
    """

    name: str
    fn: Callable[..., tuple[np.ndarray, np.ndarray]]
    check: Callable[[dict[str, Any]], list[tuple[str, str]]]
    version: int = 1

    @property
    def defaults(self) -> dict[str, Any]:
        """Keyword parameters of ``fn`` and their defaults (the signature is where they are written)."""
        sig = inspect.signature(self.fn)
        return {k: p.default for k, p in sig.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


SEPARATORS: Registry[Separator] = Registry("separation method")


def register_separator(name: str, check: Callable[[dict[str, Any]], list[tuple[str, str]]], *, version: int = 1):
    """Decorator registering ``fn(y, sr, **params) -> (vocals, accompaniment)`` as method ``name``
    (raise ``version`` when a change alters its output for the same parameters)."""

    def decorator(fn):
        SEPARATORS.register(name, Separator(name, fn, check, int(version)))
        return fn

    return decorator


# --------------------------------------------------------------------------- public API


def separate(y: Any, sr: int, *, method: str = "repet", **params: Any) -> tuple[np.ndarray, np.ndarray]:
    """Split mono audio into vocals and accompaniment.

    Parameters
    ----------
    y : array_like, shape (..., n_samples)
        Mono waveform(s) (NumPy or torch); leading dimensions are a batch of clips of one length.
    sr : int
        Sample rate of ``y`` in Hz.
    method : str
        A registered method: ``"repet"`` (default, no weights), ``"demucs"``, ``"spleeter"``.
    **params
        The method's parameters (``SEPARATORS.get(method).defaults`` lists them).

    Returns
    -------
    vocals, accompaniment : np.ndarray, float32, shape (..., n_samples)
        Finite; with ``repet``, ``vocals + accompaniment == y`` up to rounding.

    Raises
    ------
    ConfigError
        Unknown method or parameter, a bad parameter value, or a backend that is not installed.
    DataError
        ``y`` is empty, not real, not finite, or shorter than the method's analysis window.
    """
    sep = SEPARATORS.get(method)
    params = _resolve_params(sep, params)
    _raise_problems(sep, params, prefix=f"{method}: ")
    if not is_int(sr) or sr <= 0:
        raise ConfigError(f"separate: sr must be a positive integer, got {sr!r}")
    if "torch" in sys.modules and isinstance(y, sys.modules["torch"].Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim == 0 or y.shape[-1] == 0 or y.size == 0:
        raise DataError(f"separate: y must have shape (..., n_samples) with n_samples >= 1, got shape {y.shape}")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise DataError(f"separate: y must hold real numbers, got dtype {y.dtype}")
    y = y.astype(np.float32, copy=False)
    if not np.isfinite(y).all():
        raise DataError(f"separate: y contains {int(y.size - np.isfinite(y).sum())} non-finite samples (NaN/Inf)")
    shape = y.shape
    flat = np.ascontiguousarray(y.reshape(-1, shape[-1]))
    if not flat.flags.writeable:  # e.g. a strided view from audio.segment: torch wants its own copy
        flat = flat.copy()
    vocals, accompaniment = sep.fn(flat, int(sr), **params)
    vocals = np.ascontiguousarray(vocals, dtype=np.float32).reshape(shape)
    accompaniment = np.ascontiguousarray(accompaniment, dtype=np.float32).reshape(shape)
    if not (np.isfinite(vocals).all() and np.isfinite(accompaniment).all()):  # never passed on silently
        raise DataError(f"{method}: separation produced non-finite values (NaN/Inf)")
    return vocals, accompaniment


def _resolve_params(sep: Separator, params: dict[str, Any]) -> dict[str, Any]:
    defaults = sep.defaults
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ConfigError(f"separation method {sep.name!r}: unknown parameter {unknown[0]!r}; "
                          f"known: {', '.join(defaults)}")
    return {**defaults, **params}


def _raise_problems(sep: Separator, params: dict[str, Any], prefix: str) -> None:
    problems = sep.check(params)
    if problems:
        raise ConfigError("; ".join(f"{prefix}{key + ' ' if key else ''}{msg}" for key, msg in problems))


def check_separation(settings: Any, *, key: str = "audio.separate", backend: bool = True) -> dict[str, Any] | None:
    """Validate separation settings, naming the key path under ``key`` in a ConfigError.

    ``settings`` is None (no separation), a method name (short for ``{"method": NAME}``, as in the
    config), a dict with ``method`` / ``params`` / ``stem`` or the config's ``audio.separate`` section.
    ``backend=False`` skips the check that an optional backend (demucs,
    spleeter) is installed. Returns the resolved settings (see :func:`resolve_separation`).
    """
    if settings is None:
        return None
    if hasattr(settings, "model_dump"):
        settings = settings.model_dump(mode="json")
    if isinstance(settings, str):
        settings = {"method": settings}
    if not isinstance(settings, Mapping):
        raise ConfigError(f"{key}: expected a method name or a mapping with method / params / stem, "
                          f"got {type(settings).__name__}")
    settings = dict(settings)
    method = settings.pop("method", "repet")
    params = dict(settings.pop("params", None) or {})
    stem = settings.pop("stem", "vocals")
    if settings:
        raise ConfigError(f"{key}.{sorted(settings)[0]}: unknown key (known: method, params, stem)")
    if stem not in STEMS:
        raise ConfigError(f"{key}.stem: must be one of {', '.join(STEMS)}, got {stem!r}")
    try:
        sep = SEPARATORS.get(method)
    except ConfigError as exc:
        raise ConfigError(f"{key}.method: {exc}") from None
    defaults = sep.defaults
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ConfigError(f"{key}.params.{unknown[0]}: unknown parameter of {method!r}; known: {', '.join(defaults)}")
    for name, value in params.items():  # 1 and 1.0 are one setting (and one cache key)
        if isinstance(defaults[name], float) and is_int(value):
            params[name] = float(value)
    params = {**defaults, **params}
    problems = [(k, m) for k, m in sep.check(params) if backend or k]
    if problems:
        raise ConfigError("; ".join(f"{key}.params.{k}: {m}" if k else f"{key}.method: {m}" for k, m in problems))
    return {"method": method, "params": params, "stem": stem}


def resolve_separation(settings: Any) -> dict[str, Any] | None:
    """The full settings ``{"method", "params" (every default filled in), "stem"}``, or None.

    ``settings`` is None (no separation), a method name, a dict with ``method`` / ``params`` / ``stem``
    or the config's ``audio.separate`` section. Equal settings resolve to equal dicts, so they can key caches; whether
    an optional backend is installed is checked when it is used, not here.
    """
    return check_separation(settings, key="separate", backend=False)


def apply_separation(y: np.ndarray, sr: int, settings: dict[str, Any] | None) -> np.ndarray:
    """The stem resolved ``settings`` keep (``y`` unchanged when ``settings`` is None); shape of ``y``."""
    if settings is None:
        return y
    vocals, accompaniment = separate(y, sr, method=settings["method"], **settings["params"])
    return vocals if settings["stem"] == "vocals" else accompaniment


# --------------------------------------------------------------------------- REPET-SIM

def _check_repet(p: dict[str, Any]) -> list[tuple[str, str]]:
    problems = []
    for key in ("n_fft", "hop_length", "k"):
        if p[key] is not None and not (is_int(p[key]) and p[key] >= 1):
            problems.append((key, f"must be a positive integer or null, got {p[key]!r}"))
    if not (is_int(p["hpss_kernel"]) and p["hpss_kernel"] >= 1 and p["hpss_kernel"] % 2):
        problems.append(("hpss_kernel", f"must be an odd positive integer, got {p['hpss_kernel']!r}"))
    for key in ("width", "margin_v", "fmin"):
        if not (is_number(p[key]) and p[key] >= 0):
            problems.append((key, f"must be a number >= 0, got {p[key]!r}"))
    if not (is_number(p["power"]) and p["power"] > 0):
        problems.append(("power", f"must be a number > 0, got {p['power']!r}"))
    if not (is_number(p["max_width_fraction"]) and 0 < p["max_width_fraction"] <= 0.5):
        problems.append(("max_width_fraction", f"must be in (0, 0.5], got {p['max_width_fraction']!r}"))
    if p["hpss"] not in ("none", "before", "after"):
        problems.append(("hpss", f"must be 'none', 'before' or 'after', got {p['hpss']!r}"))
    return problems


@register_separator("repet", check=_check_repet)
def repet(
    y: np.ndarray,
    sr: int,
    *,
    n_fft: int | None = None,
    hop_length: int | None = None,
    width: float = 0.06,
    max_width_fraction: float = 0.25,
    k: int | None = 10,
    margin_v: float = 1.0,
    power: float = 2.0,
    hpss: str = "none",
    hpss_kernel: int = 31,
    fmin: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """REPET-SIM vocal separation (see the module docstring); call it through :func:`separate`.

    Parameters
    ----------
    y : np.ndarray, float32, shape (batch, n_samples)
    sr : int
    n_fft : int, optional
        STFT size; default :func:`default_n_fft` (about 93 ms). Inputs need at least ``n_fft`` samples.
    hop_length : int, optional
        Default ``n_fft // 4``.
    width : float
        Seconds: frames closer than this to each other are never neighbours (at least one frame:
        a frame is never its own neighbour).
    max_width_fraction : float
        Cap on ``width`` as a fraction of the clip, so that short clips always find neighbours.
    k : int, optional
        Neighbours per frame; None: librosa's ``2 ceil(sqrt(frames - 2 width + 1))``.
    margin_v, power : float
        Soft-mask margin (how far the vocals must stand out of the recurring part) and exponent.
    hpss : {"none", "before", "after"}
        Harmonic-percussive split before the similarity search (vocals from the harmonic part
        only) or after it (the percussive part of the vocals goes to the accompaniment).
    hpss_kernel : int
        Median-filter length (odd), in frames and in bins, of the harmonic-percussive split.
    fmin : float
        Hz: frequencies below this are never vocals (bass and kick drum stay in the accompaniment).

    Returns
    -------
    vocals, accompaniment : np.ndarray, float32, shape (batch, n_samples)
        ``accompaniment = y - vocals``.
    """
    import torch  # imported when used: `import earmark.audio` stays light

    from earmark.audio.repet import default_n_fft, hpss_masks, istft, nn_filter, softmask, stft

    n_fft = default_n_fft(sr) if n_fft is None else int(n_fft)
    hop = int(hop_length or n_fft // 4)
    n = y.shape[-1]
    if n < n_fft:
        raise DataError(f"repet: {n} sample(s) at {sr} Hz is shorter than one analysis window "
                        f"(n_fft={n_fft} samples, {n_fft / sr:.3f} s)")
    X = stft(torch.from_numpy(y), n_fft, hop)  # (batch, bins, frames)
    S = X.abs()
    mask_h = None
    if hpss == "before":
        mask_h, _ = hpss_masks(S, kernel=hpss_kernel)
        S = S * mask_h
    w = max(1, min(int(round(width * sr / hop)), int(max_width_fraction * S.shape[-1])))
    S_bg = torch.minimum(S, nn_filter(S, width=w, k=k))
    mask_v = softmask(S - S_bg, margin_v * S_bg, power)
    if mask_h is not None:
        mask_v = mask_v * mask_h
    if hpss == "after":
        mask_vh, _ = hpss_masks(S * mask_v, kernel=hpss_kernel)
        mask_v = mask_v * mask_vh
    if fmin > 0:
        mask_v[:, : int(math.ceil(fmin * n_fft / sr))] = 0
    vocals = istft(X * mask_v, n_fft, hop, n).numpy()
    return vocals, y - vocals


# --------------------------------------------------------------------------- pretrained backends (optional)


def _not_installed(package: str) -> list[tuple[str, str]]:
    import importlib.util

    if importlib.util.find_spec(package) is None:
        return [("", f"method {package!r} needs the {package} package, which is not installed: `pip install "
                     f"{package}` (earmark does not depend on it); its weights download on first use")]
    return []


def _to_rate(y: np.ndarray, sr: int, target: int) -> np.ndarray:
    from earmark.audio.transform import resample

    return resample(y, sr, target)


def _back(y: np.ndarray, rate: int, sr: int, n: int) -> np.ndarray:
    from earmark.audio.transform import fix_length, resample

    return fix_length(resample(np.ascontiguousarray(y, dtype=np.float32), rate, sr), n)


def _check_demucs(p: dict[str, Any]) -> list[tuple[str, str]]:
    problems = _not_installed("demucs")
    if not (is_int(p["shifts"]) and p["shifts"] >= 0):
        problems.append(("shifts", f"must be an integer >= 0, got {p['shifts']!r}"))
    if not (is_number(p["overlap"]) and 0 <= p["overlap"] < 1):
        problems.append(("overlap", f"must be in [0, 1), got {p['overlap']!r}"))
    return problems


@functools.lru_cache(maxsize=2)
def _demucs_model(name: str, repo: str | None, device: str) -> Any:
    from demucs.pretrained import get_model

    try:
        model = get_model(name, repo=Path(repo) if repo else None)
    except Exception as exc:  # weights not downloadable, unknown name, bad repo folder
        raise ConfigError(f"demucs: cannot load model {name!r} ({type(exc).__name__}: {exc}); its weights download "
                          "on first use (internet access needed), or pass params repo=FOLDER holding them") from None
    return model.to(device).eval()


@register_separator("demucs", check=_check_demucs)
def demucs(y: np.ndarray, sr: int, *, model: str = "htdemucs", repo: str | None = None, device: str = "cpu",
           shifts: int = 0, overlap: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Demucs (``pip install demucs``): mono in, duplicated to the model's channels, at its rate (44.1 kHz).

    ``vocals`` is the model's vocals source, ``accompaniment`` the sum of the others (drums, bass, other).
    """
    import torch
    from demucs.apply import apply_model

    net = _demucs_model(model, repo, device)
    x = _to_rate(y, sr, net.samplerate)
    mean, std = x.mean(-1, keepdims=True), x.std(-1, keepdims=True) + 1e-8  # as `demucs` normalises
    xt = torch.from_numpy((x - mean) / std)[:, None].expand(-1, net.audio_channels, -1).contiguous()
    with torch.no_grad():
        out = apply_model(net, xt, shifts=shifts, split=True, overlap=overlap, progress=False, device=device)
    out = out.cpu().numpy().mean(axis=2) * std[:, None] + mean[:, None]  # (batch, sources, n)
    vocals = out[:, list(net.sources).index("vocals")]
    return _back(vocals, net.samplerate, sr, y.shape[-1]), _back(out.sum(1) - vocals, net.samplerate, sr, y.shape[-1])


def _check_spleeter(p: dict[str, Any]) -> list[tuple[str, str]]:
    return _not_installed("spleeter")


@functools.lru_cache(maxsize=2)
def _spleeter_model(name: str) -> Any:
    from spleeter.separator import Separator as SpleeterSeparator

    return SpleeterSeparator(name, multiprocess=False)


@register_separator("spleeter", check=_check_spleeter)
def spleeter(y: np.ndarray, sr: int, *, model: str = "spleeter:2stems") -> tuple[np.ndarray, np.ndarray]:
    """Spleeter (``pip install spleeter``) at 44.1 kHz; ``accompaniment`` is the sum of its other stems."""
    net = _spleeter_model(model)
    x = _to_rate(y, sr, 44100)
    vocals, accompaniment = [], []
    for clip in x:  # spleeter separates one waveform at a time
        try:
            out = net.separate(np.stack([clip, clip], axis=1))
        except Exception as exc:  # typically: weights not downloadable
            raise ConfigError(f"spleeter: separation with {model!r} failed ({type(exc).__name__}: {exc}); its "
                              "weights download on first use into pretrained_models/ (or $MODEL_PATH)") from None
        v = out["vocals"].mean(axis=1)
        vocals.append(v)
        accompaniment.append(sum(s.mean(axis=1) for name, s in out.items() if name != "vocals"))
    n = y.shape[-1]
    return _back(np.stack(vocals), 44100, sr, n), _back(np.stack(accompaniment), 44100, sr, n)


# --------------------------------------------------------------------------- evaluation


def sdr(reference: Any, estimate: Any) -> np.ndarray:
    """Signal-to-distortion ratio ``10 log10(|s|^2 / |s - s_hat|^2)`` in dB, over the last axis.

    Parameters
    ----------
    reference, estimate : array_like, shape (..., n_samples)

    Returns
    -------
    np.ndarray, shape (...)
        Energies below 1e-20 are floored there (a silent reference gives a large negative value).
    """
    s = np.asarray(reference, np.float64)
    e = np.asarray(estimate, np.float64)
    num = np.sum(s**2, axis=-1)
    den = np.sum((s - e) ** 2, axis=-1)
    return 10 * np.log10(np.maximum(num, 1e-20) / np.maximum(den, 1e-20))


def si_sdr(reference: Any, estimate: Any) -> np.ndarray:
    """Scale-invariant SDR (Le Roux et al. 2019) in dB over the last axis (means removed first).

    The estimate's projection on the reference is the target, the rest is distortion, so a
    rescaled reference scores perfectly and gain errors are not counted.

    Parameters
    ----------
    reference, estimate : array_like, shape (..., n_samples)

    Returns
    -------
    np.ndarray, shape (...)
    """
    s = np.asarray(reference, np.float64)
    e = np.asarray(estimate, np.float64)
    s = s - s.mean(axis=-1, keepdims=True)
    e = e - e.mean(axis=-1, keepdims=True)
    alpha = np.sum(e * s, axis=-1, keepdims=True) / np.maximum(np.sum(s**2, axis=-1, keepdims=True), 1e-20)
    target = alpha * s
    num = np.sum(target**2, axis=-1)
    den = np.sum((e - target) ** 2, axis=-1)
    return 10 * np.log10(np.maximum(num, 1e-20) / np.maximum(den, 1e-20))


# the file-level driver lives in its own module; its public names import from here too
from earmark.audio.stems import SeparateReport, separate_files  # noqa: E402
