"""``earmark demo``: the whole pipeline on the built-in synthetic dataset, offline."""

from __future__ import annotations

from pathlib import Path

import typer

from earmark.cli.app import app

# The demo's experiments: (run name, config overrides). Written to OUT/configs/ so a user can
# rerun or edit them with `earmark train`.
DEMO_EXPERIMENTS = {
    "mfcc-logreg": {"features": {"name": "mfcc", "pool": ["mean", "std"]}, "model": {"name": "logreg"}},
    "stats518-svm": {"features": {"name": "stats518"}, "model": {"name": "svm_rbf"}},
    "stats518-rf-knn": {"features": {"name": "stats518"}, "model": {"name": ["rf", "knn"], "scaler": "robust"}},
}


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("earmark-demo"), "--out", help="Folder for the demo's data, features, configs and runs."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Worker processes for feature extraction; 0 = all cores."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic dataset and of training."),
) -> None:
    """Run the whole pipeline on a synthetic 5-family instrument dataset (plucked, bowed, blown,
    struck, organ; 300 clips): generate -> manifest -> features -> three classical models with
    grid search -> evaluation (metrics.json, report.html per run) -> comparison table and page.

    Nothing is downloaded. Rerunning reuses the dataset and the cached features.
    """
    import yaml
    from rich.console import Console

    from earmark.cli.compare import rich_table
    from earmark.config import validate_config
    from earmark.data import Manifest
    from earmark.data.demo import make_demo_dataset
    from earmark.evaluate.compare import compare_runs, to_markdown, write_comparison
    from earmark.fsutil import atomic_write_text
    from earmark.train.experiment import train

    console = Console()
    console.rule("earmark demo")
    manifest_path = make_demo_dataset(out / "data", seed=seed)
    manifest = Manifest.read(manifest_path)
    console.print(f"1. dataset: {len(manifest)} clips, {len(manifest.classes)} classes -> {manifest_path}", highlight=False)
    console.print(manifest.df.groupby(["label", "split"]).size().unstack(fill_value=0).to_string())
    runs = []
    for name, overrides in DEMO_EXPERIMENTS.items():
        raw = {"data": {"manifest": "../data/manifest.csv"}, "train": {"seed": seed},
               **{k: dict(v) for k, v in overrides.items()}}
        raw["features"]["jobs"] = jobs
        raw["features"]["store"] = "../features"
        config_path = out / "configs" / f"{name}.yaml"
        atomic_write_text(config_path, yaml.safe_dump(raw, sort_keys=False))
        cfg = validate_config(raw, base=config_path.parent)
        console.print(f"2. train {name}: {cfg.features.name} -> {cfg.model.name} (config {config_path})", highlight=False)
        runs.append(train(cfg, out / "runs" / name, progress=True))
    table = compare_runs(runs)
    atomic_write_text(out / "comparison.md", to_markdown(table))
    page = write_comparison(runs, out / "comparison")
    console.print(rich_table(table, "3. comparison on the test split, best accuracy first"))
    console.print(f"runs: {', '.join(str(r) for r in runs)} (each with report.html)", highlight=False, soft_wrap=True)
    console.print(f"comparison: {out / 'comparison.md'} and the page {page}", highlight=False, soft_wrap=True)
    console.print(f"next: `earmark predict {runs[1]} {out / 'data' / 'organ'} --out predictions.csv`, "
                  f"or `earmark serve {runs[1]}` and open http://127.0.0.1:8000/", highlight=False, soft_wrap=True)
