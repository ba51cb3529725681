"""A network through the CLI: train (fbank + cnn_small) -> evaluate -> predict (windows) -> compare."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from earmark.cli import main
from earmark.data.demo import make_demo_dataset, synth_note


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), n_per_class=10, duration=1.0, seed=2)


def _config(tmp_path: Path, manifest: Path, **sections) -> Path:
    raw = {"data": {"manifest": str(manifest)},
           "features": {"name": "fbank", "frames": 96, "jobs": 1, "store": str(tmp_path / "store")},
           "model": {"name": "cnn_small"},
           "train": {"seed": 0, "epochs": 3, "batch_size": 16, "lr": 2e-3, "schedule": None, "val_fraction": 0.2},
           "eval": {"window": 1.0, "hop": 0.5}}
    for key, value in sections.items():
        raw.setdefault(key, {}).update(value)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_network_run_end_to_end(tmp_path, demo, capsys):
    cfg = _config(tmp_path, demo)
    assert main(["train", str(cfg), "--out", str(tmp_path / "net"), "--no-progress"]) == 0
    run = tmp_path / "net"
    for name in ("config.yaml", "net/net.json", "history.csv", "checkpoint.pt", "metrics.json", "confusion.png"):
        assert (run / name).exists(), name
    assert len((run / "history.csv").read_text().strip().splitlines()) == 1 + 3
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == "cnn_small" and metrics["features"] == "fbank" and metrics["n"] == 15
    assert metrics["params"] > 100_000 and metrics["inference_ms_per_clip"] > 0
    assert 0.0 <= metrics["accuracy"] <= 1.0 and set(metrics["top_k_accuracy"]) == {"1", "3"}

    long = np.concatenate([synth_note("organ", sr=16000, duration=1.0, rng=np.random.default_rng(i)) for i in range(3)])
    sf.write(tmp_path / "long.wav", long, 16000)
    assert main(["predict", str(run), str(tmp_path / "long.wav"), "--out", str(tmp_path / "p.csv")]) == 0
    (row,) = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert int(row["windows"]) == 5 and row["label"] in {"plucked", "bowed", "blown", "struck", "organ"}

    assert main(["evaluate", str(run), "--manifest", str(demo), "--out", str(tmp_path / "m2.json"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "m2.json").read_text())["accuracy"] == metrics["accuracy"]  # same model, same clips

    (tmp_path / "c").mkdir()
    classical = _config(tmp_path / "c", demo, features={"name": "mfcc", "frames": None},
                        model={"name": "logreg"}, train={"search": {"enabled": False}})
    assert main(["train", str(classical), "--out", str(tmp_path / "clf"), "--no-progress"]) == 0
    assert main(["compare", str(run), str(tmp_path / "clf"), "--out", str(tmp_path / "table.md")]) == 0
    table = (tmp_path / "table.md").read_text()
    assert "cnn_small" in table and "logreg" in table


def test_same_seed_same_network_metrics(tmp_path, demo):
    metrics = []
    for name in ("a", "b"):
        cfg = _config(tmp_path, demo, train={"epochs": 2})
        assert main(["train", str(cfg), "--out", str(tmp_path / name), "--no-progress"]) == 0
        metrics.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    assert metrics[0]["confusion_matrix"] == metrics[1]["confusion_matrix"]


@pytest.mark.parametrize(
    "sections, message",
    [
        ({"train": {"lr": -1}}, "train.lr: must be > 0"),
        ({"model": {"params": {"dropuot": 0.1}}}, "dropuot"),
        ({"train": {"augment": [{"name": "spec_augmnt"}]}}, "train.augment[0].name: unknown augmentation"),
        ({"train": {"copies": {"n": 2, "augment": [{"name": "mixup"}]}}}, "train.copies.augment: mixup mixes"),
        ({"train": {"copies": {"n": 1, "augment": [{"name": "pitch_shift", "semitones": [-2, 2], "formants": "no"}]}}},
         "train.copies.augment[0].formants: expected one of"),
        ({"train": {"copies": {"n": 2}}}, "train.copies.augment: 2 copies need at least one augmentation step"),
        ({"train": {"copies": {"n": -1}}}, "train.copies.n: Input should be greater than or equal to 0"),
    ],
)
def test_bad_network_configs_fail_before_extraction(tmp_path, demo, capsys, sections, message):
    cfg = _config(tmp_path, demo, **sections)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "store").exists() and not (tmp_path / "run").exists()


def test_offline_copies_join_the_training_data_of_networks_and_classical_models(tmp_path, demo):
    copies = {"n": 2, "augment": [{"name": "pitch_shift", "semitones": [-3, 3], "formants": "keep"},
                                  {"name": "gain", "db": 6}]}
    cfg = _config(tmp_path, demo, train={"epochs": 1, "copies": copies})
    assert main(["train", str(cfg), "--out", str(tmp_path / "net"), "--no-progress"]) == 0
    stores = sorted(p.name for p in (tmp_path / "store").iterdir())
    assert len(stores) == 3  # the clips and their two copies, each cached under its own key
    net = json.loads((tmp_path / "net" / "net" / "net.json").read_text())
    n_train = len([r for r in csv.DictReader(open(demo)) if r.get("split", "train") == "train"])
    assert net["n_train"] % 3 == 0 and 0 < net["n_train"] // 3 < n_train  # validation clips and their copies left out
    metrics = json.loads((tmp_path / "net" / "metrics.json").read_text())
    assert metrics["n"] > 0  # evaluated on the test split's clips only, never on copies

    (tmp_path / "c").mkdir()
    classical = _config(tmp_path / "c", demo, features={"name": "mfcc", "frames": None}, model={"name": "logreg"},
                        train={"search": {"enabled": True, "folds": 2}, "copies": copies})
    assert main(["train", str(classical), "--out", str(tmp_path / "clf"), "--no-progress"]) == 0
    cv = list(csv.DictReader(open(tmp_path / "clf" / "cv_results.csv")))
    assert cv and all(0.0 <= float(r["mean_test_score"]) <= 1.0 for r in cv)
    from earmark.models.persist import load_model

    _, meta = load_model(tmp_path / "clf" / "model.skops")
    assert meta["n_copies"] == 2 * meta["n_train"] and meta["n_train"] == n_train
    # a rerun reuses every cached copy
    assert main(["train", str(classical), "--out", str(tmp_path / "clf2"), "--no-progress"]) == 0
    assert len(list((tmp_path / "c" / "store").iterdir())) == 3


def test_background_copies_from_the_training_clips_of_a_class(tmp_path, demo, capsys):
    """``background: {files: {label: organ}}`` mixes the training split's organ clips into the copies: only
    training clips (never a test clip), resolved by ``earmark train``, recorded in the copies' key."""
    copies = {"n": 1, "augment": [{"name": "background", "files": {"label": "organ"}, "snr_db": [3, 6]}]}
    cfg = _config(tmp_path, demo, features={"name": "mfcc", "frames": None}, model={"name": "logreg"},
                  train={"search": {"enabled": False}, "copies": copies})
    assert main(["train", str(cfg), "--out", str(tmp_path / "clf"), "--no-progress"]) == 0
    rows = list(csv.DictReader(open(demo)))
    root = demo.parent
    organ_train = sorted(str(root / r["path"]) for r in rows if r["label"] == "organ" and r.get("split", "train") == "train")
    assert organ_train and any(r["label"] == "organ" and r.get("split") == "test" for r in rows)
    (copy_dir,) = [p for p in (tmp_path / "store").iterdir() if "augment" in (p / "params.json").read_text()]
    key = json.loads((copy_dir / "params.json").read_text())
    (step,) = key["augment"]["steps"]
    assert step["name"] == "background" and step["files"] == organ_train
    from earmark.models.persist import load_model

    _, meta = load_model(tmp_path / "clf" / "model.skops")
    assert meta["n_copies"] == meta["n_train"] == len([r for r in rows if r.get("split", "train") == "train"])

    bad = _config(tmp_path, demo, features={"name": "mfcc", "frames": None}, model={"name": "logreg"},
                  train={"search": {"enabled": False},
                         "copies": {"n": 1, "augment": [{"name": "background", "files": {"label": "kazoo"}, "snr_db": 5}]}})
    assert main(["train", str(bad), "--out", str(tmp_path / "bad"), "--no-progress"]) == 2
    assert "train.copies.augment[0].files: no training clip has label 'kazoo'" in capsys.readouterr().err
    online = _config(tmp_path, demo, train={"augment": [{"name": "background", "files": {"label": "organ"}, "snr_db": 5}]})
    assert main(["train", str(online), "--out", str(tmp_path / "online"), "--no-progress"]) == 2
    assert "train.augment[0].files: {'label': 'organ'} (training clips of a class) is for train.copies.augment" \
        in capsys.readouterr().err


