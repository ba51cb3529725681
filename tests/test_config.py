"""Experiment config: defaults, key-path errors, --set overrides, path resolution, round trip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from earmark.config import load_config, validate_config
from earmark.errors import ConfigError


def _write(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def test_defaults_and_paths_relative_to_the_config_file(tmp_path):
    (tmp_path / "cfg").mkdir()
    cfg = load_config(_write(tmp_path / "cfg" / "x.yaml", {"data": {"manifest": "../m.csv"}}))
    assert cfg.data.manifest == tmp_path / "m.csv"
    assert cfg.features.store == tmp_path / "features"
    assert cfg.features.name == "stats518" and cfg.features.pool == ["mean", "std"]
    assert cfg.model.candidates == ["svm_rbf"] and cfg.model.scaler == "standard"
    assert cfg.train.search.folds == 5 and cfg.eval.top_k == [1, 3]


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(_write(tmp_path / "x.yaml", {"data": {"manifest": "m.csv"}, "model": {"name": ["rf", "knn"]}}))
    cfg.save(tmp_path / "resolved.yaml")
    again = load_config(tmp_path / "resolved.yaml")
    assert again == cfg


@pytest.mark.parametrize(
    "raw, message",
    [
        ({}, "data: required"),
        ({"data": {"manifest": "m.csv"}, "modle": {}}, "modle: unknown key"),
        ({"data": {"manifest": "m.csv"}, "model": {"scaler": "minmax"}}, "model.scaler: "),
        ({"data": {"manifest": "m.csv"}, "model": {"pca": -1}}, "model.pca: "),
        ({"data": {"manifest": "m.csv"}, "train": {"search": {"folds": 1}}}, "train.search.folds: "),
        ({"data": {"manifest": "m.csv"}, "eval": {"top_k": [0]}}, "eval.top_k: "),
        ({"data": {"manifest": "m.csv"}, "features": {"pool": ["mode"]}}, "features.pool.0: "),
        ({"data": {"manifest": "m.csv"}, "model": {"name": []}}, "model.name: "),
    ],
)
def test_bad_configs_name_the_key_path(raw, message):
    with pytest.raises(ConfigError) as err:
        validate_config(raw)
    assert message in str(err.value)


def test_set_overrides_parse_yaml_and_paths_are_relative_to_the_cwd(tmp_path, monkeypatch):
    path = _write(tmp_path / "x.yaml", {"data": {"manifest": "m.csv"}})
    monkeypatch.chdir(tmp_path.parent)
    cfg = load_config(path, ["train.seed=7", "model.params.C=10", "model.name=[rf, knn]",
                             f"data.manifest={tmp_path.name}/other.csv"])
    assert cfg.train.seed == 7 and cfg.model.params == {"C": 10} and cfg.model.candidates == ["rf", "knn"]
    assert cfg.data.manifest == Path(os.path.abspath(tmp_path / "other.csv"))
    with pytest.raises(ConfigError, match="expected KEY.PATH=VALUE"):
        load_config(path, ["train.seed"])
    with pytest.raises(ConfigError, match="train.seed: "):
        load_config(path, ["train.seed=abc"])


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")


@pytest.mark.parametrize("recipe", sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml")))
def test_recipes_are_valid_configs(recipe):
    cfg = load_config(recipe)
    assert cfg.data.manifest.name.endswith(".csv")


@pytest.mark.parametrize("recipe", sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml")))
def test_network_recipes_pass_the_checks_made_before_training(recipe, tmp_path):
    from earmark.train.experiment import is_network, network_estimator

    cfg = load_config(recipe)
    if is_network(cfg):
        if "weights" in cfg.model.params:  # official backbone weights are not in the test machine's cache
            cfg.model.params["weights"] = "random"
        est = network_estimator(cfg, tmp_path, progress=False)  # network params, trainer options, augment steps
        assert est.network == cfg.model.name


# --------------------------------------------------------------------------- audio.separate


def test_audio_separate_defaults_shorthand_and_round_trip(tmp_path):
    cfg = validate_config({"data": {"manifest": "m.csv"}})
    assert cfg.audio.separate is None
    cfg = load_config(_write(tmp_path / "x.yaml", {"data": {"manifest": "m.csv"}, "audio": {"separate": {}}}))
    sep = cfg.audio.separate
    assert (sep.method, sep.params, sep.stem) == ("repet", {}, "vocals")
    cfg.save(tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == cfg
    y = _write(tmp_path / "y.yaml", {"data": {"manifest": "m.csv"}})
    short = load_config(y, ["audio.separate=repet"])  # a method name is short for {method: NAME}
    assert short.audio.separate.method == "repet" and short.audio.separate.params == {}
    keys = load_config(y, ["audio.separate.params.margin_v=2"])
    assert keys.audio.separate.method == "repet" and keys.audio.separate.params == {"margin_v": 2}
    off = load_config(tmp_path / "resolved.yaml", ["audio.separate=null"])
    assert off.audio.separate is None


@pytest.mark.parametrize(
    "audio, message",
    [
        ({"seperate": {}}, "audio.seperate: unknown key"),
        ({"separate": {"methd": "repet"}}, "audio.separate.methd: unknown key"),
        ({"separate": {"method": "rpet"}}, "audio.separate.method: unknown separation method 'rpet'; did you mean 'repet'"),
        ({"separate": {"params": {"margin": 1}}}, "audio.separate.params.margin: unknown parameter of 'repet'"),
        ({"separate": {"params": {"hpss": "both"}}}, "audio.separate.params.hpss: must be 'none', 'before' or 'after', got 'both'"),
        ({"separate": {"params": {"k": -1, "power": 0}}}, "audio.separate.params.k: must be a positive integer"),
        ({"separate": {"params": {"k": -1, "power": 0}}}, "audio.separate.params.power: must be a number > 0"),
        ({"separate": {"stem": "drums"}}, "audio.separate.stem: "),
        ({"separate": 3}, "audio.separate: "),
    ],
)
def test_bad_audio_separate_names_the_key_path(audio, message):
    with pytest.raises(ConfigError) as err:
        validate_config({"data": {"manifest": "m.csv"}, "audio": audio})
    assert message in str(err.value)
