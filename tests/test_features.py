"""Feature functions: exact references (NumPy from the spec, librosa), the feature contract, images."""

from __future__ import annotations

import math
import warnings

import librosa
import numpy as np
import pytest
import scipy.signal
import torch
from PIL import Image

from conftest import music_like
from earmark.errors import ConfigError, DataError
from earmark.features import (
    FEATURES,
    delta,
    fbank,
    get_feature,
    logmel,
    mfcc,
    save_image,
    stft,
    to_image,
    waveform,
)

BUILTIN = ["fbank", "stft", "logmel", "mfcc", "waveform"]


def noise(n: int, seed: int = 0, scale: float = 0.3) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


# --------------------------------------------------------------------------- fbank reference


def reference_fbank(
    y, sr=16000, pre_emphasis=0.97, frame_length=400, hop_length=160, n_fft=1024, n_mels=40,
    fmin=0.0, fmax=8000.0, normalize=False,
):
    """Straight float64 NumPy transcription of the spec (Fayek's tutorial, explicit loops)."""
    signal = np.asarray(y, dtype=np.float64)
    emphasized = np.append(signal[0], signal[1:] - pre_emphasis * signal[:-1])
    n = len(emphasized)
    n_frames = 1 if n <= frame_length else 1 + int(math.ceil((n - frame_length) / hop_length))
    padded = np.append(emphasized, np.zeros((n_frames - 1) * hop_length + frame_length - n))
    frames = np.stack([padded[i * hop_length : i * hop_length + frame_length] for i in range(n_frames)])
    frames = frames * np.hamming(frame_length)
    mag = np.abs(np.fft.rfft(frames, n_fft))
    pow_frames = (1.0 / n_fft) * mag**2

    low_mel = 2595 * np.log10(1 + fmin / 700)
    high_mel = 2595 * np.log10(1 + fmax / 700)
    mel_points = np.linspace(low_mel, high_mel, n_mels + 2)
    hz_points = 700 * (10 ** (mel_points / 2595) - 1)
    bins = np.floor((n_fft + 1) * hz_points / sr)
    filters = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(1, n_mels + 1):
        f_left, f_centre, f_right = int(bins[m - 1]), int(bins[m]), int(bins[m + 1])
        for k in range(f_left, f_centre):
            filters[m - 1, k] = (k - bins[m - 1]) / (bins[m] - bins[m - 1])
        for k in range(f_centre, f_right):
            filters[m - 1, k] = (bins[m + 1] - k) / (bins[m + 1] - bins[m])
    energies = pow_frames @ filters.T
    energies = np.where(energies == 0, np.finfo(float).eps, energies)
    energies = 20 * np.log10(energies)
    if normalize:
        energies -= np.mean(energies, axis=0) + 1e-8
    return energies


LENGTHS = [48000, 400, 401, 559, 560, 1]


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("kind", ["music", "noise"])
def test_fbank_matches_numpy_reference(n, kind):
    y = music_like(16000, 3.0)[:n] if kind == "music" else noise(n)
    ref = reference_fbank(y)
    out = fbank(y)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert out.shape == ref.shape == (1 + max(0, math.ceil((n - 400) / 160)), 40)
    np.testing.assert_allclose(out, ref, atol=1e-3, rtol=0)
    out64 = fbank(torch.from_numpy(y.astype(np.float64)))
    assert isinstance(out64, torch.Tensor) and out64.dtype == torch.float64
    np.testing.assert_allclose(out64.numpy(), ref, atol=1e-9, rtol=0)


def test_fbank_study_shape_normalize_and_torch():
    y = music_like(16000, 3.0, seed=3)
    assert y.shape == (48000,)
    out = fbank(y)
    assert out.shape == (299, 40)
    norm = fbank(y, normalize=True)
    np.testing.assert_allclose(norm, reference_fbank(y, normalize=True), atol=1e-3, rtol=0)
    np.testing.assert_allclose(norm.mean(axis=0), -1e-8, atol=1e-4)
    t = fbank(torch.from_numpy(y))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_array_equal(t.numpy(), out)


