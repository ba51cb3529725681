"""earmark.audio: decoding every format, partial reads, resampling against librosa, damaged files,
and the array transforms (resample, to_mono, fix_length, segment). Every file is written here."""

from __future__ import annotations

import dataclasses
import math
import pickle
import shutil
import subprocess
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from conftest import music_like
from earmark.audio import AudioInfo, fix_length, info, load, resample, save, segment, to_mono
from earmark.errors import AudioDecodeError, ConfigError, DataError

SR = 22050
FFMPEG = shutil.which("ffmpeg")


# ----------------------------------------------------------------------------- helpers


def stereo(sr: int = SR, duration: float = 2.0, channels: int = 2) -> np.ndarray:
    """(channels, n) float32, a different tone per channel."""
    return np.stack([music_like(sr, duration, f0=110.0 * (c + 1), seed=c) for c in range(channels)])


def write_mp3(path: Path, y: np.ndarray, sr: int, *, ffmpeg_args: tuple[str, ...] = ()) -> Path:
    """Write an MP3 with soundfile (libsndfile >= 1.1), else with the ffmpeg CLI, else skip."""
    if not ffmpeg_args:
        try:
            sf.write(path, y.T if y.ndim > 1 else y, sr, format="MP3")
            return path
        except Exception:  # libsndfile built without LAME
            pass
    if FFMPEG is None:
        pytest.skip("neither libsndfile nor ffmpeg can write MP3")
    wav = path.with_suffix(".src.wav")
    sf.write(wav, y.T if y.ndim > 1 else y, sr, subtype="FLOAT")
    subprocess.run([FFMPEG, "-loglevel", "error", "-y", "-i", str(wav), *ffmpeg_args, str(path)], check=True)
    wav.unlink()
    return path


def write_format(tmp_path: Path, fmt: str, y: np.ndarray, sr: int) -> Path:
    """One of the supported formats; ``y`` is (n,) or (channels, n)."""
    data = y.T if y.ndim > 1 else y
    if fmt == "wav16":
        sf.write(tmp_path / "a16.wav", data, sr, subtype="PCM_16")
        return tmp_path / "a16.wav"
    if fmt == "wavf":
        sf.write(tmp_path / "af.wav", data, sr, subtype="FLOAT")
        return tmp_path / "af.wav"
    if fmt == "flac":
        sf.write(tmp_path / "a.flac", data, sr)
        return tmp_path / "a.flac"
    if fmt == "ogg":
        sf.write(tmp_path / "a.ogg", data, sr, format="OGG", subtype="VORBIS")
        return tmp_path / "a.ogg"
    if fmt == "mp3":
        return write_mp3(tmp_path / "a.mp3", y, sr)
    raise AssertionError(fmt)


def truncate(path: Path, keep: float | int) -> Path:
    """Cut the file's bytes: keep a fraction (float) or drop a number of bytes (negative int)."""
    data = path.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else len(data) + keep
    path.write_bytes(data[:n])
    return path


def decode_error(path, **kw) -> AudioDecodeError:
    with pytest.raises(AudioDecodeError) as exc:
        load(path, **kw)
    err = exc.value
    assert err.path == str(path)
    assert str(err) == f"{path}: {err.reason}"
    return err


FORMATS = ["wav16", "wavf", "flac", "ogg", "mp3"]


# ----------------------------------------------------------------------------- formats & librosa


@pytest.mark.parametrize("fmt", FORMATS)
def test_native_read_matches_soundfile(tmp_path, fmt):
    y = stereo()
    path = write_format(tmp_path, fmt, y, SR)
    ref, ref_sr = sf.read(path, dtype="float32", always_2d=True)
    assert ref_sr == SR
    out = load(path, mono=False)
    assert out.dtype == np.float32 and out.shape == (2, ref.shape[0]) and out.flags.c_contiguous
    # sf.read seeks to frame 0 first; for MP3 that restarts mpg123 and changes values by ~1 ulp
    np.testing.assert_allclose(out, ref.T, rtol=0, atol=0 if fmt != "mp3" else 1e-6)
    mono = load(path)
    assert mono.shape == (ref.shape[0],) and mono.dtype == np.float32
    np.testing.assert_allclose(mono, ref.mean(axis=1), atol=1e-7)
    if fmt in ("wav16", "wavf", "flac"):  # lossless: the written samples come back
        np.testing.assert_allclose(out, y, atol=1 / 32768 if fmt != "wavf" else 0)


