"""``earmark compare``: one table over several evaluated runs, best accuracy first."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from earmark.cli.app import app


@app.command("compare")
def compare_command(
    runs: list[Path] = typer.Argument(..., help="Run folders (each with metrics.json from `earmark evaluate` and config.yaml)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the table as Markdown here (e.g. table.md), and as CSV beside it (table.csv)."),
) -> None:
    """Compare evaluated runs: model, features, accuracy, top-3, macro F1, ms/clip and parameters.

    Runs are sorted by accuracy, best first. A run folder without metrics.json is an error: run
    `earmark evaluate RUN --manifest ...` on it first.
    """
    from rich.console import Console

    from earmark.errors import ConfigError
    from earmark.evaluate.compare import compare_runs, to_markdown
    from earmark.fsutil import atomic_path, atomic_write_text

    csv_path = None
    if out is not None:
        csv_path = out.with_suffix(".csv")
        if csv_path == out:
            raise ConfigError(f"--out: expected a Markdown path such as table.md (the CSV goes beside it), got {out}")

    df = compare_runs(runs)
    console = Console()
    console.print(rich_table(df, f"{len(df)} run(s), best accuracy first"))

    if out is not None:
        atomic_write_text(out, to_markdown(df))
        with atomic_path(csv_path) as tmp:
            df.to_csv(tmp, index=False)
        console.print(f"wrote {out} and {csv_path}", highlight=False)


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
