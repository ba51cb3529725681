"""``earmark prepare``: turn a dataset in one of the supported layouts into a manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from earmark.cli.app import app, parse_assignments


@app.command("prepare")
def prepare_command(
    format: str = typer.Argument(..., help="Dataset layout: folder, csv, nsynth, fma, gtzan, artist20, competition."),
    src: Path = typer.Argument(..., help="The dataset's folder (or the CSV file for `csv`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Manifest to write (.csv or .jsonl)."),
    target: Optional[str] = typer.Option(None, "--target", help="What to predict, where the format has a choice (nsynth: instrument_family, instrument_source, pitch)."),
    split: Optional[str] = typer.Option(None, "--split", help="Split policy: predefined, stratified or group (default: the format's own)."),
    fractions: Optional[str] = typer.Option(None, "--fractions", help="Split sizes, e.g. train=0.7,val=0.15,test=0.15."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split."),
    folds: Optional[int] = typer.Option(None, "--folds", help="Also write a `fold` column for K-fold cross-validation."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-O", help="Format option KEY=VALUE (repeatable), e.g. -O subset=medium, -O label_col=genre."),
) -> None:
    """Write a manifest (id, path, label, split, group) for the dataset in SRC.

    \b
    folder       SRC/<class>/**/<audio>                      stratified 80/20
    csv          CSV with path,label[,split,group]           its split column, else stratified 80/20
    nsynth       examples.json + audio/ (or nsynth-train/valid/test)   NSynth's split, else by instrument 75/25
    fma          tracks.csv (two-row header) + fma_small/    the official split; group = artist
    gtzan        SRC/<genre>/*.wav                           fault-filtered split with -O split_dir=DIR
    artist20     SRC/<artist>/<album>/<track>                album-level split (-O split_by=song)
    competition  train/ (labelled) + test/ (unlabelled)      stratified train/val; test -> split "unlabelled"
    """
    from rich.console import Console

    from earmark.data import prepare

    opts = parse_assignments(option, "--option")
    fr = {k: float(v) for k, v in parse_assignments(fractions.split(",") if fractions else None, "--fractions").items()}
    manifest = prepare(format, src, out=out, target=target, split=split, seed=seed, folds=folds,
                       fractions=fr or None, **opts)
    console = Console()
    df = manifest.df
    console.print(f"{out}: {len(df)} clips, {df['label'].replace('', None).nunique()} classes", highlight=False)
    console.print(df.groupby(["split"]).size().to_string())
    missing = manifest.missing_files()
    if missing:
        console.print(f"[yellow]warning:[/] {len(missing)} listed file(s) do not exist, e.g. {missing[0][1]}", highlight=False)