def test_input_too_short_for_the_network_names_the_shapes(tmp_path, demo, capsys):
    cfg = _config(tmp_path, demo, features={"frames": 4})
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cnn_small" in err and "(4, 40)" in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_result(tmp_path, demo):
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = _config(tmp_path, demo, train={"epochs": 12, "batch_size": 4, "schedule": "cosine_restarts",
                                         "schedule_params": {"T_0": 4}})
    cmd = [sys.executable, "-m", "earmark", "train", str(cfg), "--no-progress"]
    proc = subprocess.Popen(cmd + ["--out", str(tmp_path / "killed")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=lambda: os.nice(5))
    history = tmp_path / "killed" / "history.csv"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:  # wait for two finished epochs, then kill -9
        if history.exists() and len(history.read_text().strip().splitlines()) >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    assert not (tmp_path / "killed" / "metrics.json").exists()

    assert main(["train", str(cfg), "--out", str(tmp_path / "killed"), "--no-progress", "--resume"]) == 0
    assert main(["train", str(cfg), "--out", str(tmp_path / "whole"), "--no-progress"]) == 0
    resumed = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert resumed["confusion_matrix"] == whole["confusion_matrix"] and resumed["accuracy"] == whole["accuracy"]
    strip = lambda p: [line.rsplit(",", 2)[0] for line in p.read_text().splitlines()]  # noqa: E731 (drop the timings)
    assert strip(tmp_path / "killed" / "history.csv") == strip(tmp_path / "whole" / "history.csv")


def test_resume_of_a_classical_run_is_refused(tmp_path, demo, capsys):
    cfg = _config(tmp_path, demo, features={"name": "mfcc", "frames": None}, model={"name": "logreg"},
                  train={"search": {"enabled": False}})
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--no-progress", "--resume"]) == 2
    assert "--resume continues a network" in capsys.readouterr().err


def test_ensemble_members_train_as_executor_jobs_and_are_averaged(tmp_path, demo, capsys):
    cfg = _config(tmp_path, demo, train={"epochs": 2, "ensemble": {"members": 2, "jobs": 2},
                                         "copies": {"n": 1, "augment": [{"name": "gain", "db": 6}]}})
    assert main(["train", str(cfg), "--out", str(tmp_path / "ens"), "--no-progress"]) == 0
    run = tmp_path / "ens"
    assert len(list((tmp_path / "store").iterdir())) == 2  # one set of copies, shared by the members
    for i in (0, 1):
        assert json.loads((run / "members" / str(i) / "net" / "net.json").read_text())["n_train"] % 2 == 0
    assert json.loads((run / "net" / "ensemble.json").read_text())["members"] == ["../members/0/net", "../members/1/net"]
    for i in (0, 1):
        assert (run / "members" / str(i) / "history.csv").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == "cnn_small x2" and [m["member"] for m in metrics["members"]] == [0, 1]
    from earmark.run import Run

    r = Run.load(run)
    m0, m1 = r.model.members
    assert m0.seed == 0 and m1.seed == 1  # members differ in seed (and so in shuffling)
    assert metrics["params"] == 2 * m0.count_params()
    long = synth_note("struck", sr=16000, duration=2.0, rng=np.random.default_rng(9))
    sf.write(tmp_path / "x.wav", long, 16000)
    assert main(["predict", str(run), str(tmp_path / "x.wav"), "--out", str(tmp_path / "p.csv")]) == 0


def test_a_validation_split_of_the_manifest_validates_the_network(tmp_path, demo, capsys):
    import pandas as pd

    df = pd.read_csv(demo)
    train_rows = np.flatnonzero(df["split"] == "train")
    df.loc[train_rows[::4], "split"] = "val"  # every 4th training clip becomes the validation split
    manifest = demo.parent / "with-val.csv"
    df.to_csv(manifest, index=False)
    cfg = _config(tmp_path, manifest, data={"val_split": "val"}, train={"epochs": 2, "val_fraction": 0.0})
    assert main(["train", str(cfg), "--out", str(tmp_path / "net"), "--no-progress"]) == 0
    net = json.loads((tmp_path / "net" / "net" / "net.json").read_text())
    assert net["n_train"] == int((df["split"] == "train").sum())  # no clip of the train split held out
    history = list(csv.DictReader(open(tmp_path / "net" / "history.csv")))
    assert len(history) == 2 and all(0.0 <= float(r["val_acc"]) <= 1.0 for r in history)
    # the best epoch's weights by the validation split, evaluated on the test split
    assert json.loads((tmp_path / "net" / "metrics.json").read_text())["split"] == "test"

    no_fraction = {"val_fraction": 0.0}
    bad = [({"data": {"val_split": "dev"}, "train": no_fraction}, 1, "data.val_split 'dev' is not a split of the manifest"),
           ({"data": {"val_split": "test"}, "train": no_fraction}, 2, "data.val_split: must differ from data.test_split"),
           ({"data": {"val_split": "val"}, "train": {"val_fraction": 0.2}}, 2, "validate on one or the other"),
           ({"data": {"val_split": "val"}, "features": {"name": "mfcc", "frames": None}, "model": {"name": "logreg"}},
            2, "data.val_split: classical models are cross-validated")]
    for i, (sections, code, message) in enumerate(bad):
        (tmp_path / f"b{i}").mkdir()
        cfg = _config(tmp_path / f"b{i}", manifest, **sections)
        assert main(["train", str(cfg), "--out", str(tmp_path / f"bad{i}"), "--no-progress"]) == code, message
        assert message in capsys.readouterr().err
