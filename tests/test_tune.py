"""earmark tune: the search space, the checks before any trial, classical and network studies through the
CLI (pruning, failing trials, reruns, a kill -9 in the middle of a trial) and the trainer's on_epoch hook."""

from __future__ import annotations

import csv
import json
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from earmark.cli import main
from earmark.config import load_config, validate_config
from earmark.data.demo import make_demo_dataset
from earmark.errors import ConfigError
from earmark.models.net_estimator import NetClassifier, load_net, save_net
from earmark.train.checkpoint import load_checkpoint
from earmark.train.tune import (
    BEST_FILE,
    MAX_FAILURES_IN_A_ROW,
    STUDY_FILE,
    TRIALS_DIR,
    TRIALS_FILE,
    Dimension,
    parse_space,
    tune,
)
from tests.conftest import spectrograms


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), n_per_class=10, duration=1.0, seed=2)


def _config(tmp_path: Path, manifest: Path, name: str = "net.yaml", **sections) -> Path:
    """A cnn_small network config (tiny, 2 epochs) searching train.lr; ``sections`` update its sections."""
    raw = {"data": {"manifest": str(manifest)},
           "features": {"name": "fbank", "frames": 96, "jobs": 1, "store": str(tmp_path / "store")},
           "model": {"name": "cnn_small"},
           "train": {"seed": 0, "epochs": 2, "batch_size": 16, "lr": 2e-3, "schedule": None, "val_fraction": 0.25},
           "tune": {"space": {"train.lr": {"low": 1e-4, "high": 1e-2, "log": True}}}}
    for key, value in sections.items():
        raw.setdefault(key, {}).update(value)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def _classical(tmp_path: Path, manifest: Path, name: str = "classical.yaml", **sections) -> Path:
    """logreg on pooled MFCCs, 3-fold cross-validated, searching model.params.C."""
    defaults = {"features": {"name": "mfcc", "frames": None}, "model": {"name": "logreg"},
                "train": {"search": {"folds": 3}},
                "tune": {"space": {"model.params.C": {"low": 0.001, "high": 100.0, "log": True}}}}
    for key, value in sections.items():
        defaults.setdefault(key, {}).update(value)
    return _config(tmp_path, manifest, name, **defaults)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _rows(out: Path) -> list[dict[str, str]]:
    return _read_csv(out / TRIALS_FILE)


def _history(out: Path, number: int) -> list[dict[str, str]]:
    return _read_csv(out / TRIALS_DIR / f"{number:04d}" / "history.csv")


def _storage(out: Path) -> str:
    return f"sqlite:///{(out / STUDY_FILE).resolve()}"


def _tune(config: Path, out: Path, trials: int, *extra: str) -> int:
    return main(["tune", str(config), "--trials", str(trials), "--out", str(out), "--no-progress", *extra])


# ---------------------------------------------------------------- the search space


@pytest.mark.parametrize(
    "space, message",
    [
        ({"train.lr": {"low": 0.1, "high": 0.01}}, "tune.space.train.lr: low must be < high, got low=0.1, high=0.01"),
        ({"train.lr": {"low": 0.1}}, ("tune.space.train.lr: expected {low, high[, log][, step]} or {choices: [...]}, "
                                      "missing ['high']")),
        ({"train.lr": {"low": 0.1, "high": 1.0, "lg": True}}, ("tune.space.train.lr: expected {low, high[, log][, step]} "
                                                                "or {choices: [...]}, unknown key(s) ['lg']")),
        ({"train.lr": {"low": 0.0, "high": 1.0, "log": True}}, "tune.space.train.lr: a log range needs low > 0, got low=0.0"),
        ({"train.lr": {"low": 1e-4, "high": 1.0, "log": True, "step": 0.1}},
         "tune.space.train.lr: give either step or log: true, not both"),
        ({"train.lr": {"low": 1e-4, "high": 1.0, "log": "yes"}}, "tune.space.train.lr.log: expected true or false, got 'yes'"),
        ({"train.batch_size": {"low": 16, "high": 64, "step": 0}}, "tune.space.train.batch_size.step: expected a number > 0, got 0"),
        ({"train.lr": {"low": "small", "high": 1.0}}, "tune.space.train.lr: low and high must be numbers, got low='small'"),
        ({"train.lr": 0.001}, "tune.space.train.lr: expected {low, high[, log][, step]} or a list of choices, got 0.001"),
        ({"model.params.kernel_size": []}, "tune.space.model.params.kernel_size: expected at least one choice, got []"),
        ({"model.params.kernel_size": {"choices": []}}, "tune.space.model.params.kernel_size: expected at least one choice"),
        ({"model.params.kernel_size": [3, 5, 3]}, "tune.space.model.params.kernel_size: choices must differ, got [3, 5, 3]"),
        ({"model.params.filters": [[16, 32], [16, 32]]}, "tune.space.model.params.filters: choices must differ"),
        ({"lr": [0.1, 0.01]}, "tune.space: keys are config key paths such as train.lr or model.params.C"),
        ({"foo.bar": [1, 2]}, "got 'foo.bar'"),
        ({"train.": [1, 2]}, "got 'train.'"),
    ],
)
def test_bad_spaces_are_refused_naming_the_key(space, message):
    with pytest.raises(ConfigError) as exc:
        parse_space(space)
    assert message in str(exc.value)
    # the config's validation refuses it alike, before anything runs
    with pytest.raises(ConfigError) as exc:
        validate_config({"data": {"manifest": "clips.csv"}, "tune": {"space": space}})
    assert message in str(exc.value)


