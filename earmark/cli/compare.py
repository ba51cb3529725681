"""``earmark compare``: one table over several evaluated runs, best accuracy first."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from earmark.cli.app import app


@app.command("compare")
def compare_command(
    runs: list[Path] = typer.Argument(..., help="Run folders (each with metrics.json from `earmark evaluate` and config.yaml)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help=(
        "A path ending in .md: the table as Markdown there and as CSV beside it. Any other path: a folder "
        "receiving index.html (self-contained page with the table and a bar chart), table.md, table.csv and accuracy.png.")),
) -> None:
    """Compare evaluated runs: model, features, accuracy, top-3, macro F1, ms/clip and parameters.

    Runs are sorted by accuracy, best first. A run folder without metrics.json is an error: run
    `earmark evaluate RUN --manifest ...` on it first.
    """
    from rich.console import Console

    from earmark.errors import ConfigError
    from earmark.evaluate.compare import compare_runs, write_comparison, write_table

    if out is not None and out.suffix.lower() == ".csv":
        raise ConfigError(f"--out: expected a Markdown path such as table.md (the CSV goes beside it) or a folder, got {out}")
    if out is not None and out.suffix.lower() != ".md" and out.is_file():
        raise ConfigError(f"--out: {out} is a file; give a table.md path or a folder for index.html")
    df = compare_runs(runs)
    console = Console()
    console.print(rich_table(df, f"{len(df)} run(s), best accuracy first"))

    if out is None:
        return
    if out.suffix.lower() == ".md":
        md, csv_path = write_table(df, out)
        console.print(f"wrote {md} and {csv_path}", highlight=False)
    else:
        page = write_comparison(runs, out)
        console.print(f"wrote {page} (open it in a browser), table.md, table.csv and accuracy.png", highlight=False)


def rich_table(df, title: str):
    """The comparison frame of :func:`earmark.evaluate.compare.compare_runs` as a rich Table."""
    from rich.markup import escape
    from rich.table import Table

    from earmark.evaluate.compare import format_cell

    table = Table(title=title)
    for column in df.columns:
        table.add_column(str(column), justify="right" if column not in ("run", "model", "features") else "left")
    for values in df.itertuples(index=False, name=None):
        table.add_row(*(escape(format_cell(c, v)) for c, v in zip(df.columns, values)))
    return table
