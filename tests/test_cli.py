"""The `earmark` command as a user runs it: real files, real processes where it matters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from earmark.cli import main
from tests.conftest import music_like


def _class_folders(root: Path, per_class: int = 5) -> Path:
    for c, f0 in (("low", 110.0), ("high", 880.0)):
        for i in range(per_class):
            (root / c).mkdir(parents=True, exist_ok=True)
            sf.write(root / c / f"{c}{i}.wav", music_like(22050, 1.0, f0=f0, seed=i), 22050)
    return root


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "earmark", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("demo", "prepare", "extract", "features", "train", "evaluate", "predict", "compare", "tune",
                    "separate", "report", "export", "serve"):
        assert command in out


def test_features_command_lists_registered_features(capsys):
    assert main(["features"]) == 0
    out = capsys.readouterr().out
    for name in ("fbank", "stft", "logmel", "mfcc", "waveform"):
        assert name in out


def test_prepare_then_extract(tmp_path, capsys):
    data = _class_folders(tmp_path / "data")
    manifest = tmp_path / "m.csv"
    assert main(["prepare", "folder", str(data), "--out", str(manifest), "--seed", "3"]) == 0
    df = pd.read_csv(manifest)
    assert len(df) == 10 and set(df["label"]) == {"low", "high"} and set(df["split"]) == {"train", "test"}
    store = tmp_path / "store"
    assert main(["extract", str(manifest), "-f", "mfcc", "-s", str(store), "-j", "1", "--no-progress"]) == 0
    assert "10 clips, 0 already stored, 10 computed, 0 failed" in capsys.readouterr().out
    assert main(["extract", str(manifest), "-f", "mfcc", "-s", str(store), "-j", "1", "--no-progress",
                 "--split", "test"]) == 0
    assert "already stored, 0 computed" in capsys.readouterr().out


def test_extract_lists_failures_and_exits_1(tmp_path, capsys):
    data = _class_folders(tmp_path / "data", per_class=2)
    (data / "low" / "broken.wav").write_bytes(b"not audio at all" * 10)
    manifest = tmp_path / "m.csv"
    assert main(["prepare", "folder", str(data), "--out", str(manifest)]) == 0
    code = main(["extract", str(manifest), "-f", "fbank", "-s", str(tmp_path / "s"), "-j", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert "1 clip(s) failed" in out and "broken.wav" in out and "4 computed" in out


def test_bad_feature_and_bad_parameter_name_the_problem(tmp_path, capsys):
    data = _class_folders(tmp_path / "data", per_class=2)
    manifest = tmp_path / "m.csv"
    main(["prepare", "folder", str(data), "--out", str(manifest)])
    capsys.readouterr()
    assert main(["extract", str(manifest), "-f", "fbnk", "-s", str(tmp_path / "s")]) == 2
    assert "did you mean 'fbank'" in capsys.readouterr().err
    assert main(["extract", str(manifest), "-f", "fbank", "-s", str(tmp_path / "s"), "-p", "n_mel=3"]) == 2
    assert "unknown parameter 'n_mel'" in capsys.readouterr().err
    assert main(["extract", str(manifest), "-f", "fbank", "-s", str(tmp_path / "s"), "-p", "n_mels"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_prepare_unknown_format_and_missing_source(tmp_path, capsys):
    assert main(["prepare", "foldr", str(tmp_path), "--out", str(tmp_path / "m.csv")]) == 2
    assert "did you mean 'folder'" in capsys.readouterr().err
    assert main(["prepare", "folder", str(tmp_path / "nope"), "--out", str(tmp_path / "m.csv")]) != 0
    assert "nope" in capsys.readouterr().err


def test_console_entry_point_keeps_exit_status_and_output(tmp_path):
    """`python -m earmark` runs console_main (the `earmark` script's entry): main's status and all output
    survive its quick exit."""
    ok = subprocess.run([sys.executable, "-m", "earmark", "features"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "fbank" in ok.stdout and "logmel" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "earmark", "prepare", "foldr", str(tmp_path), "--out", str(tmp_path / "m.csv")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "did you mean 'folder'" in bad.stderr


@pytest.mark.slow
def test_demo_runs_offline_and_reuses_its_work(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "earmark", "demo", "--out", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"})
    assert first.returncode == 0, first.stdout + first.stderr
    assert "300 clips, 5 classes" in first.stdout
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == ["mfcc-logreg", "stats518-rf-knn", "stats518-svm"]
    for run in runs:
        metrics = json.loads((out / "runs" / run / "metrics.json").read_text())
        assert metrics["n"] == 90 and metrics["accuracy"] > 0.6, (run, metrics["accuracy"])
    table = (out / "comparison.md").read_text()
    assert all(name in table for name in runs)
    assert all((out / "runs" / run / "report.html").stat().st_size > 10_000 for run in runs)
    page = (out / "comparison" / "index.html").read_text()
    assert all(f"{run}/report.html" in page for run in runs)  # the page links each run's report
    data_files = sorted((out / "features").rglob("data.bin"))
    before = {p: p.stat().st_mtime_ns for p in data_files + sorted((out / "data").rglob("*.wav"))}
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    assert {p: p.stat().st_mtime_ns for p in before} == before  # dataset and features reused, not rewritten


def test_usage_errors_exit_2_with_a_message(capsys):
    assert main(["extract"]) == 2
    assert "Missing argument" in capsys.readouterr().err
    assert main(["no-such-command"]) == 2
