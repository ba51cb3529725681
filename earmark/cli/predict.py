"""``earmark predict``: label audio files with a trained run."""

from __future__ import annotations

from pathlib import Path

import typer

from earmark.cli.app import app


@app.command("predict")
def predict_command(
    run: Path = typer.Argument(..., help="Run folder written by `earmark train` (or a fusion, `earmark fuse`)."),
    inputs: list[Path] = typer.Argument(..., help="Audio files and/or folders (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="CSV to write: id, path, label, top-k labels and probabilities."),
    top_k: int = typer.Option(3, "--top-k", help="How many labels (with probabilities) per file."),
    submission: bool = typer.Option(False, "--submission", help="Write only id,label (a competition submission)."),
) -> None:
    """Predict a label for every audio file in INPUTS.

    Long files are split into windows when the run's config sets eval.window (and eval.hop),
    and the windows are combined by mean probability or majority vote (eval.aggregate).
    Files that cannot be decoded are listed and skipped; the exit status is 1 if any failed.
    """
    import os

    from rich.console import Console

    from earmark.predict import collect_audio, predict_files, write_predictions
    from earmark.fuse import load_run

    r = load_run(run)
    files = collect_audio(inputs)
    preds, failures = predict_files(r, files)
    root = inputs[0] if len(inputs) == 1 and inputs[0].is_dir() else (os.path.commonpath([str(p.parent) for p in files]) if files else None)
    write_predictions(out, preds, r.labels, top_k=top_k, root=root, submission=submission)
    console = Console()
    console.print(f"{len(preds)} file(s) predicted -> {out}", highlight=False)
    if failures:
        console.print(f"[bold red]{len(failures)} file(s) failed:[/]")
        for path, reason in failures[:20]:
            console.print(f"  {path}: {reason}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
