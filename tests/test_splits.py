"""Splits: deterministic, stratified, group-aware, k-fold and the predefined policy."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from earmark.data.splits import (
    apply_split,
    check_fractions,
    group_split,
    kfold,
    normalize_split_name,
    stratified_split,
)
from earmark.errors import ConfigError, DataError

THREE = {"train": 0.7, "val": 0.15, "test": 0.15}


def _straddlers(groups, splits) -> list:
    seen: dict = {}
    for g, s in zip(groups, splits):
        seen.setdefault(g, set()).add(s)
    return [g for g, ss in seen.items() if len(ss) > 1]


# ---------------------------------------------------------------- fractions
@pytest.mark.parametrize("bad", [{"train": 0.7, "test": 0.2}, {"train": 1.2, "test": -0.2}, {}, {"train": "x"},
                                 {"": 1.0}])
def test_bad_fractions_are_config_errors(bad):
    with pytest.raises(ConfigError, match="fractions"):
        check_fractions(bad)


def test_fractions_sum_within_tolerance():
    assert check_fractions({"train": 0.7, "val": 0.2, "test": 0.1 + 1e-9})["train"] == 0.7


def test_split_aliases():
    assert [normalize_split_name(s) for s in ("training", "validation", "valid", "test", "Val")] == \
        ["train", "val", "val", "test", "Val"]


# ---------------------------------------------------------------- stratified
def test_stratified_is_deterministic_and_proportional():
    labels = np.repeat(["a", "b", "c"], [50, 30, 20])
    s1 = stratified_split(labels, {"train": 0.8, "test": 0.2}, seed=3)
    s2 = stratified_split(labels, {"train": 0.8, "test": 0.2}, seed=3)
    s3 = stratified_split(labels, {"train": 0.8, "test": 0.2}, seed=4)
    assert list(s1) == list(s2) and list(s1) != list(s3)
    for cls, n in (("a", 50), ("b", 30), ("c", 20)):
        assert Counter(s1[labels == cls])["test"] == n // 5


def test_stratified_default_fractions_are_70_30():
    s = stratified_split(["x"] * 10)
    assert Counter(s) == {"train": 7, "test": 3}


def test_stratified_overall_sizes_match_despite_rounding():
    labels = np.repeat([f"c{i}" for i in range(10)], 3)  # 3 per class: 0.8 * 3 = 2.4 each
    s = stratified_split(labels, {"train": 0.8, "test": 0.2}, seed=0)
    assert Counter(s) == {"train": 24, "test": 6}
    for cls in set(labels):  # every class keeps at least one training clip
        assert "train" in set(s[labels == cls])


def test_stratified_small_class_goes_to_largest_split():
    labels = ["big"] * 20 + ["rare", "rare"]
    s = stratified_split(labels, THREE, seed=0)
    assert list(s[-2:]) == ["train", "train"]
    assert set(s[:20]) == {"train", "val", "test"}


def test_stratified_keeps_series_index():
    labels = pd.Series(["a", "b"] * 5, index=range(100, 110))
    s = stratified_split(labels, {"train": 0.6, "test": 0.4})
    assert isinstance(s, pd.Series) and list(s.index) == list(range(100, 110))


def test_zero_fraction_split_gets_nothing():
    s = stratified_split(["a"] * 7 + ["b"] * 9, {"train": 0.75, "val": 0.0, "test": 0.25})
    assert "val" not in set(s)


# ---------------------------------------------------------------- group
def test_group_split_never_straddles_and_is_close_to_targets():
    rng = np.random.default_rng(0)
    n_groups = 300
    sizes = rng.integers(1, 8, n_groups)
    groups = np.repeat([f"g{i}" for i in range(n_groups)], sizes)
    labels = np.repeat(np.array(["a", "b", "c"])[rng.integers(0, 3, n_groups)], sizes)
    s = group_split(labels, groups, THREE, seed=1)
    assert _straddlers(groups, s) == []
    frac = {k: v / len(s) for k, v in Counter(s).items()}
    for name, target in THREE.items():
        assert abs(frac[name] - target) < 0.03, frac
    for cls in "abc":  # stratified as well
        c = Counter(s[labels == cls])
        assert abs(c["train"] / sum(c.values()) - 0.7) < 0.05
    assert list(s) == list(group_split(labels, groups, THREE, seed=1))
    assert list(s) != list(group_split(labels, groups, THREE, seed=2))


def test_group_split_one_group_per_label_goes_to_largest():
    s = group_split(["a", "a", "b"], ["g1", "g1", "g2"], {"train": 0.3, "test": 0.7})
    assert list(s) == ["test", "test", "test"]


def test_group_split_uses_majority_label():
    labels = ["x", "x", "y"] + ["y"] * 20
    groups = ["g", "g", "g"] + [f"h{i}" for i in range(20)]
    s = group_split(labels, groups, {"train": 0.5, "test": 0.5}, seed=0)
    assert len(set(s[:3])) == 1
    assert _straddlers(groups, s) == []


def test_group_split_length_mismatch():
    with pytest.raises(DataError, match="length"):
        group_split(["a", "b"], ["g"], THREE)


# ---------------------------------------------------------------- kfold
def test_kfold_stratified_and_deterministic():
    labels = np.repeat(["a", "b"], [25, 15])
    f = kfold(labels, 5, seed=0)
    assert f.dtype.kind == "i" and set(f) == set(range(5))
    for k in range(5):
        assert Counter(labels[f == k]) == {"a": 5, "b": 3}
    assert list(f) == list(kfold(labels, 5, seed=0))


def test_kfold_small_class_names_it():
    with pytest.raises(ConfigError, match=r"'rare' has 2"):
        kfold(["common"] * 10 + ["rare"] * 2, 3)


@pytest.mark.parametrize("k", [1, 0, 2.5, True])
def test_kfold_bad_k(k):
    with pytest.raises(ConfigError, match="folds"):
        kfold(["a"] * 10, k)


def test_kfold_groups_never_straddle():
    groups = np.repeat(np.arange(20), 3).astype(str)
    labels = np.where(np.repeat(np.arange(20), 3) % 2 == 0, "a", "b")
    f = kfold(labels, 4, seed=1, groups=groups)
    assert _straddlers(groups, f) == []
    assert set(f) == set(range(4))


def test_kfold_too_few_groups():
    with pytest.raises(ConfigError, match="at least 5 groups, found 2"):
        kfold(["a", "b"] * 5, 5, groups=["g1", "g2"] * 5)


# ---------------------------------------------------------------- apply_split
def _frame(n=20, split=None):
    df = pd.DataFrame({"id": [f"c{i}" for i in range(n)], "path": [f"/x/c{i}.wav" for i in range(n)],
                       "label": ["a", "b"] * (n // 2), "group": [f"g{i // 2}" for i in range(n)]})
    if split is not None:
        df["split"] = split
    return df


def test_apply_predefined_keeps_split():
    df = _frame(4, ["train", "test", "train", "val"])
    out = apply_split(df, "predefined")
    assert list(out["split"]) == ["train", "test", "train", "val"]
    assert "split" in df.columns and out is not df


def test_apply_predefined_without_split_is_data_error():
    with pytest.raises(DataError, match="no split column"):
        apply_split(_frame(4), "predefined")
    with pytest.raises(DataError, match=r"1 of 4 clips have no split \(e.g. c2\)"):
        apply_split(_frame(4, ["train", "test", "", "val"]), "predefined")


def test_apply_unknown_policy():
    with pytest.raises(ConfigError, match="predefined, stratified, group"):
        apply_split(_frame(4), "random")


def test_apply_group_and_unlabelled_rows():
    df = _frame(40)
    df.loc[[0, 1], "label"] = ""
    out = apply_split(df, "group", {"train": 0.5, "test": 0.5}, seed=0, folds=3)
    assert list(out["split"][:2]) == ["unlabelled", "unlabelled"]
    assert _straddlers(out["group"], out["split"]) == []
    assert list(out["fold"][:2]) == [-1, -1] and set(out["fold"][2:]) == {0, 1, 2}
    assert _straddlers(out["group"][2:], out["fold"][2:]) == []


def test_apply_stratified_keeps_preset_split_of_unlabelled():
    df = _frame(10, [""] * 8 + ["unlabelled", "unlabelled"])
    df.loc[[8, 9], "label"] = ""
    out = apply_split(df, "stratified", {"train": 0.5, "val": 0.5})
    assert Counter(out["split"]) == {"train": 4, "val": 4, "unlabelled": 2}
