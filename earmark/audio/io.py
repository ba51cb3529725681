"""Decode and write audio files with soundfile (libsndfile).

:func:`load` reads only the part of a file it is asked for (seek, then read that many frames),
straight into float32, and checks what it read: a missing, undecodable, empty or truncated file,
or one holding NaN/Inf, raises :class:`~earmark.errors.AudioDecodeError` naming the file and the
reason, so that a bad clip among thousands is reported and skipped, never passed on silently.

What libsndfile (1.2) does with damaged files, and what :func:`load` adds:

* **WAV cut short**: libsndfile silently shortens the length to the bytes present (it only notes
  "should be" in its log). :func:`load` and :func:`info` then read the RIFF header themselves and
  report the file as truncated when its ``data`` chunk declares more bytes than the file holds, for
  whatever part is read (streaming writers' placeholder sizes, 0 and 0xFFFFFFFF, are accepted).
  Other containers with a declared length (AIFF, AU, W64, RF64, CAF) are not checked.
* **FLAC cut short**: the length comes from STREAMINFO; decoding past the cut raises
  "flac decoder lost sync", or stops early when the cut falls between frames. Both are reported as
  truncated, but only when the part being read reaches the cut.
* **MP3 cut short**: with a Xing/Info (LAME) header the length is exact and decoding stops early at
  the cut: a shortfall of more than one MPEG frame (1152 samples) is reported as truncated. Without
  such a header libsndfile *estimates* the length from the file size and the first frame's bitrate
  (CBR: within a frame or so; VBR: it can be off by a factor of 3 either way, and decoding is capped
  at the estimate), so a cut cannot be told from a wrong estimate and what decodes is returned.
* **Ogg/Vorbis cut short**: the length is taken from the last page present, so a cut file looks
  like a shorter, valid one; nothing can be detected.
* **Seeking** is sample-exact for WAV, FLAC and MP3 (mpg123 decodes from a few frames earlier to
  refill its bit reservoir and may print harmless "part2_3_length" notes on stderr; an explicit seek
  to frame 0, as ``sf.read`` does, changes MP3 values by ~1 ulp, so :func:`load` does not seek
  when ``offset`` is 0, like ``librosa.load``). **Ogg/Vorbis is not**: a seek into the file's last
  page lands up to a few hundred samples off (``librosa.load`` with an offset there returns shifted
  audio); :func:`load` finds that page in the file's tail, seeks before it and decodes forward.
  Ogg/Opus seeks correctly.
* **Unknown length** (a FLAC written to a pipe, with 0 samples in STREAMINFO): libsndfile reports
  2**63 - 1 frames; :func:`load` then reads in blocks until the stream ends.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from earmark.audio.transform import _check_rate, _downmix_interleaved, resample
from earmark.checks import is_number
from earmark.errors import AudioDecodeError, ConfigError, DataError

__all__ = ["AudioInfo", "info", "load", "save"]

#: Largest shortfall (native-rate samples) tolerated when an MP3 decodes to less than its header says.
MP3_TOLERANCE = 1152
_UNKNOWN_LENGTH = 2**62  # libsndfile reports SF_COUNT_MAX (2**63 - 1) when the length is not known
_BLOCK = 1 << 18  # frames per read when the length is unknown
# Subtypes whose samples are integers, hence always finite after decoding.
_INTEGER_SUBTYPES = frozenset(
    {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "ULAW", "ALAW", "IMA_ADPCM", "MS_ADPCM",
     "GSM610", "DWVW_12", "DWVW_16", "DWVW_24", "G721_32", "G723_24", "G723_40", "DPCM_8", "DPCM_16"}
)


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says about its audio.

    Attributes
    ----------
    path : str
        The file.
    sr : int
        Native sample rate (Hz).
    frames : int
        Samples per channel. For an MP3 without a Xing/Info header this is libsndfile's estimate.
    channels : int
        Number of channels.
    duration : float
        ``frames / sr`` in seconds.
    format : str
        Container, as soundfile names it (``"WAV"``, ``"FLAC"``, ``"OGG"``, ``"MP3"``, ...).
    subtype : str
        Encoding (``"PCM_16"``, ``"FLOAT"``, ``"VORBIS"``, ``"MPEG_LAYER_III"``, ...).
    """

    path: str
    sr: int
    frames: int
    channels: int
    duration: float
    format: str
    subtype: str


