"""``gtzan`` format: SRC/<genre>/<genre>.000NN.wav (or SRC/genres_original/..., SRC/genres/...).

With ``split_dir``, the fault-filtered split lists (``train_filtered.txt``, ``valid_filtered.txt``,
``test_filtered.txt``; lines like ``blues/blues.00000.wav``) define the split, and only the files
they list are kept: that is what excludes GTZAN's repeated, distorted and mislabelled clips.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from earmark.data.formats.folder import existing_dir, labelled_tree, option_path
from earmark.errors import DataError

SPLIT_FILES = {"train": "train_filtered.txt", "val": "valid_filtered.txt", "test": "test_filtered.txt"}


def gtzan_root(src: Path) -> Path:
    """``src/genres_original`` (Kaggle layout) or ``src/genres`` (original archive) when present, else ``src``."""
    root = existing_dir(src, "GTZAN folder")
    for name in ("genres_original", "genres"):
        if (root / name).is_dir():
            return root / name
    return root


def read_gtzan(src: Path, *, split_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """GTZAN clips labelled by genre (the sub-folder name).

    Parameters
    ----------
    src : path
        The GTZAN folder.
    split_dir : path, optional
        Folder with the fault-filtered split lists; a relative path resolves against ``src``
        (or the working directory when only there).
        A listed clip is matched to the file on disk by its id (``blues/blues.00000``), so lists
        naming ``.wav`` files also work with the original ``.au`` files; a listed clip not on
        disk is kept and reported later by :meth:`Manifest.missing_files`.

    Default split: stratified, train 0.8 / test 0.2; with ``split_dir``, the lists' split
    (train / val / test).
    """
    root = gtzan_root(src)
    df = labelled_tree(root, what="SRC/<genre>/<genre>.000NN.wav")
    if split_dir is None:
        df.attrs.update(split="stratified", fractions={"train": 0.8, "test": 0.2})
        return df
    lists = _read_split_lists(option_path(split_dir, src))
    on_disk = dict(zip(df["id"], df["path"]))
    rows = []
    for split, lines in lists.items():
        for line in lines:
            clip_id = Path(os.path.splitext(line)[0]).as_posix()
            path = on_disk.get(clip_id, os.path.abspath(root / line))
            rows.append({"id": clip_id, "path": path, "label": clip_id.split("/")[0], "group": clip_id,
                         "split": split})
    out = pd.DataFrame(rows, columns=["id", "path", "label", "group", "split"])
    dup = out["id"][out["id"].duplicated()]
    if len(dup):
        raise DataError(f"{split_dir}: {len(dup)} clips are listed twice (e.g. {', '.join(dup[:5])}); "
                        "each clip belongs to one split list")
    out.attrs.update(split="predefined", fractions={"train": 0.8, "test": 0.2})
    return out


def _read_split_lists(folder: Path) -> dict[str, list[str]]:
    existing_dir(folder, "folder of GTZAN split lists")
    lists = {}
    for split, name in SPLIT_FILES.items():
        p = folder / name
        if p.is_file():
            with open(p, encoding="utf-8") as f:
                lists[split] = [ln.strip().replace("\\", "/") for ln in f if ln.strip() and not ln.startswith("#")]
    if not lists:
        raise DataError(f"{folder}: expected split lists {', '.join(SPLIT_FILES.values())}; found none")
    bad = [ln for lines in lists.values() for ln in lines if "/" not in ln]
    if bad:
        raise DataError(f"{folder}: expected lines like 'blues/blues.00000.wav' (genre/file); got {bad[:3]}")
    return lists
