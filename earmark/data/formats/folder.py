"""``folder`` format (SRC/<class>/**/<file>) and the file-listing helpers every format shares.

Listing never opens an audio file: it only walks folders and looks at extensions, so it stays
fast for 100,000 files.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from earmark.errors import ConfigError, DataError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au")


def is_audio(name: str) -> bool:
    """True if ``name`` has an audio extension (case-insensitive) and is not a hidden file."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS


def existing_dir(path: str | os.PathLike, what: str = "dataset folder") -> Path:
    """``path`` as a Path if it is a folder, else DataError naming it."""
    p = Path(path)
    if not p.is_dir():
        state = "is a file" if p.is_file() else "does not exist"
        raise DataError(f"{p}: expected a {what}; it {state}")
    return p


def list_audio(folder: str | os.PathLike, *, recursive: bool = True, required: bool = True) -> list[str]:
    """Absolute paths of the audio files under ``folder``, sorted; hidden files and folders skipped.

    Raises
    ------
    DataError
        ``folder`` is not a folder, or (``required``) holds no audio file; the message names the
        folder and the extensions looked for.
    """
    root = os.path.abspath(existing_dir(folder))
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(os.path.join(dirpath, f) for f in filenames if is_audio(f))
        if not recursive:
            break
    if required and not found:
        raise no_audio_error(root)
    return sorted(found)


def no_audio_error(folder: str | os.PathLike, where: str = "") -> DataError:
    return DataError(f"{folder}: no audio files found{where}; looked for {', '.join(AUDIO_EXTENSIONS)} "
                     "(any case)")


def option_path(value: str | os.PathLike, base: str | os.PathLike) -> Path:
    """A path option: absolute as given; relative ones resolve against ``base`` (the dataset's folder),
    or against the working directory when only that exists."""
    v = Path(value)
    if v.is_absolute():
        return v
    under = Path(base) / v
    return v if not under.exists() and v.exists() else under


def rel_path(path: str, root: str) -> str:
    """``path`` relative to ``root``, ``/``-separated (string slicing when under ``root``: fast)."""
    prefix = root.rstrip(os.sep) + os.sep
    rel = path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, root)
    return rel if os.sep == "/" else rel.replace(os.sep, "/")


def rel_id(path: str, root: str) -> str:
    """``path`` relative to ``root``, without extension, ``/``-separated: the clip id."""
    return os.path.splitext(rel_path(path, root))[0]


def labelled_tree(src: str | os.PathLike, *, group_by: str = "id", what: str = "SRC/<class>/<file>") -> pd.DataFrame:
    """Clips of a class-per-sub-folder tree: columns id, path, label (first folder), group.

    Files directly in ``src`` have no class: they are skipped with a warning (an error when
    nothing else is there).
    """
    if group_by not in ("id", "parent"):
        raise ConfigError(f"group_by: expected 'id' or 'parent', got {group_by!r}")
    root = os.path.abspath(existing_dir(src))
    paths = list_audio(root)
    rel = [rel_path(p, root).split("/") for p in paths]
    keep = [i for i, parts in enumerate(rel) if len(parts) > 1]
    if not keep:
        raise DataError(f"{root}: expected {what} (one sub-folder per class); found {len(paths)} audio "
                        "files directly in the folder and none in sub-folders")
    if len(keep) < len(paths):
        loose = [rel[i][0] for i in range(len(paths)) if len(rel[i]) == 1]
        warnings.warn(f"{root}: skipped {len(loose)} audio files outside class sub-folders "
                      f"(e.g. {', '.join(loose[:3])})", stacklevel=3)
    paths = [paths[i] for i in keep]
    rel = [rel[i] for i in keep]
    ids = [rel_id(p, root) for p in paths]
    groups = ids if group_by == "id" else ["/".join(parts[:-1]) for parts in rel]
    return pd.DataFrame({"id": ids, "path": paths, "label": [parts[0] for parts in rel], "group": groups})


def read_folder(src: Path, *, group_by: str = "id") -> pd.DataFrame:
    """A folder with one sub-folder per class: SRC/<class>/**/<file>.

    Parameters
    ----------
    src : path
        The dataset folder.
    group_by : {"id", "parent"}
        ``"id"``: every clip is its own group; ``"parent"``: clips in the same folder
        (``<class>/<subfolder>``) form a group, e.g. one folder per album or recording session.

    Default split: stratified, train 0.8 / test 0.2.
    """
    df = labelled_tree(src, group_by=group_by)
    df.attrs.update(split="stratified", fractions={"train": 0.8, "test": 0.2})
    return df