@pytest.mark.parametrize("space", [[{"train.lr": [0.1]}], "train.lr", 3])
def test_a_space_that_is_not_a_mapping_is_refused(space):
    with pytest.raises(ConfigError, match=r"^tune\.space: expected a mapping of config key paths"):
        parse_space(space)
    with pytest.raises(ConfigError, match=r"tune\.space"):
        validate_config({"data": {"manifest": "clips.csv"}, "tune": {"space": space}})


def test_space_shapes_ints_floats_and_choices_of_any_yaml_value():
    dims = parse_space(yaml.safe_load("""
        train.batch_size: {low: 16, high: 64, step: 16}
        train.epochs: {low: 2, high: 8}
        train.lr: {low: 1.0e-5, high: 1.0e-2, log: true}
        model.params.dropout: {low: 0, high: 0.5}
        train.weight_decay: {low: 0, high: 1, step: 0.25}
        model.params.kernel_size: [3, 5, 7]
        model.name: {choices: [svm, logreg]}
        model.params.filters: [[16, 32], [32, 64]]
    """))
    assert [(d.key, d.kind) for d in dims] == [
        ("train.batch_size", "int"), ("train.epochs", "int"), ("train.lr", "float"), ("model.params.dropout", "float"),
        ("train.weight_decay", "float"), ("model.params.kernel_size", "choice"), ("model.name", "choice"),
        ("model.params.filters", "choice")]
    by_key = {d.key: d for d in dims}
    assert by_key["train.lr"].log and by_key["train.lr"].extremes() == [1e-5, 1e-2]
    assert by_key["train.batch_size"].step == 16 and by_key["train.batch_size"].extremes() == [16, 64]
    assert by_key["model.name"].choices == ("svm", "logreg") and by_key["model.name"].labels == ["svm", "logreg"]
    assert by_key["model.params.kernel_size"].labels == [3, 5, 7]

    filters = by_key["model.params.filters"]
    assert filters.labels == ["[16, 32]", "[32, 64]"]  # Optuna stores scalars: the JSON of each choice
    assert filters.value("[32, 64]") == [32, 64]
    got = filters.value("[16, 32]")
    got.append(0)
    assert filters.value("[16, 32]") == [16, 32]  # a copy: changing a trial's value leaves the choices alone
    # values Python finds equal (0 == False == 0.0) are distinct config values: each stays reachable
    (flags,) = parse_space({"model.params.x": [0, False, 1.0, True]})
    assert flags.labels == ["0", "false", "1.0", "true"]
    assert [flags.value(label) for label in flags.labels] == [0, False, 1.0, True]
    assert [type(flags.value(label)) for label in flags.labels] == [int, bool, float, bool]
    assert filters.extremes() == [[16, 32], [32, 64]]
    assert Dimension("train.lr", "float", low=0.1, high=1.0).value(0.5) == 0.5

    # through real Optuna trials: every dimension yields a config value inside its range / among its choices
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        values = {d.key: d.suggest(trial) for d in dims}
        assert values["train.batch_size"] in (16, 32, 48, 64) and isinstance(values["train.batch_size"], int)
        assert 2 <= values["train.epochs"] <= 8 and isinstance(values["train.epochs"], int)
        assert 1e-5 <= values["train.lr"] <= 1e-2 and 0 <= values["model.params.dropout"] <= 0.5
        assert values["train.weight_decay"] in (0.0, 0.25, 0.5, 0.75, 1.0)
        assert values["model.params.filters"] in ([16, 32], [32, 64])
        assert trial.params["model.params.filters"] == json.dumps(values["model.params.filters"])
        seen.add(json.dumps(values["model.params.filters"]))
        study.tell(trial, 0.0)
    assert seen == {"[16, 32]", "[32, 64]"}


