"""``earmark extract``: compute one feature for every clip of a manifest into the feature store."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from earmark.cli.app import RAY_HELP, app, parse_assignments, print_failures


@app.command("extract")
def extract_command(
    manifest: Path = typer.Argument(..., help="Manifest CSV/JSONL written by `earmark prepare`."),
    features: str = typer.Option(..., "--features", "-f", help="Feature name (see `earmark features`): fbank, stft, logmel, mfcc, waveform, ..."),
    store: Path = typer.Option(..., "--store", "-s", help="Feature store folder (created if missing; shared by all features)."),
    param: Optional[list[str]] = typer.Option(None, "--param", "-p", help="Feature parameter KEY=VALUE (repeatable), e.g. -p n_mels=64 -p sr=22050."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Worker processes; 0 = all cores, 1 = in this process (with --ray local: the local Ray instance's CPUs)."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help=RAY_HELP),
    split: Optional[str] = typer.Option(None, "--split", help="Only the clips of this split (default: all)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Extract features for every clip of MANIFEST into STORE.

    Audio is decoded and resampled to the feature's own rate (fbank: 16 kHz). Clips already in the
    store are skipped, so a rerun after a crash or kill computes only the rest. Clips that cannot be
    decoded are listed (and written to failures.csv in the store) and skipped; the exit status is 1
    when any clip failed, 0 otherwise.

    With --ray ADDRESS the clips are decoded and their features computed as Ray tasks on a cluster
    (pip install 'earmark\\[ray]'); the audio must be visible to every node under the same paths, and
    this process alone writes the store.
    """
    from rich.console import Console

    from earmark.data import Manifest
    from earmark.features.extract import extract

    console = Console()
    m = Manifest.read(manifest)
    if split is not None:
        m = m.select(split=split)
    params = parse_assignments(param, "--param")
    if ray is None:
        report = extract(m, features, store, params=params, jobs=jobs, progress=progress)
    else:
        from earmark.parallel import make_executor

        with make_executor(jobs, ray=ray) as executor:
            report = extract(m, features, store, params=params, executor=executor, progress=progress)
    console.print(
        f"{features}: {report.n_clips} clips, {report.n_cached} already stored, {report.n_computed} computed, "
        f"{len(report.failures)} failed in {report.seconds:.1f} s"
        + (f" ({report.realtime_factor:,.0f}x real time)" if report.n_computed else "")
    )
    console.print(f"store: {report.store_dir}", highlight=False)
    if report.failures:
        print_failures(console, [(f.path, f.reason) for f in report.failures], "clip",
                       listed_in=f"{report.store_dir}/failures.csv")
        raise typer.Exit(1)
