"""Feature store and extraction: real files, real decoding, real processes (and a real kill -9)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from earmark.audio import load
from earmark.data import Manifest
from earmark.errors import ConfigError, DataError
from earmark.features import fbank, logmel
from earmark.features.extract import extract
from earmark.features.store import Clip, FeatureStore
from tests.conftest import music_like


def _dataset(root: Path, n: int, *, sr: int = 44100, duration: float = 3.0, channels: int = 2) -> Path:
    """n real WAV clips (stereo 44.1 kHz by default) and their manifest; returns the manifest path."""
    rows = []
    for i in range(n):
        y = music_like(sr, duration, f0=110.0 * (1 + i % 7), seed=i)
        data = np.stack([y, 0.5 * y], axis=1) if channels == 2 else y
        rel = f"audio/c{i % 3}/clip{i:04d}.wav"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, data, sr, subtype="PCM_16")
        rows.append({"id": f"clip{i:04d}", "path": rel, "label": f"c{i % 3}", "split": "train", "group": f"clip{i:04d}"})
    path = root / "manifest.csv"
    Manifest.from_frame(pd.DataFrame(rows), root).write(path)
    return path


def test_extract_matches_direct_computation_and_reads_back_as_memmap(tmp_path):
    m = Manifest.read(_dataset(tmp_path, 6))
    report = extract(m, "fbank", tmp_path / "store", jobs=1)
    assert report.ok and report.n_computed == 6 and report.n_cached == 0
    assert report.audio_seconds == pytest.approx(18.0)
    with FeatureStore(tmp_path / "store", "fbank") as store:
        table = store.load(m)
        assert not table.missing
        X = table.stack()
        assert X.shape == (6, 299, 40) and X.dtype == np.float32
        for path, x in zip(m.paths(), table.arrays):
            np.testing.assert_array_equal(x, fbank(load(path, sr=16000)))
        assert isinstance(table.arrays[0].base, np.memmap) or isinstance(table.arrays[0], np.memmap)


def test_rerun_computes_nothing_and_a_changed_file_is_recomputed(tmp_path):
    mpath = _dataset(tmp_path, 5)
    m = Manifest.read(mpath)
    extract(m, "fbank", tmp_path / "store", jobs=1)
    again = extract(mpath, "fbank", tmp_path / "store", jobs=1)  # the manifest file's path works as well
    assert (again.n_cached, again.n_computed) == (5, 0)
    changed = Path(m.paths()[2])
    sf.write(changed, music_like(44100, 2.0, f0=500.0, seed=99), 44100)
    third = extract(m, "fbank", tmp_path / "store", jobs=1)
    assert (third.n_cached, third.n_computed) == (4, 1)
    with FeatureStore(tmp_path / "store", "fbank") as store:
        x = store.load(m).arrays[2]
        assert x.shape == (199, 40)
        np.testing.assert_array_equal(x, fbank(load(changed, sr=16000)))


def test_parameters_make_separate_configurations_and_unknown_ones_are_refused(tmp_path):
    m = Manifest.read(_dataset(tmp_path, 2, duration=1.0))
    a = extract(m, "logmel", tmp_path / "store", params={"n_mels": 32}, jobs=1)
    b = extract(m, "logmel", tmp_path / "store", params={"n_mels": 64}, jobs=1)
    assert a.store_dir != b.store_dir and b.n_computed == 2
    with FeatureStore(tmp_path / "store", "logmel", {"n_mels": 32}) as store:
        x = store.load(m).arrays[0]
    assert x.shape[-1] == 32
    np.testing.assert_allclose(x, logmel(load(m.paths()[0], sr=22050), n_mels=32), rtol=0, atol=1e-4)
    with pytest.raises(ConfigError, match="n_mel"):
        extract(m, "logmel", tmp_path / "store", params={"n_mel": 32}, jobs=1)
    with pytest.raises(ConfigError, match="unknown feature"):
        extract(m, "fbankk", tmp_path / "store", jobs=1)


def test_bad_files_are_reported_and_skipped_and_no_good_clip_is_lost(tmp_path):
    root = tmp_path
    good = [f"good{i}.wav" for i in range(4)]
    for i, name in enumerate(good):
        sf.write(root / name, music_like(44100, 1.0, seed=i), 44100)
    sf.write(root / "eight_khz.wav", music_like(8000, 1.0), 8000)
    sf.write(root / "hi_res.flac", music_like(192000, 0.5), 192000)
    sf.write(root / "eight_ch.wav", np.tile(music_like(16000, 1.0)[:, None], (1, 8)), 16000)
    (root / "garbage.wav").write_bytes(b"RIFF\x00\x01garbage" * 20)
    sf.write(root / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    sf.write(root / "nan.wav", np.full(1600, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    sf.write(root / "one_sample.wav", np.ones(1, dtype=np.float32) * 0.1, 16000)
    names = good + ["eight_khz.wav", "hi_res.flac", "eight_ch.wav", "garbage.wav", "empty.wav", "nan.wav",
                    "missing.wav", "one_sample.wav"]
    df = pd.DataFrame({"path": names, "label": ["x"] * len(names)})
    m = Manifest.from_frame(df, root)
    report = extract(m, "logmel", root / "store", jobs=2)
    failed = {Path(f.path).name: f.reason for f in report.failures}
    assert set(failed) == {"garbage.wav", "empty.wav", "nan.wav", "missing.wav", "one_sample.wav"}
    assert "not found" in failed["missing.wav"] and "NaN" in failed["nan.wav"]
    assert "shorter than one logmel frame" in failed["one_sample.wav"]
    assert report.n_computed == 7
    csv_rows = pd.read_csv(Path(report.store_dir) / "failures.csv")
    assert sorted(Path(p).name for p in csv_rows["path"]) == sorted(failed)
    with FeatureStore(root / "store", "logmel") as store:
        table = store.load(m)
    assert int(table.present().sum()) == 7
    assert {Path(c.path).name for c in table.missing} == set(failed)


def test_one_sample_clip_is_reported_for_framed_features(tmp_path):
    sf.write(tmp_path / "one.wav", np.array([0.1], dtype=np.float32), 16000)
    sf.write(tmp_path / "ok.wav", music_like(16000, 1.0), 16000)
    m = Manifest.from_frame(pd.DataFrame({"path": ["one.wav", "ok.wav"], "label": ["a", "a"]}), tmp_path)
    report = extract(m, "stft", tmp_path / "store", jobs=1)
    assert report.n_computed == 1
    (failure,) = report.failures
    assert failure.id == "one" and "shorter than one stft frame" in failure.reason


def test_manifest_offset_and_duration_select_the_excerpt(tmp_path):
    y = music_like(16000, 4.0, seed=3)
    sf.write(tmp_path / "long.wav", y, 16000)
    df = pd.DataFrame({"id": ["a", "b"], "path": ["long.wav", "long.wav"], "label": ["x", "x"],
                       "offset": [0.0, 1.0], "duration": [3.0, 3.0]})
    m = Manifest.from_frame(df, tmp_path)
    report = extract(m, "fbank", tmp_path / "store", jobs=1)
    assert report.n_computed == 2
    with FeatureStore(tmp_path / "store", "fbank") as store:
        a, b = store.load(m).arrays
    decoded = load(tmp_path / "long.wav")
    np.testing.assert_array_equal(a, fbank(decoded[:48000]))
    np.testing.assert_array_equal(b, fbank(decoded[16000:64000]))


def test_parallel_extraction_equals_inline_and_keeps_few_files(tmp_path):
    m = Manifest.read(_dataset(tmp_path, 40, duration=1.0))
    r1 = extract(m, "fbank", tmp_path / "s1", jobs=1)
    r2 = extract(m, "fbank", tmp_path / "s2", jobs=2, chunk_size=3)
    assert r1.n_computed == r2.n_computed == 40
    with FeatureStore(tmp_path / "s1", "fbank") as s1, FeatureStore(tmp_path / "s2", "fbank") as s2:
        np.testing.assert_array_equal(s1.load(m).stack(), s2.load(m).stack())
    files = [p for p in Path(r2.store_dir).rglob("*") if p.is_file()]
    assert len(files) <= 6, files  # one data file and an index, not one file per clip


def test_torn_tail_from_a_killed_writer_is_cut_off(tmp_path):
    m = Manifest.read(_dataset(tmp_path, 3, duration=1.0))
    report = extract(m, "fbank", tmp_path / "store", jobs=1)
    data = Path(report.store_dir) / "data.bin"
    size = data.stat().st_size
    with open(data, "ab") as f:
        f.write(b"\xff" * 1000)  # what a writer killed between append and commit leaves behind
    with FeatureStore(tmp_path / "store", "fbank") as store:
        with store.writer():
            pass
        assert data.stat().st_size == size
        np.testing.assert_array_equal(store.load(m).arrays[1], fbank(load(m.paths()[1], sr=16000)))


def test_second_writer_is_refused(tmp_path):
    with FeatureStore(tmp_path / "store", "fbank") as a, FeatureStore(tmp_path / "store", "fbank") as b:
        with a.writer():
            # this process holds the lock itself (waiting for it would never end); from another
            # process, b.writer() says "another process is writing" and wait=True waits (test below)
            for wait in (False, True):
                with pytest.raises(DataError, match="this process already has a writer open"):
                    b.writer(wait=wait)
        with b.writer(wait=True) as writer:  # released: taken at once
            assert not writer.waited


def test_a_second_extraction_waits_for_the_writer_and_skips_what_it_stored(tmp_path):
    from earmark.features.store import clip_key, clips_from_manifest

    mpath = _dataset(tmp_path, 5, duration=1.0, channels=1)
    m = Manifest.read(mpath)
    cmd = [sys.executable, "-m", "earmark", "extract", str(mpath), "-f", "fbank", "-s", str(tmp_path / "store"),
           "-j", "1", "--no-progress"]
    with FeatureStore(tmp_path / "store", "fbank") as store, store.writer() as writer:  # the other writer
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stderr.readline()  # returns when the extraction says it waits (or ends)
        while line and "waiting for it to finish" not in line:
            line = proc.stderr.readline()
        assert "another process is writing this feature store; waiting for it to finish" in line
        assert proc.poll() is None
        refused = subprocess.run([sys.executable, "-c", "import sys; from earmark.features.store import FeatureStore; "
                                  "FeatureStore(sys.argv[1], 'fbank').writer()", str(tmp_path / "store")],
                                 capture_output=True, text=True, timeout=120)  # a writer that does not wait
        assert "another process is writing this feature store; wait for it to finish" in refused.stderr
        first_two = clips_from_manifest(m)[:2]
        writer.add([(c, *clip_key(c), fbank(load(c.path, sr=16000))) for c in first_two])
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "5 clips, 2 already stored, 3 computed, 0 failed" in out.replace("\n", " ")
    with FeatureStore(tmp_path / "store", "fbank") as store:
        assert len(store) == 5
        for path, x in zip(m.paths(), store.load(m).arrays):
            np.testing.assert_array_equal(x, fbank(load(path, sr=16000)))


def test_stack_names_missing_clips_and_shape_mismatch(tmp_path):
    sf.write(tmp_path / "a.wav", music_like(16000, 1.0), 16000)
    sf.write(tmp_path / "b.wav", music_like(16000, 2.0), 16000)
    m = Manifest.from_frame(pd.DataFrame({"path": ["a.wav", "b.wav"], "label": ["x", "y"]}), tmp_path)
    with FeatureStore(tmp_path / "store", "fbank") as store:
        with pytest.raises(DataError, match="2 clip\\(s\\) have no stored features"):
            store.load(m).stack()
    extract(m, "fbank", tmp_path / "store", jobs=1)
    with FeatureStore(tmp_path / "store", "fbank") as store:
        with pytest.raises(DataError, match="different shapes"):
            store.load(m).stack()
        assert store.load([Clip("a", str(tmp_path / "a.wav"))]).stack().shape == (1, 99, 40)


@pytest.mark.slow
def test_kill_9_then_rerun_keeps_finished_work_and_computes_only_the_rest(tmp_path):
    mpath = _dataset(tmp_path, 600, duration=1.0, channels=1)
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "earmark", "extract", str(mpath), "--features", "fbank", "--store", str(store),
           "--jobs", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    index = None
    deadline = time.monotonic() + 120
    committed = 0
    # Wait for the first committed chunk (polling the index the writer commits to), then kill -9.
    while time.monotonic() < deadline and proc.poll() is None:
        if index is None:
            found = list(store.glob("fbank-*/index.sqlite"))
            index = found[0] if found else None
        if index is not None:
            try:
                with sqlite3.connect(index, timeout=1) as db:
                    committed = db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
            except sqlite3.OperationalError:
                committed = 0
            if committed > 0:
                os.kill(proc.pid, signal.SIGKILL)
                break
        time.sleep(0.002)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "extraction finished before it could be killed"

    m = Manifest.read(mpath)
    with FeatureStore(store, "fbank") as fs:
        kept = len(fs)
    assert 0 < kept < 600
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{kept} already stored, {600 - kept} computed, 0 failed" in rerun.stdout
    fresh = extract(m, "fbank", tmp_path / "fresh", jobs=1)
    assert fresh.n_computed == 600
    with FeatureStore(store, "fbank") as a, FeatureStore(tmp_path / "fresh", "fbank") as b:
        np.testing.assert_array_equal(a.load(m).stack(), b.load(m).stack())


def test_offline_copies_get_their_own_store_folder_and_are_reproducible(tmp_path):
    from earmark.augment import offline_copies

    m = Manifest.read(_dataset(tmp_path, 4, sr=16000, duration=1.0, channels=1))
    first, second = offline_copies([{"name": "gain", "db": [-12, -6]}, {"name": "spec_augment", "mask_value": 0.0}],
                                   2, seed=3)
    plain = extract(m, "fbank", tmp_path / "store", jobs=1)
    report = extract(m, "fbank", tmp_path / "store", jobs=2, augment=first)
    assert report.ok and report.n_computed == 4 and report.store_dir != plain.store_dir
    again = extract(m, "fbank", tmp_path / "other", jobs=1, augment=first, chunk_size=1)  # other chunking, 1 worker
    with FeatureStore(tmp_path / "store", "fbank") as s0, FeatureStore(tmp_path / "store", "fbank", augment=first) as s1, \
            FeatureStore(tmp_path / "other", "fbank", augment=first) as s1b:
        originals, copies, copies_b = s0.load(m).arrays, s1.load(m).arrays, s1b.load(m).arrays
        assert '"augment"' in (s1.dir / "params.json").read_text()
        for x, c, cb in zip(originals, copies, copies_b):
            np.testing.assert_array_equal(c, cb)  # the same copy whichever worker or chunk made it
            assert c.shape == x.shape and not np.array_equal(c, x)
            masked = c == 0.0
            assert masked.all(axis=1).any() or masked.all(axis=0).any()  # spec_augment masked bands or frames
            d = (x - c)[~masked]  # gain: -12..-6 dB lower everywhere (20 log10 of power -> 2 x 10 log10)
            assert d.size and d.min() > 2 * 6 - 0.1 and d.max() < 2 * 12 + 0.1
    assert again.n_computed == 4
    assert extract(m, "fbank", tmp_path / "store", jobs=1, augment=first).n_cached == 4
    assert extract(m, "fbank", tmp_path / "store", jobs=1, augment=second).n_computed == 4  # copy 2: new folder


def test_an_implementation_version_above_1_keys_a_new_store_folder(tmp_path, monkeypatch):
    import dataclasses

    from earmark.features.base import FEATURES, get_feature

    # Version 1 adds nothing to the key: stores made before versions existed keep their folder.
    assert FeatureStore(tmp_path, "fbank").dir.name == "fbank-d3b5c7f74ea1"
    dirs = []
    for version in (1, 2):  # the same feature, its implementation changed (version raised)
        monkeypatch.setitem(FEATURES._items, "fbank_changed", dataclasses.replace(get_feature("fbank"), name="fbank_changed",
                                                                                 version=version))
        dirs.append(FeatureStore(tmp_path, "fbank_changed").dir)
    assert dirs[0] != dirs[1]
    assert "versions" not in json.loads((dirs[0] / "params.json").read_text())
    assert json.loads((dirs[1] / "params.json").read_text())["versions"] == {"feature:fbank_changed": 2}
