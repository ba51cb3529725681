"""Statistics features (stats518, artist_stats): every block against plain librosa, the contract, the store."""

from __future__ import annotations

import subprocess
import sys
import warnings

import librosa
import numpy as np
import pandas as pd
import pytest
import scipy.stats
import soundfile as sf
import torch

from conftest import music_like
from earmark.audio import load
from earmark.data import Manifest
from earmark.errors import ConfigError, DataError
from earmark.features import FEATURES, get_feature
from earmark.features.extract import extract
from earmark.features.cqt import cqt
from earmark.features.stats import (
    ARTIST_STATISTICS,
    FMA_STATISTICS,
    _estimate_tuning,
    _analyse,
    artist_stats,
    artist_stats_names,
    stats518,
    stats518_names,
    summarise,
)
from earmark.features.store import FeatureStore

SR = 22050
FMA_BLOCKS = {"chroma_cens": 12, "chroma_cqt": 12, "chroma_stft": 12, "mfcc": 20, "rmse": 1,
              "spectral_bandwidth": 1, "spectral_centroid": 1, "spectral_contrast": 7,
              "spectral_rolloff": 1, "tonnetz": 6, "zcr": 1}
ARTIST_BLOCKS = {"mfcc": 20, "mfcc_delta": 20, "mfcc_delta2": 20, "mel": 128, "spectral_centroid": 1,
                 "spectral_bandwidth": 1, "spectral_rolloff": 1, "spectral_contrast": 7, "rms": 1,
                 "zcr": 1, "chroma_stft": 12}


def chord_mix(sr: int = SR, duration: float = 6.0, seed: int = 1) -> np.ndarray:
    """Changing triads of harmonic notes, slightly detuned, on a noise bed with percussive clicks."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * duration)) / sr
    y = 0.05 * rng.standard_normal(t.size)
    chords = [(0, 4, 7), (5, 9, 12), (7, 11, 14), (-3, 0, 4)]
    seg = t.size // len(chords)
    for i, chord in enumerate(chords):
        tt = t[: seg]
        env = np.exp(-2.0 * tt)
        for semis in chord:
            f0 = 220.0 * 2 ** ((semis + 0.15) / 12)
            y[i * seg : (i + 1) * seg] += env * sum(np.sin(2 * np.pi * k * f0 * tt) / k for k in range(1, 6))
    beat = int(sr * 0.5)  # 120 BPM clicks
    for start in range(0, t.size - 200, beat):
        y[start : start + 200] += rng.standard_normal(200) * np.hanning(200)
    return (0.7 * y / np.abs(y).max()).astype(np.float32)


SIGNALS = {
    "music": lambda: np.concatenate([music_like(SR, 3.0, f0=196.0, seed=2), music_like(SR, 3.0, f0=293.7, seed=3)]),
    "chords": chord_mix,
}


# --------------------------------------------------------------------------- plain librosa references


def moments(rows: np.ndarray, stats) -> np.ndarray:
    """FMA's feature_stats: NumPy / scipy.stats per row (NaN of a constant row -> 0)."""
    f = {"mean": lambda x: np.mean(x, 1), "std": lambda x: np.std(x, 1), "skew": lambda x: scipy.stats.skew(x, 1),
         "kurtosis": lambda x: scipy.stats.kurtosis(x, 1), "median": lambda x: np.median(x, 1),
         "min": lambda x: np.min(x, 1), "max": lambda x: np.max(x, 1)}
    return np.concatenate([np.nan_to_num(f[s](rows)) for s in stats])