def _seconds(x: float) -> str:
    """``12.0`` -> ``"12.0"``, ``1.23456`` -> ``"1.235"``: seconds for messages."""
    s = f"{x:.3f}".rstrip("0")
    return s + "0" if s.endswith(".") else s


def _sf_message(exc: Exception) -> str:
    msg = getattr(exc, "error_string", None) or str(exc)
    return msg.strip().rstrip(".")


def _open(path: str) -> sf.SoundFile:
    """Open ``path`` for reading; every failure becomes an AudioDecodeError with a plain reason."""
    try:
        return sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        # Only look at the file system once libsndfile has failed: the common path stays one open().
        if not os.path.lexists(path):
            raise AudioDecodeError(path, "file not found") from None
        if os.path.isdir(path):
            raise AudioDecodeError(path, "is a directory, not an audio file") from None
        if not os.path.exists(path):
            raise AudioDecodeError(path, "file not found (broken link)") from None
        try:
            size = os.path.getsize(path)
        except OSError:
            size = -1
        if size == 0:
            raise AudioDecodeError(path, "no audio samples (empty file, 0 bytes)") from None
        if not os.access(path, os.R_OK):
            raise AudioDecodeError(path, "cannot read (permission denied)") from None
        msg = _sf_message(exc)
        if "does not exist" in msg:
            # libsndfile says this of an existing file its MPEG decoder rejected.
            msg = "Format not recognised: not a valid MPEG audio stream"
        raise AudioDecodeError(path, f"cannot decode ({msg})") from None


def _wav_truncation(path: str, f: sf.SoundFile) -> str | None:
    """Reason string when a RIFF/WAVE file's data chunk declares more bytes than the file holds."""
    # libsndfile logs "data : <declared> (should be <held>)" when it shortens a data chunk; reading
    # its log (~2 us) spares parsing the header (~15 us) for every healthy file.
    if "should be" not in f.extra_info:
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None  # RF64, RIFX, ...: not checked
            file_size = os.fstat(fh.fileno()).st_size
            pos, block_align = 12, 0
            for _ in range(256):
                fh.seek(pos)
                chunk = fh.read(22)  # chunk id, size, and a fmt chunk's fields up to block align
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], int.from_bytes(chunk[4:8], "little")
                if cid == b"fmt " and len(chunk) >= 22:
                    block_align = int.from_bytes(chunk[20:22], "little")
                elif cid == b"data":
                    held = file_size - (pos + 8)
                    if size in (0, 0xFFFFFFFF) or size <= held:
                        return None
                    if not block_align:
                        return f"truncated: the header declares {size} bytes of audio, the file holds {held}"
                    declared_s = size / block_align / f.samplerate
                    return (
                        f"truncated: the header declares {_seconds(declared_s)} s of audio, "
                        f"the file holds {_seconds(f.frames / f.samplerate)} s"
                    )
                pos += 8 + size + (size & 1)
    except OSError:
        return None
    return None


def _check_not_empty_or_cut(path: str, f: sf.SoundFile, frames: int) -> None:
    """Raise for a file with no samples, or a WAV whose data chunk is shorter than its header says."""
    if frames <= 0:
        raise AudioDecodeError(path, "no audio samples (empty file)")
    if f.format in ("WAV", "WAVEX"):
        reason = _wav_truncation(path, f)
        if reason:
            raise AudioDecodeError(path, reason)


