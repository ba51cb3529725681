"""Audio I/O and array transforms: decode (soundfile), resample (soxr), downmix, pad/crop, segment;
vocal separation.

>>> from earmark.audio import load, segment, separate
>>> y = load("song.mp3", sr=22050, offset=30.0, duration=10.0)     # doctest: +SKIP
>>> windows, starts = segment(y, 3 * 22050)                         # doctest: +SKIP
>>> vocals, accompaniment = separate(y, 22050)                      # doctest: +SKIP

(``earmark.audio.separate`` is the function; its module's other names import as
``from earmark.audio.separate import separate_files, SEPARATORS, ...``.)
"""

from earmark.audio.io import AudioInfo, info, load, save
from earmark.audio.separate import SEPARATORS, separate, separate_files
from earmark.audio.transform import fix_length, resample, segment, to_mono

__all__ = [
    "AudioInfo",
    "SEPARATORS",
    "fix_length",
    "info",
    "load",
    "resample",
    "save",
    "segment",
    "separate",
    "separate_files",
    "to_mono",
]
