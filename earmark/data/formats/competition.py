"""``competition`` format: labelled training clips + unlabelled test clips (a submission task).

SRC may hold ``train/`` (class sub-folders) and ``test/`` (unlabelled files); or pass ``train``
(a class-per-folder tree or a labels CSV ``path,label``) and ``test`` (a folder) explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from earmark.data.formats.csvfile import read_csv_table
from earmark.data.formats.folder import labelled_tree, list_audio, option_path, rel_id
from earmark.data.splits import UNLABELLED
from earmark.errors import DataError


def read_competition(
    src: Path,
    *,
    train: str | os.PathLike | None = None,
    test: str | os.PathLike | None = None,
    path_col: str = "path",
    label_col: str = "label",
    audio_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Labelled clips (split train / val later) and unlabelled clips (split ``"unlabelled"``, empty label).

    Parameters
    ----------
    src : path
        Folder holding ``train/`` and/or ``test/`` (used when the options are not given); relative
        ``train`` / ``test`` options resolve against it.
    train : path, optional
        A folder with one sub-folder per class, or a CSV file with path and label columns
        (``path_col``, ``label_col``, ``audio_dir`` as in the ``csv`` format).
    test : path, optional
        A folder of unlabelled audio files (searched recursively).

    Ids are ``train/<relative path>`` and ``test/<relative path>`` without extension. Default split:
    the labelled clips stratified train 0.7 / val 0.3 (the singer-gender study used seed 8; the
    seed is the common ``seed`` argument).
    """
    base = Path(src)
    if not base.exists():
        raise DataError(f"{base}: expected a competition folder (train/ and test/); it does not exist")
    base_dir = base if base.is_dir() else base.parent
    train_p = option_path(train, base_dir) if train is not None else _auto(base_dir, "train")
    test_p = option_path(test, base_dir) if test is not None else _auto(base_dir, "test")
    if train_p is None and test_p is None:
        raise DataError(f"{base}: expected train/ and/or test/ folders, or the options train=... and test=...")

    frames = []
    if train_p is not None:
        if train_p.is_file():
            t = read_csv_table(train_p, path_col=path_col, label_col=label_col, audio_dir=audio_dir)
            t = t.drop(columns=[c for c in ("split",) if c in t.columns])
            t["id"] = ["train/" + i for i in t["id"]]
        elif train_p.is_dir():
            t = labelled_tree(train_p, what="train/<class>/<file>")
            t["id"] = ["train/" + i for i in t["id"]]
            t["group"] = t["id"]
        else:
            raise DataError(f"train: expected a class-per-folder tree or a labels CSV; {train_p} does not exist")
        frames.append(t.assign(split=""))
    if test_p is not None:
        if not test_p.is_dir():
            raise DataError(f"test: expected a folder of unlabelled audio; {test_p} does not exist")
        root = os.path.abspath(test_p)
        paths = list_audio(root)
        ids = ["test/" + rel_id(p, root) for p in paths]
        frames.append(pd.DataFrame({"id": ids, "path": paths, "label": "", "group": ids, "split": UNLABELLED}))
    df = pd.concat(frames, ignore_index=True)
    df.attrs.update(split="stratified", fractions={"train": 0.7, "val": 0.3})
    return df


def _auto(base: Path, name: str) -> Path | None:
    p = base / name
    return p if p.is_dir() else None