# ---------------------------------------------------------------- refused before any trial


@pytest.mark.parametrize(
    "which, sections, messages",
    [
        ("net", {"tune": {"space": {"model.params.dropout": {"low": 0.0, "high": 1.5}}}},
         ["tune.space.model.params.dropout = 1.5", "dropout must be in [0, 1), got 1.5"]),
        ("net", {"tune": {"space": {"train.lr": [-1, 0.001]}}}, ["tune.space.train.lr = -1", "train.lr: must be > 0"]),
        ("net", {"tune": {"space": {"train.lr": [0.001], "train.batch_size": {"low": 0, "high": 32}}}},
         ["tune.space.train.batch_size = 0", "train.batch_size"]),
        ("net", {"tune": {"space": {"train.lrr": [0.001, 0.01]}}}, ["tune.space.train.lrr = 0.001", "lrr"]),
        ("net", {"tune": {"space": {}}}, ["tune.space: empty"]),
        ("net", {"tune": {"space": {"model.name": ["cnn_small", "logreg"]}}},
         ["tune.space: trials would train networks and classical models"]),
        ("classical", {"tune": {"metric": "val_loss"}}, ["tune.metric: classical models are scored by cross-validation",
                                                         "val_loss"]),
        ("classical", {"model": {"name": ["logreg", "svm"]}}, ["tune.space", "model.name", "put the candidates in tune.space"]),
    ],
)
def test_values_the_experiment_refuses_stop_the_study_before_any_trial(tmp_path, demo, capsys, which, sections, messages):
    make = _config if which == "net" else _classical
    cfg = make(tmp_path, demo, **sections)
    out = tmp_path / "study"
    assert _tune(cfg, out, 3) == 2
    err = capsys.readouterr().err
    for message in messages:
        assert message in err
    assert not (out / TRIALS_FILE).exists() and not (out / STUDY_FILE).exists()
    assert not (tmp_path / "store").exists()  # not even the features were extracted


def test_trials_must_be_at_least_one(tmp_path, demo, capsys):
    cfg = _classical(tmp_path, demo)
    assert _tune(cfg, tmp_path / "study", 0) == 2
    assert "--trials: expected an integer >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "study").exists()
    with pytest.raises(ConfigError, match="--trials"):
        tune(yaml.safe_load(cfg.read_text()), tmp_path / "study", trials=True)


# ---------------------------------------------------------------- classical models


