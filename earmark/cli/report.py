"""``earmark report``: the run's self-contained HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from earmark.cli.app import app


@app.command("report")
def report_command(
    run: Path = typer.Argument(..., help="Run folder written by `earmark train`."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write the page (default: RUN/report.html)."),
    max_tsne: int = typer.Option(2000, "--max-tsne", min=5, help="t-SNE on a stratified subsample of at most this many clips."),
    seed: int = typer.Option(0, "--seed", help="Seed of the t-SNE subsample and layout."),
) -> None:
    """Write RUN/report.html: metrics, confusion matrices, training curves, t-SNE of the embeddings,
    the most confused classes with clips to listen to, one example per class, model size and speed.

    One file that opens offline (images and sounds embedded). Sections the run cannot fill (no
    metrics.json yet, a classical model's training curves, ...) say why they are not available.

    `earmark train`, and `earmark evaluate` without --out, rewrite it too.
    """
    from rich.console import Console

    from earmark.evaluate.report import write_report

    page = write_report(run, out=out, max_tsne=max_tsne, seed=seed)
    Console().print(f"wrote {page} ({page.stat().st_size / 1e6:.1f} MB)", highlight=False)
