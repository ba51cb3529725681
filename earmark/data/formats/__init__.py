"""Dataset formats: turn a dataset as distributed into a :class:`~earmark.data.manifest.Manifest`.

A format is a function ``fn(src: Path, **options) -> DataFrame`` registered in :data:`FORMATS`.
The frame has columns ``path`` (absolute), ``label`` and usually ``id``, ``group``, ``split``
plus extra columns, and ``df.attrs["split"]`` / ``df.attrs["fractions"]``: the format's default
split policy. Formats only list files (no audio is decoded).

>>> m = prepare("gtzan", "data/gtzan", out="data/gtzan.csv")   # doctest: +SKIP
>>> FORMATS.names()
['artist20', 'competition', 'csv', 'fma', 'folder', 'gtzan', 'nsynth']

A new format::

    @FORMATS.register("mine")
    def read_mine(src, *, option=1):
        df = ...
        df.attrs.update(split="stratified", fractions={"train": 0.8, "test": 0.2})
        return df
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from earmark.data.formats.artist20 import read_artist20
from earmark.data.formats.competition import read_competition
from earmark.data.formats.csvfile import read_csv_table
from earmark.data.formats.fma import read_fma
from earmark.data.formats.folder import AUDIO_EXTENSIONS, list_audio, read_folder
from earmark.data.formats.gtzan import read_gtzan
from earmark.data.formats.nsynth import read_nsynth
from earmark.data.manifest import Manifest
from earmark.data.splits import DEFAULT_FRACTIONS, SPLIT_POLICIES, apply_split
from earmark.errors import ConfigError, DataError
from earmark.registry import Registry

FORMATS: Registry[Callable[..., pd.DataFrame]] = Registry("dataset format")
FORMATS.register("folder", read_folder)
FORMATS.register("csv", read_csv_table)
FORMATS.register("nsynth", read_nsynth)
FORMATS.register("fma", read_fma)
FORMATS.register("gtzan", read_gtzan)
FORMATS.register("artist20", read_artist20)
FORMATS.register("competition", read_competition)


def format_options(name: str) -> dict[str, Any]:
    """The options a format accepts and their defaults (``target`` included where it applies)."""
    sig = inspect.signature(FORMATS.get(name))
    return {p.name: p.default for p in list(sig.parameters.values())[1:]
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def prepare(
    format: str,
    src: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    target: str | None = None,
    split: str | None = None,
    fractions: Mapping[str, float] | None = None,
    seed: int = 0,
    folds: int | None = None,
    **options: Any,
) -> Manifest:
    """Build the manifest of a dataset: list its clips, split them, validate, optionally write.

    Parameters
    ----------
    format : str
        A name in :data:`FORMATS` (folder, csv, nsynth, fma, gtzan, artist20, competition).
    src : path
        The dataset (a folder, or a CSV file for ``csv``).
    out : path, optional
        Manifest file to write (``.csv`` or ``.jsonl``), atomically; paths are stored relative to it.
    target : str, optional
        What to predict, for formats that offer a choice (nsynth: instrument_family /
        instrument_source / pitch; csv: the label column).
    split : {"predefined", "stratified", "group"}, optional
        Split policy; default the format's own (see each format).
    fractions : dict, optional
        ``{split name: fraction}`` for ``stratified`` / ``group``; default the format's own.
    seed : int
        Seed of the split (and folds).
    folds : int, optional
        Also add a ``fold`` column (0..folds-1, stratified, grouped when groups hold several clips;
        -1 for unlabelled clips).
    **options
        Format options (e.g. ``subset="medium"`` for fma, ``split_dir=...`` for gtzan).

    Returns
    -------
    Manifest
        Rooted at ``out``'s folder when written, else holding absolute paths.

    Raises
    ------
    ConfigError
        Unknown format, option, target or split policy; bad fractions or folds.
    DataError
        The dataset does not hold what the format expects (no audio, missing metadata, ...).
    """
    fn = FORMATS.get(format)
    accepted = format_options(format)
    if target is not None:
        if "target" not in accepted:
            raise ConfigError(f"format {format!r} has no target option; its options are "
                              f"{', '.join(accepted) or 'none'}")
        options["target"] = target
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise ConfigError(f"format {format!r}: unknown option {unknown[0]!r}; accepted options are "
                          f"{', '.join(accepted) or 'none'}")
    if split is not None and split not in SPLIT_POLICIES:
        raise ConfigError(f"split: expected one of {', '.join(SPLIT_POLICIES)}, got {split!r}")

    df = fn(Path(src), **options)
    if not isinstance(df, pd.DataFrame):
        raise ConfigError(f"format {format!r} returned {type(df).__name__}, expected a pandas DataFrame")
    if df.empty:
        raise DataError(f"{src}: the {format} format found no clips")
    how = split or df.attrs.get("split", "stratified")
    fr = fractions if fractions is not None else df.attrs.get("fractions", DEFAULT_FRACTIONS)
    df = apply_split(df, how, fr, seed, folds)
    df.attrs = {}
    if out is not None:
        root = Path(os.path.abspath(out)).parent
    else:
        s = Path(os.path.abspath(src))
        root = s if s.is_dir() else s.parent
    m = Manifest.from_frame(df, root)
    if out is not None:
        m = m.write(out)
    return m


__all__ = ["AUDIO_EXTENSIONS", "FORMATS", "format_options", "list_audio", "prepare"]
