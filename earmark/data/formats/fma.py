"""``fma`` format: the Free Music Archive's ``tracks.csv`` + ``fma_<subset>/<tid//1000:03d>/<tid:06d>.mp3``.

``tracks.csv`` has FMA's two-row header (``('track', 'genre_top')``, ``('set', 'split')``, ...)
with the index name ``track_id`` on a third line. A flat one-row header with ``track_id`` and
``genre_top`` (or ``genre``) columns, as the "styles" benchmark generator writes, is read too.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from earmark.data.formats.folder import AUDIO_EXTENSIONS, existing_dir, option_path
from earmark.data.splits import normalize_split_name
from earmark.errors import ConfigError, DataError

SUBSETS = ("small", "medium", "large")
NEEDED = (("track", "genre_top"), ("set", "subset"), ("set", "split"), ("artist", "id"))
EXTRAS = {("artist", "name"): "artist_name", ("album", "id"): "album_id", ("track", "title"): "title",
          ("set", "subset"): "subset"}
FLAT_LABELS = ("genre_top", "genre")
FLAT_GROUPS = ("artist_id", "piece_id", "piece", "artist", "album_id")


def read_fma(
    src: Path,
    *,
    subset: str = "small",
    audio_dir: str | os.PathLike | None = None,
    target: str = "genre_top",
) -> pd.DataFrame:
    """FMA tracks of a subset, labelled by top genre, grouped by artist, with FMA's official split.

    Parameters
    ----------
    src : path
        Folder holding ``fma_metadata/tracks.csv`` (or ``tracks.csv``) and the audio folder
        (or the ``tracks.csv`` file itself).
    subset : {"small", "medium", "large"}
        Tracks whose ``('set', 'subset')`` is this subset or a smaller one (small ⊂ medium ⊂ large).
    audio_dir : path, optional
        Audio folder (relative to ``src``); default the first of ``fma_<subset>``, the larger
        subsets' folders (they hold the smaller subsets' tracks) and ``audio`` that exists.
    target : {"genre_top"}
        Label column (only FMA's top genre is supported).

    Every track of the subset is listed; tracks whose audio file is missing show up in
    :meth:`Manifest.missing_files`. Tracks without a top genre get an empty label. Default split:
    the official one (training -> train, validation -> val, test -> test).
    """
    if subset not in SUBSETS:
        raise ConfigError(f"subset: expected one of {', '.join(SUBSETS)}, got {subset!r}")
    if target != "genre_top":
        raise ConfigError(f"target: expected 'genre_top' for fma, got {target!r}")
    tracks, base = _find_tracks(Path(src))
    table = _read_tracks(tracks, subset)
    if table.empty:
        raise DataError(f"{tracks}: no tracks in subset {subset!r} (or a smaller one)")
    audio_root = _find_audio_dir(base, subset, audio_dir)
    tids = table.index.to_list()
    ext = _detect_extension(audio_root, tids)
    df = table.reset_index(drop=True)
    df.insert(0, "path", [os.path.join(audio_root, f"{t // 1000:03d}", f"{t:06d}{ext}") for t in tids])
    df.insert(0, "id", [f"{t:06d}" for t in tids])
    df.attrs.update(split="predefined", fractions={"train": 0.8, "val": 0.1, "test": 0.1})
    return df


def _find_tracks(src: Path) -> tuple[Path, Path]:
    if src.is_file():
        base = src.parent.parent if src.parent.name == "fma_metadata" else src.parent
        return src, base
    existing_dir(src, "FMA folder")
    for cand in (src / "fma_metadata" / "tracks.csv", src / "tracks.csv"):
        if cand.is_file():
            return cand, src
    raise DataError(f"{src}: expected fma_metadata/tracks.csv or tracks.csv; neither exists")


def _read_tracks(path: Path, subset: str) -> pd.DataFrame:
    """Columns label, split, group (+ extras), indexed by int track id, filtered to the subset."""
    try:
        with open(path, encoding="utf-8") as f:
            first, second = f.readline(), f.readline()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a UTF-8 text file ({e})") from None
    two_rows = first.startswith(",") and second.startswith(",")
    try:
        if two_rows:
            raw = pd.read_csv(path, header=[0, 1], index_col=0, dtype=str, keep_default_na=False)
        else:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file; expected FMA's tracks.csv") from None
    except pd.errors.ParserError as e:
        raise DataError(f"{path}: cannot parse as CSV ({e})") from None
    out = _from_two_rows(raw, path) if two_rows else _from_flat(raw, path)
    try:
        out.index = [int(t) for t in out.index]
    except ValueError:
        bad = [t for t in out.index if not str(t).strip().isdigit()][:5]
        raise DataError(f"{path}: expected integer track ids, got {bad}") from None
    if "subset" in out.columns:
        rank = {s: i for i, s in enumerate(SUBSETS)}
        want = rank[subset]
        sub = out["subset"].str.strip().str.lower().map(rank)
        keep = sub <= want if subset != "large" else pd.Series(True, index=out.index)
        out = out[keep.fillna(False).astype(bool)]
    return out


def _from_two_rows(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    found = list(raw.columns)
    missing = [c for c in NEEDED if c not in raw.columns]
    if missing:
        shown = ", ".join(map(str, found[:12])) + (f", ... ({len(found)} in all)" if len(found) > 12 else "")
        raise DataError(f"{path}: expected FMA's two-row header with {missing[0]}; found columns {shown}")
    out = pd.DataFrame(index=raw.index)
    out["label"] = raw[("track", "genre_top")].str.strip()
    out["split"] = [normalize_split_name(s) if s else "" for s in raw[("set", "split")].str.strip()]
    out["group"] = raw[("artist", "id")].str.strip()
    for col, name in EXTRAS.items():
        if col in raw.columns:
            out[name] = raw[col]
    return out


def _from_flat(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    label = next((c for c in FLAT_LABELS if c in raw.columns), None)
    if "track_id" not in raw.columns or label is None:
        shown = list(raw.columns)[:12]
        raise DataError(f"{path}: expected FMA's two-row header with ('track', 'genre_top') (or a one-row "
                        f"header with track_id and genre_top or genre); found columns {shown}")
    out = raw.set_index("track_id")
    out = out.rename(columns={label: "label"})
    if "split" in out.columns:
        out["split"] = [normalize_split_name(s) if s else "" for s in out["split"].str.strip()]
    group = next((c for c in FLAT_GROUPS if c in out.columns), None)
    if group is not None and "group" not in out.columns:
        out["group"] = out[group]
    return out


def _find_audio_dir(base: Path, subset: str, audio_dir: str | os.PathLike | None) -> str:
    if audio_dir is not None:
        d = option_path(audio_dir, base)
        if not d.is_dir():
            raise DataError(f"audio_dir: expected a folder of FMA audio; {d} does not exist")
        return os.path.abspath(d)
    names = [f"fma_{s}" for s in SUBSETS[SUBSETS.index(subset):]] + ["fma_full", "audio"]
    for name in names:
        if (base / name).is_dir():
            return os.path.abspath(base / name)
    raise DataError(f"{base}: expected an audio folder {' or '.join(n + '/' for n in names)}; none exists "
                    "(or pass audio_dir=...)")


def _detect_extension(audio_root: str, tids: list[int]) -> str:
    """The extension of the first few tracks found on disk; ``.mp3`` (FMA's) when none is found."""
    for t in tids[:20]:
        stem = os.path.join(audio_root, f"{t // 1000:03d}", f"{t:06d}")
        for ext in AUDIO_EXTENSIONS:
            if os.path.exists(stem + ext):
                return ext
    return ".mp3"
