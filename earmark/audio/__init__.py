"""Audio I/O and array transforms: decode (soundfile), resample (soxr), downmix, pad/crop, segment.

>>> from earmark.audio import load, segment
>>> y = load("song.mp3", sr=22050, offset=30.0, duration=10.0)     # doctest: +SKIP
>>> windows, starts = segment(y, 3 * 22050)                         # doctest: +SKIP
"""

from earmark.audio.io import AudioInfo, info, load, save
from earmark.audio.transform import fix_length, resample, segment, to_mono

__all__ = [
    "AudioInfo",
    "fix_length",
    "info",
    "load",
    "resample",
    "save",
    "segment",
    "to_mono",
]
