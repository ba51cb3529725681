"""Waveform augmentations: random crop, additive noise, background recordings, gain, time stretch, pitch shift.

Every function takes a waveform of shape ``(..., n)`` and an explicit ``rng`` and returns an array
of the same shape (``random_crop``: ``(..., length)``) and dtype. Each row of the leading axes is a
clip: with ``per_item=True`` (the default) every clip gets its own random draw (SNR, gain, rate,
offset); with ``per_item=False`` one draw is shared by all rows (e.g. the channels of one clip).

These run in data loading, so they compute with NumPy on the CPU. A torch tensor is accepted: it is
copied to the CPU (detached), augmented, and returned as a tensor on its original device and dtype.

Randomness (``rng``) is one of: an ``int`` seed (same seed, same output), a ``np.random.Generator``
(advanced), a ``torch.Generator`` (advanced; it seeds a NumPy generator), or ``None`` (fresh entropy).

The randomness and parameter-check helpers shared by all augmentations are in
:mod:`earmark.augment._common`.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from earmark.audio.transform import fix_length
from earmark.augment._common import (
    as_generator,
    number_or_range,
    integer,
    choice,
    boolean,
    validated,
    draw,
    Rng,
    Invalid,
)
from earmark.errors import ConfigError, DataError

__all__ = ["add_background", "add_noise", "gain", "pitch_shift", "random_crop", "time_stretch"]

NOISE_COLORS = ("white", "pink")


def _numpy_in(y: Any, where: str) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """``(float array, back)``: ``back`` turns a result into the input's kind, device and dtype."""
    if isinstance(y, torch.Tensor):
        device, dtype = y.device, (y.dtype if y.is_floating_point() else torch.float32)
        x = y.detach().to("cpu").numpy()
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float32)

        def back(a: np.ndarray) -> Any:
            return torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dtype)

    else:
        x = np.asarray(y)
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float32)

        def back(a: np.ndarray) -> Any:
            return a.astype(x.dtype, copy=False)

    if x.ndim == 0:
        raise ConfigError(f"{where}: y must have at least one axis (..., n_samples), got a scalar")
    return x, back


def _rows(x: np.ndarray) -> np.ndarray:
    """``(..., n)`` -> ``(rows, n)`` (a view when possible)."""
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])


def _n_fft(sr: int, n: int) -> int:
    """The longest power-of-two analysis window of at most ~93 ms (2048 at 22.05 kHz, 1024 at 16 kHz:
    64 ms, short enough for a sung melody's glides), and no longer than the signal."""
    n_fft = 2 ** max(4, math.floor(math.log2(sr * 2048 / 22050) + 1e-9))
    while n_fft > max(n, 16):
        n_fft //= 2
    return n_fft


# ---------------------------------------------------------------------------------------------
# Augmentations
# ---------------------------------------------------------------------------------------------


@validated(length=integer(minimum=1), per_item=boolean)
def random_crop(y: Any, length: int, *, rng: Rng, per_item: bool = True) -> Any:
    """Crop a random window of ``length`` samples; pad with zeros at a random place if shorter.

    The artist20 study trained on 150 s crops of whole songs (``length=150 * sr``).

    Parameters
    ----------
    y : np.ndarray or torch.Tensor
        Shape ``(..., n)``.
    length : int
        Output length in samples.
    rng : int, np.random.Generator, torch.Generator or None
        Draws the offset(s).
    per_item : bool
        One offset per row of the leading axes (True) or one shared offset (False).

    Returns
    -------
    Same kind as ``y``, shape ``(..., length)``, ``y``'s float dtype; always a new array.
    """
    x, back = _numpy_in(y, "random_crop")
    g = as_generator(rng)
    n = x.shape[-1]
    flat = _rows(x)
    out = np.zeros((flat.shape[0], length), dtype=x.dtype)
    spare = abs(n - length)
    offsets = g.integers(0, spare + 1, size=flat.shape[0] if per_item else 1)
    offsets = np.broadcast_to(offsets, (flat.shape[0],))
    for r, o in enumerate(offsets):
        if n >= length:
            out[r] = flat[r, o : o + length]
        else:
            out[r, o : o + n] = flat[r]
    return back(out.reshape(x.shape[:-1] + (length,)))