def test_fbank_other_parameters_match_reference():
    y = music_like(16000, 1.0, seed=4)
    kw = dict(pre_emphasis=0.0, frame_length=512, hop_length=256, n_fft=512, n_mels=64, fmin=300.0, fmax=6000.0)
    ref = reference_fbank(y, **kw)
    np.testing.assert_allclose(fbank(torch.from_numpy(y.astype(np.float64)), **kw).numpy(), ref, atol=1e-9, rtol=0)


def test_fbank_silence_is_floor_and_batched_equals_items():
    silence = fbank(np.zeros(1000, np.float32))
    np.testing.assert_allclose(silence, 20 * np.log10(np.finfo(float).eps), rtol=1e-6)
    batch = np.stack([music_like(16000, 1.0, seed=s) for s in range(3)])
    out = fbank(batch)
    assert out.shape == (3, 99, 40)
    for i in range(3):
        np.testing.assert_allclose(out[i], reference_fbank(batch[i]), atol=1e-3, rtol=0)
        np.testing.assert_array_equal(out[i], fbank(batch[i]))


def test_fbank_empty_input_is_a_data_error():
    with pytest.raises(DataError, match="0 samples"):
        fbank(np.zeros(0, np.float32))


# --------------------------------------------------------------------------- stft


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stft_matches_librosa(dtype):
    y = music_like(16000, 4.0).astype(dtype)
    assert y.shape == (64000,)
    ref = np.abs(librosa.stft(y.astype(np.float64), n_fft=256, hop_length=128, win_length=255,
                              window="hann", center=False)).T
    out = stft(y)
    assert out.shape == ref.shape == (499, 129) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-5 * ref.max(), rtol=1e-4)
    t = stft(torch.from_numpy(y.astype(np.float64)))
    np.testing.assert_allclose(t.numpy(), ref, atol=1e-10, rtol=1e-9)


def test_stft_power_log_and_centre():
    y = noise(4000, seed=1)
    mag = stft(y)
    np.testing.assert_allclose(stft(y, power=2.0), mag**2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stft(y, log=True), np.log(np.maximum(mag, 1e-6)), rtol=1e-5, atol=1e-5)
    centred = stft(y, center=True)
    assert centred.shape == (1 + (4000 + 2 * 127 - 255) // 128, 129)
    ref = np.abs(librosa.stft(np.pad(y, 127).astype(np.float64), n_fft=256, hop_length=128,
                              win_length=255, center=False)).T
    np.testing.assert_allclose(centred, ref, atol=1e-4, rtol=1e-4)
    assert stft(y[:10], center=True).shape == (1, 129)


def test_stft_of_long_clips_in_frame_blocks_matches_librosa():
    # On CPU a long clip's frames are transformed in runs of ~2 MiB of spectrum (dsp._framewise):
    # 2 x 40 s in float64 is 5,000 frames per item in runs of 1,016, centred with reflection.
    y = np.stack([music_like(16000, 40.0, seed=3), noise(640000, seed=4)]).astype(np.float64)
    out = stft(torch.from_numpy(y), center=True, pad_mode="reflect", power=2.0).numpy()
    for item, clip in zip(out, y):
        ref = np.abs(librosa.stft(np.pad(clip, 127, mode="reflect"), n_fft=256, hop_length=128, win_length=255,
                                  center=False)) ** 2
        assert item.shape == ref.T.shape == (5000, 129)
        np.testing.assert_allclose(item, ref.T, rtol=1e-9, atol=1e-9 * ref.max())


# --------------------------------------------------------------------------- logmel


def librosa_logmel(y, sr=22050, pad_mode="constant", **kw):
    S = librosa.feature.melspectrogram(y=np.asarray(y, np.float64), sr=sr, pad_mode=pad_mode, **kw)
    return librosa.power_to_db(S, ref=np.max, top_db=80.0).T


@pytest.fixture(scope="module")
def fma_clip():
    return music_like(22050, 29.7, f0=196.0, seed=5)


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
def test_logmel_matches_librosa(fma_clip, pad_mode):
    ref = librosa_logmel(fma_clip, pad_mode=pad_mode)
    out = logmel(fma_clip, pad_mode=pad_mode)
    assert out.shape == ref.shape == (1280, 128) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-3, rtol=0)
    assert out.max() == 0.0 and out.min() >= -80.0
    t = logmel(torch.from_numpy(fma_clip.astype(np.float64)), pad_mode=pad_mode)
    np.testing.assert_allclose(t.numpy(), ref, atol=1e-6, rtol=0)


