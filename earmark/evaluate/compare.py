"""One table over several runs: which model and features scored best, at what speed and size.

``compare_runs`` reads the runs into a DataFrame; ``to_markdown`` formats it; ``write_comparison`` writes
a folder with a self-contained ``index.html`` (table and bar chart), ``table.md``, ``table.csv`` and
``accuracy.png``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from earmark.errors import DataError
from earmark.evaluate.metrics import read_metrics

__all__ = ["COLUMNS", "compare_runs", "format_cell", "to_markdown", "write_comparison", "write_table"]

COLUMNS = ["run", "model", "features", "accuracy", "top-3", "macro F1", "ms/clip", "params"]


def _read_config(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping with sections data, features, model, ..., got {type(data).__name__}")
    return data


def _name(value: Any) -> str | None:
    """A name from ``"svm"``, ``["svm", "rf"]`` (candidates -> ``"svm/rf"``) or ``{"name": ...}``."""
    if value is None:
        return None
    if isinstance(value, dict):
        return _name(value.get("best", value.get("name")))
    if isinstance(value, (list, tuple)):
        names = [n for n in (_name(v) for v in value) if n]
        return "/".join(names) or None
    return str(value)


def _section_name(config: dict[str, Any], section: str) -> str | None:
    value = config.get(section)
    if isinstance(value, dict):
        return _name(value.get("best")) or _name(value.get("name"))
    return _name(value)


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _row(run: str | os.PathLike) -> dict[str, Any]:
    run = Path(run)
    if run.is_file():  # a metrics.json given directly (e.g. `earmark evaluate --out other.json`)
        metrics_path, run_dir = run, run.parent
    elif run.is_dir():
        metrics_path, run_dir = run / "metrics.json", run
        if not metrics_path.is_file():
            raise DataError(f"{run}: no metrics.json in this run folder; run `earmark evaluate {run} --manifest ...` first")
    else:
        raise DataError(f"{run}: no such run folder")
    metrics = read_metrics(metrics_path)
    config = _read_config(run_dir / "config.yaml")

    model = _name(metrics.get("model")) or _section_name(config, "model")
    top_k = metrics.get("top_k_accuracy") or {}
    params = _number(metrics.get("params"))
    return {
        "run": run_dir.resolve().name,
        "model": model,
        "features": _name(metrics.get("features")) or _section_name(config, "features"),
        "accuracy": _number(metrics.get("accuracy")),
        "top-3": _number(top_k.get("3")) if isinstance(top_k, dict) else None,
        "macro F1": _number(metrics.get("macro_f1")),
        "ms/clip": _number(metrics.get("inference_ms_per_clip")),
        "params": None if params is None else int(params),
    }


def compare_runs(run_dirs: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Read ``metrics.json`` and ``config.yaml`` of each run into one table, best accuracy first.

    Parameters
    ----------
    run_dirs : iterable of path
        Run folders written by ``earmark train`` / ``earmark evaluate`` (a path to a metrics JSON file
        is accepted too; its folder's ``config.yaml`` is used).

    Returns
    -------
    pandas.DataFrame
        Columns ``run`` (folder name), ``model``, ``features``, ``accuracy``, ``top-3``, ``macro F1``,
        ``ms/clip``, ``params``; sorted by accuracy, descending (ties keep the given order, runs
        without an accuracy last). Missing values are ``None``/NaN.

        ``model`` is ``metrics["model"]`` when present (a string, or a dict with ``best``/``name``:
        the model a search picked), else ``model.best`` / ``model.name`` of config.yaml, where a list
        of candidates reads ``"svm/rf/knn"``. ``features`` is ``metrics["features"]`` when present,
        else ``features.name`` of config.yaml.

    Raises
    ------
    DataError
        A run folder that does not exist or holds no ``metrics.json`` (the message says to run
        ``earmark evaluate`` first), or a metrics/config file that cannot be parsed.
    """
    rows = [_row(run) for run in run_dirs]
    df = pd.DataFrame(rows, columns=COLUMNS)
    if df.empty:
        return df
    df["params"] = df["params"].astype("Int64")
    return df.sort_values("accuracy", ascending=False, kind="stable", na_position="last").reset_index(drop=True)


_FORMATS = {
    "accuracy": "{:.4f}",
    "top-3": "{:.4f}",
    "macro F1": "{:.4f}",
    "ms/clip": "{:.2f}",
    "params": "{:,}",
}