def test_classical_study_best_config_rerun_and_separate_studies(tmp_path, demo, capsys):
    cfg = _classical(tmp_path, demo)
    out = tmp_path / "study"
    assert _tune(cfg, out, 6) == 0
    rows = _rows(out)
    assert [int(r["number"]) for r in rows] == list(range(6))
    assert {r["state"] for r in rows} <= {"complete", "pruned"} and any(r["state"] == "complete" for r in rows)
    assert list(rows[0]) == ["number", "state", "value", "model.params.C", "epochs", "seconds", "retry_of", "note"]
    for r in rows:
        assert 0.001 <= float(r["model.params.C"]) <= 100.0
        assert float(r["seconds"]) > 0 and r["epochs"] == "" and r["retry_of"] == ""
        if r["state"] == "pruned":  # no value (its last score is partial): the note has it
            assert r["value"] == "" and re.fullmatch(r"pruned after fold [123] \(score [0-9.e-]+\)", r["note"])
        else:
            assert 0.0 <= float(r["value"]) <= 1.0 and r["note"] == ""
    complete = [r for r in rows if r["state"] == "complete"]
    best_row = max(complete, key=lambda r: float(r["value"]))
    best = load_config(out / BEST_FILE)
    assert best.model.name == "logreg" and best.model.params["C"] == float(best_row["model.params.C"])
    assert best.train.search.enabled is False  # the trial cross-validated C: training must not search a grid again
    assert str(out / BEST_FILE) in capsys.readouterr().out

    run = tmp_path / "run"
    assert main(["train", str(out / BEST_FILE), "--out", str(run), "--no-progress"]) == 0
    assert (run / "metrics.json").exists()
    from earmark.models.persist import load_model

    model, meta = load_model(run / "model.skops")
    assert model.named_steps["model"].C == float(best_row["model.params.C"]) == meta["best_params"]["C"]

    # a rerun with more trials runs only the rest; the trials already done stay as they were
    assert _tune(cfg, out, 8) == 0
    again = _rows(out)
    assert len(again) == 8 and again[:6] == rows
    assert "(this run: 2)" in capsys.readouterr().out
    assert _tune(cfg, out, 8) == 0 and len(_rows(out)) == 8  # nothing left to do
    assert "(this run: 0)" in capsys.readouterr().out

    # the same study over another space is refused: its trials would mean nothing
    other = _classical(tmp_path, demo, name="other.yaml", tune={"space": {"model.params.C": [0.1, 1.0]}})
    assert _tune(other, out, 10) == 2
    assert "searched another space" in capsys.readouterr().err
    assert len(_rows(out)) == 8

    # another study needs its own folder (its trials.csv and best.yaml would overwrite these) ...
    assert _tune(other, out, 2, "--study-name", "other") == 2
    assert "holds study 'earmark'" in capsys.readouterr().err
    assert len(_rows(out)) == 8
    # ... and may share the storage
    assert _tune(other, tmp_path / "other", 2, "--study-name", "other", "--storage", _storage(out)) == 0
    assert sorted(optuna.get_all_study_names(_storage(out))) == ["earmark", "other"]
    assert len(optuna.load_study(study_name="earmark", storage=_storage(out)).trials) == 8
    separate = optuna.load_study(study_name="other", storage=_storage(out)).trials
    assert len(separate) == 2 and all(t.params["model.params.C"] in (0.1, 1.0) for t in separate)
    assert len(_rows(tmp_path / "other")) == 2 and len(_rows(out)) == 8


def test_classical_trials_score_log_loss_on_folds_that_lack_a_class(tmp_path, demo):
    """Two groups per class and 3 grouped folds: some fold holds no clip of a class, which
    scikit-learn's own log-loss scorer refuses (the trial failed)."""
    import pandas as pd

    df = pd.read_csv(demo)
    df["group"] = df["label"] + (df.groupby("label").cumcount() % 2).astype(str)
    df["path"] = [str((demo.parent / p).resolve()) for p in df["path"]]
    manifest = tmp_path / "two-groups.csv"
    df.to_csv(manifest, index=False)
    cfg = _classical(tmp_path, manifest, train={"search": {"folds": 3, "scoring": "neg_log_loss"}},
                     tune={"space": {"model.params.C": [0.01, 1.0]}, "pruner": "none"})
    out = tmp_path / "study"
    assert _tune(cfg, out, 2) == 0
    rows = _rows(out)
    assert [r["state"] for r in rows] == ["complete", "complete"]
    assert all(float(r["value"]) < 0 for r in rows)  # negated log loss, maximised


@pytest.mark.parametrize("url", ["nosuch://x", "notaurl", "sqlite:////nonexistent/dir/x.db"])
def test_a_storage_that_cannot_be_opened_is_one_line_naming_it(tmp_path, demo, capsys, url):
    assert _tune(_classical(tmp_path, demo), tmp_path / "study", 1, "--storage", url) == 2
    err = capsys.readouterr().err
    assert f"--storage {url}: cannot open the study" in err and "Traceback" not in err


# ---------------------------------------------------------------- networks


