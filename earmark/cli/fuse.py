"""``earmark fuse``: one classifier from several trained runs (late fusion of their probabilities)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from earmark.cli.app import app


@app.command("fuse")
def fuse_command(
    runs: list[Path] = typer.Argument(..., help="Two or more run folders written by `earmark train` (ensembles included)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the fusion (fusion.json; evaluate writes beside it)."),
    weights: Optional[str] = typer.Option(None, "--weights", "-w", help=(
        "One positive weight per run, comma-separated (e.g. 2,1); normalised to sum 1. Default: equal.")),
) -> None:
    """Fuse trained runs: average their class probabilities (weighted), each run on its own features.

    The fusion is a folder that `earmark evaluate`, `predict`, `compare` and `serve` take like a
    trained run; each clip is scored by every run (its own features, store and audio.separate) and
    the probabilities averaged. The runs must share their classes; they are referenced by paths
    relative to OUT, not copied.
    E.g. a network on fbank with a logistic regression on `embedding:ge2e` speaker embeddings:

        earmark fuse runs/resnet runs/ge2e-logreg --out runs/fused
        earmark evaluate runs/fused --manifest vocal.csv --split val
    """
    from rich.console import Console

    from earmark.errors import ConfigError
    from earmark.fuse import fuse_runs

    values = None
    if weights is not None:
        try:
            values = [float(v) for v in weights.split(",")]
        except ValueError:
            raise ConfigError(f"--weights: expected comma-separated numbers such as 2,1, got {weights!r}") from None
    fused = fuse_runs(runs, out, values)
    parts = ", ".join(f"{r.dir.name} ({r.meta.get('model')}) x{w:.3g}" for r, w in zip(fused.runs, fused.weights))
    Console().print(f"wrote {out / 'fusion.json'}: {parts}; classes {', '.join(fused.labels)}\n"
                    f"next: earmark evaluate {out} --manifest MANIFEST --split SPLIT", highlight=False, soft_wrap=True)
