"""``earmark plot``: a picture of one audio file (waveform, log-mel spectrogram or 40-band filterbank)."""

from __future__ import annotations

from pathlib import Path

import typer

from earmark.cli.app import app


@app.command("plot")
def plot_command(
    kind: str = typer.Argument(..., help="waveform, spectrogram or fbank.", metavar="waveform|spectrogram|fbank"),
    file: Path = typer.Argument(..., help="Audio file (WAV, FLAC, Ogg, MP3, ...)."),
    out: Path = typer.Option(..., "--out", "-o", help="PNG to write."),
    sr: int | None = typer.Option(None, "--sr", help="Resample to this rate first (default: the file's rate)."),
    offset: float = typer.Option(0.0, "--offset", help="Start this many seconds into the file."),
    duration: float | None = typer.Option(None, "--duration", help="Seconds to draw (default: to the end)."),
    title: str | None = typer.Option(None, "--title", help="Title (default: the file name)."),
    dpi: int = typer.Option(100, "--dpi", help="Resolution of the PNG."),
) -> None:
    """Draw FILE's waveform (amplitude over seconds), log-mel spectrogram (dB, mel-spaced frequency
    axis, colour bar) or the singer-gender study's 40-band filterbank (fbank at 16 kHz, bands x time)."""
    from rich.console import Console

    from earmark.evaluate.audio_plots import plot_file

    path = plot_file(kind, file, out, sr=sr, offset=offset, duration=duration, title=title, dpi=dpi)
    Console().print(f"{kind} of {file} -> {path}", highlight=False, soft_wrap=True)