def test_network_study_keeps_each_trials_history_and_drops_its_weights(tmp_path, demo):
    cfg = _config(tmp_path, demo, tune={"space": {"train.lr": {"low": 1e-3, "high": 1e-2, "log": True},
                                                  "model.params.dropout": {"low": 0.0, "high": 0.5},
                                                  "train.batch_size": [16, 32]}})
    out = tmp_path / "study"
    assert _tune(cfg, out, 3) == 0
    rows = _rows(out)
    assert len(rows) == 3 and {r["state"] for r in rows} <= {"complete", "pruned"}
    for r in rows:
        history = _history(out, int(r["number"]))
        assert int(r["epochs"]) == len(history) and 1 <= len(history) <= 2
        assert [int(h["epoch"]) for h in history] == list(range(1, len(history) + 1))
        assert {float(h["lr"]) for h in history} == {float(r["train.lr"])}  # the trial trained with its own values
        assert int(r["train.batch_size"]) in (16, 32) and 0.0 <= float(r["model.params.dropout"]) <= 0.5
        if r["state"] == "complete":
            assert float(r["value"]) == max(float(h["val_acc"]) for h in history)
        else:
            assert r["value"] == ""
            assert r["note"] == f"pruned after epoch {len(history)} (score {float(history[-1]['val_acc']):.4g})"
    assert not list((out / TRIALS_DIR).rglob("*.pt"))  # checkpoints are deleted when a trial ends
    best = load_config(out / BEST_FILE)
    best_row = max((r for r in rows if r["state"] == "complete"), key=lambda r: float(r["value"]))
    assert best.train.lr == float(best_row["train.lr"]) and best.train.batch_size == int(best_row["train.batch_size"])
    assert best.model.params["dropout"] == float(best_row["model.params.dropout"])


def test_network_trials_validate_on_the_manifests_validation_split(tmp_path, demo, capsys):
    import pandas as pd

    df = pd.read_csv(demo)
    df.loc[np.flatnonzero(df["split"] == "train")[::4], "split"] = "val"
    manifest = tmp_path / "with-val.csv"
    df.assign(path=[str(demo.parent / p) for p in df["path"]]).to_csv(manifest, index=False)
    cfg = _config(tmp_path, manifest, data={"val_split": "val"}, train={"val_fraction": 0.0})
    out = tmp_path / "study"
    assert _tune(cfg, out, 2) == 0
    for r in _rows(out):
        assert r["state"] in ("complete", "pruned") and _history(out, int(r["number"]))[0]["val_acc"] != ""
    # a validation split and a validation fraction at once: refused before any trial
    both = _config(tmp_path, manifest, name="both.yaml", data={"val_split": "val"})
    assert _tune(both, tmp_path / "both", 2) == 2
    assert "validate on one or the other" in capsys.readouterr().err and not (tmp_path / "both" / TRIALS_FILE).exists()


def test_network_study_by_validation_loss_minimises(tmp_path, demo):
    cfg = _config(tmp_path, demo, tune={"metric": "val_loss", "pruner": "none"})
    out = tmp_path / "study"
    result = tune(yaml.safe_load(cfg.read_text()), out, trials=2, base=tmp_path)
    assert result.direction == "minimize" and result.ran == 2 and result.counts == {"complete": 2, "pruned": 0, "fail": 0}
    rows = _rows(out)
    values = []
    for r in rows:
        history = _history(out, int(r["number"]))
        assert float(r["value"]) == min(float(h["val_loss"]) for h in history)
        values.append(float(r["value"]))
    assert result.best_value == min(values)
    assert result.best_params == {"train.lr": float(rows[int(np.argmin(values))]["train.lr"])}
    assert result.best_config == out / BEST_FILE and load_config(out / BEST_FILE).train.lr == result.best_params["train.lr"]
    # the direction is part of the study: searching the same space by accuracy needs another study
    by_accuracy = yaml.safe_load(cfg.read_text())
    by_accuracy["tune"]["metric"] = "val_acc"
    with pytest.raises(ConfigError, match="searched another space or metric"):
        tune(by_accuracy, out, trials=3, base=tmp_path)
    assert len(_rows(out)) == 2


