"""Deterministic train/val/test splits: stratified, group-aware, k-fold and predefined.

Every function takes a ``seed``, returns split names (or fold indices) aligned with its input
(a :class:`pandas.Series` with the input's index when given a Series, a NumPy array otherwise)
and never modifies its input.

>>> stratified_split(["a", "a", "b", "b"], {"train": 0.5, "test": 0.5}, seed=0)
array(['train', 'test', 'train', 'test'], dtype=object)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from earmark.checks import is_int
from earmark.errors import ConfigError, DataError

SPLIT_POLICIES = ("predefined", "stratified", "group")
UNLABELLED = "unlabelled"
DEFAULT_FRACTIONS = {"train": 0.8, "test": 0.2}
SPLIT_ALIASES = {"training": "train", "validation": "val", "valid": "val", "testing": "test"}


def normalize_split_name(name: str) -> str:
    """Map dataset spellings of split names to earmark's (``training`` -> ``train``, ``valid`` -> ``val``)."""
    s = str(name).strip()
    return SPLIT_ALIASES.get(s.lower(), s)


def check_fractions(fractions: Mapping[str, float] | None) -> dict[str, float]:
    """Validate ``{split name: fraction}``: non-negative numbers summing to 1 (within 1e-6).

    Raises
    ------
    ConfigError
        Empty mapping, bad name, negative or non-numeric fraction, or a sum other than 1.
    """
    if fractions is None:
        return dict(DEFAULT_FRACTIONS)
    if not isinstance(fractions, Mapping) or not fractions:
        raise ConfigError(f"fractions: expected a mapping like {{'train': 0.8, 'test': 0.2}}, got {fractions!r}")
    out: dict[str, float] = {}
    for name, f in fractions.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"fractions: split names must be non-empty strings, got {name!r}")
        try:
            value = float(f)
        except (TypeError, ValueError):
            raise ConfigError(f"fractions.{name}: expected a number in [0, 1], got {f!r}") from None
        if not np.isfinite(value) or value < 0 or value > 1:
            raise ConfigError(f"fractions.{name}: expected a number in [0, 1], got {f!r}")
        out[name] = value
    total = sum(out.values())
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"fractions: must sum to 1, got {total:.6g} ({out})")
    return out


