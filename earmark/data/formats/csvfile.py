"""``csv`` format: a table of path,label[,split,group] rows, column names mappable.

For example the vocal-gender benchmark's ``labels.csv`` (``file,label,voice_ids,split``)::

    prepare("csv", "vocal-gender/labels.csv", path_col="file", group_col="voice_ids")
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from earmark.data.formats.folder import option_path, rel_id
from earmark.errors import ConfigError, DataError


def read_table(src: Path, what: str = "CSV file") -> pd.DataFrame:
    """Read a CSV/TSV as strings (``"NA"`` stays a string); DataError when missing or unreadable."""
    p = Path(src)
    if not p.is_file():
        state = "is a folder" if p.is_dir() else "does not exist"
        raise DataError(f"{p}: expected a {what}; it {state}")
    try:
        return pd.read_csv(p, dtype=str, keep_default_na=False, sep="\t" if p.suffix.lower() == ".tsv" else ",")
    except pd.errors.EmptyDataError:
        raise DataError(f"{p}: empty file; expected a header row") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{p}: cannot parse as CSV ({e})") from None


def read_csv_table(
    src: Path,
    *,
    path_col: str = "path",
    label_col: str = "label",
    split_col: str = "split",
    group_col: str = "group",
    id_col: str = "id",
    audio_dir: str | os.PathLike | None = None,
    target: str | None = None,
) -> pd.DataFrame:
    """A CSV listing clips: one row per clip with a path and a label, optionally split and group.

    Parameters
    ----------
    src : path
        The CSV file (``.tsv``: tab-separated).
    path_col, label_col, split_col, group_col, id_col : str
        Names of the columns holding path, label, split, group and id. ``path_col`` and
        ``label_col`` must exist (an empty label marks an unlabelled clip); the others are used
        when present (ids default to the path without extension, groups to the id).
    audio_dir : path, optional
        Folder that relative paths resolve against (relative to the CSV's folder); a path not
        found there but found next to the CSV resolves against the CSV's folder. Default: the
        CSV's folder.
    target : str, optional
        Same as ``label_col`` (the column to predict).

    Extra columns are kept; a column that a mapped one replaces (say ``label`` when
    ``label_col="singer"``) is kept as ``label_original``. Default split: ``predefined`` when the split column exists,
    else stratified train 0.8 / test 0.2.
    """
    if target is not None:
        if label_col not in ("label", target):
            raise ConfigError(f"target={target!r} and label_col={label_col!r} disagree; give one of them")
        label_col = target
    df = read_table(src)
    csv_dir = os.path.abspath(Path(src).parent)
    found = list(df.columns)
    for opt, col in (("path_col", path_col), ("label_col", label_col)):
        if col not in df.columns:
            raise DataError(f"{src}: expected a column {col!r} ({opt}); found columns {found}")
    mapping = {path_col: "path", label_col: "label"}
    for col, canon in ((split_col, "split"), (group_col, "group"), (id_col, "id")):
        if col in df.columns:
            mapping[col] = canon
    displaced = {canon: f"{canon}_original" for col, canon in mapping.items()
                 if col != canon and canon in df.columns and canon not in mapping}
    clash = [new for new in displaced.values() if new in df.columns]
    if clash:
        raise DataError(f"{src}: cannot keep the replaced column as {clash[0]!r}, which exists too; "
                        f"found columns {found}")
    df = df.rename(columns={**displaced, **mapping})

    base = csv_dir if audio_dir is None else os.path.abspath(option_path(audio_dir, csv_dir))
    if audio_dir is not None and not os.path.isdir(base):
        raise DataError(f"audio_dir: expected a folder, {base} does not exist")
    paths = []
    for p in df["path"].str.strip():
        if not p:
            paths.append("")
            continue
        full = os.path.normpath(os.path.join(base, p))
        if base != csv_dir and not os.path.exists(full):
            beside = os.path.normpath(os.path.join(csv_dir, p))
            if os.path.exists(beside):
                full = beside
        paths.append(full)
    empty = [i for i, p in enumerate(paths) if not p]
    if empty:
        raise DataError(f"{src}: {len(empty)} rows have an empty {path_col!r} (data rows {empty[:5]})")
    df["path"] = paths
    if "id" not in df.columns:
        df["id"] = [_clip_id(p, base, csv_dir) for p in paths]
    has_split = "split" in df.columns and (df["split"] != "").any()
    df.attrs.update(split="predefined" if has_split else "stratified", fractions={"train": 0.8, "test": 0.2})
    return df


def _clip_id(path: str, *roots: str) -> str:
    for root in roots:
        if path.startswith(root.rstrip(os.sep) + os.sep):
            return rel_id(path, root)
    return os.path.splitext(path)[0]