def test_median_pruner_stops_a_trial_that_is_far_behind(tmp_path, demo):
    # lr 1.0 overshoots: the validation loss after epoch 1 is many orders of magnitude above that of the
    # (identically initialised) network trained with lr 0.001, yet finite (not a failure)
    cfg = _config(tmp_path, demo, train={"epochs": 3},
                  tune={"space": {"train.lr": [0.001, 1.0]}, "metric": "val_loss", "pruner": "median",
                        "startup_trials": 1, "min_epochs": 1})
    out = tmp_path / "study"
    assert _tune(cfg, out, 1) == 0
    (row0,) = _rows(out)
    assert row0["state"] == "complete" and int(row0["epochs"]) == 3  # nothing to compare with yet: it runs to the end
    study = optuna.load_study(study_name="earmark", storage=_storage(out))
    study.enqueue_trial({"train.lr": 0.001})
    study.enqueue_trial({"train.lr": 1.0})
    assert _tune(cfg, out, 3) == 0
    rows = _rows(out)
    assert [(r["train.lr"], r["state"]) for r in rows[1:]] == [("0.001", "complete"), ("1.0", "pruned")]
    pruned = rows[2]
    epochs = int(pruned["epochs"])
    assert epochs < 3
    history = _history(out, 2)
    assert len(history) == epochs and pruned["value"] == ""
    assert pruned["note"] == f"pruned after epoch {epochs} (score {float(history[-1]['val_loss']):.4g})"
    good = _history(out, 1)
    assert len(good) == 3 and min(float(h["val_loss"]) for h in history) > float(good[epochs - 1]["val_loss"])
    assert not list((out / TRIALS_DIR).rglob("*.pt"))  # a pruned trial's checkpoints go too


def test_failing_trials_are_recorded_and_too_many_in_a_row_stop_the_study(tmp_path, demo, capsys):
    # lr 1e30 makes the loss NaN within the first epoch: a real training failure (DataError)
    cfg = _config(tmp_path, demo, train={"epochs": 1}, tune={"space": {"train.lr": [1.0e30, 0.01]}})
    out = tmp_path / "study"
    first = _tune(cfg, out, 1)
    (row0,) = _rows(out)
    assert first == (0 if row0["state"] == "complete" else 1)
    study = optuna.load_study(study_name="earmark", storage=_storage(out))
    # failures short of MAX_FAILURES_IN_A_ROW, a success, and as many failures again: the search goes on
    bad = [1.0e30] * (MAX_FAILURES_IN_A_ROW - 1)
    for lr in [*bad, 0.01, *bad]:
        study.enqueue_trial({"train.lr": lr})
    n = 1 + 2 * len(bad) + 1
    assert _tune(cfg, out, n) == 0
    rows = _rows(out)
    assert [r["state"] for r in rows[1:]] == ["fail"] * len(bad) + ["complete"] + ["fail"] * len(bad)
    for r in rows[1:]:
        if r["state"] == "fail":
            assert r["value"] == "" and "NaN" in r["note"] and "lower train.lr" in r["note"]
    assert "trial 1: fail: " in capsys.readouterr().out
    good = len(bad) + 1
    assert float(rows[good]["value"]) == max(float(h["val_acc"]) for h in _history(out, good))

    for _ in range(MAX_FAILURES_IN_A_ROW):
        study.enqueue_trial({"train.lr": 1.0e30})
    assert _tune(cfg, out, n + 20) == 1
    captured = capsys.readouterr()
    assert f"{MAX_FAILURES_IN_A_ROW} trials failed in a row" in captured.err and "NaN" in captured.err
    assert f"trial {n + MAX_FAILURES_IN_A_ROW - 1}: fail: " in captured.out  # the last one is shown too
    rows = _rows(out)
    assert len(rows) == n + MAX_FAILURES_IN_A_ROW  # it stopped there, far from n + 20
    assert all(r["state"] == "fail" and "NaN" in r["note"] for r in rows[n:])


