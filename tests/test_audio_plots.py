"""Waveform / spectrogram / filterbank pictures of one clip, and `earmark plot`, on real audio files."""

from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import earmark.cli.plot  # noqa: F401  (registers `earmark plot` whatever earmark/cli/__init__ imports)
from earmark.audio import resample
from earmark.cli import main
from earmark.errors import ConfigError, DataError
from earmark.evaluate.audio_plots import (
    figure_png,
    plot_fbank,
    plot_file,
    plot_spectrogram,
    plot_waveform,
)
from earmark.features import fbank, logmel
from tests.conftest import music_like

PLOTS = [plot_waveform, plot_spectrogram, plot_fbank]


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


@pytest.mark.parametrize("plot", PLOTS)
def test_each_plot_is_an_agg_figure_with_labelled_axes(plot):
    y = music_like(22050, 1.5)
    fig = plot(y, 22050, title="clip.wav")
    assert isinstance(fig, Figure) and isinstance(fig.canvas, FigureCanvasAgg)
    ax = fig.axes[0]
    assert ax.get_title() == "clip.wav" and ax.get_xlabel() == "Time (s)" and ax.get_ylabel()
    assert ax.get_xlim() == pytest.approx((0.0, 1.5))  # seconds, not samples or frames
    assert _png_size(figure_png(fig)) == (800, 320)
    assert _png_size(figure_png(fig, dpi=50)) == (400, 160)


@pytest.mark.parametrize("plot", PLOTS)
def test_draws_into_a_given_axes_and_returns_its_figure(plot):
    fig = Figure(figsize=(6, 6))
    top, bottom = fig.subplots(2, 1)
    assert plot(music_like(16000, 0.5), 16000, ax=bottom) is fig
    assert not top.has_data() and bottom.has_data()
    assert figure_png(fig)[:4] == b"\x89PNG"  # a Figure without an explicit canvas saves too


def test_spectrogram_shows_earmarks_logmel_with_a_colour_bar_and_hz_ticks():
    y = music_like(22050, 2.0, f0=440.0)
    fig = plot_spectrogram(y, 22050, n_mels=64)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), logmel(y, 22050, n_mels=64).T)
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "dB"
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks[0] == "0" and "1k" in ticks and "8k" in ticks and "16k" not in ticks  # sr / 2 = 11025 Hz
    assert ax.get_title() == "Log-mel spectrogram"


@pytest.mark.parametrize("sr", [16000, 44100])
def test_fbank_is_the_40_band_filterbank_at_16_khz(sr):
    y = music_like(sr, 1.0)
    ax = plot_fbank(y, sr).axes[0]
    x = y if sr == 16000 else resample(y, sr, 16000)
    image = ax.images[0].get_array()
    assert image.shape == (40, 99)  # bands x frames: 1 + ceil((16000 - 400) / 160)
    np.testing.assert_allclose(image, fbank(x, sr=16000).T, rtol=1e-6)
    assert ax.get_ylabel() == "Mel band"


def test_long_waveform_is_drawn_as_an_envelope_spanning_the_peaks():
    y = music_like(8000, 10.0)
    ax = plot_waveform(y, 8000).axes[0]
    assert not ax.lines[1:]  # only the zero line: the signal is a filled envelope
    (envelope,) = ax.collections
    verts = envelope.get_paths()[0].vertices
    assert verts[:, 1].max() == pytest.approx(y.max()) and verts[:, 1].min() == pytest.approx(y.min())
    assert ax.get_xlim() == (0.0, 10.0)


@pytest.mark.parametrize(
    "y, message",
    [
        (np.zeros(0, np.float32), "expected a waveform with at least one sample, got an empty array"),
        (np.array([0.1, np.nan, 0.2]), "expected finite samples, got 1 NaN/Inf of 3"),
        (np.zeros((2, 100)), "expected a mono waveform of shape (n_samples,), got shape (2, 100)"),
        (np.float32(0.5), "expected a mono waveform of shape (n_samples,), got shape ()"),
        ("not audio", "expected a mono waveform"),
    ],
)
@pytest.mark.parametrize("plot", PLOTS)
def test_bad_waveforms_are_refused_naming_what_was_expected(plot, y, message):
    with pytest.raises(DataError) as err:
        plot(y, 16000)
    assert plot.__name__ in str(err.value) and message in str(err.value)


@pytest.mark.parametrize("sr", [0, -1, 16000.5, None, True])
def test_bad_rate_is_a_config_error(sr):
    with pytest.raises(ConfigError, match="sr must be a positive integer"):
        plot_waveform(np.zeros(10), sr)


def test_plot_file_reads_the_requested_part(tmp_path):
    sf.write(tmp_path / "clip.wav", music_like(22050, 3.0), 22050)
    out = plot_file("waveform", tmp_path / "clip.wav", tmp_path / "pics" / "w.png", offset=1.0, duration=1.5, dpi=50)
    assert out == tmp_path / "pics" / "w.png" and _png_size(out.read_bytes()) == (400, 160)
    with pytest.raises(ConfigError, match=r"kind must be one of waveform, spectrogram, fbank, got 'spectogram'; "
                                          r"did you mean 'spectrogram'\?"):
        plot_file("spectogram", tmp_path / "clip.wav", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("kind", ["waveform", "spectrogram", "fbank"])
def test_cli_plot_writes_a_png(tmp_path, capsys, kind):
    sf.write(tmp_path / "song.flac", np.stack([music_like(44100, 2.0), music_like(44100, 2.0, seed=1)], 1), 44100)
    args = ["plot", kind, str(tmp_path / "song.flac"), "--out", str(tmp_path / f"{kind}.png"),
            "--sr", "22050", "--offset", "0.5", "--duration", "1", "--title", "Song"]
    assert main(args) == 0
    assert f"{kind} of " in capsys.readouterr().out
    assert _png_size((tmp_path / f"{kind}.png").read_bytes()) == (800, 320)


def test_cli_plot_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not audio")
    assert main(["plot", "spectrogram", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "s.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert "notes.txt" in err and len(err.splitlines()) == 1
    assert main(["plot", "mel", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "s.png")]) == 2
    assert "kind must be one of waveform, spectrogram, fbank" in capsys.readouterr().err
    assert not (tmp_path / "s.png").exists()


def test_pyplot_is_never_imported():
    code = ("import sys, numpy as np; from earmark.evaluate.audio_plots import *; y = np.sin(np.arange(8000) / 5.0); "
            "[figure_png(p(y, 8000)) for p in (plot_waveform, plot_spectrogram, plot_fbank)]; "
            "assert 'matplotlib.pyplot' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("y", [np.zeros(3000), np.zeros(1), np.full(5, 0.1)], ids=["silence", "one-sample", "dc"])
@pytest.mark.parametrize("plot", PLOTS)
def test_silence_and_tiny_clips_draw_without_warnings(plot, y):
    assert _png_size(figure_png(plot(y, 16000))) == (800, 320)