@pytest.mark.parametrize("container, subtype", [
    ("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "PCM_32"), ("WAV", "PCM_U8"), ("WAV", "FLOAT"),
    ("FLAC", "PCM_16"), ("FLAC", "PCM_24"), ("AIFF", "PCM_16"), ("AIFF", "PCM_32"),
])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_integer_pcm_gives_libsndfiles_own_float_values(tmp_path, container, subtype, channels):
    """Integer PCM is read as integers and scaled by earmark (4x faster than libsndfile's conversion):
    the values must be exactly libsndfile's float32, and the downmix exactly the running channel sum / n."""
    rng = np.random.default_rng(channels)
    path = tmp_path / f"x.{container.lower()}"
    if subtype == "PCM_32":  # every bit of a 32-bit sample used, including the extremes
        ints = rng.integers(-(2**31), 2**31, size=(4001, channels), dtype=np.int64).astype(np.int32)
        ints[:2] = [[-(2**31)], [2**31 - 1]]
        sf.write(path, ints, SR, subtype=subtype, format=container)
    else:
        y = rng.uniform(-1, 1, size=(4001, channels))
        y[:2] = [[-1.0], [0.9999]]
        sf.write(path, y, SR, subtype=subtype, format=container)
    ref = sf.read(path, dtype="float32", always_2d=True)[0]
    mono = ref[:, 0].copy()
    for c in range(1, channels):
        mono += ref[:, c]
    mono /= channels
    np.testing.assert_array_equal(load(path, mono=False), ref.T)
    np.testing.assert_array_equal(load(path), mono)
    start = round(0.01 * SR)
    np.testing.assert_array_equal(load(path, offset=0.01, duration=0.02), mono[start : start + round(0.02 * SR)])
    assert load(path).dtype == np.float32


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("sr", [None, 16000, 44100])
@pytest.mark.parametrize("mono", [True, False])
def test_matches_librosa_load(tmp_path, fmt, sr, mono):
    path = write_format(tmp_path, fmt, stereo(duration=1.5), SR)
    ours = load(path, sr=sr, mono=mono)
    ref, ref_sr = librosa.load(path, sr=sr, mono=mono)
    assert ref_sr == (sr or SR)
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("fmt", FORMATS)
def test_offset_duration_read_the_right_samples(tmp_path, fmt):
    path = write_format(tmp_path, fmt, stereo(duration=3.0), SR)
    full = load(path, mono=False)
    for offset, duration in [(0.0, 0.5), (0.25, 1.0), (1.2345, 0.3), (2.5, None), (2.9, 5.0), (0.0, None)]:
        part = load(path, mono=False, offset=offset, duration=duration)
        start = round(offset * SR)
        stop = full.shape[1] if duration is None else min(start + round(duration * SR), full.shape[1])
        assert part.shape == (2, stop - start), (offset, duration)
        np.testing.assert_allclose(part, full[:, start:stop], rtol=0, atol=1e-6)
        np.testing.assert_allclose(
            load(path, offset=offset, duration=duration), full[:, start:stop].mean(axis=0), atol=1e-6
        )


@pytest.mark.parametrize("channels", [1, 2])
def test_ogg_vorbis_offsets_in_the_last_page(tmp_path, channels):
    """libsndfile 1.2 seeks up to a few hundred samples off inside an Ogg/Vorbis file's last page
    (stereo 22.05 kHz: offsets past ~2.56 s of 3 s); load decodes forward from before that page."""
    path = tmp_path / "v.ogg"
    sf.write(path, stereo(duration=3.0, channels=channels).T, SR, format="OGG", subtype="VORBIS")
    full = load(path, mono=False)
    for start in range(2 * SR, 3 * SR - 50, 613):
        part = load(path, mono=False, offset=start / SR, duration=40 / SR)
        np.testing.assert_allclose(part, full[:, start : start + 40], rtol=0, atol=1e-6, err_msg=str(start))


@pytest.mark.parametrize("fmt", ["wav16", "flac", "mp3"])
def test_offset_duration_with_resampling_matches_librosa(tmp_path, fmt):
    path = write_format(tmp_path, fmt, stereo(duration=3.0), SR)
    # offsets/durations whose sample counts are integers, so librosa's int() and our round() agree
    for offset, duration in [(0.5, 1.0), (2.0, None), (1.0, 0.2)]:
        ours = load(path, sr=16000, offset=offset, duration=duration)
        ref, _ = librosa.load(path, sr=16000, offset=offset, duration=duration)
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)


