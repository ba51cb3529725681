"""Pictures of one clip: waveform, log-mel spectrogram and the 40-band filterbank (singer-gender study).

Drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas (as :mod:`earmark.evaluate.plots`):
pyplot is never imported, so the caller's pyplot state and backend stay as they were and no window
opens. Every function either draws into the ``ax`` it is given (and returns that axes' figure) or
makes a new figure; :func:`figure_png` turns a figure into PNG bytes (for HTML reports and the web app).

Examples
--------
>>> from earmark.audio import load                                    # doctest: +SKIP
>>> y = load("clip.wav", sr=22050)                                    # doctest: +SKIP
>>> png = figure_png(plot_spectrogram(y, 22050, title="clip.wav"))   # doctest: +SKIP
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from earmark.checks import is_int, is_number
from earmark.errors import ConfigError, DataError

__all__ = ["PLOTS", "figure_png", "plot_fbank", "plot_file", "plot_spectrogram", "plot_waveform"]

_DPI = 100
_SIZE = (8.0, 3.2)  # inches of a new figure
_FBANK_SR = 16000
_ENVELOPE_ABOVE = 20000  # samples; longer waveforms are drawn as a min/max envelope


def _signal(y: Any, sr: Any, where: str) -> tuple[np.ndarray, int]:
    """A finite, non-empty mono float waveform and a positive integer rate, or a clear error."""
    try:
        a = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: expected a mono waveform of shape (n_samples,), got {type(y).__name__} ({exc})") from None
    if a.ndim != 1:
        hint = "; downmix it first (earmark.audio.to_mono)" if a.ndim == 2 else ""
        raise DataError(f"{where}: expected a mono waveform of shape (n_samples,), got shape {a.shape}{hint}")
    if a.size == 0:
        raise DataError(f"{where}: expected a waveform with at least one sample, got an empty array")
    if not np.isfinite(a).all():
        bad = int(np.count_nonzero(~np.isfinite(a)))
        raise DataError(f"{where}: expected finite samples, got {bad} NaN/Inf of {a.size}")
    if not is_int(sr) or sr <= 0:
        raise ConfigError(f"{where}: sr must be a positive integer (Hz), got {sr!r}")
    return a, int(sr)


def _target(ax, size: tuple[float, float] = _SIZE):
    """``(fig, ax)``: the given axes and its figure, or a new Agg figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _hz_label(f: float) -> str:
    return f"{f / 1000:g}k" if f >= 1000 else f"{f:g}"


def plot_waveform(y: Any, sr: int, *, title: str | None = None, ax=None):
    """Amplitude over time in seconds.

    Parameters
    ----------
    y : array, shape (n_samples,)
        Mono waveform.
    sr : int
        Its sample rate (Hz).
    title : str, optional
        Axes title; defaults to ``"Waveform"``.
    ax : matplotlib.axes.Axes, optional
        Draw into this axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The new figure, or ``ax.figure``. Above 20,000 samples the curve is drawn as its min/max
        envelope per horizontal step (what a person can see at that size, drawn in milliseconds).

    Raises
    ------
    DataError
        ``y`` is not 1-D, is empty or holds NaN/Inf.
    """
    a, sr = _signal(y, sr, "plot_waveform")
    fig, ax = _target(ax)
    n = a.size
    if n > _ENVELOPE_ABOVE:
        steps = 2000
        edges = np.linspace(0, n, steps + 1).astype(np.int64)
        lo = np.minimum.reduceat(a, edges[:-1])
        hi = np.maximum.reduceat(a, edges[:-1])
        t = edges[:-1] / sr
        ax.fill_between(t, lo, hi, color="tab:blue", linewidth=0.6, edgecolor="tab:blue")
    else:
        ax.plot(np.arange(n) / sr, a, color="tab:blue", linewidth=0.6)
    ax.set_xlim(0.0, n / sr)
    peak = float(np.abs(a).max())
    ax.set_ylim(-1.05 * peak if peak > 0 else -1.0, 1.05 * peak if peak > 0 else 1.0)
    ax.axhline(0.0, color="0.6", linewidth=0.5)
    ax.set_xlabel("Time (s)")
    ax.set_ylabel("Amplitude")
    ax.set_title("Waveform" if title is None else title)
    return fig


def plot_spectrogram(
    y: Any,
    sr: int,
    *,
    title: str | None = None,
    ax=None,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_mels: int = 128,
):
    """Log-mel spectrogram in dB (``earmark.features.logmel``: peak 0 dB, floor -80 dB) with a colour bar.

    Parameters
    ----------
    y : array, shape (n_samples,)
        Mono waveform.
    sr : int
        Its sample rate (Hz); the mel bands span 0 to ``sr / 2``.
    title : str, optional
        Axes title; defaults to ``"Log-mel spectrogram"``.
    ax : matplotlib.axes.Axes, optional
        Draw into this axes instead of a new figure.
    n_fft, hop_length, n_mels : int
        STFT size, step and number of mel bands, as :func:`earmark.features.logmel`.

    Returns
    -------
    matplotlib.figure.Figure
        Time (s) across, frequency up (mel-spaced, ticks in Hz).

    Raises
    ------
    DataError
        ``y`` is not 1-D, is empty or holds NaN/Inf.
    ConfigError
        A bad ``sr`` / ``n_fft`` / ``hop_length`` / ``n_mels``.
    """
    from earmark.features import logmel
    from earmark.features.dsp import _hz_to_mel

    a, sr = _signal(y, sr, "plot_spectrogram")
    S = logmel(a.astype(np.float32), sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)  # (frames, n_mels)
    fig, ax = _target(ax)
    duration = a.size / sr
    im = ax.imshow(S.T, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
                   extent=(0.0, duration, 0.0, float(n_mels)), vmin=float(S.min()), vmax=0.0 if S.max() <= 0 else None)
    cbar = fig.colorbar(im, ax=ax, pad=0.02)
    cbar.set_label("dB")

    # Band i is centred at mel_min + (i + 1) * step and drawn over [i, i + 1].
    top = sr / 2.0
    mel_max = float(_hz_to_mel(np.array(top), False))
    step = mel_max / (n_mels + 1)
    ticks = [f for f in (0, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000) if f <= top]
    pos = [min(max(float(_hz_to_mel(np.array(f), False)) / step - 0.5, 0.0), float(n_mels)) for f in ticks]
    ax.set_yticks(pos, labels=[_hz_label(f) for f in ticks])
    ax.set_xlabel("Time (s)")
    ax.set_ylabel("Frequency (Hz, mel scale)")
    ax.set_title("Log-mel spectrogram" if title is None else title)
    return fig