@pytest.mark.slow
def test_kill_9_in_a_trial_then_rerun_continues_it_from_its_checkpoint(tmp_path, demo):
    cfg = _config(tmp_path, demo, tune={"pruner": "none"})
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "earmark", "tune", str(cfg), "--trials", "2", "--out", str(out), "--no-progress",
           "--set", "train.epochs=8"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    history = out / TRIALS_DIR / "0000" / "history.csv"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            epochs = len(history.read_text().strip().splitlines()) - 1
        except FileNotFoundError:
            epochs = 0
        if epochs >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the trial ended before it could be killed: " + proc.stdout.read().decode()
    cut = _history(out, 0)
    assert 3 <= len(cut) < 8 and (out / TRIALS_DIR / "0000" / "checkpoint.pt").exists()

    rerun = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    rows = _rows(out)
    assert [(r["number"], r["state"], r["retry_of"]) for r in rows] == [
        ("0", "fail", ""), ("1", "complete", "0"), ("2", "complete", "")]
    assert rows[0]["note"] == "cut off (kill or Ctrl-C); run again as trial 1"
    assert rows[1]["train.lr"] == rows[0]["train.lr"] and rows[2]["train.lr"] != rows[0]["train.lr"]
    resumed = _history(out, 1)
    assert len(resumed) == 8 and int(rows[1]["epochs"]) == 8
    assert resumed[:len(cut)] == cut  # the epochs before the kill were not trained again
    assert not list((out / TRIALS_DIR).rglob("*.pt"))

    # the resumed trial ends where an unbroken one ends (same values: the sampler is seeded alike)
    fresh = tmp_path / "fresh"
    assert _tune(cfg, fresh, 1, "--set", "train.epochs=8") == 0
    (unbroken,) = _rows(fresh)
    assert unbroken["train.lr"] == rows[1]["train.lr"] and unbroken["state"] == "complete"
    assert float(unbroken["value"]) == float(rows[1]["value"])
    columns = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")
    assert [[h[c] for c in columns] for h in _history(fresh, 0)] == [[h[c] for c in columns] for h in resumed]


# ---------------------------------------------------------------- the on_epoch hook


class _Stop(Exception):
    pass


def test_on_epoch_sees_every_epoch_and_its_exception_stops_fit(tmp_path):
    X, y = spectrograms(36)
    trainer = {"epochs": 3, "lr": 3e-3, "batch_size": 16, "device": "cpu"}
    calls = []

    def watch(history):
        rows = _read_csv(tmp_path / "a" / "history.csv")
        calls.append((len(history.rows), history.rows[-1]["epoch"], len(rows),
                      load_checkpoint(tmp_path / "a" / "checkpoint.pt")["epoch"]))

    est = NetClassifier("cnn_small", trainer=trainer, val_fraction=0.25, seed=1, out_dir=tmp_path / "a", on_epoch=watch)
    est.fit(X, y)
    # once per epoch, with the growing history, after the epoch's checkpoint and history.csv are written
    assert calls == [(1, 1, 1, 1), (2, 2, 2, 2), (3, 3, 3, 3)]
    assert all(math.isfinite(r["val_acc"]) for r in est.history_)

    def stop_after_2(history):
        if len(history.rows) == 2:
            raise _Stop("enough")

    stopping = NetClassifier("cnn_small", trainer=trainer, val_fraction=0.25, seed=1, out_dir=tmp_path / "b",
                             on_epoch=stop_after_2)
    with pytest.raises(_Stop, match="enough"):
        stopping.fit(X, y)
    assert len(_read_csv(tmp_path / "b" / "history.csv")) == 2
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["epoch"] == 2
    assert not hasattr(stopping, "history_")  # fit did not finish
    # the kept checkpoint continues to the unbroken run's result
    stopping.set_params(on_epoch=None).fit(X, y, resume=True)
    assert [r["val_loss"] for r in stopping.history_] == [r["val_loss"] for r in est.history_]

    folder = save_net(tmp_path / "net", est)
    assert json.loads((folder / "net.json").read_text())["params"]["on_epoch"] is None
    loaded = load_net(folder)
    assert loaded.on_epoch is None and est.on_epoch is watch
    np.testing.assert_allclose(loaded.predict_proba(X), est.predict_proba(X), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- help


def test_tune_help_lists_the_tune_keys(capsys):
    assert main(["tune", "--help"]) == 0
    text = capsys.readouterr().out
    for key in ("tune.space", "tune.metric", "tune.sampler", "tune.pruner", "tune.min_epochs", "hyperband",
                "--trials", "--storage", "--study-name", "best.yaml"):
        assert key in text, key