def test_partial_read_decodes_only_the_requested_part(tmp_path):
    """The NaN at the end is never decoded when only the start is asked for (and vice versa)."""
    y = music_like(SR, 20.0)
    y[-10:] = np.nan
    path = tmp_path / "long_nan_tail.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    head = load(path, duration=1.0)
    np.testing.assert_array_equal(head, y[:SR])
    middle = load(path, offset=10.0, duration=2.0)
    np.testing.assert_array_equal(middle, y[10 * SR : 12 * SR])
    assert "10 non-finite" in decode_error(path, offset=19.0).reason


def test_partial_read_of_damaged_flac_before_the_damage(tmp_path):
    """A FLAC cut in half still serves its first second: it was never decoded to the end."""
    y = music_like(SR, 4.0)
    path = tmp_path / "cut.flac"
    sf.write(path, y, SR)
    truncate(path, 0.5)
    np.testing.assert_allclose(load(path, duration=1.0), y[:SR], atol=1 / 32768)
    assert "truncated" in decode_error(path).reason
    assert "truncated" in decode_error(path, offset=3.0).reason


def test_multichannel_8(tmp_path, write_audio):
    y = stereo(duration=1.0, channels=8)
    path = write_audio("eight.wav", y, SR, subtype="FLOAT")
    out = load(path, mono=False)
    assert out.shape == (8, SR)
    np.testing.assert_array_equal(out, y)
    np.testing.assert_allclose(load(path), y.mean(axis=0), atol=1e-7)
    assert info(path).channels == 8
    for mono in (True, False):
        ours = load(path, sr=16000, mono=mono)
        ref, _ = librosa.load(path, sr=16000, mono=mono)
        assert ours.shape == ref.shape == ((16000,) if mono else (8, 16000))
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("native, target", [(8000, 22050), (8000, 16000), (192000, 16000), (192000, 44100)])
def test_low_and_high_native_rates(write_audio, native, target):
    y = music_like(native, 1.0, f0=300.0)
    path = write_audio(f"r{native}.wav", y, native, subtype="PCM_24")
    assert info(path).sr == native
    np.testing.assert_allclose(load(path), y, atol=2**-23)
    ours = load(path, sr=target)
    ref, _ = librosa.load(path, sr=target)
    assert ours.shape == (target,) == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)
    # band-limited: a 300 Hz tone keeps its energy at the new rate
    spec = np.abs(np.fft.rfft(ours))
    assert np.argmax(spec) == pytest.approx(300, abs=3)


def test_one_sample_file(write_audio):
    path = write_audio("one.wav", np.array([0.5], np.float32), 44100, subtype="FLOAT")
    np.testing.assert_array_equal(load(path), [0.5])
    assert load(path, mono=False).shape == (1, 1)
    assert load(path, sr=16000).shape == (1,) == librosa.load(path, sr=16000)[0].shape
    assert info(path).frames == 1


def test_mono_file_with_mono_false_has_a_channel_axis(write_audio):
    y = music_like(SR, 0.5)
    path = write_audio("m.wav", y, SR, subtype="FLOAT")
    out = load(path, mono=False)
    assert out.shape == (1, y.size)
    np.testing.assert_array_equal(out[0], y)
    assert load(path, sr=16000, mono=False).shape == (1, 8000)


def test_mono_equals_to_mono_of_channels(write_audio):
    path = write_audio("s.wav", stereo(channels=3), SR, subtype="FLOAT")
    np.testing.assert_array_equal(load(path), to_mono(load(path, mono=False)))


def test_pathlike_and_str_paths(write_audio):
    path = write_audio("p.wav", music_like(SR, 0.2), SR)
    np.testing.assert_array_equal(load(path), load(str(path)))


# ----------------------------------------------------------------------------- info


def test_info_fields(write_audio, tmp_path):
    path = write_audio("i.flac", stereo(sr=8000, duration=1.5), 8000)
    got = info(path)
    assert got == AudioInfo(str(path), 8000, 12000, 2, 1.5, "FLAC", "PCM_16")
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.sr = 1
    mp3 = write_format(tmp_path, "mp3", music_like(SR, 1.0), SR)
    assert info(mp3).format == "MP3" and info(mp3).sr == SR


