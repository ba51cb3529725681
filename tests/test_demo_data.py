"""The built-in synthetic demo dataset: layout, audio validity, determinism, caching, learnability."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from earmark.data.demo import FAMILIES, make_demo_dataset, synth_note
from earmark.errors import ConfigError

N_PER_CLASS, SR, DURATION = 20, 16000, 1.0


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory) -> Path:
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), n_per_class=N_PER_CLASS, sr=SR,
                             duration=DURATION, seed=0)


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_manifest(small_demo):
    root = small_demo.parent
    assert small_demo == root / "manifest.csv"
    df = pd.read_csv(small_demo)
    assert list(df.columns) == ["id", "path", "label", "split", "group"]
    assert len(df) == N_PER_CLASS * len(FAMILIES)
    assert df.label.value_counts().to_dict() == {f: N_PER_CLASS for f in FAMILIES}
    assert df.id.is_unique and (df.group == df.id).all()
    assert df.path.iloc[0] == "plucked/plucked_000.wav"
    for row in df.itertuples():
        assert not Path(row.path).is_absolute()
        assert row.path == f"{row.label}/{row.id}.wav" and (root / row.path).is_file()
    assert set(df.split) == {"train", "test"}
    per_class = df.groupby("label").split.value_counts().unstack()
    assert (per_class["test"] == 6).all() and (per_class["train"] == 14).all()  # stratified 70/30
    assert sorted(p.name for p in root.iterdir()) == sorted([*FAMILIES, "demo.json", "manifest.csv"])
    params = json.loads((root / "demo.json").read_text())
    assert params["n_per_class"] == N_PER_CLASS and params["seed"] == 0 and params["families"] == list(FAMILIES)


def test_audio_decodes_with_right_format_and_level(small_demo):
    root = small_demo.parent
    for path in pd.read_csv(small_demo).path:
        info = sf.info(root / path)
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (SR, 1, "PCM_16", SR * DURATION)
        y, _ = sf.read(root / path, dtype="float32")
        assert np.isfinite(y).all()
        peak_db = 20 * np.log10(np.max(np.abs(y)))
        assert -20.5 <= peak_db <= -0.9, (path, peak_db)  # never clipped, never near-silent


@pytest.mark.parametrize("family", FAMILIES)
def test_synth_note_shape_dtype_and_determinism(family):
    a = synth_note(family, sr=SR, duration=0.5, rng=np.random.default_rng(1))
    b = synth_note(family, sr=SR, duration=0.5, rng=np.random.default_rng(1))
    c = synth_note(family, sr=SR, duration=0.5, rng=np.random.default_rng(2))
    assert a.dtype == np.float32 and a.shape == (SR // 2,)
    assert np.isfinite(a).all() and np.max(np.abs(a)) <= 10 ** (-1 / 20) + 1e-6
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_unknown_family_is_a_config_error_with_suggestion(tmp_path):
    with pytest.raises(ConfigError, match="'plucked'"):
        synth_note("pluckd", sr=SR, duration=0.5, rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="family"):
        make_demo_dataset(tmp_path, n_per_class=2, families=["plucked", "kazoo"])
    with pytest.raises(ConfigError, match="seed"):
        make_demo_dataset(tmp_path, n_per_class=2, seed=-1)


def test_same_seed_gives_byte_identical_files(tmp_path):
    kw = dict(n_per_class=3, duration=0.5, seed=7)
    a = make_demo_dataset(tmp_path / "a", **kw).parent
    b = make_demo_dataset(tmp_path / "b", **kw).parent
    assert len(_digests(a)) == 3 * len(FAMILIES) + 2
    assert _digests(a) == _digests(b)


def test_a_family_subset_gives_the_same_clips(tmp_path):
    full = _digests(make_demo_dataset(tmp_path / "full", n_per_class=3, duration=0.5).parent)
    sub = _digests(make_demo_dataset(tmp_path / "sub", n_per_class=3, duration=0.5,
                                     families=["organ", "bowed"]).parent)
    wavs = {k: v for k, v in sub.items() if k.endswith(".wav")}
    assert len(wavs) == 6 and all(full[k] == v for k, v in wavs.items())


def test_different_seed_gives_different_audio(tmp_path):
    a = make_demo_dataset(tmp_path / "a", n_per_class=3, duration=0.5, seed=0).parent
    b = make_demo_dataset(tmp_path / "b", n_per_class=3, duration=0.5, seed=1).parent
    for family in FAMILIES:
        for i in range(3):
            rel = f"{family}/{family}_{i:03d}.wav"
            assert not np.array_equal(sf.read(a / rel)[0], sf.read(b / rel)[0]), rel


def test_complete_folder_is_reused_and_changed_params_regenerate(tmp_path):
    kw = dict(n_per_class=3, duration=0.5, seed=0)
    manifest = make_demo_dataset(tmp_path, **kw)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    before = {p: p.stat().st_mtime_ns for p in files}
    assert make_demo_dataset(tmp_path, **kw) == manifest
    assert {p: p.stat().st_mtime_ns for p in files} == before

    # a missing clip makes the folder incomplete: it is generated again
    clip = tmp_path / "struck" / "struck_001.wav"
    clip.unlink()
    make_demo_dataset(tmp_path, **kw)
    assert clip.is_file()

    # fewer clips and another seed: new audio, stale clips removed, demo.json updated
    old = sf.read(tmp_path / "organ" / "organ_000.wav")[0]
    make_demo_dataset(tmp_path, **{**kw, "n_per_class": 2, "seed": 5})
    assert not (tmp_path / "organ" / "organ_002.wav").exists()
    assert not np.array_equal(old, sf.read(tmp_path / "organ" / "organ_000.wav")[0])
    assert json.loads((tmp_path / "demo.json").read_text())["seed"] == 5
    assert len(pd.read_csv(manifest)) == 2 * len(FAMILIES)


def test_families_are_learnable_from_mfcc_but_not_from_loudness(small_demo):
    librosa = pytest.importorskip("librosa")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    df = pd.read_csv(small_demo)
    mfcc_stats, log_rms = [], []
    for path in df.path:
        y, sr = sf.read(small_demo.parent / path, dtype="float32")
        m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
        mfcc_stats.append(np.concatenate([m.mean(axis=1), m.std(axis=1)]))
        log_rms.append([np.log(np.sqrt(np.mean(y.astype(np.float64) ** 2)))])
    train = (df.split == "train").to_numpy()

    def accuracy(X):
        X = np.asarray(X)
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        return clf.fit(X[train], df.label[train]).score(X[~train], df.label[~train])

    assert accuracy(mfcc_stats) > 0.6
    assert accuracy(log_rms) < 0.6