def plot_fbank(y: Any, sr: int, *, title: str | None = None, ax=None):
    """earmark's 40-band filterbank (``earmark.features.fbank`` at 16 kHz) as an image, bands x time.

    The waveform is resampled to 16 kHz first (soxr) when ``sr`` differs; frames are 25 ms every
    10 ms with pre-emphasis 0.97 and 40 mel bands over 0-8 kHz, as in the singer-gender study.

    Parameters
    ----------
    y : array, shape (n_samples,)
        Mono waveform.
    sr : int
        Its sample rate (Hz).
    title : str, optional
        Axes title; defaults to ``"Filterbank (40 bands, 16 kHz)"``.
    ax : matplotlib.axes.Axes, optional
        Draw into this axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        Time (s) across, band 0-39 up, colour bar in dB (the colours span the top 100 dB; quieter
        cells, such as exact digital silence, show as the darkest colour).

    Raises
    ------
    DataError
        ``y`` is not 1-D, is empty or holds NaN/Inf.
    """
    from earmark.audio import resample
    from earmark.features import fbank

    a, sr = _signal(y, sr, "plot_fbank")
    x = a.astype(np.float32)
    if sr != _FBANK_SR:
        x = resample(x, sr, _FBANK_SR)
    F = fbank(x, sr=_FBANK_SR)  # (frames, 40)
    fig, ax = _target(ax)
    # Exact digital silence sits near -300 dB (20 log10(eps)); the colours span the top 100 dB.
    peak = float(F.max())
    im = ax.imshow(F.T, origin="lower", aspect="auto", cmap="viridis", interpolation="nearest",
                   extent=(0.0, a.size / sr, -0.5, F.shape[1] - 0.5),  # frames spread over the clip's duration
                   vmin=max(float(F.min()), peak - 100.0), vmax=peak)
    cbar = fig.colorbar(im, ax=ax, pad=0.02)
    cbar.set_label("dB")
    ax.set_xlabel("Time (s)")
    ax.set_ylabel("Mel band")
    ax.set_title("Filterbank (40 bands, 16 kHz)" if title is None else title)
    return fig


def figure_png(fig, dpi: int = _DPI) -> bytes:
    """The figure as PNG bytes.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        Any figure (with or without a canvas; the Agg canvas is attached when it has none).
    dpi : int
        Resolution; the pixel size is ``figsize * dpi``.

    Returns
    -------
    bytes
        A PNG file's content (starts with ``b"\\x89PNG"``).
    """
    if not is_number(dpi) or dpi <= 0:
        raise ConfigError(f"figure_png: dpi must be > 0, got {dpi!r}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


PLOTS = {"waveform": plot_waveform, "spectrogram": plot_spectrogram, "fbank": plot_fbank}
"""The pictures :func:`plot_file` (``earmark plot KIND``) draws, by name."""


def plot_file(
    kind: str,
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    sr: int | None = None,
    offset: float = 0.0,
    duration: float | None = None,
    title: str | None = None,
    dpi: int = _DPI,
) -> Path:
    """Decode (part of) an audio file and draw one picture of it to a PNG (written atomically).

    Parameters
    ----------
    kind : {"waveform", "spectrogram", "fbank"}
        Which picture (see :data:`PLOTS`).
    path : path
        Audio file (anything :func:`earmark.audio.load` decodes); multichannel audio is downmixed.
    out : path
        The PNG to write; parent folders are created.
    sr : int, optional
        Resample to this rate first; None keeps the file's rate (``fbank`` always works at 16 kHz).
    offset, duration : float
        Seconds to skip, and seconds to read (None: to the end), as :func:`earmark.audio.load`.
    title : str, optional
        Defaults to the file name (with the offset when there is one).
    dpi : int
        Resolution of the PNG.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ConfigError
        Unknown ``kind`` (the message lists the choices), bad ``sr`` / ``offset`` / ``duration``.
    AudioDecodeError
        The file is missing or cannot be decoded.
    """
    from earmark.audio import info, load
    from earmark.fsutil import atomic_path

    if kind not in PLOTS:
        import difflib

        close = difflib.get_close_matches(str(kind), list(PLOTS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"plot: kind must be one of {', '.join(PLOTS)}, got {kind!r}{hint}")
    y = load(path, sr=sr, offset=offset, duration=duration)
    rate = sr if sr is not None else info(path).sr
    if title is None:
        title = Path(path).name + (f" from {offset:g} s" if offset else "")
    png = figure_png(PLOTS[kind](y, rate, title=title), dpi=dpi)
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_bytes(png)
    return out
