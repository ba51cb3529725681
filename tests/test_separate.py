"""Vocal separation: the REPET-SIM method on real synthetic mixtures, its edge cases, files, CLI, and the
feature pipeline (store key, workers, prediction) with ``audio.separate``."""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from earmark.audio import SEPARATORS, load, separate, separate_files
from earmark.audio.repet import hpss_masks, nn_filter, softmask
from earmark.audio.repet import _median
from earmark.audio.separate import apply_separation, resolve_separation, sdr, si_sdr
from earmark.cli import main
from earmark.config import validate_config
from earmark.data import Manifest
from earmark.errors import ConfigError, DataError
from earmark.features import fbank
from earmark.features.extract import extract
from earmark.features.store import FeatureStore
from earmark.fsutil import exclusive_lock
from earmark.predict import clip_proba
from earmark.run import Run
from earmark.train.experiment import train

SR = 16000


def voice(duration: float = 3.0, seed: int = 0) -> np.ndarray:
    """A sung "voice": a harmonic tone gliding between random notes, with vibrato, two formants, syllables."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * duration)) / SR
    notes = 200 * 2 ** (rng.integers(-5, 8, size=int(duration * 3) + 1) / 12)  # a new note every 1/3 s
    f0 = np.interp(t, np.arange(len(notes)) / 3.0, notes) * (1 + 0.02 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    y = np.zeros_like(t)
    for k in range(1, 30):
        fk = k * f0
        amp = np.exp(-0.5 * ((fk - 700) / 250) ** 2) + 0.6 * np.exp(-0.5 * ((fk - 2200) / 400) ** 2) + 0.1 / k
        y += np.where(fk < SR / 2, amp, 0) * np.sin(k * phase)
    syllables = 0.5 - 0.5 * np.cos(2 * np.pi * ((t * 3) % 1.0))
    return (0.5 * y * syllables / np.abs(y).max()).astype(np.float32)


def accompaniment(duration: float = 3.0, seed: int = 1) -> np.ndarray:
    """A 1 s loop of two decaying chords and four noise-burst "drums", repeated."""
    rng = np.random.default_rng(seed)
    loop = np.zeros(SR)
    t = np.arange(SR // 2) / SR
    for j, chord in enumerate(([110, 138.6, 165], [98, 123.5, 146.8])):
        loop[j * SR // 2:(j + 1) * SR // 2] = np.exp(-2 * t) * sum(
            np.sin(2 * np.pi * f * h * t) / h for f in chord for h in range(1, 6))
    burst = rng.standard_normal(SR // 16) * np.exp(-np.arange(SR // 16) / (SR / 200))
    for start in range(0, SR, SR // 4):
        loop[start:start + SR // 16] += 2 * burst
    y = np.tile(loop, int(np.ceil(duration)))[: int(SR * duration)]
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def _write(path: Path, y: np.ndarray, sr: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr, subtype="FLOAT")
    return path


# --------------------------------------------------------------------------- the method


def test_repet_improves_sdr_over_the_mixture():
    v = np.stack([voice(seed=s) for s in range(3)])
    a = np.stack([accompaniment(seed=s) for s in range(3)])
    mix = v + a
    est_v, est_a = separate(mix, SR)
    assert est_v.shape == est_a.shape == mix.shape and est_v.dtype == est_a.dtype == np.float32
    assert np.all(sdr(v, est_v) > sdr(v, mix) + 5)  # ~ -1.5 dB -> ~ +7.5 dB
    assert np.all(si_sdr(v, est_v) > si_sdr(v, mix) + 5)
    assert np.all(sdr(a, est_a) > sdr(a, mix) + 4)
    np.testing.assert_allclose(est_v + est_a, mix, atol=1e-6)  # accompaniment = mixture - vocals


def test_a_batch_equals_clip_by_clip_and_torch_input_is_accepted():
    mix = np.stack([voice(seed=s) + accompaniment(seed=s) for s in range(2)])
    batch_v, _ = separate(mix, SR)
    for i in range(2):
        one_v, _ = separate(mix[i], SR)
        np.testing.assert_allclose(one_v, batch_v[i], atol=1e-5)
    t_v, _ = separate(torch.from_numpy(mix), SR)
    np.testing.assert_allclose(t_v, batch_v, atol=1e-6)
    assert separate(mix.reshape(2, 1, -1), SR)[0].shape == (2, 1, mix.shape[-1])


def test_silence_a_pure_tone_and_tiny_or_bad_inputs():
    zeros = np.zeros(SR * 2, np.float32)
    v, a = separate(zeros, SR)
    assert np.all(v == 0) and np.all(a == 0)
    t = np.arange(SR * 2) / SR
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    v, a = separate(tone, SR)
    assert np.isfinite(v).all() and np.isfinite(a).all()
    # nothing in a steady tone is a voice; only its abrupt start and end leave a trace
    assert np.sum(v**2) < 1e-2 * np.sum(tone**2)
    assert np.sum(v[SR // 10 : -SR // 10] ** 2) < 1e-6 * np.sum(tone**2)
    quiet = np.full(SR, 1e-30, np.float32)  # denormal-level input: no NaN either
    assert np.isfinite(separate(quiet, SR)[0]).all()
    with pytest.raises(DataError, match="1 sample.* shorter than one analysis window"):
        separate(np.ones(1, np.float32), SR)
    with pytest.raises(DataError, match="non-finite"):
        separate(np.array([0.0, np.nan] * SR, np.float32), SR)
    with pytest.raises(DataError, match="n_samples >= 1"):
        separate(np.zeros(0, np.float32), SR)
    with pytest.raises(ConfigError, match="sr must be a positive integer"):
        separate(zeros, 0)


def test_nn_filter_softmask_and_hpss_match_librosa():
    rng = np.random.default_rng(0)
    t, w = 40, 6
    S = rng.random((30, t)).astype(np.float32)
    k = t - 2 * w + 1  # every interior frame has exactly k neighbours: librosa's choice equals the k nearest
    ref = librosa.decompose.nn_filter(S, aggregate=np.median, metric="cosine", width=w, k=k)
    ours = nn_filter(torch.from_numpy(S)[None], width=w, k=k)[0].numpy()
    np.testing.assert_allclose(ours[:, w - 1 : t - w + 1], ref[:, w - 1 : t - w + 1], rtol=1e-6)
    X, R = rng.random((2, 20, 30)).astype(np.float32)
    X[0] = R[0] = 0
    np.testing.assert_allclose(softmask(torch.from_numpy(X), torch.from_numpy(R), 2.0).numpy(),
                               librosa.util.softmask(X, R, power=2), rtol=1e-5)
    H, P = hpss_masks(torch.from_numpy(S)[None], kernel=7)
    ref_h, ref_p = librosa.decompose.hpss(S, kernel_size=7, mask=True)
    np.testing.assert_allclose(H[0].numpy(), ref_h, rtol=1e-5)
    np.testing.assert_allclose(P[0].numpy(), ref_p, rtol=1e-5)


@pytest.mark.parametrize("n", [1, 2, 5, 10, 11, 32, 33, 40])
def test_median_of_neighbours_equals_numpy(n):
    x = np.random.default_rng(n).standard_normal((n, 64)).astype(np.float32)
    np.testing.assert_allclose(_median([torch.from_numpy(r) for r in x]).numpy(), np.median(x, axis=0), rtol=1e-6)


@pytest.mark.parametrize("params", [{"hpss": "before"}, {"hpss": "after"}, {"k": None, "width": 2.0, "margin_v": 10},
                                    {"fmin": 100.0, "n_fft": 1024, "hop_length": 128}])
def test_every_variant_is_finite_and_keeps_the_mixture(params):
    mix = voice() + accompaniment()
    v, a = separate(mix, SR, **params)
    assert np.isfinite(v).all() and v.shape == mix.shape
    np.testing.assert_allclose(v + a, mix, atol=1e-6)


def test_registry_and_parameter_errors():
    assert {"repet", "demucs", "spleeter"} <= set(SEPARATORS.names())
    y = voice()
    with pytest.raises(ConfigError, match="did you mean 'repet'"):
        separate(y, SR, method="rpet")
    with pytest.raises(ConfigError, match="unknown parameter 'margin'.*known: n_fft"):
        separate(y, SR, margin=2)
    with pytest.raises(ConfigError, match="repet: hpss must be 'none', 'before' or 'after', got 'both'"):
        separate(y, SR, hpss="both")
    with pytest.raises(ConfigError, match="repet: k must be a positive integer"):
        separate(y, SR, k=0)


@pytest.mark.parametrize("method", ["demucs", "spleeter"])
def test_optional_backends_say_what_to_install(method):
    if importlib.util.find_spec(method) is not None:
        pytest.skip(f"{method} is installed here")
    with pytest.raises(ConfigError, match=f"pip install {method}"):
        separate(voice(), SR, method=method)
    with pytest.raises(ConfigError, match=f"audio.separate.method: .*pip install {method}"):
        validate_config({"data": {"manifest": "m.csv"}, "audio": {"separate": {"method": method}}})


# --------------------------------------------------------------------------- files and the command


def test_separate_files_writes_both_stems_and_reports_bad_files(tmp_path):
    mix = voice() + accompaniment()
    _write(tmp_path / "in" / "song.wav", mix)
    _write(tmp_path / "in" / "sub" / "other.wav", np.stack([mix, mix], axis=1), sr=22050)  # stereo, other rate
    (tmp_path / "in" / "broken.wav").write_bytes(b"RIFF....WAVEfmt not audio")
    _write(tmp_path / "in" / "tiny.wav", np.zeros(10, np.float32))
    report = separate_files([tmp_path / "in", tmp_path / "missing.wav"], tmp_path / "out", jobs=1)
    assert report.n_files == 5 and len(report.outputs) == 2 and not report.ok
    reasons = dict(report.failures)
    assert set(reasons) == {str(tmp_path / "in" / "broken.wav"), str(tmp_path / "in" / "tiny.wav"),
                            str(tmp_path / "missing.wav")}
    assert "shorter than one analysis window" in reasons[str(tmp_path / "in" / "tiny.wav")]
    assert "file not found" in reasons[str(tmp_path / "missing.wav")]
    v, sr = sf.read(tmp_path / "out" / "song.vocals.wav", dtype="float32")
    a, _ = sf.read(tmp_path / "out" / "song.accompaniment.wav", dtype="float32")
    assert sr == SR and v.shape == mix.shape
    np.testing.assert_allclose(v + a, mix, atol=2 / 32768)  # two 16-bit roundings
    np.testing.assert_allclose(v, separate(mix, SR)[0], atol=1 / 32768)
    assert sf.info(tmp_path / "out" / "sub" / "other.vocals.wav").samplerate == 22050  # its own rate
    assert not list((tmp_path / "out").rglob("*.tmp"))
    assert report.audio_seconds == pytest.approx(3.0 + len(mix) / 22050)


def test_separate_files_at_a_fixed_rate_in_worker_processes_and_name_clashes(tmp_path):
    mix = voice(2.0) + accompaniment(2.0)
    for i in range(3):
        _write(tmp_path / "in" / f"c{i}.wav", np.roll(mix, 1000 * i), sr=22050)
    report = separate_files([tmp_path / "in"], tmp_path / "out", sr=SR, jobs=2, subtype="FLOAT")
    assert report.ok and len(report.outputs) == 3
    info = sf.info(tmp_path / "out" / "c1.vocals.wav")
    assert info.samplerate == SR and info.subtype == "FLOAT"
    expected, _ = separate(load(tmp_path / "in" / "c1.wav", sr=SR), SR)
    np.testing.assert_allclose(sf.read(tmp_path / "out" / "c1.vocals.wav", dtype="float32")[0], expected, atol=1e-6)
    _write(tmp_path / "other" / "c1.wav", mix)
    with pytest.raises(ConfigError, match="would both be written as c1.vocals.wav"):
        separate_files([tmp_path / "in", tmp_path / "other" / "c1.wav"], tmp_path / "out2")


def test_cli_separate(tmp_path, capsys):
    _write(tmp_path / "a.wav", voice() + accompaniment())
    (tmp_path / "bad.wav").write_bytes(b"nope" * 20)
    cmd = ["separate", str(tmp_path / "a.wav"), "--out", str(tmp_path / "out"), "-j", "1", "--no-progress"]
    assert main(cmd) == 0
    assert "1 files, 1 separated, 0 already separated, 0 failed" in capsys.readouterr().out
    assert (tmp_path / "out" / "a.vocals.wav").exists() and (tmp_path / "out" / "a.accompaniment.wav").exists()
    assert main(cmd) == 0
    assert "1 files, 0 separated, 1 already separated, 0 failed" in capsys.readouterr().out
    assert main([*cmd, "--overwrite"]) == 0
    assert "1 files, 1 separated, 0 already separated, 0 failed" in capsys.readouterr().out
    code = main(["separate", str(tmp_path / "a.wav"), str(tmp_path / "bad.wav"), "--out", str(tmp_path / "o2"),
                 "-j", "1", "--no-progress", "-p", "hpss=before", "--sr", "8000"])
    out = capsys.readouterr().out
    assert code == 1 and "1 file(s) failed" in out and "bad.wav" in out
    assert sf.info(tmp_path / "o2" / "a.vocals.wav").samplerate == 8000
    assert main(["separate", str(tmp_path / "a.wav"), "--out", str(tmp_path / "o3"), "--method", "repe"]) == 2
    assert "did you mean 'repet'" in capsys.readouterr().err
    assert main(["separate", str(tmp_path / "a.wav"), "--out", str(tmp_path / "o3"), "-p", "power=-1"]) == 2
    assert "params.power: must be a number > 0, got -1" in capsys.readouterr().err


# --------------------------------------------------------------------------- resuming: OUT/separated.jsonl


def _clips(folder: Path, n: int, duration: float = 1.0) -> list[Path]:
    """``n`` different 1 s mixtures ``folder/c00.wav``, ...; the last one in a subfolder."""
    names = [f"c{i:02d}.wav" for i in range(n - 1)] + [f"sub/c{n - 1:02d}.wav"]
    return [_write(folder / name, voice(duration, seed=i) + accompaniment(duration, seed=i))
            for i, name in enumerate(names)]


def _wavs(out: Path) -> dict[str, tuple[int, bytes]]:
    """Every WAV under ``out``: relative path -> (mtime_ns, bytes)."""
    return {str(p.relative_to(out)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(out.rglob("*.wav"))}


def _record(out: Path) -> list[dict]:
    """The record's lines that parse (read here without earmark's reader)."""
    lines = []
    for line in (out / "separated.jsonl").read_bytes().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pass
    return lines


def _names(items) -> set[str]:
    return {Path(o[1]).name.removesuffix(".vocals.wav") for o in items}


def test_a_rerun_skips_finished_files_and_does_not_rewrite_them(tmp_path):
    sources = _clips(tmp_path / "in", 3)
    first = separate_files([tmp_path / "in"], tmp_path / "out", jobs=2)
    assert first.ok and len(first.outputs) == 3 and first.n_skipped == 0
    before = _wavs(tmp_path / "out")
    assert len(before) == 6
    lines = _record(tmp_path / "out")
    assert sorted(line["name"] for line in lines) == ["c00", "c01", "sub/c02"]
    line = next(line for line in lines if line["name"] == "sub/c02")
    st = sources[2].stat()
    assert (line["source"], line["size"], line["mtime_ns"]) == (str(sources[2].resolve()), st.st_size, st.st_mtime_ns)
    assert line["settings"] == {"method": "repet", "version": 1, "params": resolve_separation("repet")["params"],
                                "sr": None, "subtype": "PCM_16"}
    vocals = tmp_path / "out" / "sub" / "c02.vocals.wav"
    assert line["outputs"]["vocals"] == {"size": vocals.stat().st_size, "mtime_ns": vocals.stat().st_mtime_ns}

    again = separate_files([tmp_path / "in"], tmp_path / "out", jobs=1)
    assert again.ok and again.outputs == [] and again.n_skipped == 3 and again.audio_seconds == 0
    assert again.skipped == first.outputs  # same (input, vocals, accompaniment), in input order
    assert _wavs(tmp_path / "out") == before  # same bytes, not rewritten (same mtime_ns)
    assert len(_record(tmp_path / "out")) == 3  # nothing appended
    # the resolved parameters are the key: margin_v=1 is the default 1.0
    assert separate_files([tmp_path / "in"], tmp_path / "out", params={"margin_v": 1}, jobs=1).n_skipped == 3


def test_a_changed_source_is_separated_again_and_only_it(tmp_path):
    sources = _clips(tmp_path / "in", 3)
    separate_files([tmp_path / "in"], tmp_path / "out", jobs=1)
    before = _wavs(tmp_path / "out")
    old = sources[1].stat()
    new_mix = voice(1.2, seed=7) + accompaniment(1.2, seed=7)  # other content, and other length
    _write(sources[1], new_mix)
    assert (sources[1].stat().st_size, sources[1].stat().st_mtime_ns) != (old.st_size, old.st_mtime_ns)
    report = separate_files([tmp_path / "in"], tmp_path / "out", jobs=2)
    assert report.ok and _names(report.outputs) == {"c01"} and _names(report.skipped) == {"c00", "c02"}
    after = _wavs(tmp_path / "out")
    assert {k for k in after if after[k] != before[k]} == {"c01.vocals.wav", "c01.accompaniment.wav"}
    v, _ = sf.read(tmp_path / "out" / "c01.vocals.wav", dtype="float32")
    np.testing.assert_allclose(v, separate(new_mix, SR)[0], atol=1 / 32768)
    assert [line["name"] for line in _record(tmp_path / "out")] == ["c00", "c01", "sub/c02", "c01"]
    # the last line per name wins: the next run skips all three
    assert separate_files([tmp_path / "in"], tmp_path / "out", jobs=1).n_skipped == 3
    assert _wavs(tmp_path / "out") == after
    lines = _record(tmp_path / "out")  # that run dropped the superseded line: one line per name
    assert [line["name"] for line in lines] == ["c00", "c01", "sub/c02"]
    assert lines[1]["mtime_ns"] == sources[1].stat().st_mtime_ns  # the newer one


def test_other_settings_separate_everything_again(tmp_path):
    _clips(tmp_path / "in", 2)
    out = tmp_path / "out"

    def run(**kwargs):
        report = separate_files([tmp_path / "in"], out, jobs=1, **kwargs)
        assert report.ok
        return len(report.outputs), report.n_skipped

    assert run() == (2, 0)
    assert run(params={"margin_v": 2}) == (2, 0)
    assert run(params={"margin_v": 2}) == (0, 2)
    assert run(params={"margin_v": 2}, sr=8000) == (2, 0)
    assert sf.info(out / "c00.vocals.wav").samplerate == 8000
    assert run(params={"margin_v": 2}, sr=8000, subtype="FLOAT") == (2, 0)
    assert run(params={"margin_v": 2}, sr=8000, subtype="FLOAT") == (0, 2)
    assert run(method="repet") == (2, 0)  # back to the first settings: the outputs are no longer theirs
    assert sf.info(out / "c00.vocals.wav").samplerate == SR


def test_a_deleted_or_replaced_output_is_separated_again(tmp_path):
    _clips(tmp_path / "in", 3)
    out = tmp_path / "out"
    separate_files([tmp_path / "in"], out, jobs=1)
    before = _wavs(out)
    (out / "c01.accompaniment.wav").unlink()
    _write(out / "sub" / "c02.vocals.wav", np.zeros(100, np.float32))  # not the file the record describes
    report = separate_files([tmp_path / "in"], out, jobs=1)
    assert report.ok and _names(report.outputs) == {"c01", "c02"} and report.n_skipped == 1
    after = _wavs(out)
    assert {k: v[1] for k, v in after.items()} == {k: v[1] for k, v in before.items()}  # the same bytes again
    assert after["c00.vocals.wav"] == before["c00.vocals.wav"]  # untouched


def test_a_torn_last_line_of_the_record_is_ignored(tmp_path):
    _clips(tmp_path / "in", 3)
    out = tmp_path / "out"
    separate_files([tmp_path / "in"], out, jobs=1)
    record = out / "separated.jsonl"
    data = record.read_bytes()
    record.write_bytes(data[:-40])  # as a kill in the middle of the last append would leave it
    torn_name = json.loads(data.splitlines()[-1])["name"]
    report = separate_files([tmp_path / "in"], out, jobs=1)
    assert report.ok and _names(report.outputs) == {Path(torn_name).name} and report.n_skipped == 2
    lines = record.read_bytes().splitlines()
    assert len(lines) == 3 and json.loads(lines[-1])["name"] == torn_name  # the torn line dropped, its file redone
    assert separate_files([tmp_path / "in"], out, jobs=1).n_skipped == 3
    # a torn line in the middle (a record from before compaction can hold one) is ignored and dropped
    record.write_bytes(data[:-40] + b"\n" + record.read_bytes())
    assert separate_files([tmp_path / "in"], out, jobs=1).n_skipped == 3
    assert sorted(line["name"] for line in _record(out)) == ["c00", "c01", "sub/c02"]
    assert len(record.read_bytes().splitlines()) == 3


def test_overwrite_separates_everything_again(tmp_path):
    _clips(tmp_path / "in", 2)
    out = tmp_path / "out"
    separate_files([tmp_path / "in"], out, jobs=1)
    before = _wavs(out)
    report = separate_files([tmp_path / "in"], out, jobs=1, overwrite=True)
    assert report.ok and len(report.outputs) == 2 and report.n_skipped == 0
    after = _wavs(out)
    assert all(after[k][0] != before[k][0] and after[k][1] == before[k][1] for k in before)  # rewritten, same bytes
    assert len(_record(out)) == 4
    assert separate_files([tmp_path / "in"], out, jobs=1).n_skipped == 2


def test_failures_are_not_recorded_and_a_rerun_retries_them(tmp_path):
    _clips(tmp_path / "in", 2)
    broken = tmp_path / "in" / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEfmt not audio")
    out = tmp_path / "out"
    first = separate_files([tmp_path / "in"], out, jobs=1)
    assert len(first.outputs) == 2 and [f for f, _ in first.failures] == [str(broken)]
    assert "broken" not in {line["name"] for line in _record(out)}
    again = separate_files([tmp_path / "in"], out, jobs=1)  # still broken: tried again, failing again
    assert again.n_skipped == 2 and [f for f, _ in again.failures] == [str(broken)]
    _write(broken, voice(1.0))  # repaired
    fixed = separate_files([tmp_path / "in"], out, jobs=1)
    assert fixed.ok and _names(fixed.outputs) == {"broken"} and fixed.n_skipped == 2


def test_a_killed_run_resumes_where_it_stopped(tmp_path):
    n = 30
    _clips(tmp_path / "in", n)
    # The last input is a FIFO: opening it blocks until a writer comes, so the run cannot finish
    # before it is killed, however fast the machine; it becomes a real file before the rerun.
    last = tmp_path / "last.wav"
    os.mkfifo(last)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "earmark", "separate", str(tmp_path / "in"), str(last), "--out", str(out),
           "-j", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    record = out / "separated.jsonl"
    deadline = time.monotonic() + 60
    try:
        while not (record.exists() and b"\n" in record.read_bytes()):  # poll until one file is recorded
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no file recorded in 60 s"
            time.sleep(0.002)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    recorded = {line["name"] for line in _record(out)}
    assert 1 <= len(recorded) < n + 1  # killed part-way (the FIFO is never done)
    done_before = {k: v for k, v in _wavs(out).items() if k.split(".")[0] in recorded}
    last.unlink()
    _write(last, voice(1.0, seed=99) + accompaniment(1.0, seed=99))

    rerun = separate_files([tmp_path / "in", last], out, jobs=1)
    everything = {f"c{i:02d}" for i in range(n)} | {"last"}
    assert rerun.ok and rerun.n_skipped == len(recorded)
    assert _names(rerun.outputs) | {Path(name).name for name in recorded} == everything
    assert not _names(rerun.outputs) & {Path(name).name for name in recorded}  # only the unrecorded ones
    final = _wavs(out)
    assert all(final[k] == v for k, v in done_before.items())  # the recorded ones were not touched

    unbroken = separate_files([tmp_path / "in", last], tmp_path / "unbroken", jobs=1)
    reference = _wavs(tmp_path / "unbroken")
    assert unbroken.ok and sorted(final) == sorted(reference) and len(final) == 2 * (n + 1)
    for name in final:  # the killed run used another process (thread counts): equal up to PCM rounding
        ours, _ = sf.read(out / name, dtype="int32")
        theirs, _ = sf.read(tmp_path / "unbroken" / name, dtype="int32")
        assert np.abs((ours >> 16) - (theirs >> 16)).max() <= 1, name


def test_one_run_at_a_time_writes_a_folder(tmp_path):
    _clips(tmp_path / "in", 2)
    hold = tmp_path / "hold.wav"
    os.mkfifo(hold)  # the first run blocks reading it, holding the folder, until the test closes it
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "earmark", "separate", str(hold), "--out", str(out), "-j", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while True:  # a writer's open succeeds once the first run has opened the FIFO: it holds the lock by then
            try:
                writer = os.open(hold, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as exc:  # ENXIO: no reader yet
                assert exc.errno == errno.ENXIO, exc
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the first run never opened its input"
                time.sleep(0.002)
        with os.fdopen(writer, "wb"):
            busy = rf"{re.escape(str(out))}: another earmark separate is writing this folder"
            with pytest.raises(DataError, match=busy):
                separate_files([tmp_path / "in"], out, jobs=1)
            assert _wavs(out) == {}  # the refused run wrote nothing
        printed, _ = proc.communicate(timeout=60)  # the empty FIFO is a bad file: reported, exit 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1 and b"hold.wav" in printed
    report = separate_files([tmp_path / "in"], out, jobs=1)  # released with the first run
    assert report.ok and len(report.outputs) == 2
    with exclusive_lock(out / ".separate.lock", "held here"):  # released by this one; refused in-process too
        with pytest.raises(DataError, match=busy):
            separate_files([tmp_path / "in"], out, jobs=1)


# --------------------------------------------------------------------------- the feature pipeline


def _dataset(root: Path, n: int = 8, duration: float = 3.0) -> Path:
    rows = []
    for i in range(n):
        sung = i % 2 == 0
        y = accompaniment(duration, seed=i) + (voice(duration, seed=i) if sung else 0)
        rel = f"audio/clip{i}.wav"
        _write(root / rel, y)
        rows.append({"id": f"clip{i}", "path": rel, "label": "sung" if sung else "instrumental",
                     "split": "test" if i >= n - 2 else "train", "group": f"clip{i}"})
    path = root / "manifest.csv"
    Manifest.from_frame(pd.DataFrame(rows), root).write(path)
    return path


def test_separated_features_have_their_own_store_are_cached_and_equal_manual_ones(tmp_path):
    m = Manifest.read(_dataset(tmp_path, n=6))
    sep = {"method": "repet", "params": {"margin_v": 2}}
    plain = extract(m, "fbank", tmp_path / "store", jobs=1)
    separated = extract(m, "fbank", tmp_path / "store", jobs=2, separate=sep)
    assert plain.ok and separated.ok and separated.n_computed == 6
    assert plain.store_dir != separated.store_dir
    again = extract(m, "fbank", tmp_path / "store", jobs=1, separate={"params": {"margin_v": 2.0}, "stem": "vocals"})
    assert again.n_computed == 0 and again.n_cached == 6 and again.store_dir == separated.store_dir
    with FeatureStore(tmp_path / "store", "fbank", separate=sep) as store:
        assert store.separate == resolve_separation(sep) and '"separate"' in (store.dir / "params.json").read_text()
        arrays = store.load(m).arrays
    with FeatureStore(tmp_path / "store", "fbank") as store:
        plain_arrays = store.load(m).arrays
    for path, x, p in zip(m.paths(), arrays, plain_arrays):
        y = load(path, sr=16000)
        np.testing.assert_allclose(x, fbank(separate(y, 16000, margin_v=2.0)[0]), atol=1e-3)
        assert not np.allclose(x, p, atol=1e-1)
    acc = extract(m, "fbank", tmp_path / "store", jobs=1, separate={"stem": "accompaniment"})
    assert acc.store_dir not in (plain.store_dir, separated.store_dir)


def test_separation_failure_is_reported_per_clip(tmp_path):
    _write(tmp_path / "short.wav", np.ones(1000, np.float32) * 0.1)  # one fbank frame, but no separation window
    _write(tmp_path / "ok.wav", voice())
    m = Manifest.from_frame(pd.DataFrame({"id": ["short", "ok"], "path": ["short.wav", "ok.wav"], "label": ["a", "b"],
                                          "split": ["train", "train"], "group": ["1", "2"]}), tmp_path)
    report = extract(m, "fbank", tmp_path / "store", jobs=1, separate={"method": "repet"})
    assert report.n_computed == 1 and len(report.failures) == 1
    assert "separation (repet) failed" in report.failures[0].reason and "shorter than one analysis window" in report.failures[0].reason


def test_a_run_trained_with_separation_predicts_with_it(tmp_path):
    manifest = _dataset(tmp_path, n=10)
    raw = {"data": {"manifest": str(manifest)},
           "audio": {"separate": {"method": "repet"}},
           "features": {"name": "fbank", "pool": ["mean", "std"], "jobs": 1, "store": str(tmp_path / "store")},
           "model": {"name": "logreg"}, "train": {"search": {"enabled": False}}}
    run_dir = train(validate_config(raw), tmp_path / "run")
    run = Run.load(run_dir)
    assert run.config.audio.separate.method == "repet"
    with FeatureStore(tmp_path / "store", "fbank", separate={"method": "repet"}) as separated:
        assert len(separated) == 10
    with FeatureStore(tmp_path / "store", "fbank") as plain:
        assert len(plain) == 0  # nothing was extracted without separation
    path = Manifest.read(manifest).paths()[-1]
    proba, n = clip_proba(run, path)
    y = load(path, sr=16000)
    expected = run.predict_proba(run.inputs([fbank(separate(y, 16000)[0])]))[0]
    unseparated = run.predict_proba(run.inputs([fbank(y)]))[0]
    assert n == 1
    np.testing.assert_allclose(proba, expected, atol=1e-6)
    assert not np.allclose(proba, unseparated, atol=1e-6)
    # windows are separated one by one, as the training clips were
    run.config.eval.window, run.config.eval.hop = 1.5, 0.75
    proba_w, n_w = clip_proba(run, path)
    windows = np.stack([y[i : i + 24000] for i in (0, 12000, 24000)])
    settings = resolve_separation(run.config.audio.separate)
    expected_w = run.predict_proba(run.inputs(list(fbank(apply_separation(windows, 16000, settings))))).mean(axis=0)
    assert n_w == 3
    np.testing.assert_allclose(proba_w, expected_w, atol=1e-6)


@pytest.mark.parametrize("shape, size", [((30, 40), 7), ((50, 9), 31), ((3, 2), 9)])
def test_median_filter_equals_scipy_with_mirrored_edges(shape, size):
    import scipy.ndimage

    from earmark.audio.repet import median_filter

    S = np.random.default_rng(size).random((2, *shape)).astype(np.float32)
    for dim, footprint in ((-1, (1, 1, size)), (-2, (1, size, 1))):
        ref = scipy.ndimage.median_filter(S, size=footprint, mode="reflect")
        np.testing.assert_allclose(median_filter(torch.from_numpy(S), size, dim).numpy(), ref)


def test_long_inputs_are_processed_in_blocks_with_the_same_result(monkeypatch):
    import earmark.audio.repet as repet_module

    mix = np.stack([voice(2.0, seed=s) + accompaniment(2.0, seed=s) for s in range(2)])
    whole = separate(mix, SR, hpss="before")[0]
    monkeypatch.setattr(repet_module, "_GATHER_BUDGET", 5000)  # a few frames / bins per block
    np.testing.assert_allclose(separate(mix, SR, hpss="before")[0], whole, atol=1e-6)


def test_resolve_separation_takes_a_method_name_and_refuses_other_types():
    assert resolve_separation("repet") == resolve_separation({"method": "repet"})
    with pytest.raises(ConfigError, match="separate: expected a method name or a mapping"):
        resolve_separation(3)
