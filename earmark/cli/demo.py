"""``earmark demo``: the whole pipeline on the built-in synthetic dataset, offline."""

from __future__ import annotations

from pathlib import Path

import typer

from earmark.cli.app import app


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("earmark-demo"), "--out", help="Folder for the demo's data, features and runs."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Worker processes; 0 = all cores."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic dataset."),
) -> None:
    """Generate a synthetic 5-family instrument dataset, write its manifest and extract features.

    Nothing is downloaded. Rerunning reuses what is already there (dataset and cached features).
    """
    from rich.console import Console

    from earmark.data import Manifest
    from earmark.data.demo import make_demo_dataset
    from earmark.features.extract import extract
    from earmark.features.store import FeatureStore

    console = Console()
    console.rule("earmark demo")
    manifest_path = make_demo_dataset(out / "data", seed=seed)
    manifest = Manifest.read(manifest_path)
    counts = manifest.df.groupby(["label", "split"]).size().unstack(fill_value=0)
    console.print(f"1. dataset: {len(manifest)} clips, {len(manifest.classes)} classes -> {manifest_path}", highlight=False)
    console.print(counts.to_string())
    for feature in ("mfcc", "logmel"):
        report = extract(manifest, feature, out / "features", jobs=jobs, progress=True)
        with FeatureStore(out / "features", feature) as store:
            shape = store.load(manifest).arrays[0].shape if report.ok else "?"
        console.print(f"2. features {feature}: {report.n_computed} computed, {report.n_cached} cached, "
                      f"{len(report.failures)} failed; per-clip shape {shape}", highlight=False)
    console.print(f"done: data in {out / 'data'}, features in {out / 'features'}", highlight=False)