def format_cell(column: str, value: Any) -> str:
    """How a value of ``column`` reads in a table: metrics to 4 decimals, ms to 2, params with thousands separators, missing as ``-``."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "-"
    fmt = _FORMATS.get(column)
    if fmt is None:
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)
    if column == "params":
        return fmt.format(int(value))
    return fmt.format(float(value))


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``df`` (numeric columns right-aligned), ending in a newline."""
    columns = [str(c) for c in df.columns]

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    lines = [
        "| " + " | ".join(cell(c) for c in columns) + " |",
        "|" + "|".join("---:" if num else ":---" for num in numeric) + "|",
    ]
    for values in df.itertuples(index=False, name=None):
        lines.append("| " + " | ".join(cell(format_cell(c, v)) for c, v in zip(columns, values)) + " |")
    return "\n".join(lines) + "\n"


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``df`` as Markdown to ``path`` and as CSV beside it (same name, ``.csv``), each atomically.

    Returns
    -------
    (Path, Path)
        The Markdown and the CSV file.

    Raises
    ------
    DataError
        ``path`` ends in ``.csv`` (the CSV would overwrite the Markdown).
    """
    from earmark.fsutil import atomic_path, atomic_write_text

    path = Path(path)
    csv_path = path.with_suffix(".csv")
    if csv_path == path:
        raise DataError(f"{path}: expected a Markdown path such as table.md (the CSV goes beside it)")
    atomic_write_text(path, to_markdown(df))
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    return path, csv_path


_SCORES = ("accuracy", "top-3", "macro F1")


def write_comparison(run_dirs: Iterable[str | os.PathLike], out_dir: str | os.PathLike) -> Path:
    """A folder comparing runs: ``index.html``, ``table.md``, ``table.csv`` and ``accuracy.png``.

    Parameters
    ----------
    run_dirs : iterable of path
        As for :func:`compare_runs`.
    out_dir : path
        Created if missing; the four files in it are replaced (each written atomically).

    Returns
    -------
    Path
        ``out_dir/index.html``: one self-contained page (the bar chart embedded, no external files
        needed) with the table of :func:`compare_runs`, best accuracy first, and a link to each run's
        ``report.html`` where it has one.

    Raises
    ------
    DataError
        As :func:`compare_runs`.
    """
    from html import escape

    from earmark.evaluate.plots import plot_comparison, save_figure
    from earmark.evaluate.report import html_page, png_img
    from earmark.fsutil import atomic_write_text

    run_dirs = [Path(r) for r in run_dirs]
    df = compare_runs(run_dirs)
    if df.empty:
        raise DataError("compare: no runs given")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_table(df, out_dir / "table.md")

    chart = plot_comparison(list(df["run"]), {k: [None if pd.isna(v) else float(v) for v in df[k]] for k in _SCORES})
    save_figure(chart, out_dir / "accuracy.png")
    reports = {}
    for r in run_dirs:
        folder = r.parent if r.is_file() else r
        if (folder / "report.html").is_file():
            reports[folder.resolve().name] = os.path.relpath(folder.resolve() / "report.html", out_dir.resolve())
    numeric = {c for c in df.columns if c not in ("run", "model", "features")}
    head = "".join(f'<th{" class=num" if c in numeric else ""}>{escape(str(c))}</th>' for c in df.columns)
    rows = []
    for values in df.itertuples(index=False, name=None):
        cells = []
        for c, v in zip(df.columns, values):
            text = escape(format_cell(c, v))
            if c == "run" and v in reports:
                text = f'<a href="{escape(reports[v])}">{text}</a>'
            cells.append(f'<td{" class=num" if c in numeric else ""}>{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    note = ('<p class="note">Best accuracy first; top-3 and macro F1 on the same evaluation split; ms/clip is the '
            'median end-to-end time of one clip (decode, features, model) on the machine that evaluated it. '
            'Also in table.md and table.csv beside this page.</p>')
    sections = [("table", "Runs", note + table, True), ("chart", "Scores", png_img(chart, "scores of each run"), True)]
    page = html_page(f"earmark comparison of {len(df)} run(s)", escape(f"best: {df.iloc[0]['run']}"), sections)
    atomic_write_text(out_dir / "index.html", page)
    return out_dir / "index.html"
