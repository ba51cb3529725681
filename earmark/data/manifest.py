"""The manifest: one row per clip, the contract between data preparation and everything after it.

A manifest file is a CSV (``.csv``, or ``.tsv``) or JSON Lines (``.jsonl``) table with columns
``id, path, label, split, group``, optional ``offset, duration`` (seconds) and ``fold``, and any
extra columns a dataset format keeps (NSynth ``pitch``, ``velocity``, ...).

* ``path`` is stored relative to the manifest's folder when the file lies under it, absolute
  otherwise, and is resolved against the manifest's folder on read.
* ``id``, ``label``, ``split`` and ``group`` are strings (a label ``"NA"`` stays ``"NA"``);
  an empty label marks an unlabelled clip.
* ``group`` is what must never straddle two splits (artist, album, instrument, speaker).

>>> m = Manifest.read("data/gtzan.csv")          # doctest: +SKIP
>>> m.select(split="train").paths()[:1]          # doctest: +SKIP
['/abs/path/data/gtzan/blues/blues.00000.wav']
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from earmark.errors import DataError
from earmark.fsutil import atomic_path

CORE_COLUMNS = ("id", "path", "label", "split", "group")
REQUIRED_COLUMNS = ("path", "label")
NUMERIC_COLUMNS = ("offset", "duration")
DEFAULT_SPLIT = "train"


@dataclass(frozen=True, eq=False)
class Manifest:
    """A validated clip table and the folder its relative paths resolve against.

    Construct with :meth:`read` or :meth:`from_frame`; direct construction normalises and
    validates the same way (the frame is copied, never modified in place).

    Parameters
    ----------
    df : DataFrame
        One row per clip; columns ``path`` and ``label`` at least.
    root : path
        Folder that relative paths resolve against (the manifest file's folder).

    Raises
    ------
    DataError
        See :meth:`validate`.
    """

    df: pd.DataFrame
    root: Path

    def __post_init__(self) -> None:
        if not isinstance(self.df, pd.DataFrame):
            raise DataError(f"Manifest: expected a pandas DataFrame, got {type(self.df).__name__}")
        object.__setattr__(self, "root", Path(os.path.abspath(self.root)))
        object.__setattr__(self, "df", _normalize(self.df, self.root))
        self.validate()

    # ------------------------------------------------------------------ construction / IO
    @classmethod
    def from_frame(cls, df: pd.DataFrame, root: str | os.PathLike) -> "Manifest":
        """Normalise (defaults for ``id``, ``split``, ``group``), validate and wrap a DataFrame (copied)."""
        return cls(df, Path(root))

    @classmethod
    def read(cls, path: str | os.PathLike) -> "Manifest":
        """Read a manifest file (CSV / TSV, or JSON Lines when the name ends in ``.jsonl``).

        Raises
        ------
        DataError
            Missing or unreadable file, or a table that fails :meth:`validate`.
        """
        p = Path(path)
        if not p.is_file():
            raise DataError(f"{p}: manifest not found" + (" (it is a folder)" if p.is_dir() else ""))
        _check_suffix(p)
        try:
            df = _read_jsonl(p) if p.suffix.lower() == ".jsonl" else _read_csv(p)
        except DataError:
            raise
        except (pd.errors.ParserError, UnicodeDecodeError, OSError) as e:
            raise DataError(f"{p}: cannot read manifest ({e})") from None
        try:
            return cls(df, p.parent)
        except DataError as e:
            raise DataError(f"{p}: {e}") from None

    def write(self, path: str | os.PathLike) -> "Manifest":
        """Write atomically (temp file in the same folder + ``os.replace``) and return the written manifest.

        Paths under the new file's folder are stored relative to it, others absolute.
        The format follows the extension: ``.jsonl`` JSON Lines, ``.tsv`` tab-separated, else CSV.
        """
        p = Path(path)
        _check_suffix(p)
        folder = Path(os.path.abspath(p.parent))
        folder.mkdir(parents=True, exist_ok=True)
        df = self.df.copy()
        df["path"] = _relativize(self.paths(), folder)
        with atomic_path(p) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
            if p.suffix.lower() == ".jsonl":
                for rec in df.to_dict(orient="records"):
                    f.write(json.dumps({k: _jsonable(v) for k, v in rec.items()}, ensure_ascii=False))
                    f.write("\n")
            else:
                df.to_csv(f, index=False, sep="\t" if p.suffix.lower() == ".tsv" else ",", lineterminator="\n")
        return Manifest(df, folder)

    # ------------------------------------------------------------------ accessors
    def paths(self) -> list[str]:
        """Absolute path of every clip, in row order."""
        root = str(self.root)
        return [os.path.normpath(os.path.join(root, p)) for p in self.df["path"]]

    @property
    def ids(self) -> np.ndarray:
        """Clip ids, shape (n_clips,), dtype object (str)."""
        return self.df["id"].to_numpy(dtype=object)

    @property
    def labels(self) -> np.ndarray:
        """Labels, shape (n_clips,), dtype object (str; empty for unlabelled clips)."""
        return self.df["label"].to_numpy(dtype=object)

    @property
    def splits(self) -> np.ndarray:
        """Split names, shape (n_clips,)."""
        return self.df["split"].to_numpy(dtype=object)

    @property
    def groups(self) -> np.ndarray:
        """Groups, shape (n_clips,)."""
        return self.df["group"].to_numpy(dtype=object)

    @property
    def classes(self) -> list[str]:
        """Sorted unique non-empty labels."""
        return sorted(set(self.df["label"]) - {""})

    def __len__(self) -> int:
        return len(self.df)

    def __repr__(self) -> str:
        counts = self.df["split"].value_counts().to_dict() if len(self.df) else {}
        return (f"Manifest({len(self)} clips, {len(self.classes)} classes, "
                f"splits={dict(sorted(counts.items()))}, root={str(self.root)!r})")

    def select(self, split: str | Iterable[str] | None = None, **columns: Any) -> "Manifest":
        """Rows whose ``split`` (and any other named column) equals the value or is in the list given.

        >>> m.select(split="train")                  # doctest: +SKIP
        >>> m.select(split=["train", "val"], label="bass")  # doctest: +SKIP

        Raises
        ------
        DataError
            A named column that does not exist, or a split name that no clip has (the message
            lists the splits present).
        """
        mask = np.ones(len(self.df), dtype=bool)
        criteria = ({"split": split} if split is not None else {}) | columns
        for col, want in criteria.items():
            if col not in self.df.columns:
                raise DataError(f"select: no column {col!r}; columns are {list(self.df.columns)}")
            values = [want] if isinstance(want, (str, int, float, np.integer, np.floating)) else list(want)
            values = [str(v) for v in values]  # compare as text: CSV extras come back as strings
            if col == "split":
                present = set(self.df["split"])
                absent = [v for v in values if v not in present]
                if absent:
                    raise DataError(f"select: no clips with split {', '.join(map(repr, absent))}; "
                                    f"splits present: {', '.join(sorted(present)) or 'none'}")
            mask &= self.df[col].astype(str).isin(values).to_numpy()
        return Manifest(self.df[mask].reset_index(drop=True), self.root)

    def missing_files(self) -> list[tuple[str, str]]:
        """``(id, absolute path)`` of every clip whose file does not exist (for the caller to report)."""
        return [(i, p) for i, p in zip(self.df["id"], self.paths()) if not os.path.exists(p)]

    # ------------------------------------------------------------------ validation
    def validate(self) -> "Manifest":
        """Check the table; return ``self``.

        Raises
        ------
        DataError
            Missing ``path``/``label`` column, empty path, duplicate ids, or a non-numeric,
            infinite or negative ``offset`` / ``duration`` (duration must be > 0).
        """
        df = self.df
        missing = [c for c in CORE_COLUMNS if c not in df.columns]
        if missing:
            raise DataError(f"missing required column {missing[0]!r}; found {list(map(str, df.columns))}")
        empty = (df["path"] == "").to_numpy()
        if empty.any():
            raise DataError(f"{int(empty.sum())} clips have an empty path (rows {_head(np.flatnonzero(empty))})")
        dup = df["id"].duplicated(keep=False)
        if dup.any():
            names = list(dict.fromkeys(df["id"][dup]))
            raise DataError(f"{len(names)} duplicate ids ({int(dup.sum())} rows), e.g. {_head(names)}; "
                            "ids must be unique")
        for col in NUMERIC_COLUMNS:
            if col not in df.columns:
                continue
            v = df[col].astype(float)
            low = ((v < 0) if col == "offset" else (v <= 0)) | np.isinf(v)
            if low.any():
                need = ">= 0" if col == "offset" else "> 0"
                raise DataError(f"{col}: expected a finite number of seconds {need}, got {_head(list(v[low]))} "
                                f"for ids {_head(list(df['id'][low]))}")
        return self


# ---------------------------------------------------------------------- helpers
def _head(items: Iterable[Any], n: int = 5) -> str:
    items = list(items)
    text = ", ".join(repr(x) if isinstance(x, str) else str(x) for x in items[:n])
    return text + (f" ... ({len(items)} in all)" if len(items) > n else "")


def _present(s: pd.Series) -> pd.Series:
    """True where a raw cell holds something (not NaN / None / empty string)."""
    return s.notna() & (s.astype(str).str.strip() != "")


def _as_str(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), "").astype(str)


def _normalize(df: pd.DataFrame, root: Path) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"missing required column {missing[0]!r}; expected columns "
                        f"{', '.join(CORE_COLUMNS)} (path and label required); found {list(map(str, df.columns))}")
    df = df.copy().reset_index(drop=True)
    df.columns = [str(c) for c in df.columns]
    df["path"] = _as_str(df["path"]).str.strip()
    df["label"] = _as_str(df["label"])
    if "id" not in df.columns:
        df["id"] = _derive_ids(df["path"], root)
    else:
        df["id"] = _as_str(df["id"])
        blank = df["id"] == ""
        if blank.any():
            df.loc[blank, "id"] = _derive_ids(df.loc[blank, "path"], root)
    df["split"] = _as_str(df["split"]) if "split" in df.columns else DEFAULT_SPLIT
    df.loc[df["split"] == "", "split"] = DEFAULT_SPLIT
    df["group"] = _as_str(df["group"]) if "group" in df.columns else df["id"]
    df["group"] = df["group"].where(df["group"] != "", df["id"])
    for col in NUMERIC_COLUMNS:
        if col in df.columns:
            raw = df[col]
            given = _present(raw)
            num = pd.to_numeric(raw.where(given, np.nan), errors="coerce").astype(float)
            bad = num.isna() & given
            if bad.any():
                raise DataError(f"{col}: expected a number of seconds, got {_head(list(raw[bad].astype(str)))} "
                                f"for ids {_head(list(df['id'][bad]))}")
            df[col] = num
    if "fold" in df.columns:
        fold = pd.to_numeric(df["fold"].where(_present(df["fold"]), np.nan), errors="coerce")
        if fold.notna().all() and (fold == fold.round()).all():
            df["fold"] = fold.astype(int)
    order = [c for c in CORE_COLUMNS + NUMERIC_COLUMNS + ("fold",) if c in df.columns]
    df = df[order + [c for c in df.columns if c not in order]]
    return df


def _derive_ids(paths: pd.Series, root: Path) -> list[str]:
    """Path relative to ``root`` (when under it) without its extension, with ``/`` separators."""
    r = str(root)
    out = []
    for p in paths:
        rel = _relative_or_absolute(os.path.normpath(os.path.join(r, p)), r)
        out.append(os.path.splitext(rel)[0])
    return out


def _relative_or_absolute(abs_path: str, folder: str) -> str:
    prefix = folder.rstrip(os.sep) + os.sep
    if abs_path.startswith(prefix):
        rel = abs_path[len(prefix):]
        return rel if os.sep == "/" else rel.replace(os.sep, "/")
    return abs_path


def _relativize(abs_paths: list[str], folder: Path) -> list[str]:
    f = str(folder)
    return [_relative_or_absolute(p, f) for p in abs_paths]


def _check_suffix(p: Path) -> None:
    if p.suffix.lower() == ".json":
        raise DataError(f"{p}: a manifest is CSV (.csv, .tsv) or JSON Lines (.jsonl, one object per line), not .json")


def _read_csv(p: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(p, dtype=str, keep_default_na=False, sep="\t" if p.suffix.lower() == ".tsv" else ",")
    except pd.errors.EmptyDataError:
        raise DataError(f"{p}: empty file; expected a header with columns {', '.join(CORE_COLUMNS)}") from None


def _read_jsonl(p: Path) -> pd.DataFrame:
    records = []
    with open(p, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{p}:{n}: expected one JSON object per line ({e.msg})") from None
            if not isinstance(rec, dict):
                raise DataError(f"{p}:{n}: expected a JSON object, got {type(rec).__name__}")
            records.append(rec)
    if not records:
        return pd.DataFrame(columns=list(CORE_COLUMNS))
    return pd.DataFrame.from_records(records)


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    if v is pd.NA or v is pd.NaT:
        return None
    return v