def fma_reference(x: np.ndarray, sr: int = SR) -> dict[str, np.ndarray]:
    """FMA's compute_features (features.py), one librosa call per feature, per block."""
    b = {"zcr": librosa.feature.zero_crossing_rate(x, frame_length=2048, hop_length=512)}
    cqt = np.abs(librosa.cqt(x, sr=sr, hop_length=512, bins_per_octave=12, n_bins=7 * 12, tuning=None))
    b["chroma_cqt"] = librosa.feature.chroma_cqt(C=cqt, n_chroma=12, n_octaves=7)
    b["chroma_cens"] = librosa.feature.chroma_cens(C=cqt, n_chroma=12, n_octaves=7)
    b["tonnetz"] = librosa.feature.tonnetz(chroma=b["chroma_cens"])
    stft = np.abs(librosa.stft(x, n_fft=2048, hop_length=512))
    b["chroma_stft"] = librosa.feature.chroma_stft(S=stft**2, n_chroma=12)
    b["rmse"] = librosa.feature.rms(S=stft)
    b["spectral_centroid"] = librosa.feature.spectral_centroid(S=stft)
    b["spectral_bandwidth"] = librosa.feature.spectral_bandwidth(S=stft)
    b["spectral_contrast"] = librosa.feature.spectral_contrast(S=stft, n_bands=6)
    b["spectral_rolloff"] = librosa.feature.spectral_rolloff(S=stft)
    mel = librosa.feature.melspectrogram(sr=sr, S=stft**2)
    b["mfcc"] = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=20)
    return {name: moments(rows, FMA_STATISTICS) for name, rows in b.items()}


def artist_reference(y: np.ndarray, sr: int = SR) -> dict[str, np.ndarray]:
    """The artist20 set as a user writes it: each librosa feature computed from y."""
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=128), ref=np.max)
    b = {"mfcc": mfcc, "mfcc_delta": librosa.feature.delta(mfcc), "mfcc_delta2": librosa.feature.delta(mfcc, order=2),
         "mel": mel, "spectral_centroid": librosa.feature.spectral_centroid(y=y, sr=sr),
         "spectral_bandwidth": librosa.feature.spectral_bandwidth(y=y, sr=sr),
         "spectral_rolloff": librosa.feature.spectral_rolloff(y=y, sr=sr),
         "spectral_contrast": librosa.feature.spectral_contrast(y=y, sr=sr),
         "rms": librosa.feature.rms(y=y), "zcr": librosa.feature.zero_crossing_rate(y),
         "chroma_stft": librosa.feature.chroma_stft(y=y, sr=sr)}
    out = {name: moments(rows, ARTIST_STATISTICS) for name, rows in b.items()}
    out["tempo"] = librosa.feature.tempo(onset_envelope=librosa.onset.onset_strength(S=mel, sr=sr), sr=sr)
    return out


def split(values: np.ndarray, blocks: dict[str, int], n_stats: int) -> dict[str, np.ndarray]:
    out, start = {}, 0
    for name, size in blocks.items():
        out[name] = values[start : start + size * n_stats]
        start += size * n_stats
    return out