def test_logmel_other_parameters_match_librosa():
    y = music_like(16000, 2.0, seed=6)
    kw = dict(n_fft=1024, hop_length=160, win_length=400, window="hamming", n_mels=40, fmin=50.0, fmax=7000.0)
    ref = librosa.feature.melspectrogram(y=y.astype(np.float64), sr=16000, htk=True, norm=None, **kw)
    out = logmel(torch.from_numpy(y.astype(np.float64)), sr=16000, htk=True, norm=None, db=False, **kw)
    np.testing.assert_allclose(out.numpy(), ref.T, rtol=1e-9, atol=1e-12)
    db = logmel(y, sr=16000, htk=True, norm=None, ref=1.0, top_db=None, **kw)
    np.testing.assert_allclose(db, librosa.power_to_db(ref, ref=1.0, top_db=None).T, atol=2e-3, rtol=0)
    uncentred = logmel(y, sr=16000, center=False, **kw)
    assert uncentred.shape == (1 + (32000 - 1024) // 160, 40)


@pytest.mark.parametrize("n", [1, 300, 1500, 5000])
def test_logmel_short_clips_match_librosa(n):
    y = music_like(22050, 0.5, seed=7)[:n]
    for pad_mode in ("constant", "reflect"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa: n_fft too large for the signal
            ref = librosa_logmel(y, pad_mode=pad_mode)
        out = logmel(torch.from_numpy(y.astype(np.float64)), pad_mode=pad_mode).numpy()
        assert out.shape == ref.shape == (1 + n // 512, 128)
        np.testing.assert_allclose(out, ref, atol=1e-6, rtol=0)


def test_logmel_ref_max_is_per_clip():
    a, b = music_like(22050, 2.0, seed=1), 0.01 * music_like(22050, 2.0, seed=2)
    out = logmel(np.stack([a, b]))
    assert out.shape == (2, 87, 128)
    np.testing.assert_allclose(out[0], librosa_logmel(a), atol=1e-3, rtol=0)
    np.testing.assert_allclose(out[1], librosa_logmel(b), atol=1e-3, rtol=0)


# --------------------------------------------------------------------------- mfcc and deltas


def librosa_mfcc(y, sr=22050, **kw):
    M = librosa.feature.mfcc(y=np.asarray(y, np.float64), sr=sr, n_mfcc=20, **kw)
    return np.concatenate([M, librosa.feature.delta(M, width=9), librosa.feature.delta(M, width=9, order=2)]).T


def test_mfcc_matches_librosa():
    y = music_like(22050, 10.0, seed=8)
    ref = librosa_mfcc(y)
    out = mfcc(y)
    assert out.shape == ref.shape == (1 + len(y) // 512, 60) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=2e-3, rtol=1e-4)
    for j in range(60):
        assert np.corrcoef(out[:, j], ref[:, j])[0, 1] >= 0.999, j
    t = mfcc(torch.from_numpy(y.astype(np.float64)))
    np.testing.assert_allclose(t.numpy(), ref, atol=1e-6, rtol=1e-7)
    plain = mfcc(y, deltas=False)
    assert plain.shape == (out.shape[0], 20)
    np.testing.assert_array_equal(plain, out[:, :20])


def test_mfcc_other_parameters_match_librosa():
    y = music_like(16000, 3.0, seed=9)
    kw = dict(n_fft=1024, hop_length=256, n_mels=64, fmin=30.0, fmax=7600.0)
    M = librosa.feature.mfcc(y=y.astype(np.float64), sr=16000, n_mfcc=13, **kw)
    out = mfcc(torch.from_numpy(y.astype(np.float64)), sr=16000, n_mfcc=13, width=5, **kw).numpy()
    np.testing.assert_allclose(out[:, :13], M.T, atol=1e-6, rtol=1e-7)
    np.testing.assert_allclose(out[:, 13:26], librosa.feature.delta(M, width=5).T, atol=1e-6, rtol=1e-7)
    np.testing.assert_allclose(out[:, 26:], librosa.feature.delta(M, width=5, order=2).T, atol=1e-6, rtol=1e-7)


@pytest.mark.parametrize("width", [3, 5, 9])
@pytest.mark.parametrize("n_frames", [1, 2, 4, 8, 9, 10, 40])
def test_delta_matches_librosa_or_nearest_for_short_inputs(width, n_frames):
    M = np.random.default_rng(n_frames).standard_normal((2, n_frames, 6))
    d1, d2 = delta(torch.from_numpy(M), width=width)
    assert d1.shape == d2.shape == M.shape
    for order, d in ((1, d1), (2, d2)):
        if n_frames >= width:
            ref = librosa.feature.delta(M, width=width, order=order, axis=-2)
        else:  # documented fallback: edge frames repeated
            ref = scipy.signal.savgol_filter(M, width, order, deriv=order, axis=-2, mode="nearest")
        np.testing.assert_allclose(d.numpy(), ref, atol=1e-10, rtol=1e-9)


def test_mfcc_on_a_clip_shorter_than_the_delta_window():
    y = music_like(22050, 0.1, seed=2)  # 5 frames < width 9: librosa.feature.delta would raise
    out = mfcc(y)
    assert out.shape == (1 + len(y) // 512, 60) and np.isfinite(out).all()


# --------------------------------------------------------------------------- waveform


def test_waveform_pad_and_crop():
    y = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(waveform(y), y)
    np.testing.assert_array_equal(waveform(y, length=13), np.r_[y, 0, 0, 0])
    np.testing.assert_array_equal(waveform(y, length=4), y[:4])
    np.testing.assert_array_equal(waveform(y, length=4, mode="center"), y[3:7])
    t = waveform(torch.from_numpy(np.stack([y, -y])), length=12)
    assert isinstance(t, torch.Tensor) and t.shape == (2, 12)
    assert waveform(np.zeros(64000, np.float64)).dtype == np.float32
    out = waveform(y)
    out[0] = 99.0
    assert y[0] == 0.0  # a copy, not a view of the input


# --------------------------------------------------------------------------- the contract, every feature


def expected_shape(name, n, params):
    """Output shape for one clip of ``n`` samples, from each feature's documented formula."""
    p = {**get_feature(name).defaults, **params}
    if name == "fbank":
        return (1 + max(0, math.ceil((n - p["frame_length"]) / p["hop_length"])), p["n_mels"])
    if name == "stft":
        return (1 + (n - p["frame_length"]) // p["hop_length"], p["n_fft"] // 2 + 1)
    if name == "logmel":
        return (1 + n // p["hop_length"], p["n_mels"])
    if name == "mfcc":
        return (1 + n // p["hop_length"], p["n_mfcc"] * (3 if p["deltas"] else 1))
    if name == "waveform":
        return (n,)
    return None


def signals(sr, n):
    return {
        "noise": noise(n, seed=11),
        "silence": np.zeros(n, np.float32),
        "music": music_like(sr, n / sr, seed=12)[:n],
    }


def test_builtin_features_are_registered():
    assert set(BUILTIN) <= set(FEATURES.names())
    assert get_feature("fbank").sr == 16000 and get_feature("logmel").sr == 22050
    assert get_feature("fbank").defaults["n_mels"] == 40


# Pretrained embeddings (embedding:*) need weights files: tests/test_embedding_feature.py runs this contract
# on them with weights=random.
CONTRACT = [n for n in FEATURES.names() if not n.startswith("embedding:")]


@pytest.mark.parametrize("name", CONTRACT)
def test_feature_contract(name):
    feat = get_feature(name)
    n = feat.sr // 2
    for kind, y in signals(feat.sr, n).items():
        out = feat(y)
        assert isinstance(out, np.ndarray) and out.dtype == np.float32, kind
        assert np.isfinite(out).all(), kind
        np.testing.assert_array_equal(out, feat(y), err_msg=f"{name} not deterministic on {kind}")
        shape = expected_shape(name, n, {})
        if shape is not None:
            assert out.shape == shape, kind
        t = feat(torch.from_numpy(y))
        assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.device.type == "cpu"
        np.testing.assert_allclose(t.numpy(), out, rtol=1e-6, atol=1e-6)

    batch = np.stack(list(signals(feat.sr, n).values()))
    out = feat(batch)
    assert out.shape[0] == 3
    for i in range(3):
        np.testing.assert_allclose(out[i], feat(batch[i]), rtol=1e-5, atol=1e-4)
    nested = feat(torch.from_numpy(batch[None]))
    np.testing.assert_allclose(nested[0].numpy(), out, rtol=1e-5, atol=1e-4)

    t64 = feat(torch.from_numpy(batch.astype(np.float64)))
    assert t64.dtype == torch.float64
    np.testing.assert_allclose(t64.numpy(), out, rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("name", CONTRACT)
def test_feature_min_samples(name):
    feat = get_feature(name)
    m = feat.min_samples(feat.resolve())
    out = feat(noise(m, seed=3))
    assert np.isfinite(out).all()
    shape = expected_shape(name, m, {})
    if shape is not None:
        assert out.shape == shape and shape[0] >= 1
    # min_samples is what the feature store accepts; below it, a feature either pads by its own
    # definition (fbank: one zero-padded frame; centred STFTs) or refuses with a DataError.
    if m > 1:
        try:
            short = feat(noise(m - 1))
        except DataError:
            assert name in {"stft"}, f"{name} refused {m - 1} samples"
        else:
            assert np.isfinite(short).all() and name in {"fbank", "logmel", "mfcc", "stats518", "artist_stats"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", BUILTIN)
def test_feature_on_cuda_matches_cpu(name):
    feat = get_feature(name)
    y = torch.from_numpy(np.stack([music_like(feat.sr, 1.0, seed=s) for s in range(2)]))
    out = feat(y.cuda())
    assert out.device.type == "cuda"
    np.testing.assert_allclose(out.cpu().numpy(), feat(y).numpy(), rtol=1e-4, atol=2e-3)


BAD = [
    ("fbank", {"n_mels": 0}, "n_mels.*0"),
    ("fbank", {"fmax": 9000.0}, "fmax.*9000"),
    ("fbank", {"hop_length": 0}, "hop_length.*0"),
    ("fbank", {"hop_length": -5}, "hop_length.*-5"),
    ("fbank", {"frame_length": 2048}, "frame_length.*2048"),
    ("fbank", {"fmin": 9000.0, "fmax": 8000.0}, "fmin"),
    ("fbank", {"n_fft": 2.5}, "n_fft.*2.5"),
    ("fbank", {"fmax": [8000.0]}, r"fmax.*\[8000.0\]"),
    ("stft", {"hop_length": 0}, "hop_length.*0"),
    ("stft", {"frame_length": 300}, "frame_length.*300"),
    ("stft", {"window": "no-such-window"}, "window.*no-such-window"),
    ("stft", {"power": 0}, "power.*0"),
    ("logmel", {"n_mels": -1}, "n_mels.*-1"),
    ("logmel", {"fmax": 20000.0}, "fmax.*20000"),
    ("logmel", {"hop_length": 0}, "hop_length.*0"),
    ("logmel", {"win_length": 4096}, "win_length.*4096"),
    ("logmel", {"pad_mode": "edge"}, "pad_mode.*edge"),
    ("logmel", {"ref": "min"}, "ref.*min"),
    ("logmel", {"top_db": -1.0}, "top_db.*-1"),
    ("logmel", {"norm": "bogus"}, "norm.*bogus"),
    ("mfcc", {"n_mfcc": 200}, "n_mfcc.*200"),
    ("mfcc", {"width": 4}, "width.*4"),
    ("mfcc", {"n_mels": 0}, "n_mels.*0"),
    ("mfcc", {"fmax": 12000.0}, "fmax.*12000"),
    ("waveform", {"mode": "end"}, "mode.*end"),
    ("waveform", {"length": 0}, "length.*0"),
]


@pytest.mark.parametrize("name, params, pattern", BAD)
def test_bad_parameters_are_config_errors(name, params, pattern):
    y = noise(get_feature(name).sr)
    with pytest.raises(ConfigError, match=pattern):
        get_feature(name)(y, **params)
    with pytest.raises(ConfigError, match=pattern):  # the plain function validates too
        get_feature(name).fn(y, **params)


def test_unknown_parameter_is_a_config_error():
    with pytest.raises(ConfigError, match="n_mel"):
        get_feature("fbank")(noise(1000), n_mel=40)


# --------------------------------------------------------------------------- images


def test_to_image_orientation_and_scale():
    S = np.tile(np.linspace(-100.0, 0.0, 5), (3, 1))  # 3 frames, 5 bands, rising with frequency
    img = to_image(S, top_db=80.0)
    assert img.dtype == np.uint8 and img.shape == (5, 3)
    np.testing.assert_array_equal(img[:, 0], [255, 175, 96, 16, 0])  # row 0 = highest band
    full_range = to_image(S, top_db=None)[:, 1].astype(int)
    assert np.abs(full_range - [255, 191, 128, 64, 0]).max() <= 1  # 127.5 rounds either way
    assert (to_image(np.full((4, 3), -7.0)) == 255).all()


def test_fma_logmel_image_round_trips_through_png(fma_clip, tmp_path):
    S = logmel(fma_clip)
    img = to_image(S)
    assert img.shape == (128, 1280) and img.dtype == np.uint8
    assert img.max() == 255
    path = save_image(tmp_path / "sub" / "clip.png", S)
    assert path.exists() and sorted(p.name for p in path.parent.iterdir()) == ["clip.png"]
    with Image.open(path) as im:
        assert im.mode == "L" and im.size == (1280, 128)
        np.testing.assert_array_equal(np.asarray(im), img)
    torch_img = to_image(torch.from_numpy(S))
    np.testing.assert_array_equal(torch_img, img)


def test_to_image_rejects_bad_input():
    with pytest.raises(ConfigError, match="top_db"):
        to_image(np.zeros((3, 4)), top_db=0)
    with pytest.raises(DataError, match="NaN"):
        to_image(np.array([[0.0, np.nan]]))
    with pytest.raises(DataError, match="shape"):
        to_image(np.zeros((2, 3, 4)))


@pytest.mark.parametrize(
    "sr, n_fft, n_mels, fmin, fmax, htk, norm",
    [(22050, 2048, 128, 0.0, None, False, "slaney"), (32000, 1024, 64, 50.0, 14000.0, False, "slaney"),
     (16000, 512, 40, 20.0, 7600.0, True, None), (22050, 2048, 64, 0.0, None, False, 2)],
)
def test_mel_filters_match_librosa(sr, n_fft, n_mels, fmin, fmax, htk, norm):
    import librosa

    from earmark.features.dsp import mel_filters

    ours = mel_filters(sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
    assert ours.shape == ref.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-7 * np.abs(ref).max())


def test_extraction_workers_do_not_import_librosa():
    import subprocess
    import sys

    code = ("import sys, numpy as np; from earmark.features import logmel, mfcc; "
            "logmel(np.ones(4096, np.float32)); mfcc(np.ones(4096, np.float32)); print('librosa' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("window", ["hann", "hamming", "blackman", "boxcar", ("kaiser", 8.0)])
@pytest.mark.parametrize("n", [255, 400, 2048])
def test_windows_match_scipy(window, n):
    import scipy.signal

    from earmark.features.dsp import get_window

    np.testing.assert_allclose(get_window("stft", window, n), scipy.signal.get_window(window, n, fftbins=True),
                               atol=1e-12)


def test_features_never_import_scipy_signal_for_their_defaults():
    import subprocess
    import sys

    code = ("import sys, numpy as np; from earmark.features import FEATURES, get_feature; "
            "[get_feature(n)(np.random.default_rng(0).standard_normal(8000).astype(np.float32)) for n in FEATURES.names() if not n.startswith('embedding:')]; "
            "print(sorted(m for m in ('scipy.signal', 'librosa') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