def _as_array(values: Any, what: str) -> np.ndarray:
    arr = np.asarray(values.to_numpy() if isinstance(values, pd.Series) else list(values), dtype=object)
    if arr.ndim != 1:
        raise DataError(f"{what}: expected a 1-D sequence, got shape {arr.shape}")
    return np.array(["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in arr],
                    dtype=object)


def _like(template: Any, values: np.ndarray, name: str) -> Any:
    if isinstance(template, pd.Series):
        return pd.Series(values, index=template.index, name=name)
    return values


def _deficit_pick(target: np.ndarray, assigned: np.ndarray) -> int:
    # largest remaining deficit; ties go to the split listed first (argmax returns the first)
    return int(np.argmax(target - assigned))


def stratified_split(
    labels: Sequence[Any] | pd.Series,
    fractions: Mapping[str, float] | None = None,
    seed: int = 0,
) -> np.ndarray | pd.Series:
    """Assign each clip to a split, class by class, in proportion to ``fractions``.

    Each class is shuffled with ``seed`` and cut in proportion to ``fractions``; the leftover clips
    of every class go to the split furthest below its overall target, so that the overall sizes
    also match the fractions. A class with fewer clips than there are (non-empty) splits goes
    entirely to the largest split.

    Parameters
    ----------
    labels : sequence of str, shape (n_clips,)
        Class of each clip (the empty string is a class like any other).
    fractions : dict, optional
        ``{split name: fraction}`` summing to 1; default ``{"train": 0.8, "test": 0.2}``.
    seed : int
        Seed of the shuffle.

    Returns
    -------
    splits : ndarray of str or Series, shape (n_clips,)
        Split name of each clip (a Series with the input's index when ``labels`` is a Series).
    """
    fr = check_fractions(fractions if fractions is not None else {"train": 0.7, "test": 0.3})
    y = _as_array(labels, "labels")
    names = list(fr)
    f = np.array([fr[n] for n in names])
    active = int((f > 0).sum())
    largest = int(np.argmax(f))
    rng = np.random.default_rng(seed)
    out = np.empty(len(y), dtype=object)
    assigned = np.zeros(len(names))
    seen = 0
    for cls in sorted(set(y)):
        idx = np.flatnonzero(y == cls)
        idx = idx[rng.permutation(len(idx))]
        n = len(idx)
        seen += n
        counts = np.zeros(len(names), dtype=int)
        if n < active:
            counts[largest] = n
        else:
            counts = np.floor(n * f + 1e-9).astype(int)
            target = seen * f
            for _ in range(n - counts.sum()):
                counts[_deficit_pick(np.where(f > 0, target, -np.inf), assigned + counts)] += 1
        assigned += counts
        start = 0
        for j, c in enumerate(counts):
            out[idx[start:start + c]] = names[j]
            start += c
    return _like(labels, out, "split")


def group_split(
    labels: Sequence[Any] | pd.Series,
    groups: Sequence[Any] | pd.Series,
    fractions: Mapping[str, float],
    seed: int = 0,
) -> np.ndarray | pd.Series:
    """Assign whole groups (artist, album, instrument, speaker) to splits, stratified by label.

    Each group takes its majority label (ties: the alphabetically first). Within each label the
    groups are shuffled with ``seed``, ordered largest first (the shuffle breaks ties) and each is
    given to the split with the largest remaining deficit of clips for that label. No group ever
    straddles two splits; with many groups the sizes come close to ``fractions``, with few (say one
    group for a label) the largest split gets them.

    Parameters
    ----------
    labels : sequence of str, shape (n_clips,)
    groups : sequence of str, shape (n_clips,)
        Group of each clip.
    fractions : dict
        ``{split name: fraction}`` summing to 1.
    seed : int

    Returns
    -------
    splits : ndarray of str or Series, shape (n_clips,)
    """
    if fractions is None:
        raise ConfigError("fractions: group_split needs {split name: fraction}, e.g. {'train': 0.8, 'test': 0.2}")
    fr = check_fractions(fractions)
    y = _as_array(labels, "labels")
    g = _as_array(groups, "groups")
    if len(g) != len(y):
        raise DataError(f"group_split: labels and groups differ in length ({len(y)} vs {len(g)})")
    names = list(fr)
    f = np.array([fr[n] for n in names])
    rng = np.random.default_rng(seed)

    members: dict[str, list[int]] = defaultdict(list)
    for i, gi in enumerate(g):
        members[gi].append(i)
    by_label: dict[str, list[str]] = defaultdict(list)
    for gi, rows in members.items():
        counts = Counter(y[rows])
        top = max(counts.values())
        by_label[min(lab for lab, c in counts.items() if c == top)].append(gi)

    out = np.empty(len(y), dtype=object)
    for lab in sorted(by_label):
        gs = sorted(by_label[lab])
        gs = [gs[i] for i in rng.permutation(len(gs))]
        gs.sort(key=lambda k: -len(members[k]))  # stable: the shuffle orders equal sizes
        total = sum(len(members[k]) for k in gs)
        target = np.where(f > 0, total * f, -np.inf)
        assigned = np.zeros(len(names))
        for k in gs:
            j = _deficit_pick(target, assigned)
            assigned[j] += len(members[k])
            out[members[k]] = names[j]
    return _like(labels, out, "split")


def kfold(
    labels: Sequence[Any] | pd.Series,
    k: int,
    seed: int = 0,
    groups: Sequence[Any] | pd.Series | None = None,
) -> np.ndarray | pd.Series:
    """Fold index (0..k-1) of every clip: scikit-learn's StratifiedKFold or StratifiedGroupKFold.

    Parameters
    ----------
    labels : sequence of str, shape (n_clips,)
    k : int
        Number of folds, >= 2.
    seed : int
        ``random_state`` of the shuffled splitter.
    groups : sequence of str, shape (n_clips,), optional
        When given, no group is in two folds.

    Returns
    -------
    folds : ndarray of int or Series, shape (n_clips,)

    Raises
    ------
    ConfigError
        ``k`` < 2, a class with fewer than ``k`` clips (without groups), or fewer than ``k`` groups.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if not is_int(k) or k < 2:
        raise ConfigError(f"folds: expected an integer >= 2, got {k!r}")
    k = int(k)
    y = _as_array(labels, "labels")
    out = np.full(len(y), -1, dtype=int)
    if groups is None:
        counts = Counter(y)
        small = sorted((c, lab) for lab, c in counts.items() if c < k)
        if small:
            listed = ", ".join(f"{lab!r} has {c}" for c, lab in small[:5])
            raise ConfigError(f"folds={k}: every class needs at least {k} clips; {listed}"
                              + (f" (and {len(small) - 5} more classes)" if len(small) > 5 else ""))
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        parts = splitter.split(np.zeros(len(y)), y)
    else:
        g = _as_array(groups, "groups")
        if len(g) != len(y):
            raise DataError(f"kfold: labels and groups differ in length ({len(y)} vs {len(g)})")
        n_groups = len(set(g))
        if n_groups < k:
            raise ConfigError(f"folds={k}: needs at least {k} groups, found {n_groups}")
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        parts = splitter.split(np.zeros(len(y)), y, g)
    for fold, (_, test) in enumerate(parts):
        out[test] = fold
    return _like(labels, out, "fold")


def apply_split(
    df: pd.DataFrame,
    how: str,
    fractions: Mapping[str, float] | None = None,
    seed: int = 0,
    folds: int | None = None,
) -> pd.DataFrame:
    """Return a copy of a clip table with its ``split`` (and ``fold``) column set by a policy.

    Parameters
    ----------
    df : DataFrame
        Columns ``label`` and, depending on ``how``, ``split`` / ``group`` (``group`` defaults to ``id``).
    how : {"predefined", "stratified", "group"}
        ``predefined`` keeps the ``split`` column (every row must have one); ``stratified`` and
        ``group`` compute it for the labelled rows. Unlabelled rows (empty label) keep a split they
        already have, else get ``"unlabelled"``.
    fractions : dict, optional
        ``{split name: fraction}``; default ``{"train": 0.8, "test": 0.2}``.
    seed : int
    folds : int, optional
        Adds an int ``fold`` column (0..folds-1) over the labelled rows, grouped by ``group`` when
        groups hold more than one clip; unlabelled rows get -1.

    Raises
    ------
    ConfigError
        Unknown policy or bad fractions / folds.
    DataError
        ``predefined`` without a complete ``split`` column.
    """
    if how not in SPLIT_POLICIES:
        raise ConfigError(f"split: expected one of {', '.join(SPLIT_POLICIES)}, got {how!r}")
    if "label" not in df.columns:
        raise DataError(f"apply_split: expected a 'label' column; found columns {list(df.columns)}")
    out = df.copy()
    labels = out["label"].fillna("").astype(str)
    labelled = (labels != "").to_numpy()
    groups = _groups(out)
    old = (out["split"].fillna("").astype(str).to_numpy(dtype=object) if "split" in out.columns
           else np.full(len(out), "", dtype=object))

    if how == "predefined":
        empty = old == ""
        if "split" not in out.columns or empty.all():
            raise DataError("split='predefined': the dataset has no split column to keep; "
                            "use split='stratified' or split='group'")
        if empty.any():
            raise DataError(f"split='predefined': {int(empty.sum())} of {len(out)} clips have no split "
                            f"(e.g. {_first_ids(out, empty)}); use split='stratified' or split='group'")
        new = old
    else:
        fr = check_fractions(fractions)
        new = np.where(old == "", UNLABELLED, old).astype(object)
        if labelled.any():
            y = labels[labelled]
            if how == "stratified":
                new[labelled] = stratified_split(y.to_numpy(), fr, seed)
            else:
                new[labelled] = group_split(y.to_numpy(), groups[labelled], fr, seed)
    out["split"] = new

    if folds is not None:
        fold = np.full(len(out), -1, dtype=int)
        if labelled.any():
            g = groups[labelled]
            use_groups = len(set(g)) < len(g)
            fold[labelled] = kfold(labels[labelled].to_numpy(), folds, seed, g if use_groups else None)
        out["fold"] = fold
    return out


def _groups(df: pd.DataFrame) -> np.ndarray:
    ids = df["id"].fillna("").astype(str) if "id" in df.columns else pd.Series(
        [str(i) for i in range(len(df))], index=df.index)
    if "group" not in df.columns:
        return ids.to_numpy(dtype=object)
    g = df["group"].fillna("").astype(str)
    return g.where(g != "", ids).to_numpy(dtype=object)


def _first_ids(df: pd.DataFrame, mask: np.ndarray, n: int = 5) -> str:
    col = df["id"] if "id" in df.columns else (df["path"] if "path" in df.columns else pd.Series(df.index))
    return ", ".join(map(str, col.to_numpy()[mask][:n]))
