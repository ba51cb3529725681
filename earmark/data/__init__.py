"""Datasets as manifests: one row per clip, splits that keep groups apart, and dataset formats.

>>> from earmark.data import prepare, Manifest
>>> m = prepare("folder", "my_clips/", out="my_clips.csv")   # doctest: +SKIP
>>> Manifest.read("my_clips.csv").select(split="train")      # doctest: +SKIP
"""

from earmark.data.formats import AUDIO_EXTENSIONS, FORMATS, format_options, list_audio, prepare
from earmark.data.manifest import Manifest
from earmark.data.splits import apply_split, group_split, kfold, normalize_split_name, stratified_split

__all__ = [
    "AUDIO_EXTENSIONS",
    "FORMATS",
    "Manifest",
    "apply_split",
    "format_options",
    "group_split",
    "kfold",
    "list_audio",
    "normalize_split_name",
    "prepare",
    "stratified_split",
]
