"""``nsynth`` format: NSynth's ``examples.json`` + ``audio/<note_str>.wav``.

SRC is one NSynth folder, or a parent holding ``nsynth-train/``, ``nsynth-valid/`` and
``nsynth-test/`` (any of them), whose own split is then kept (valid -> ``val``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from earmark.data.formats.folder import existing_dir
from earmark.errors import ConfigError, DataError

TARGETS = {"instrument_family": "instrument_family_str", "instrument_source": "instrument_source_str",
           "pitch": "pitch"}
KEPT = ("pitch", "velocity", "instrument_str", "instrument_family_str", "instrument_source_str")
SPLIT_FOLDERS = {"nsynth-train": "train", "nsynth-valid": "val", "nsynth-test": "test"}


def read_nsynth(src: Path, *, target: str = "instrument_family") -> pd.DataFrame:
    """NSynth notes, labelled by instrument family, source or pitch; grouped by instrument.

    Parameters
    ----------
    src : path
        A folder with ``examples.json`` and ``audio/``, or a parent of ``nsynth-{train,valid,test}/``.
    target : {"instrument_family", "instrument_source", "pitch"}
        Label: the family / source name (``*_str`` field) or the MIDI pitch as a string.

    Columns kept besides the manifest's: pitch, velocity, instrument_str, instrument_family_str,
    instrument_source_str. ``group`` is ``instrument_str`` (a split by group never puts notes of one
    instrument on both sides). Default split: NSynth's own when SRC holds the three folders, else
    by instrument (group), train 0.75 / test 0.25.
    """
    if target not in TARGETS:
        raise ConfigError(f"target: expected one of {', '.join(TARGETS)} for nsynth, got {target!r}")
    root = existing_dir(src, "NSynth folder")
    if (root / "examples.json").is_file():
        df = _read_one(root, target)
        df.attrs.update(split="group", fractions={"train": 0.75, "test": 0.25})
        return df
    parts = [(root / name, split) for name, split in SPLIT_FOLDERS.items() if (root / name).is_dir()]
    if not parts:
        raise DataError(f"{root}: expected an NSynth folder (examples.json + audio/) or a folder holding "
                        f"{', '.join(n + '/' for n in SPLIT_FOLDERS)}; found {sorted(os.listdir(root))[:10]}")
    frames = []
    for folder, split in parts:
        if not (folder / "examples.json").is_file():
            raise DataError(f"{folder}: expected examples.json (NSynth metadata); it is missing")
        df = _read_one(folder, target)
        df["split"] = split
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    df.attrs.update(split="predefined", fractions={"train": 0.75, "test": 0.25})
    return df


def _read_one(folder: Path, target: str) -> pd.DataFrame:
    meta = folder / "examples.json"
    try:
        with open(meta, encoding="utf-8") as f:
            examples = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{meta}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(examples, dict):
        raise DataError(f"{meta}: expected NSynth's dict keyed by note_str; got a {type(examples).__name__}")
    need = ("instrument_str",) + tuple(v for v in TARGETS.values()) + KEPT
    need = tuple(dict.fromkeys(need))
    rows = {k: [] for k in ("id", "path", "label", "group") + KEPT}
    audio = os.path.abspath(folder / "audio")
    label_field = TARGETS[target]
    for key, ex in examples.items():
        if not isinstance(ex, dict):
            raise DataError(f"{meta}: note {key!r}: expected an object of NSynth fields, got {type(ex).__name__}")
        missing = [f for f in need if f not in ex]
        if missing:
            raise DataError(f"{meta}: note {key!r} lacks field(s) {', '.join(missing)}; "
                            f"expected NSynth fields {', '.join(need)}; found {', '.join(ex)}")
        note = str(ex.get("note_str", key))
        rows["id"].append(note)
        rows["path"].append(os.path.join(audio, note + ".wav"))
        rows["label"].append(str(ex[label_field]))
        rows["group"].append(str(ex["instrument_str"]))
        for k in KEPT:
            rows[k].append(ex[k])
    if not rows["id"]:
        raise DataError(f"{meta}: holds no notes")
    return pd.DataFrame(rows)
