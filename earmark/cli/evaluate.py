"""``earmark evaluate``: score a trained run on a manifest split."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from earmark.cli.app import app


@app.command("evaluate")
def evaluate_command(
    run: Path = typer.Argument(..., help="Run folder written by `earmark train` (or a fusion, `earmark fuse`)."),
    manifest: Path = typer.Option(..., "--manifest", "-m", help="Manifest with the clips to score."),
    split: str = typer.Option("test", "--split", help="Which split of the manifest."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write metrics.json (default: RUN/metrics.json)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Write metrics.json (accuracy, top-k, macro F1, per-class, confusion matrix, ms/clip, params)
    and confusion.png for RUN on the SPLIT of MANIFEST.

    Labels the model never saw count as errors and are listed; clips that cannot be decoded are
    left out, counted (n_failed) and listed in failures-SPLIT.csv.
    """
    from rich.console import Console

    from earmark.evaluate.evaluate import evaluate

    m = evaluate(run, manifest, split=split, out=out, progress=progress)
    console = Console()
    top = ", ".join(f"top-{k} {v:.3f}" for k, v in m["top_k_accuracy"].items())
    console.print(f"{split}: accuracy {m['accuracy']:.3f} ({top}), macro F1 {m['macro_f1']:.3f} on {m['n']} clips; "
                  f"{m['inference_ms_per_clip'] or float('nan'):.1f} ms/clip", highlight=False)
    if m.get("unseen_labels"):
        console.print(f"[yellow]labels the model never saw (counted as errors):[/] {m['unseen_labels']}", highlight=False)
    if m.get("n_failed"):
        console.print(f"[yellow]{m['n_failed']} clip(s) could not be decoded[/] (see failures-{split}.csv)")
    console.print(f"wrote {out or run / 'metrics.json'}", highlight=False)
    if out is None:  # RUN/metrics.json changed: refresh RUN/report.html, which is drawn from it
        from earmark.evaluate.report import refresh_report

        if refresh_report(run) is not None:
            console.print(f"wrote {run / 'report.html'}", highlight=False)
