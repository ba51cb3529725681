"""``artist20`` format: SRC/<artist>/<album>/<track>.mp3 (or SRC/mp3s-32k/...)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from earmark.data.formats.folder import existing_dir, list_audio, rel_id, rel_path
from earmark.errors import ConfigError, DataError

FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def read_artist20(src: Path, *, split_by: str = "album") -> pd.DataFrame:
    """artist20 tracks labelled by artist and grouped by album (``group = "artist/album"``).

    Parameters
    ----------
    src : path
        The artist20 folder (its ``mp3s-32k/`` sub-folder is used when present).
    split_by : {"album", "song"}
        ``"album"`` (default): album-level split, no album in two splits (group split, train 0.7 /
        val 0.15 / test 0.15). ``"song"``: stratified song-level split with the same fractions
        (albums straddle splits: album effects inflate the accuracy).
    """
    if split_by not in ("album", "song"):
        raise ConfigError(f"split_by: expected 'album' or 'song', got {split_by!r}")
    root = existing_dir(src, "artist20 folder")
    if (root / "mp3s-32k").is_dir():
        root = root / "mp3s-32k"
    root_s = os.path.abspath(root)
    paths = list_audio(root_s)
    rel = [rel_path(p, root_s).split("/") for p in paths]
    shallow = ["/".join(r) for r in rel if len(r) < 3]
    if shallow:
        raise DataError(f"{root_s}: expected SRC/<artist>/<album>/<track>; {len(shallow)} files are not two "
                        f"folders deep (e.g. {', '.join(shallow[:3])})")
    df = pd.DataFrame({
        "id": [rel_id(p, root_s) for p in paths],
        "path": paths,
        "label": [r[0] for r in rel],
        "group": [f"{r[0]}/{r[1]}" for r in rel],
        "album": [r[1] for r in rel],
    })
    df.attrs.update(split="group" if split_by == "album" else "stratified", fractions=dict(FRACTIONS))
    return df