def _pink(white: np.ndarray) -> np.ndarray:
    """Shape white noise ``(rows, n)`` to a 1/f power spectrum (no DC)."""
    n = white.shape[-1]
    spec = np.fft.rfft(white, axis=-1)
    k = np.arange(spec.shape[-1], dtype=np.float64)
    k[0] = np.inf  # DC removed
    spec *= 1.0 / np.sqrt(k)
    return np.fft.irfft(spec, n=n, axis=-1).astype(white.dtype, copy=False)


@validated(snr_db=number_or_range(), color=choice(*NOISE_COLORS), per_item=boolean)
def add_noise(y: Any, snr_db: Any, *, rng: Rng, color: str = "white", per_item: bool = True) -> Any:
    """Add white or pink Gaussian noise at a signal-to-noise ratio relative to the clip's own power.

    The noise is scaled so that ``10 log10(mean(y**2) / mean(noise**2))`` equals the drawn SNR
    exactly (the power is measured over each row, or over the whole array when ``per_item=False``).
    A silent clip gets zero noise: silence stays silence, never NaN.

    Parameters
    ----------
    y : np.ndarray or torch.Tensor
        Shape ``(..., n)``.
    snr_db : float or (low, high)
        SNR in dB, or a range drawn uniformly per clip.
    rng : int, np.random.Generator, torch.Generator or None
    color : {"white", "pink"}
        Flat spectrum, or 1/f power spectrum (-3 dB per octave, no DC).
    per_item : bool
        One SNR per row (True) or one shared SNR and power measurement (False).

    Returns
    -------
    Same kind, shape and dtype as ``y``.
    """
    x, back = _numpy_in(y, "add_noise")
    g = as_generator(rng)
    if x.size == 0:
        return back(x.copy())
    flat = _rows(x)
    rows, n = flat.shape
    snr = draw(g, snr_db, rows if per_item else 1)[:, None]
    noise = g.standard_normal((rows, n), dtype=x.dtype)
    if color == "pink":
        noise = _pink(noise)
    return back(_mix_at_snr(flat, noise, snr, per_item).reshape(x.shape))


def _mix_at_snr(flat: np.ndarray, other: np.ndarray, snr: np.ndarray, per_item: bool) -> np.ndarray:
    """``flat + other`` with ``other`` scaled to ``snr`` dB below ``flat``'s power (per row, or over
    the whole array); a silent ``flat`` or ``other`` adds nothing."""
    axis = 1 if per_item else None
    p_sig = np.mean(np.square(flat, dtype=np.float64), axis=axis, keepdims=True)
    p_other = np.mean(np.square(other, dtype=np.float64), axis=axis, keepdims=True)
    target = p_sig / 10.0 ** (snr / 10.0)
    scale = np.sqrt(np.divide(target, p_other, out=np.zeros_like(target * p_other), where=p_other > 0))
    return flat + (other * scale).astype(flat.dtype, copy=False)


