"""The classical track end to end through the CLI: train -> evaluate -> predict -> compare."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from earmark.cli import main
from earmark.data import Manifest
from earmark.data.demo import make_demo_dataset, synth_note
from earmark.fsutil import exclusive_lock


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """A small real demo dataset (5 families x 12 clips of 1 s) and its manifest."""
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), n_per_class=12, duration=1.0, seed=1)


def _config(tmp_path: Path, manifest: Path, **sections) -> Path:
    raw = {"data": {"manifest": str(manifest)},
           "features": {"name": "mfcc", "pool": ["mean", "std"], "jobs": 1, "store": str(tmp_path / "store")},
           "model": {"name": ["logreg", "knn"]},
           "train": {"seed": 0, "search": {"folds": 3}}}
    for key, value in sections.items():
        raw.setdefault(key, {}).update(value)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_train_writes_a_complete_run_and_is_deterministic(tmp_path, demo, capsys):
    cfg = _config(tmp_path, demo)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "run"
    for name in ("config.yaml", "model.skops", "cv_results.csv", "metrics.json", "confusion.png", "failures.csv"):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["n"] == 20 and metrics["accuracy"] > 0.5
    assert set(metrics["top_k_accuracy"]) == {"1", "3"} and metrics["top_k_accuracy"]["3"] >= metrics["accuracy"]
    assert metrics["model"] in {"logreg", "knn"} and metrics["features"] == "mfcc" and metrics["params"] > 0
    assert metrics["inference_ms_per_clip"] > 0
    assert "test: accuracy" in out and "best by cross-validation" in out
    assert len(pd.read_csv(run / "cv_results.csv")) > 4  # both candidates' grids were searched
    assert main(["train", str(cfg), "--out", str(tmp_path / "again"), "--no-progress"]) == 0
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["accuracy"] == metrics["accuracy"] and again["confusion_matrix"] == metrics["confusion_matrix"]
    capsys.readouterr()
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    with exclusive_lock(run / ".train.lock", "held by the test"):  # as a live `earmark train --out run` holds it
        assert main(["train", str(cfg), "--out", str(run), "--no-progress"]) == 1
    assert f"{run}: another earmark train is writing this run folder" in capsys.readouterr().err.replace("\n", "")
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before  # the refused run wrote nothing


def test_evaluate_reports_unseen_labels_and_undecodable_clips(tmp_path, demo, capsys):
    cfg = _config(tmp_path, demo, model={"name": "logreg"}, train={"search": {"enabled": False}})
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    m = Manifest.read(demo)
    df = m.df.copy()
    df["path"] = m.paths()
    sf.write(tmp_path / "kazoo.wav", synth_note("blown", sr=16000, duration=1.0, rng=np.random.default_rng(0)), 16000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    extra = pd.DataFrame({"id": ["kazoo", "broken"], "path": [str(tmp_path / "kazoo.wav"), str(tmp_path / "broken.wav")],
                          "label": ["kazoo", "organ"], "split": ["test", "test"], "group": ["kazoo", "broken"]})
    Manifest.from_frame(pd.concat([df, extra], ignore_index=True), tmp_path).write(tmp_path / "eval.csv")
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), "--manifest", str(tmp_path / "eval.csv"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["n"] == 21 and metrics["unseen_labels"] == {"kazoo": 1} and metrics["n_failed"] == 1
    assert "never saw" in out and "could not be decoded" in out
    assert "broken.wav" in (tmp_path / "run" / "failures-test.csv").read_text()


def test_predict_folder_with_bad_files_and_windowed_long_audio(tmp_path, demo, capsys):
    cfg = _config(tmp_path, demo, model={"name": "logreg"}, train={"search": {"enabled": False}},
                  eval={"window": 1.0, "hop": 0.5, "aggregate": "mean"})
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    folder = tmp_path / "incoming"
    folder.mkdir()
    rng = np.random.default_rng(5)
    long = np.concatenate([synth_note("organ", sr=16000, duration=1.0, rng=rng) for _ in range(4)])
    sf.write(folder / "long_organ.wav", long, 16000)
    sf.write(folder / "pluck.flac", synth_note("plucked", sr=16000, duration=1.0, rng=rng), 16000)
    (folder / "bad.mp3").write_bytes(b"\x00" * 500)
    code = main(["predict", str(tmp_path / "run"), str(folder), "--out", str(tmp_path / "pred.csv")])
    out = capsys.readouterr().out
    assert code == 1 and "1 file(s) failed" in out and "bad.mp3" in out
    rows = {r["id"]: r for r in csv.DictReader(open(tmp_path / "pred.csv"))}
    assert set(rows) == {"long_organ", "pluck"}
    assert int(rows["long_organ"]["windows"]) == 7 and int(rows["pluck"]["windows"]) == 1
    assert rows["long_organ"]["label"] == rows["long_organ"]["top1"]
    p = [float(rows["long_organ"][f"p{i}"]) for i in (1, 2, 3)]
    assert p == sorted(p, reverse=True) and 0 < p[0] <= 1


def test_compare_two_runs(tmp_path, demo, capsys):
    for name, model in (("a", "logreg"), ("b", "knn")):
        cfg = _config(tmp_path, demo, model={"name": model}, train={"search": {"enabled": False}})
        assert main(["train", str(cfg), "--out", str(tmp_path / name), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "table.md")]) == 0
    table = (tmp_path / "table.md").read_text()
    assert "logreg" in table and "knn" in table and "macro F1" in table


@pytest.mark.parametrize(
    "sections, message",
    [
        ({"model": {"name": "svm_rbff"}}, "model.name: unknown model 'svm_rbff'"),
        ({"model": {"name": "logreg", "params": {"C": -1}}, "train": {"search": {"enabled": False}}}, "model.params.C: "),
        ({"model": {"name": "rf"}, "train": {"search": {"grid": {"rf": {"gamma": [0.1]}}}}},
         "train.search.grid.rf.gamma"),
        ({"model": {"name": "logreg"}, "train": {"search": {"folds": 20}}}, "train.search.folds: 20 folds need at least 20 clips in every class"),
        ({"modle": {}}, "modle: unknown key"),
    ],
)
def test_bad_configs_fail_before_training_with_the_key_path(tmp_path, demo, capsys, sections, message):
    cfg = _config(tmp_path, demo, **sections)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "store").exists() and not (tmp_path / "run").exists()  # nothing extracted or written


def test_predict_submission_csv_for_an_unlabelled_folder(tmp_path, demo):
    cfg = _config(tmp_path, demo, model={"name": "logreg"}, train={"search": {"enabled": False}})
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    test = tmp_path / "test"
    test.mkdir()
    for i, family in enumerate(("organ", "plucked")):
        sf.write(test / f"clip{i}.wav", synth_note(family, sr=16000, duration=1.0, rng=np.random.default_rng(i)), 16000)
    assert main(["predict", str(tmp_path / "run"), str(test), "--submission", "--out", str(tmp_path / "sub.csv")]) == 0
    rows = list(csv.reader(open(tmp_path / "sub.csv")))
    assert rows[0] == ["id", "label"] and sorted(r[0] for r in rows[1:]) == ["clip0", "clip1"]
    assert all(r[1] in {"plucked", "bowed", "blown", "struck", "organ"} for r in rows[1:])