def test_info_errors(tmp_path, write_audio):
    with pytest.raises(AudioDecodeError, match="file not found"):
        info(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all" * 64)
    with pytest.raises(AudioDecodeError, match="cannot decode"):
        info(tmp_path / "junk.wav")
    empty = write_audio("e.wav", np.zeros(0, np.float32), SR)
    with pytest.raises(AudioDecodeError, match="no audio samples"):
        info(empty)
    cut = truncate(write_audio("c.wav", music_like(SR, 1.0), SR), -1000)
    with pytest.raises(AudioDecodeError, match="truncated"):
        info(cut)


# ----------------------------------------------------------------------------- damaged and bad input


def test_missing_file(tmp_path):
    err = decode_error(tmp_path / "nope.wav")
    assert err.reason == "file not found"


def test_directory(tmp_path):
    (tmp_path / "dir.wav").mkdir()
    assert "directory" in decode_error(tmp_path / "dir.wav").reason


@pytest.mark.parametrize("name", ["garbage.wav", "garbage.mp3", "garbage.flac", "garbage.ogg", "garbage.xyz"])
def test_garbage_bytes(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    reason = decode_error(path).reason
    assert reason.startswith("cannot decode (") and reason.endswith(")")
    assert "does not exist" not in reason  # libsndfile's misleading words for a bad MP3 are replaced


def test_garbage_wav_names_soundfiles_reason(tmp_path):
    path = tmp_path / "text.wav"
    path.write_text("hello, I am not a RIFF file\n" * 10)
    assert decode_error(path).reason == "cannot decode (Format not recognised)"


def test_empty_wav_zero_frames(write_audio):
    path = write_audio("empty.wav", np.zeros(0, np.float32), SR)
    assert decode_error(path).reason == "no audio samples (empty file)"


def test_zero_byte_file(tmp_path):
    path = tmp_path / "zero.wav"
    path.write_bytes(b"")
    assert decode_error(path).reason.startswith("no audio samples (empty file")


@pytest.mark.parametrize("cut", [-1, -1000, 0.5])
@pytest.mark.parametrize("subtype, channels", [("PCM_16", 1), ("FLOAT", 2), ("PCM_24", 8)])
def test_truncated_wav(write_audio, cut, subtype, channels):
    """libsndfile silently shortens a cut WAV; load compares with the RIFF header and says so."""
    y = stereo(duration=2.0, channels=channels) if channels > 1 else music_like(SR, 2.0)
    path = write_audio("cut.wav", y, SR, subtype=subtype)
    truncate(path, cut)
    assert sf.info(path).frames < y.shape[-1]  # soundfile itself does not complain
    reason = decode_error(path).reason
    assert reason.startswith("truncated: the header declares 2.0 s of audio, the file holds")
    assert "truncated" in decode_error(path, duration=0.1).reason  # the file is damaged, whatever part


def test_streamed_wav_with_placeholder_size_is_not_truncated(tmp_path, write_audio):
    """Writers to a pipe leave 0xFFFFFFFF as the data size: that is not a truncation."""
    y = music_like(SR, 1.0)
    path = write_audio("s.wav", y, SR, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    i = data.index(b"data")
    data[i + 4 : i + 8] = b"\xff\xff\xff\xff"
    data[4:8] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    np.testing.assert_allclose(load(path), y, atol=1 / 32768)


def test_truncated_flac(tmp_path):
    path = tmp_path / "cut.flac"
    sf.write(path, music_like(SR, 3.0), SR)
    truncate(path, 0.6)
    assert decode_error(path).reason.startswith("truncated")


def test_truncated_mp3_with_xing_header_is_detected(tmp_path):
    """libsndfile's own MP3 (and ffmpeg's default) carries a Xing/Info header with the exact length;
    cut in half, decoding stops early and load reports it."""
    path = write_format(tmp_path, "mp3", music_like(SR, 3.0), SR)
    assert sf.info(path).frames == 3 * SR  # exact length from the header
    truncate(path, 0.5)
    assert sf.info(path).frames == 3 * SR  # the header still says 3 s...
    with sf.SoundFile(path) as f:
        assert len(f.read(dtype="float32")) < 2 * SR  # ...decoding stops at the cut, silently
    reason = decode_error(path).reason
    assert reason.startswith("truncated: audio ends at 1.") and reason.endswith("the header declares 3.0 s")
    assert load(path, duration=0.5).shape == (SR // 2,)  # the intact start is still readable


@pytest.mark.skipif(FFMPEG is None, reason="needs the ffmpeg CLI to write an MP3 without a Xing header")
def test_truncated_mp3_without_xing_header_cannot_be_detected(tmp_path):
    """Without a Xing header libsndfile estimates the length from the file size, so a cut file
    just looks shorter; load returns what decodes (documented limitation)."""
    y = music_like(SR, 3.0)
    path = write_mp3(tmp_path / "cbr.mp3", y, SR, ffmpeg_args=("-b:a", "64k", "-write_xing", "0"))
    whole = load(path)
    truncate(path, 0.5)
    est = sf.info(path).frames
    cut = load(path)
    assert abs(est - cut.size) <= 1152 and cut.size < whole.size * 0.6
    np.testing.assert_allclose(cut[: SR // 2], whole[: SR // 2], atol=1e-6)


@pytest.mark.skipif(FFMPEG is None, reason="needs the ffmpeg CLI to write a VBR MP3 without a Xing header")
def test_vbr_mp3_without_xing_header_is_not_called_truncated(tmp_path):
    """A silent start makes libsndfile's length estimate ~3x too long; the shortfall is not an error."""
    y = np.concatenate([np.zeros(2 * SR, np.float32), music_like(SR, 2.0)])
    y[2 * SR :] += 0.2 * np.random.default_rng(0).standard_normal(2 * SR).astype(np.float32)
    path = write_mp3(tmp_path / "vbr.mp3", np.clip(y, -1, 1), SR, ffmpeg_args=("-q:a", "0", "-write_xing", "0"))
    out = load(path)
    assert out.size >= y.size  # all of it (plus the encoder's delay/padding)
    assert np.abs(out[3 * SR : 3 * SR + 100]).max() > 0.01


def test_truncated_ogg_looks_shorter(tmp_path):
    """Ogg's length comes from the last page present: a cut file is a valid, shorter one."""
    path = tmp_path / "cut.ogg"
    sf.write(path, music_like(SR, 3.0), SR)
    truncate(path, 0.5)
    y = load(path)
    assert 0 < y.size < 3 * SR


@pytest.mark.parametrize("bad, n", [(np.nan, 3), (np.inf, 2), (-np.inf, 1)])
def test_non_finite_float_wav(write_audio, bad, n):
    y = music_like(SR, 0.5)
    y[[10, 20, 30][:n]] = bad
    path = write_audio("nan.wav", y, SR, subtype="FLOAT")
    assert decode_error(path).reason == f"contains {n} non-finite samples (NaN/Inf)"
    np.testing.assert_array_equal(load(path, offset=0.01), y[round(0.01 * SR) :])  # past the bad samples


def test_non_finite_in_one_channel_counts_values(write_audio):
    y = stereo(duration=0.5)
    y[1, 5] = np.nan
    path = write_audio("nan2.wav", y, SR, subtype="DOUBLE")
    assert decode_error(path, mono=False).reason == "contains 1 non-finite samples (NaN/Inf)"


def test_offset_past_the_end(write_audio):
    path = write_audio("ten.wav", np.zeros(10 * 8000, np.float32) + 0.1, 8000)
    assert decode_error(path, offset=12.0).reason == "offset 12.0 s is past the end (10.0 s)"
    assert decode_error(path, offset=10.0).reason == "offset 10.0 s is past the end (10.0 s)"
    assert load(path, offset=9.5).shape == (4000,)
    assert load(path, offset=9.5, duration=3.0).shape == (4000,)  # a read running past the end is cut


@pytest.mark.parametrize(
    "kw, word",
    [
        ({"offset": -1.0}, "offset"),
        ({"offset": float("nan")}, "offset"),
        ({"offset": "1"}, "offset"),
        ({"duration": -0.5}, "duration"),
        ({"duration": 0.0}, "duration"),
        ({"duration": float("inf")}, "duration"),
        ({"duration": 1e-9}, "duration"),
        ({"sr": 0}, "sr"),
        ({"sr": -16000}, "sr"),
        ({"sr": 16000.0}, "sr"),
        ({"sr": "16k"}, "sr"),
        ({"sr": True}, "sr"),
    ],
)
def test_bad_arguments_are_config_errors(write_audio, kw, word):
    path = write_audio("ok.wav", music_like(SR, 0.5), SR)
    with pytest.raises(ConfigError) as exc:
        load(path, **kw)
    msg = str(exc.value)
    assert word in msg and repr(next(iter(kw.values()))) in msg


def test_numpy_scalars_are_accepted(write_audio):
    path = write_audio("np.wav", music_like(SR, 1.0), SR)
    assert load(path, sr=np.int64(16000), offset=np.float32(0.5), duration=np.float64(0.25)).shape == (4000,)


def test_decode_error_is_a_data_error_and_pickles(tmp_path):
    err = decode_error(tmp_path / "gone.flac")
    assert isinstance(err, DataError)
    again = pickle.loads(pickle.dumps(err))
    assert (again.path, again.reason) == (err.path, err.reason)


@pytest.mark.skipif(FFMPEG is None, reason="needs the ffmpeg CLI to write a FLAC to a pipe")
def test_flac_of_unknown_length(tmp_path, write_audio):
    """A FLAC written to a pipe has no length in STREAMINFO; libsndfile reports 2**63-1 frames."""
    y = music_like(SR, 2.0)
    src = write_audio("src.wav", y, SR)
    path = tmp_path / "piped.flac"
    with open(path, "wb") as fh:
        subprocess.run([FFMPEG, "-loglevel", "error", "-i", str(src), "-f", "flac", "-"], stdout=fh, check=True)
    assert sf.info(path).frames > 2**62
    full = load(path)
    np.testing.assert_array_equal(full, load(src))
    np.testing.assert_array_equal(load(path, offset=0.5, duration=1.0), full[SR // 2 : SR // 2 + SR])
    assert info(path).frames == y.size
    assert "past the end" in decode_error(path, offset=5.0).reason


# ----------------------------------------------------------------------------- save


@pytest.mark.parametrize(
    "name, subtype", [("s.wav", None), ("s.wav", "FLOAT"), ("s.flac", None), ("s.ogg", None), ("s.mp3", None)]
)
def test_save_round_trip(tmp_path, name, subtype):
    y = stereo(duration=0.5)
    try:
        save(tmp_path / name, y, SR, subtype=subtype)
    except ConfigError as exc:
        if name.endswith(".mp3"):
            pytest.skip(f"this libsndfile cannot write MP3: {exc}")
        raise
    out = load(tmp_path / name, mono=False)
    assert out.shape == y.shape
    if name.endswith((".ogg", ".mp3")):  # lossy: compare the error's energy with the signal's
        assert np.sum((out - y) ** 2) < 1e-2 * np.sum(y**2)  # SNR > 20 dB
    else:
        np.testing.assert_allclose(out, y, atol={"FLOAT": 0, None: 1 / 32768}[subtype])
    save(tmp_path / ("mono_" + name), y[0], SR, subtype=subtype)
    assert load(tmp_path / ("mono_" + name)).shape == (y.shape[1],)


def test_save_errors(tmp_path):
    with pytest.raises(ConfigError, match="sr"):
        save(tmp_path / "x.wav", np.zeros(10), 0)
    with pytest.raises(ConfigError):
        save(tmp_path / "x.unknownext", np.zeros(10), SR)
    with pytest.raises(ConfigError):
        save(tmp_path / "x.wav", np.zeros((1, 2, 3)), SR)
    with pytest.raises(DataError):
        save(tmp_path / "no" / "such" / "dir" / "x.wav", np.zeros(10), SR)


# ----------------------------------------------------------------------------- resample


def test_resample_shapes_match_librosa_along_last_axis():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4410)).astype(np.float32)
    for y in (x[0, 0], x[0], x, np.asfortranarray(x[0]), x[0][:, ::2]):
        out = resample(y, 44100, 16000)
        ref = librosa.resample(y, orig_sr=44100, target_sr=16000, res_type="soxr_hq", axis=-1)
        assert out.shape == ref.shape == y.shape[:-1] + (math.ceil(y.shape[-1] * 16000 / 44100),)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)
    rows = resample(x[0], 44100, 16000)
    for i in range(3):  # each row resampled on its own
        np.testing.assert_allclose(rows[i], resample(x[0, i], 44100, 16000), atol=1e-7)


def test_resample_identity_dtype_and_lengths():
    y = music_like(8000, 0.1)
    assert resample(y, 8000, 8000) is y
    assert resample(y.astype(np.float64), 8000, 16000).dtype == np.float64
    assert resample((y * 32767).astype(np.int16), 8000, 16000).dtype == np.float32
    for n in (1, 2, 3, 7, 101):
        for a, b in ((192000, 16000), (22050, 16000), (8000, 44100)):
            assert resample(np.ones(n, np.float32), a, b).shape == (-(-n * b // a),)
    assert resample(np.zeros((3, 0), np.float32), 8000, 16000).shape == (3, 0)
    assert resample(y, 8000, 16000, quality="VHQ").shape == (1600,)
    assert resample(y, 8000, 16000, quality="soxr_hq").shape == (1600,)


def test_resample_errors():
    with pytest.raises(ConfigError, match="quality"):
        resample(np.zeros(10), 8000, 16000, quality="best")
    with pytest.raises(ConfigError, match="orig_sr"):
        resample(np.zeros(10), 0, 16000)
    with pytest.raises(ConfigError, match="target_sr"):
        resample(np.zeros(10), 8000, 1.5)


# ----------------------------------------------------------------------------- to_mono


def test_to_mono():
    y = stereo(duration=0.1, channels=3)
    first = y[0]
    assert to_mono(first) is first
    np.testing.assert_allclose(to_mono(y), y.mean(axis=0), atol=0)
    assert to_mono(y).dtype == np.float32
    batch = np.stack([y, y * 0.5])  # (batch, channels, n)
    assert to_mono(batch).shape == (2, y.shape[1])
    assert to_mono(np.ones((2, 5), np.int16)).dtype == np.float32


# ----------------------------------------------------------------------------- fix_length


def test_fix_length_start():
    y = np.arange(1, 11, dtype=np.float32)
    np.testing.assert_array_equal(fix_length(y, 4), [1, 2, 3, 4])
    np.testing.assert_array_equal(fix_length(y, 13), [*range(1, 11), 0, 0, 0])
    np.testing.assert_array_equal(fix_length(y, 12, pad_value=-1), [*range(1, 11), -1, -1])
    assert fix_length(y, 10) is y
    np.testing.assert_array_equal(fix_length(y, 13), librosa.util.fix_length(y, size=13))


def test_fix_length_center():
    y = np.arange(1, 11, dtype=np.float32)
    np.testing.assert_array_equal(fix_length(y, 4, mode="center"), [4, 5, 6, 7])
    np.testing.assert_array_equal(fix_length(y, 5, mode="center"), [3, 4, 5, 6, 7])
    np.testing.assert_array_equal(fix_length(y, 13, mode="center"), [0, *range(1, 11), 0, 0])
    np.testing.assert_array_equal(fix_length(y, 14, mode="center"), [0, 0, *range(1, 11), 0, 0])


def test_fix_length_random_is_deterministic_per_seed():
    y = np.arange(100, dtype=np.float32)
    a = fix_length(y, 10, mode="random", seed=3)
    np.testing.assert_array_equal(a, fix_length(y, 10, mode="random", seed=3))
    assert a.shape == (10,) and np.all(np.diff(a) == 1)  # a contiguous crop
    crops = {int(fix_length(y, 10, mode="random", seed=s)[0]) for s in range(20)}
    assert len(crops) > 5 and min(crops) >= 0 and max(crops) <= 90
    rng1, rng2 = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(3):
        np.testing.assert_array_equal(fix_length(y, 10, mode="random", seed=rng1), fix_length(y, 10, mode="random", seed=rng2))
    padded = fix_length(y[:5] + 1, 12, mode="random", seed=1)
    assert padded.shape == (12,)
    nz = np.flatnonzero(padded)
    np.testing.assert_array_equal(padded[nz], [1, 2, 3, 4, 5]) and nz.size == 5 and np.all(np.diff(nz) == 1)
    np.testing.assert_array_equal(padded, fix_length(y[:5] + 1, 12, mode="random", seed=1))
    places = {int(np.flatnonzero(fix_length(y[:5] + 1, 12, mode="random", seed=s))[0]) for s in range(30)}
    assert len(places) > 3 and max(places) <= 7


def test_fix_length_batched_along_last_axis():
    y = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    assert fix_length(y, 2, mode="center").shape == (2, 3, 2)
    np.testing.assert_array_equal(fix_length(y, 2, mode="center"), y[..., 1:3])
    out = fix_length(y, 6)
    assert out.shape == (2, 3, 6) and np.all(out[..., 4:] == 0)
    r = fix_length(y, 3, mode="random", seed=0)
    assert any(np.array_equal(r, y[..., k : k + 3]) for k in range(2))  # one offset for all rows


@pytest.mark.parametrize("kw, word", [({"length": 0}, "0"), ({"length": -3}, "-3"), ({"length": 2.5}, "2.5"), ({"length": 4, "mode": "end"}, "'end'")])
def test_fix_length_errors(kw, word):
    with pytest.raises(ConfigError) as exc:
        fix_length(np.zeros(10), **kw)
    assert word in str(exc.value)


# ----------------------------------------------------------------------------- segment


def test_segment_exact_and_pad_last():
    y = np.arange(1, 11, dtype=np.float32)
    w, s = segment(y, 5)
    assert w.shape == (2, 5) and s.dtype == np.int64 and s.tolist() == [0, 5]
    np.testing.assert_array_equal(w.ravel(), y)
    w, s = segment(y, 4)
    assert s.tolist() == [0, 4, 8]
    np.testing.assert_array_equal(w, [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 0, 0]])
    w, s = segment(y, 4, pad_last=False)
    assert s.tolist() == [0, 4] and w.shape == (2, 4)


def test_segment_overlap_and_gaps():
    y = np.arange(10, dtype=np.float32)
    w, s = segment(y, 4, hop=2)
    assert s.tolist() == [0, 2, 4, 6]  # [6, 10) already reaches the end: no padded window
    for wi, si in zip(w, s):
        np.testing.assert_array_equal(wi, y[si : si + 4])
    assert segment(y, 4, hop=3)[1].tolist() == [0, 3, 6]  # [6, 10) ends exactly at the end
    y11 = np.arange(11, dtype=np.float32)
    w, s = segment(y11, 4, hop=3)
    assert s.tolist() == [0, 3, 6, 9]
    np.testing.assert_array_equal(w[-1], [9, 10, 0, 0])
    assert segment(y11, 4, hop=3, pad_last=False)[1].tolist() == [0, 3, 6]
    assert segment(y, 3, hop=4)[1].tolist() == [0, 4, 8]  # 8 is on the grid and the tail [8, 10) is uncovered
    assert segment(y, 2, hop=5)[1].tolist() == [0, 5]  # the tail [7, 10) is in a gap between windows


def test_segment_short_and_empty_input():
    y = np.ones(3, np.float32)
    for pad_last in (True, False):
        w, s = segment(y, 8, pad_last=pad_last)
        assert w.shape == (1, 8) and s.tolist() == [0]
        np.testing.assert_array_equal(w[0], [1, 1, 1, 0, 0, 0, 0, 0])
    w, s = segment(np.zeros(0, np.float32), 8)
    assert w.shape == (0, 8) and s.shape == (0,)
    w, s = segment(np.ones(8), 8)
    assert w.shape == (1, 8) and s.tolist() == [0]


def test_segment_batched_and_view():
    y = np.arange(2 * 3 * 12, dtype=np.float32).reshape(2, 3, 12)
    w, s = segment(y, 4)
    assert w.shape == (2, 3, 3, 4) and s.tolist() == [0, 4, 8]
    np.testing.assert_array_equal(w, y.reshape(2, 3, 3, 4))
    assert np.shares_memory(w, y) and not w.flags.writeable  # a strided view, no copy
    w, s = segment(y, 5, hop=3)
    assert w.shape == (2, 3, 4, 5) and s.tolist() == [0, 3, 6, 9]
    np.testing.assert_array_equal(w[..., -1, :], np.concatenate([y[..., 9:], np.zeros((2, 3, 2))], axis=-1))
    assert not np.shares_memory(w, y) and w.flags.writeable


def test_segment_long_audio_covers_everything():
    sr = 8000
    y = music_like(sr, 10.3)
    w, s = segment(y, 3 * sr, hop=sr)
    assert w.shape[1] == 3 * sr and s[-1] + 3 * sr >= y.size and s[-2] + 3 * sr < y.size
    np.testing.assert_array_equal(w[4], y[4 * sr : 7 * sr])


@pytest.mark.parametrize("kw", [{"length": 0}, {"length": 4, "hop": 0}, {"length": 4, "hop": -1}, {"length": "4"}])
def test_segment_errors(kw):
    with pytest.raises(ConfigError):
        segment(np.zeros(10), **kw)