def _audio_files(value: Any) -> str | tuple[str, ...] | dict[str, str]:
    """A folder holding audio files (kept as its absolute path), a list of audio files (absolute), or
    ``{label: NAME}``: the training clips of a class, which ``earmark train`` resolves (offline copies)."""
    if isinstance(value, dict):
        if set(value) != {"label"} or not isinstance(value["label"], str) or not value["label"]:
            raise Invalid(f"expected {{label: NAME}} (the training clips of one class), got {value!r}")
        return {"label": value["label"]}
    if isinstance(value, (str, os.PathLike)):
        path = os.path.abspath(value)
        if not os.path.isdir(path):
            raise Invalid(f"expected a folder of audio files or a list of audio files, got {str(value)!r} "
                          f"({'not a folder' if os.path.exists(path) else 'no such folder'})")
        try:
            _folder_files(path)
        except DataError as exc:
            raise Invalid(str(exc)) from None
        return path
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (str, os.PathLike)) for v in value):
        missing = [str(v) for v in value if not os.path.isfile(v)]
        if missing:
            raise Invalid(f"no such file: {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        return tuple(os.path.abspath(v) for v in value)
    raise Invalid(f"expected a folder of audio files or a non-empty list of audio files, got {value!r}")


@functools.lru_cache(maxsize=16)
def _folder_files(folder: str) -> tuple[str, ...]:
    from earmark.data.formats.folder import list_audio

    return tuple(list_audio(folder))


def _excerpt(path: str, sr: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``path`` at ``sr`` from a random start (only that part is decoded); a recording
    shorter than that is decoded whole and looped."""
    from earmark.audio.io import info, load

    seconds = n / sr
    duration = info(path).duration
    if duration <= seconds:
        y = load(path, sr=sr)
        return np.tile(y, -(-n // len(y)))[:n] if len(y) else np.zeros(n, np.float32)
    y = load(path, sr=sr, offset=float(rng.uniform(0.0, duration - seconds)), duration=seconds)
    return fix_length(y, n)


@validated(files=_audio_files, snr_db=number_or_range(), sr=integer(minimum=1), per_item=boolean)
def add_background(y: Any, files: Any, snr_db: Any, *, rng: Rng, sr: int, per_item: bool = True) -> Any:
    """Mix in a random excerpt of another recording (music, crowd, room tone) at a random SNR.

    Each clip gets a file drawn uniformly from ``files`` and a window of it from a random start
    (looped when the recording is shorter than the clip), decoded at ``sr`` and scaled so that
    ``10 log10(mean(y**2) / mean(background**2))`` equals the drawn SNR, as :func:`add_noise` does
    with Gaussian noise. Real backgrounds teach what synthetic noise does not: other instruments,
    other accompaniments, other rooms, the leakage a vocal separation leaves behind. Only the
    excerpt is decoded, so a folder of whole songs costs no more memory than one clip.

    Parameters
    ----------
    y : np.ndarray or torch.Tensor
        Shape ``(..., n)``.
    files : str, list of str or {"label": NAME}
        A folder (every audio file under it, hidden ones skipped) or a list of audio files; in a
        config file, relative paths are relative to the config's folder. Keep the test set's audio
        out of them. Offline copies are keyed by a folder's path, not its contents: after changing
        its files, change ``train.seed`` or the folder's name. In ``train.copies``, ``{label: NAME}``
        takes the files of the training split's clips of class NAME (e.g. the ``instrumental`` clips
        of a singing-voice task: the training accompaniments), all of them: a cross-validation fold
        or the validation share can hear its own clips as background.
    snr_db : float or (low, high)
        The clip's power over the background's, in dB, or a range drawn uniformly per clip.
    rng : int, np.random.Generator, torch.Generator or None
    sr : int
        Sample rate of ``y``; backgrounds are resampled to it.
    per_item : bool
        One background and SNR per row (True) or one shared by all rows (False: the channels of
        one clip).

    Returns
    -------
    Same kind, shape and dtype as ``y``. A silent clip stays silent.

    Raises
    ------
    DataError
        A background file cannot be decoded (the message names it).
    """
    if isinstance(files, dict):
        raise ConfigError(f"add_background: files: {files!r} names training clips; only train.copies resolves it "
                          "(give a folder or a list of files here)")
    x, back = _numpy_in(y, "add_background")
    g = as_generator(rng)
    if x.size == 0:
        return back(x.copy())
    paths = _folder_files(files) if isinstance(files, str) else files
    flat = _rows(x)
    rows, n = flat.shape
    draws = rows if per_item else 1
    snr = draw(g, snr_db, draws)[:, None]
    picks = g.integers(0, len(paths), size=draws)
    other = np.stack([_excerpt(paths[i], sr, n, g) for i in picks]).astype(x.dtype, copy=False)
    if not per_item:
        other = np.broadcast_to(other, flat.shape)
    return back(_mix_at_snr(flat, other, snr, per_item).reshape(x.shape))


@validated(db=number_or_range(symmetric=True), per_item=boolean)
def gain(y: Any, db: Any, *, rng: Rng, per_item: bool = True) -> Any:
    """Multiply by ``10 ** (g / 20)`` with ``g`` drawn in dB (no clipping: float audio).

    Parameters
    ----------
    y : np.ndarray or torch.Tensor
        Shape ``(..., n)``.
    db : float or (low, high)
        A number ``d`` is a ± range: ``g`` uniform in ``[-|d|, |d|]``; a pair is ``[low, high]``;
        use ``(d, d)`` for a fixed gain.
    rng : int, np.random.Generator, torch.Generator or None
    per_item : bool
        One gain per row (True) or one shared gain (False).

    Returns
    -------
    Same kind, shape and dtype as ``y``.
    """
    x, back = _numpy_in(y, "gain")
    g = as_generator(rng)
    flat = _rows(x)
    db_drawn = draw(g, db, flat.shape[0] if per_item else 1)[:, None]
    out = flat * (10.0 ** (db_drawn / 20.0))
    return back(out.reshape(x.shape))


def _per_row(
    x: np.ndarray, values: np.ndarray, per_item: bool, neutral: float, fn: Callable[[np.ndarray, float], np.ndarray]
) -> np.ndarray:
    """Apply ``fn(signal, value)`` per row (or once to all rows), then restore the length."""
    n = x.shape[-1]
    if not per_item:
        if values[0] == neutral:
            return x.copy()
        return fix_length(fn(x, float(values[0])), n).astype(x.dtype, copy=False)
    flat = _rows(x)
    out = np.empty_like(flat)
    for r, v in enumerate(values):
        out[r] = flat[r] if v == neutral else fix_length(fn(flat[r], float(v)), n)
    return out.reshape(x.shape)


@validated(rate=number_or_range(gt=0.0), sr=integer(minimum=1), per_item=boolean)
def time_stretch(y: Any, rate: Any, *, rng: Rng, sr: int, per_item: bool = True) -> Any:
    """Change the tempo by ``rate`` without changing the pitch; keep the length.

    Uses ``librosa.effects.time_stretch`` (an STFT phase vocoder) with a window of at most ~93 ms
    (``n_fft`` = 2048 at 22.05 kHz, the power of two below that duration at other rates, e.g. 1024 at
    16 kHz; hop ``n_fft // 4``).
    The result is then padded with zeros at the end (``rate > 1``, faster) or cropped at the end
    (``rate < 1``, slower) back to ``n`` samples with :func:`earmark.audio.fix_length`.
    A rate of exactly 1 returns a copy.

    Parameters
    ----------
    y : np.ndarray or torch.Tensor
        Shape ``(..., n)``.
    rate : float or (low, high)
        Speed factor (> 0; 2.0 twice as fast), or a range drawn uniformly per clip.
    rng : int, np.random.Generator, torch.Generator or None
    sr : int
        Sample rate of ``y`` (sets the analysis window).
    per_item : bool
        One rate per row (True) or one shared rate (False).

    Returns
    -------
    Same kind, shape and dtype as ``y``.
    """
    import librosa

    x, back = _numpy_in(y, "time_stretch")
    g = as_generator(rng)
    rates = draw(g, rate, _rows(x).shape[0] if per_item else 1)
    if x.size == 0:
        return back(x.copy())
    n_fft = _n_fft(sr, x.shape[-1])

    def stretch(s: np.ndarray, r: float) -> np.ndarray:
        return librosa.effects.time_stretch(s, rate=r, n_fft=n_fft, hop_length=n_fft // 4)

    return back(_per_row(x, rates, per_item, 1.0, stretch))


FORMANTS = ("shift", "keep")


def _log_envelope(S: np.ndarray, lifter: int, iterations: int = 5) -> np.ndarray:
    """The spectral envelope of ``S`` (bins, frames) as a log magnitude, without the harmonics.

    Cepstral smoothing (quefrencies of ``lifter`` samples and above dropped) follows the mean of the
    log spectrum, which the gaps between a voice's harmonics pull down; a few "true envelope"
    iterations (Röbel & Rodet 2005: raise the spectrum to the envelope where it lies below, smooth
    again) make it pass through the harmonic peaks instead.
    """
    def smooth(a: np.ndarray) -> np.ndarray:
        cep = np.fft.irfft(a, axis=0)
        cep[lifter : cep.shape[0] - lifter + 1] = 0.0
        return np.fft.rfft(cep, axis=0).real

    log_mag = np.log(np.abs(S) + 1e-8)
    env = smooth(log_mag)
    for _ in range(iterations):
        env = smooth(np.maximum(log_mag, env))
    return env


def keep_envelope(original: np.ndarray, shifted: np.ndarray, *, sr: int, n_fft: int, hop: int,
                  quefrency_ms: float = 2.0) -> np.ndarray:
    """``shifted`` with the spectral envelope of ``original`` put back, frame by frame.

    Both are 1-D signals of one length (``shifted`` a pitch-shifted ``original``). The envelope of each
    STFT frame is its log magnitude smoothed by cepstral liftering (quefrencies under ``quefrency_ms``,
    2 ms: resonances wider than ~500 Hz, i.e. formants, not the harmonics of voices up to ~500 Hz)
    and raised to the harmonic peaks (:func:`_log_envelope`); the shifted frame is multiplied by the
    ratio of the two envelopes (limited to ±52 dB).
    """
    import librosa

    lifter = max(2, int(round(sr * quefrency_ms / 1000)))
    X = librosa.stft(original, n_fft=n_fft, hop_length=hop)
    Y = librosa.stft(shifted, n_fft=n_fft, hop_length=hop)
    ratio = np.exp(np.clip(_log_envelope(X, lifter) - _log_envelope(Y, lifter), -6.0, 6.0))
    return librosa.istft(Y * ratio, n_fft=n_fft, hop_length=hop, length=len(original))


@validated(semitones=number_or_range(), sr=integer(minimum=1), per_item=boolean, formants=choice(*FORMANTS))
def pitch_shift(y: Any, semitones: Any, *, rng: Rng, sr: int, per_item: bool = True, formants: str = "shift") -> Any:
    """Shift the pitch by a number of semitones without changing the duration.

    Uses ``librosa.effects.pitch_shift(..., res_type="soxr_hq")`` (phase-vocoder time stretch by
    ``2 ** (-semitones / 12)`` followed by soxr resampling) with the same ~93 ms window as
    :func:`time_stretch`. A shift of exactly 0 returns a copy.

    Resampling moves the whole spectrum, resonances included: a voice shifted up sounds like a smaller
    person (``formants="shift"``, the default). ``formants="keep"`` moves only the pitch: the
    spectral envelope of each frame is restored afterwards (:func:`keep_envelope`), so a low male voice
    shifted up still has a man's formants. That is the augmentation for tasks where pitch should not
    decide the class (singer gender, instrument family across registers).

    Parameters
    ----------
    y : np.ndarray or torch.Tensor
        Shape ``(..., n)``.
    semitones : float or (low, high)
        Shift (positive = up), or a range drawn uniformly per clip.
    rng : int, np.random.Generator, torch.Generator or None
    sr : int
        Sample rate of ``y``.
    per_item : bool
        One shift per row (True) or one shared shift (False).
    formants : {"shift", "keep"}
        Whether the spectral envelope moves with the pitch (plain resampling) or stays.

    Returns
    -------
    Same kind, shape and dtype as ``y``.
    """
    import librosa

    x, back = _numpy_in(y, "pitch_shift")
    g = as_generator(rng)
    steps = draw(g, semitones, _rows(x).shape[0] if per_item else 1)
    if x.size == 0:
        return back(x.copy())
    n_fft = _n_fft(sr, x.shape[-1])
    hop = n_fft // 4

    def shift(s: np.ndarray, k: float) -> np.ndarray:
        out = librosa.effects.pitch_shift(s, sr=sr, n_steps=k, res_type="soxr_hq", n_fft=n_fft, hop_length=hop)
        if formants == "keep":
            rows = [keep_envelope(a, b, sr=sr, n_fft=n_fft, hop=hop) for a, b in zip(_rows(s), _rows(out))]
            return np.stack(rows).reshape(s.shape)
        return out

    return back(_per_row(x, steps, per_item, 0.0, shift))