def _mp3_length_is_exact(path: str) -> bool:
    """Whether the first MPEG frame carries a Xing/Info header (then libsndfile's length is exact)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(10)
            start = 0
            if len(head) == 10 and head[:3] == b"ID3":
                size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
                start = 10 + size + (10 if head[5] & 0x10 else 0)
            fh.seek(start)
            buf = fh.read(16384)
    except OSError:
        return False
    i = buf.find(b"\xff")
    while 0 <= i < len(buf) - 1:
        if buf[i + 1] & 0xE0 == 0xE0:
            frame = buf[i : i + 64]
            return b"Xing" in frame or b"Info" in frame
        i = buf.find(b"\xff", i + 1)
    return False


def _vorbis_last_page_start(path: str) -> int | None:
    """Granule position (first sample) of an Ogg file's last page, read from the file's tail.

    Pages are validated by chaining their lengths up to the end of the file, so the capture pattern
    ``OggS`` occurring inside packet data is not mistaken for a page. None when it cannot be found.
    """
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            for tail in (16384, 2 * 65536 + 1024):  # a page is at most 65307 bytes
                fh.seek(max(0, size - tail))
                buf = fh.read(tail)
                # walk back from the end: the final page must end exactly at the end of the file
                end, pages = len(buf), []
                i = buf.rfind(b"OggS")
                while i >= 0 and len(pages) < 64:
                    if buf[i + 4 : i + 5] == b"\x00" and i + 27 <= len(buf):
                        nseg = buf[i + 26]
                        if i + 27 + nseg <= len(buf):
                            length = 27 + nseg + sum(buf[i + 27 : i + 27 + nseg])
                            if i + length == end:
                                granule = int.from_bytes(buf[i + 6 : i + 14], "little", signed=True)
                                pages.append(granule)
                                end = i
                                if len(pages) >= 2 and granule >= 0:
                                    return granule
                    i = buf.rfind(b"OggS", 0, i)
                if tail >= size:
                    break
    except OSError:
        return None
    return None


# libsndfile's own integer -> float conversion costs three times the read itself (3 s of 44.1 kHz stereo
# PCM_16: 0.55 of 0.74 ms). Reading the integers and scaling them here gives the same float32 values
# (libsndfile also divides by 2**15, or 2**31 for the left-justified 24- and 32-bit samples).
_INTEGER_READS = {"PCM_16": ("int16", 2.0**-15), "PCM_24": ("int32", 2.0**-31), "PCM_32": ("int32", 2.0**-31)}


def _read_float32(f: sf.SoundFile, frames: int) -> np.ndarray:
    """``f.read(frames, dtype="float32", always_2d=False)``, faster for integer PCM."""
    how = _INTEGER_READS.get(f.subtype)
    if how is None:
        return f.read(frames, dtype="float32", always_2d=False)
    ints = f.read(frames, dtype=how[0], always_2d=False)
    return np.multiply(ints, np.float32(how[1]), dtype=np.float32)


def _read_blocks(f: sf.SoundFile, frames: int | None) -> np.ndarray:
    """Read up to ``frames`` (None: to the end) from a stream of unknown length, block by block.

    ``SoundFile.read`` cannot be used here: after reading it seeks to the new position, and
    libsndfile fails that seek once the stream has ended. The C read is called directly instead.
    """
    shape = (lambda k: (k,)) if f.channels == 1 else (lambda k: (k, f.channels))
    parts, got = [], 0
    while frames is None or got < frames:
        want = _BLOCK if frames is None else min(_BLOCK, frames - got)
        block = np.empty(shape(want), dtype=np.float32)
        n = int(sf._snd.sf_readf_float(f._file, sf._ffi.cast("float *", block.ctypes.data), want))
        if f._errorcode:
            raise sf.LibsndfileError(f._errorcode)
        if n:
            parts.append(block[:n])
            got += n
        if n < want:
            break
    if not parts:
        return np.empty(shape(0), dtype=np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _check_offset_duration(offset, duration) -> tuple[float, float | None]:
    if not is_number(offset) or offset < 0:
        raise ConfigError(f"offset must be a finite number of seconds >= 0, got {offset!r}")
    if duration is not None and (not is_number(duration) or duration <= 0):
        raise ConfigError(f"duration must be a finite number of seconds > 0 or None, got {duration!r}")
    return float(offset), None if duration is None else float(duration)


def load(
    path: str | os.PathLike,
    sr: int | None = None,
    mono: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
) -> np.ndarray:
    """Decode (part of) an audio file to float32, optionally downmixed and resampled.

    Only the requested part is decoded: the file is opened, sought to ``round(offset * native_sr)``
    and ``round(duration * native_sr)`` frames are read. Resampling (soxr, quality ``"HQ"``, the
    same as ``librosa.load``'s default ``soxr_hq``) happens only when ``sr`` differs from the
    file's rate, so values match ``librosa.load(path, sr=sr, mono=mono, offset=..., duration=...)``.

    Parameters
    ----------
    path : str or os.PathLike
        Any file libsndfile reads: WAV, FLAC, Ogg/Vorbis, MP3, AIFF, ...
    sr : int or None
        Target sample rate in Hz; None keeps the file's native rate.
    mono : bool
        Average the channels into one.
    offset : float
        Start reading this many seconds into the file (>= 0).
    duration : float or None
        Read at most this many seconds (> 0); None reads to the end. A request running past the end
        of the file returns what there is.

    Returns
    -------
    y : np.ndarray, float32
        Shape ``(n,)`` when ``mono``, else ``(channels, n)`` (C-contiguous), where ``n`` is the
        number of samples at rate ``sr``.

    Raises
    ------
    AudioDecodeError
        The file is missing, a directory, undecodable, has no samples, is truncated, contains
        NaN/Inf, or ``offset`` is past its end. ``str(err)`` is ``"path: reason"``.
    ConfigError
        ``sr``, ``offset`` or ``duration`` is not a valid value.

    Examples
    --------
    >>> y = load("clip.flac", sr=16000)                         # doctest: +SKIP
    >>> y.shape, y.dtype                                        # doctest: +SKIP
    ((48000,), dtype('float32'))
    >>> load("song.mp3", mono=False, offset=30.0, duration=3.0).shape  # doctest: +SKIP
    (2, 132300)
    """
    path = os.fspath(path)
    if sr is not None:
        _check_rate(sr, "sr")
    offset, duration = _check_offset_duration(offset, duration)

    with _open(path) as f:
        native_sr, total, channels = f.samplerate, f.frames, f.channels
        known = total < _UNKNOWN_LENGTH
        _check_not_empty_or_cut(path, f, total)

        start = int(round(offset * native_sr))
        if known and start >= total:
            raise AudioDecodeError(
                path, f"offset {_seconds(offset)} s is past the end ({_seconds(total / native_sr)} s)"
            )
        want = None
        if duration is not None:
            want = int(round(duration * native_sr))
            if want == 0:
                raise ConfigError(f"duration {duration!r} s is shorter than one sample at {native_sr} Hz")
        if known:
            want = total - start if want is None else min(want, total - start)

        try:
            skip = 0
            if start and known and f.subtype == "VORBIS":
                # libsndfile 1.2 lands up to a few hundred samples off when seeking into an Ogg/Vorbis
                # file's last page: seek before that page instead and decode forward to the start.
                last_page = _vorbis_last_page_start(path)
                safe = 0 if last_page is None else max(0, last_page - 1024)
                if start > safe:
                    skip = start - safe
            if start - skip:
                try:
                    f.seek(start - skip)
                except (sf.LibsndfileError, RuntimeError) as exc:
                    if known:
                        raise
                    raise AudioDecodeError(
                        path, f"offset {_seconds(offset)} s is past the end (cannot seek there: {_sf_message(exc)})"
                    ) from None
            if known:
                data = _read_float32(f, want + skip)[skip:]
            else:
                data = _read_blocks(f, want)
        except (sf.LibsndfileError, RuntimeError) as exc:
            end = "the end" if want is None else f"{_seconds((start + want) / native_sr)} s"
            raise AudioDecodeError(
                path,
                f"truncated or corrupt: decoding {_seconds(start / native_sr)} s to {end} failed "
                f"({_sf_message(exc)})",
            ) from None

        got = len(data)
        if not known and got == 0:
            if start:
                raise AudioDecodeError(path, f"offset {_seconds(offset)} s is past the end")
            raise AudioDecodeError(path, "no audio samples (empty file)")
        if known and got < want:
            shortfall = want - got
            lenient = f.format == "MP3" and (shortfall <= MP3_TOLERANCE or not _mp3_length_is_exact(path))
            if not lenient:
                raise AudioDecodeError(
                    path,
                    f"truncated: audio ends at {_seconds((start + got) / native_sr)} s, "
                    f"the header declares {_seconds(total / native_sr)} s",
                )
            if got == 0:
                raise AudioDecodeError(
                    path,
                    f"offset {_seconds(offset)} s is past the end of the decodable audio "
                    f"(the header estimates {_seconds(total / native_sr)} s)",
                )
        if f.subtype not in _INTEGER_SUBTYPES and not np.isfinite(data).all():
            bad = data.size - int(np.count_nonzero(np.isfinite(data)))
            raise AudioDecodeError(path, f"contains {bad} non-finite samples (NaN/Inf)")

    # data: (n,) for one channel, (n, channels) C-ordered (interleaved) otherwise.
    if channels == 1:
        y = data if mono else data[np.newaxis, :]
    elif mono:
        y = _downmix_interleaved(data)
    else:
        if sr is not None and sr != native_sr:
            # soxr works on interleaved frames natively; transpose once, after resampling.
            return np.ascontiguousarray(resample(data.T, native_sr, sr))
        return np.ascontiguousarray(data.T)
    if sr is not None and sr != native_sr:
        y = resample(y, native_sr, sr)
    return y


def info(path: str | os.PathLike) -> AudioInfo:
    """Read a file's header: sample rate, length, channels, format.

    Nothing is decoded, so damage inside FLAC/MP3 audio data shows only when :func:`load` reads it;
    a WAV cut short is detected here already.

    Parameters
    ----------
    path : str or os.PathLike
        Any file libsndfile reads.

    Returns
    -------
    AudioInfo

    Raises
    ------
    AudioDecodeError
        The file is missing, a directory, undecodable, has no samples, or is a truncated WAV.
    """
    path = os.fspath(path)
    with _open(path) as f:
        frames = f.frames
        if frames >= _UNKNOWN_LENGTH:  # length not in the header: count by decoding
            try:
                frames = len(_read_blocks(f, None))
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise AudioDecodeError(path, f"truncated or corrupt: decoding failed ({_sf_message(exc)})") from None
        _check_not_empty_or_cut(path, f, frames)
        return AudioInfo(
            path=path,
            sr=int(f.samplerate),
            frames=int(frames),
            channels=int(f.channels),
            duration=frames / f.samplerate,
            format=f.format,
            subtype=f.subtype,
        )


def save(path: str | os.PathLike, y: np.ndarray, sr: int, *, subtype: str | None = None) -> None:
    """Write audio with soundfile; the container follows the file extension.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; ``.wav``, ``.flac``, ``.ogg``, ``.mp3``, ... select the format.
    y : np.ndarray
        Shape ``(n,)`` or ``(channels, n)``, float in [-1, 1] (or integer PCM).
    sr : int
        Sample rate in Hz.
    subtype : str, optional
        Encoding, e.g. ``"PCM_16"``, ``"FLOAT"``, ``"VORBIS"``; None uses the format's default
        (PCM_16 for WAV and FLAC).

    Raises
    ------
    ConfigError
        ``sr``, ``y``'s shape, the extension or the subtype is invalid.
    DataError
        libsndfile could not write the file.
    """
    path = os.fspath(path)
    _check_rate(sr, "sr")
    y = np.asarray(y)
    if y.ndim not in (1, 2):
        raise ConfigError(f"save: y must have shape (n,) or (channels, n), got {y.shape}")
    try:
        sf.write(path, y.T if y.ndim == 2 else y, sr, subtype=subtype)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"save {path}: {exc}") from None
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise DataError(f"{path}: cannot write audio ({_sf_message(exc)})") from None
