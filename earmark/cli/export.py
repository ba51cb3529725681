"""``earmark export``: a trained network as ONNX or TorchScript, for use without earmark."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from earmark.cli.app import app


@app.command("export")
def export_command(
    run: Path = typer.Argument(..., help="Run folder of a network (or seed ensemble) written by `earmark train`."),
    format: str = typer.Option(..., "--format", "-f", help="onnx or torchscript."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Model file (default RUN/model.onnx or RUN/model.pt)."),
) -> None:
    """Export RUN's network with export.json (labels, feature, params, sr, frames, n_samples) beside it.

    \b
    torchscript  waveform (batch, n_samples) at the feature's rate -> probabilities; the feature
                 front end (fbank, logmel, ...) is inside the model
    onnx         features (batch, frames, bins) -> probabilities; compute the features as
                 export.json says (earmark.export.onnx_features does it)
    """
    from rich.console import Console

    from earmark.export import export

    path = export(run, format, out)
    Console().print(f"wrote {path} and {path.with_name('export.json')}", highlight=False)