def assert_block_matches(name: str, ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape, name
    assert np.isfinite(ours).all(), name
    scale = np.abs(ref).max()
    if np.ptp(ref) > 1e-9 * max(scale, 1.0):
        r = np.corrcoef(ours, ref)[0, 1]
        assert r >= 0.999, f"{name}: correlation {r:.5f}"
    # and value by value: 1 % of the block's largest magnitude (typically 1e-5)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-2 * max(scale, 1e-6), err_msg=name)


# --------------------------------------------------------------------------- values against librosa


@pytest.mark.parametrize("kind", sorted(SIGNALS))
def test_stats518_every_block_matches_fma_librosa_code(kind):
    y = SIGNALS[kind]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa's own warnings (e.g. tuning of a pure tone)
        ref = fma_reference(y)
    ours = stats518(y)
    assert isinstance(ours, np.ndarray) and ours.shape == (518,) and ours.dtype == np.float32
    parts = split(ours, FMA_BLOCKS, len(FMA_STATISTICS))
    assert list(parts) == sorted(parts)  # FMA's features.csv order
    for name, values in parts.items():
        assert_block_matches(name, values.astype(np.float64), ref[name])


@pytest.mark.parametrize("kind", sorted(SIGNALS))
def test_artist_stats_every_block_matches_librosa(kind):
    y = SIGNALS[kind]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = artist_reference(y)
    ours = artist_stats(y)
    assert ours.shape == (849,) and ours.dtype == np.float32
    parts = split(ours[:-1], ARTIST_BLOCKS, len(ARTIST_STATISTICS))
    for name, values in parts.items():
        assert_block_matches(name, values.astype(np.float64), ref[name])
    assert ours[-1] == pytest.approx(float(ref["tempo"][0]), rel=1e-6)
    if kind == "chords":
        assert 100 < ours[-1] < 145  # the clicks are at 120 BPM


def test_shared_cqt_and_tuning_equal_librosa():
    y = chord_mix(duration=4.0)
    S, P, plan = _analyse(y, SR, 2048, 512)
    tuning = _estimate_tuning(S, SR, 2048, plan["band"])
    assert tuning == pytest.approx(librosa.estimate_tuning(y=y, sr=SR, bins_per_octave=12))
    power_tuning = _estimate_tuning(P, SR, 2048, plan["band"])
    stft = np.abs(librosa.stft(y, n_fft=2048, hop_length=512))
    assert power_tuning == pytest.approx(librosa.estimate_tuning(S=stft**2, sr=SR, bins_per_octave=12))
    for t in (tuning, -0.31):
        ref = np.abs(librosa.cqt(y, sr=SR, hop_length=512, bins_per_octave=12, n_bins=84, tuning=t))
        C = cqt(y, SR, 512, t)
        assert C.shape == ref.shape
        np.testing.assert_allclose(C, ref, rtol=0, atol=1e-5 * ref.max())


# --------------------------------------------------------------------------- the contract


def test_names_order_and_lengths():
    names = stats518_names()
    assert len(names) == len(set(names)) == 518
    assert names[0] == "chroma_cens_01_kurtosis" and names[-1] == "zcr_01_std"
    assert "chroma_cqt_03_kurtosis" in names and "rmse_01_mean" in names
    # FMA's features.csv: sorted by (feature, statistic, number)
    keys = [(n.rsplit("_", 2)[0], n.rsplit("_", 1)[1], n.rsplit("_", 2)[1]) for n in names]
    assert keys == sorted(keys)
    anames = artist_stats_names()
    assert len(anames) == len(set(anames)) == 849
    assert anames[:2] == ["mfcc_01_mean", "mfcc_02_mean"] and anames[20] == "mfcc_01_std"
    assert "mel_128_min" in anames and "mfcc_delta2_20_max" in anames and anames[-1] == "tempo"


@pytest.mark.parametrize("fn, n", [(stats518, 518), (artist_stats, 849)])
def test_silence_dc_and_short_clips_are_finite(fn, n):
    names = stats518_names() if n == 518 else artist_stats_names()
    silent = fn(np.zeros(SR, np.float32))
    assert silent.shape == (n,) and np.isfinite(silent).all()
    for name, v in zip(names, silent):
        if name.endswith(("_skew", "_kurtosis", "_std")):
            assert v == 0.0, name
    for y in (np.full(SR, 0.5, np.float32), music_like(SR, 0.05)[:1025], np.ones(1, np.float32),
              np.full(5000, 1e-30, np.float32)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = fn(y)
        assert out.shape == (n,) and np.isfinite(out).all()


@pytest.mark.parametrize("fn", [stats518, artist_stats])
def test_batch_equals_items_and_torch_in_torch_out(fn):
    batch = np.stack([music_like(SR, 1.5, f0=f, seed=i) for i, f in enumerate((110.0, 220.0, 330.0, 440.0))])
    batch = batch.reshape(2, 2, -1)
    out = fn(batch)
    assert out.shape[:2] == (2, 2) and out.dtype == np.float32
    for i in range(2):
        for j in range(2):
            np.testing.assert_array_equal(out[i, j], fn(batch[i, j]))
    t = fn(torch.from_numpy(batch))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.device == torch.device("cpu")
    np.testing.assert_array_equal(t.numpy(), out)
    # computed in float32 whatever comes in; a float64 tensor gets float64 back
    np.testing.assert_array_equal(fn(batch[0, 0].astype(np.float64)), out[0, 0])
    t64 = fn(torch.from_numpy(batch.astype(np.float64)))
    assert t64.dtype == torch.float64
    np.testing.assert_array_equal(t64.numpy(), out)


def test_registered_with_rate_parameters_and_min_samples():
    for name in ("stats518", "artist_stats"):
        assert name in FEATURES.names()
        spec = get_feature(name)
        assert spec.sr == 22050
        assert spec.defaults == {"n_fft": 2048, "hop_length": 512}
        assert spec.min_samples(spec.resolve()) == 1025
        assert spec.min_samples(spec.resolve({"n_fft": 1024})) == 513


def test_bad_parameters_and_inputs_are_errors():
    y = music_like(SR, 0.5)
    with pytest.raises(ConfigError, match="Nyquist"):
        stats518(y, sr=8000)
    with pytest.raises(ConfigError, match="n_fft"):
        artist_stats(y, n_fft=64)
    with pytest.raises(ConfigError, match="hop_length"):
        stats518(y, hop_length=0)
    with pytest.raises(DataError, match="0 samples"):
        stats518(np.zeros(0, np.float32))
    with pytest.raises(DataError, match="NaN"):
        artist_stats(np.full(3000, np.nan, np.float32))
    with pytest.raises(ConfigError, match="unknown statistic"):
        summarise(np.zeros((4, 2)), stats=("mean", "mode"))


def test_summarise_matches_numpy_and_scipy():
    rng = np.random.default_rng(0)
    frames = rng.gamma(2.0, size=(3, 50, 4))  # (batch, n_frames, n_features)
    out = summarise(frames)
    assert out.shape == (3, 7 * 4) and out.dtype == np.float32
    for b in range(3):
        np.testing.assert_allclose(out[b], moments(frames[b].T, FMA_STATISTICS), rtol=1e-5, atol=1e-6)
    const = summarise(np.full((10, 2), 3.0), stats=("skew", "kurtosis", "std", "median"))
    np.testing.assert_array_equal(const, [0, 0, 0, 0, 0, 0, 3, 3])
    t = summarise(torch.from_numpy(frames), stats=ARTIST_STATISTICS)
    assert isinstance(t, torch.Tensor) and t.shape == (3, 16)


def test_importing_features_does_not_import_librosa_or_scipy_signal():
    code = ("import sys, numpy as np, earmark.features as f; f.FEATURES.get('stats518')(np.ones(3000, np.float32));"
            "f.FEATURES.get('artist_stats')(np.ones(3000, np.float32));"
            "print('librosa' in sys.modules, 'scipy.signal' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --------------------------------------------------------------------------- through the feature store


def test_extract_through_the_store(tmp_path):
    rows = []
    for i, f0 in enumerate((196.0, 261.6)):
        y = music_like(44100, 1.5, f0=f0, seed=i)
        sf.write(tmp_path / f"clip{i}.wav", np.stack([y, 0.5 * y], axis=1), 44100, subtype="PCM_16")
        rows.append({"path": f"clip{i}.wav", "label": str(i)})
    sf.write(tmp_path / "short.wav", music_like(44100, 0.02), 44100)  # 441 samples at 22.05 kHz
    rows.append({"path": "short.wav", "label": "0"})
    m = Manifest.from_frame(pd.DataFrame(rows), tmp_path)
    report = extract(m, "stats518", tmp_path / "store", jobs=1)
    assert report.n_computed == 2 and [f.path.endswith("short.wav") for f in report.failures] == [True]
    with FeatureStore(tmp_path / "store", "stats518") as store:
        table = store.load(m)
        assert [c.path.endswith("short.wav") for c in table.missing] == [True]
        X = table.stack(skip_missing=True)
    assert X.shape == (2, 518) and X.dtype == np.float32
    for path, x in zip(m.paths()[:2], X):
        np.testing.assert_array_equal(x, stats518(load(path, sr=22050)))
    again = extract(m, "stats518", tmp_path / "store", jobs=1)
    assert again.n_computed == 0 and again.n_cached == 2
