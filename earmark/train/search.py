"""Grid search over one or several classical pipelines with (group-aware) stratified k-fold CV.

One :class:`~sklearn.model_selection.GridSearchCV` runs over a list of grids, one per candidate
model, so every candidate is scored on the same folds and the best pipeline is refitted on all data.

>>> res = grid_search(["svm_rbf", "rf", "knn"], X, y, groups=albums, folds=5, seed=0,
...                   scaler="robust", select_k=100)
>>> res.best_params
{'model': 'svm_rbf', 'C': 10, 'gamma': 0.001}
>>> res.per_model
{'svm_rbf': 0.81, 'rf': 0.74, 'knn': 0.69}
"""

from __future__ import annotations

import warnings

import difflib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline

from earmark.checks import is_int
from earmark.errors import ConfigError, DataError
from earmark.models.classical import PIPELINE_OPTIONS, check_seed, default_grid, get_model, make_model, make_step

KEY = "train.search"
NAMES_KEY = "model.name"  # the candidates, as the experiment config names them
_STEP_OF = {"scaler": "scaler", "select_k": "select", "pca": "pca"}


@dataclass
class SearchResult:
    """What :func:`grid_search` found.

    Attributes
    ----------
    best_estimator : Pipeline
        The best pipeline refitted on all of ``X`` (absent steps omitted, as in ``build_pipeline``).
    best_params : dict
        ``{"model": name, <model params searched>, <pipeline options searched>}``,
        e.g. ``{"model": "svm_rbf", "C": 10, "gamma": 0.001}``.
    best_score : float
        Mean validation score of the best combination.
    cv_results : DataFrame
        One row per combination, best first: ``model``, ``params`` (text), ``mean_test_score``,
        ``std_test_score``, ``rank_test_score``, ``mean_fit_time``. A combination that could not
        be fitted on some fold (e.g. k-NN with more neighbours than a fold's clips) has a NaN
        score and ranks last; the search goes on with the others.
    per_model : dict
        Best mean validation score of each candidate, in the order given (None if none fitted).
    failed_fits : int
        How many (combination, fold) fits failed.
    splits : list of (ndarray, ndarray)
        The (train, validation) row indices of every fold the search used.
    grouped : bool
        Whether the folds kept groups whole (StratifiedGroupKFold).
    scoring : str or callable
    """

    best_estimator: Pipeline
    best_params: dict[str, Any]
    best_score: float
    cv_results: pd.DataFrame
    per_model: dict[str, float | None]
    splits: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list, repr=False)
    grouped: bool = False
    scoring: Any = "accuracy"
    failed_fits: int = 0


def _check_folds(folds: Any, key: str) -> int:
    if not is_int(folds) or folds < 2:
        raise ConfigError(f"{key}.folds: expected an integer >= 2, got {folds!r}")
    return int(folds)


def make_cv(
    y: Sequence[Any],
    *,
    groups: Sequence[Any] | None = None,
    folds: int = 5,
    seed: int = 0,
    key: str = KEY,
) -> tuple[StratifiedKFold | StratifiedGroupKFold, np.ndarray | None]:
    """The cross-validation splitter a search uses, and the groups to pass to its ``split``.

    ``StratifiedKFold(folds, shuffle=True, random_state=seed)``, or ``StratifiedGroupKFold`` (same
    arguments) when ``groups`` is given and some group holds more than one clip; then no group is
    ever in both the training and the validation rows of a fold.

    Parameters
    ----------
    y : sequence, shape (n_clips,)
        Labels.
    groups : sequence, shape (n_clips,), optional
        Artist / album / piece of each clip.
    folds : int
        Number of folds, >= 2.
    seed : int

    Returns
    -------
    cv : splitter
    groups : ndarray or None
        ``groups`` as an array when the splitter is group-aware, else None.

    Raises
    ------
    DataError
        Fewer than 2 classes, or ``groups`` of another length than ``y``.
    ConfigError
        Bad ``folds``; a class with fewer clips than ``folds``; fewer groups than ``folds``.
    """
    folds = _check_folds(folds, key)
    check_seed(seed, f"{key}.seed")
    y = np.asarray(y)
    counts = Counter(y.tolist())
    if len(counts) < 2:
        raise DataError(f"y: a classifier needs at least 2 classes, got {len(counts)} "
                        f"({', '.join(map(repr, counts)) or 'no clips'})")
    small = sorted((c, str(lab)) for lab, c in counts.items() if c < folds)
    if small:
        listed = ", ".join(f"class {lab!r} has {c}" for c, lab in small[:5])
        more = f" (and {len(small) - 5} more classes)" if len(small) > 5 else ""
        raise ConfigError(f"{key}.folds: {folds} folds need at least {folds} clips in every class; "
                          f"{listed}{more}")
    if groups is not None:
        g = np.asarray(groups)
        if g.ndim != 1 or len(g) != len(y):
            raise DataError(f"groups: expected one group per clip ({len(y)}), got shape {g.shape}")
        n_groups = len(set(g.tolist()))
        if n_groups < len(g):
            if n_groups < folds:
                raise ConfigError(f"{key}.folds: {folds} folds need at least {folds} groups; found {n_groups}")
            return StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed), g
    return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed), None


def _check_X(X: Any, n: int) -> Any:
    try:
        arr = np.asarray(X, dtype=float)
    except (TypeError, ValueError) as e:
        raise DataError(f"X: expected a numeric array (n_clips, n_features) ({e})") from None
    if arr.ndim != 2:
        raise DataError(f"X: expected a 2-D array (n_clips, n_features), got shape {arr.shape}")
    if arr.shape[0] != n:
        raise DataError(f"X and y differ in length ({arr.shape[0]} vs {n})")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise DataError(f"X: {int(bad.sum())} non-finite values (NaN/inf) in {len(rows)} rows "
                        f"(e.g. rows {', '.join(map(str, rows[:5]))})")
    return X


def _check_scoring(scoring: Any, key: str) -> Any:
    if callable(scoring):
        return scoring
    from sklearn.metrics import get_scorer, get_scorer_names

    if not isinstance(scoring, str):
        raise ConfigError(f"{key}.scoring: expected a scorer name such as 'accuracy', got {scoring!r}")
    try:
        get_scorer(scoring)
    except ValueError:
        close = difflib.get_close_matches(scoring, get_scorer_names(), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(map(repr, close))}?" if close else "see sklearn.metrics.get_scorer_names()"
        raise ConfigError(f"{key}.scoring: unknown scorer {scoring!r}; {hint}") from None
    return scoring


_ROC_AUC = {"roc_auc_ovr": ("ovr", "macro"), "roc_auc_ovr_weighted": ("ovr", "weighted"),
            "roc_auc_ovo": ("ovo", "macro"), "roc_auc_ovo_weighted": ("ovo", "weighted")}


def multiclass_roc_auc(y_true: Any, y_score: Any, *, labels: Sequence[Any], multi_class: str = "ovr",
                       average: str = "macro") -> float:
    """``roc_auc_score(y_true, y_score, multi_class=, average=, labels=)`` over the classes present.

    One-vs-rest averages the AUC of each class present in ``y_true``, one-vs-one that of each pair of
    present classes (Hand & Till), ``weighted`` by their prevalence: scikit-learn's values (1.9), except
    that where a class of ``labels`` (the columns of ``y_score``) is absent -- a grouped fold without
    it -- the one-vs-rest macro average is that of the present classes instead of NaN. NaN when fewer
    than two classes are present.
    """
    from sklearn.metrics import roc_auc_score

    y_true, y_score, labels = np.asarray(y_true), np.asarray(y_score, dtype=float), list(labels)
    if y_score.ndim != 2 or y_score.shape[1] != len(labels):
        raise ValueError(f"y_score: expected one column per label ({len(labels)}), got shape {y_score.shape}")
    present = [i for i, c in enumerate(labels) if np.any(y_true == c)]
    if len(present) < 2:
        return float("nan")
    scores, weights = [], []
    if multi_class == "ovr":
        for i in present:
            positive = y_true == labels[i]
            scores.append(roc_auc_score(positive, y_score[:, i]))
            weights.append(positive.mean())
    else:
        for k, i in enumerate(present):
            for j in present[k + 1:]:
                mask = (y_true == labels[i]) | (y_true == labels[j])
                first = y_true[mask] == labels[i]
                scores.append((roc_auc_score(first, y_score[mask, i]) + roc_auc_score(~first, y_score[mask, j])) / 2)
                weights.append(mask.mean())
    return float(np.average(scores, weights=weights if average == "weighted" else None))


class _PerClassScorer:
    """``scorer(estimator, X, y)``: ``sign * metric(y, S, labels=labels, **kw)`` where ``S`` is the
    estimator's first available ``response`` method's output (``predict_proba`` unless told) with one
    column per label, placed by ``estimator.classes_``: a model fitted on folds without a class gives
    that class probability 0, or a decision score below every other score of the sample."""

    def __init__(self, metric: Callable[..., float], labels: list[Any], sign: float = 1.0,
                 response: tuple[str, ...] = ("predict_proba",), **kw: Any):
        self.metric, self.labels, self.sign, self.response, self.kw = metric, labels, sign, response, kw

    def __call__(self, estimator: Any, X: Any, y: Any) -> float:
        method = next((m for m in self.response if hasattr(estimator, m)), self.response[-1])
        scores = np.asarray(getattr(estimator, method)(X))
        if scores.ndim == 1:  # a decision function of two classes: the score of classes_[1]
            if len(self.labels) == 2:
                return self.sign * float(self.metric(y, scores, labels=self.labels, **self.kw))
            scores = np.column_stack([-scores, scores])  # a model that saw two of the labels
        dtype = np.result_type(scores.dtype, np.float32)
        fill = 0.0 if method == "predict_proba" else (scores.min(axis=1, keepdims=True) - 1.0 if scores.size else 0.0)
        full = np.zeros((scores.shape[0], len(self.labels)), dtype=dtype) + fill
        full[:, [self.labels.index(c) for c in estimator.classes_]] = scores
        return self.sign * float(self.metric(y, full, labels=self.labels, **self.kw))


def scorer_for(scoring: Any, classes: np.ndarray) -> Any:
    """The scorer GridSearchCV uses: ``scoring``, except for the probability scorers that need every
    class in each fold.

    A fold of a grouped split may lack a class (all of one singer's clips are held out together);
    scikit-learn's own ``neg_log_loss``, ``top_k_accuracy`` and multiclass ``roc_auc_*`` scorers then
    fail on that fold, and with ``error_score=nan`` every combination would be scored NaN. They get
    every class named (``labels=``) and one column per class even when the training folds lacked one
    (probability 0; for ``top_k_accuracy`` on a decision function, a score below the sample's
    others), and ``roc_auc_ovr``/``_ovo`` (and ``_weighted``) are averaged over the classes the test
    fold holds (:func:`multiclass_roc_auc`).
    """
    if not isinstance(scoring, str):
        return scoring
    from sklearn.metrics import log_loss, top_k_accuracy_score

    labels = list(classes)
    if scoring == "neg_log_loss":
        return _PerClassScorer(log_loss, labels, sign=-1.0)
    if scoring == "top_k_accuracy":
        return _PerClassScorer(top_k_accuracy_score, labels, response=("decision_function", "predict_proba"))
    if scoring in _ROC_AUC and len(labels) > 2:
        multi_class, average = _ROC_AUC[scoring]
        return _PerClassScorer(multiclass_roc_auc, labels, multi_class=multi_class, average=average)
    return scoring


def _check_candidates(candidates: Any) -> list[str]:
    key = NAMES_KEY
    single = isinstance(candidates, str)
    if single:
        candidates = [candidates]
    if not isinstance(candidates, (list, tuple)) or not candidates:
        raise ConfigError(f"{key}: expected a model name or a non-empty list of them, got {candidates!r}")
    seen: set[str] = set()
    for i, name in enumerate(candidates):
        get_model(name, key if single else f"{key}[{i}]")
        if name in seen:
            raise ConfigError(f"{key}[{i}]: {name!r} listed twice")
        seen.add(name)
    return list(candidates)


def _fixed_params(params: Any, names: list[str]) -> dict[str, tuple[dict[str, Any], str]]:
    """``{candidate: (fixed params, key path of their errors)}``."""
    key = "model.params"
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"{key}: expected a mapping of parameter -> value, got {params!r}")
    if params and all(k in names for k in params):
        out = {}
        for name in names:
            own = params.get(name, {})
            if not isinstance(own, Mapping):
                raise ConfigError(f"{key}.{name}: expected a mapping of parameter -> value, got {own!r}")
            out[name] = (dict(own), f"{key}.{name}")
        return out
    return {name: (dict(params), key) for name in names}


def _fmt(v: Any) -> str:
    return repr(v.item() if isinstance(v, np.generic) else v)


def build_param_grid(
    candidates: Sequence[str] | str,
    *,
    grids: Mapping[str, Mapping[str, list]] | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    scaler: str | None = "standard",
    select_k: int | None = None,
    pca: float | int | None = None,
) -> tuple[list[dict[str, list]], dict[int, str], dict[str, dict[str, list[tuple[Any, Any]]]]]:
    """Validate candidates, grids, fixed parameters and pipeline options, and build GridSearchCV's grid.

    Needs no data, so a trainer can call it before extracting features: every configuration error
    (with its key path, see :func:`grid_search`) surfaces before hours of work.

    Returns
    -------
    param_grid : list of dict
        One grid per candidate, for ``GridSearchCV`` over a ``scaler/select/pca/model`` pipeline.
    model_name : dict
        ``id(model step) -> candidate name``.
    searched : dict
        ``candidate -> option -> [(step, option value)]`` for pipeline options a grid searches.
    """
    names = _check_candidates(candidates)
    fixed_steps = {opt: make_step(opt, val, seed=seed) for opt, val in
                   (("scaler", scaler), ("select_k", select_k), ("pca", pca))}
    if grids is None:
        grids = {}
    if not isinstance(grids, Mapping):
        raise ConfigError(f"{KEY}.grid: expected a mapping {{model: {{param: [values]}}}}, got {grids!r}")
    for name in grids:
        if name not in names:
            raise ConfigError(f"{KEY}.grid.{name}: not among the candidates ({', '.join(names)})")
    fixed_params = _fixed_params(params, names)
    param_grid: list[dict[str, list]] = []
    model_name: dict[int, str] = {}
    searched: dict[str, dict[str, list[tuple[Any, Any]]]] = {}
    for name in names:
        key = f"{KEY}.grid.{name}"
        grid = grids[name] if name in grids else default_grid(name)
        if not isinstance(grid, Mapping):
            raise ConfigError(f"{key}: expected a mapping of parameter -> list of values, got {grid!r}")
        fixed, fixed_key = fixed_params[name]
        est = make_model(name, fixed, seed=seed, key=fixed_key, name_key=NAMES_KEY)
        model_name[id(est)] = name
        searched[name] = {}
        entry: dict[str, list] = {"model": [est]}
        for p, values in grid.items():
            pkey = f"{key}.{p}"
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{pkey}: expected a non-empty list of values, got {values!r}")
            if p in PIPELINE_OPTIONS:
                pairs = []
                for v in values:
                    step = make_step(p, v, seed=seed, key=pkey)
                    pairs.append(("passthrough" if step is None else step, v))
                searched[name][p] = pairs
                entry[_STEP_OF[p]] = [s for s, _ in pairs]
            else:
                for v in values:
                    make_model(name, {**fixed, p: v}, seed=seed, key=key)
                entry[f"model__{p}"] = list(values)
        for opt, step in fixed_steps.items():
            entry.setdefault(_STEP_OF[opt], ["passthrough" if step is None else step])
        param_grid.append(entry)
    return param_grid, model_name, searched


def with_copies(splits: Any, copy_source: np.ndarray, n_originals: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, validation)`` rows of each fold of the originals, each training side extended by the
    copies (rows ``n_originals + j``, ``copy_source[j]`` their original) whose original trains in it."""
    splits = [(np.asarray(tr), np.asarray(va)) for tr, va in splits]
    rows = n_originals + np.arange(len(copy_source))
    return [(np.concatenate([tr, rows[np.isin(copy_source, tr)]]), va) for tr, va in splits]


def grid_search(
    candidates: Sequence[str] | str,
    X: Any,
    y: Sequence[Any],
    *,
    groups: Sequence[Any] | None = None,
    folds: int = 5,
    seed: int = 0,
    scoring: Any = "accuracy",
    n_jobs: int | None = 1,
    scaler: str | None = "standard",
    select_k: int | None = None,
    pca: float | int | None = None,
    grids: Mapping[str, Mapping[str, list]] | None = None,
    params: Mapping[str, Any] | None = None,
    copy_source: Sequence[int] | None = None,
) -> SearchResult:
    """Cross-validated grid search over pipelines of one or several candidate models.

    Parameters
    ----------
    candidates : list of str
        Registered model names (``["svm_rbf", "rf", "knn"]``); a single name is accepted.
    X : array-like, shape (n_clips, n_features)
    y : array-like, shape (n_clips,)
    groups : array-like, shape (n_clips,), optional
        Artist / album of each clip: when some group holds several clips, folds keep groups whole.
    folds : int
        Number of CV folds (stratified, shuffled with ``seed``).
    seed : int
        Seeds the folds, the models and PCA: the same seed gives the same result.
    scoring : str or callable
        scikit-learn scorer (``"accuracy"``, ``"f1_macro"``, ``"top_k_accuracy"``).
    n_jobs : int, optional
        Parallel fits of GridSearchCV.
    scaler, select_k, pca
        Pipeline options (see :func:`earmark.models.build_pipeline`) for candidates whose grid does
        not search them.
    grids : dict, optional
        ``{model: {param: [values]}}``; a candidate's grid replaces its default grid
        (:func:`earmark.models.default_grid`). Keys are model parameters (``C``, ``gamma``) or the
        pipeline options ``scaler``, ``select_k``, ``pca`` (None in a list means "no such step").
    params : dict, optional
        Fixed model parameters (config ``model.params``), not searched: either ``{param: value}``
        applied to every candidate (each must have the parameter), or ``{model: {param: value}}``
        when every key is a candidate name. A searched value of the same parameter wins.
    copy_source : array-like of int, optional
        The last ``len(copy_source)`` rows of ``X`` and ``y`` are augmented copies (``train.copies``)
        of the rows given: the folds are made from the originals (``groups`` has one entry per
        original), and each copy trains in the folds where its original trains and is never scored.

    Returns
    -------
    SearchResult

    Raises
    ------
    ConfigError
        With the key path: ``model.name[i]``, ``train.search.grid.<model>.<param>``,
        ``train.search.folds`` (also a class with fewer clips than folds), ``train.search.scoring``,
        ``model.params.<param>`` / ``model.params.<model>.<param>``, ``model.scaler`` /
        ``model.select_k`` / ``model.pca``.
    DataError
        Fewer than 2 classes; X not a finite 2-D array matching y; groups of the wrong length.
    """
    names = _check_candidates(candidates)
    check_seed(seed, f"{KEY}.seed")
    scoring = _check_scoring(scoring, KEY)
    if n_jobs is not None and (not is_int(n_jobs) or n_jobs == 0):
        raise ConfigError(f"{KEY}.n_jobs: expected a non-zero integer or None, got {n_jobs!r}")
    param_grid, model_name, searched = build_param_grid(
        names, grids=grids, params=params, seed=seed, scaler=scaler, select_k=select_k, pca=pca)

    y_arr = np.asarray(y)
    if y_arr.ndim != 1:
        raise DataError(f"y: expected one label per clip, got shape {y_arr.shape}")
    X = _check_X(X, len(y_arr))
    source = np.zeros(0, dtype=np.int64) if copy_source is None else np.asarray(copy_source, dtype=np.int64)
    n = len(y_arr) - len(source)
    if source.ndim != 1 or n < 1 or not np.all((source >= 0) & (source < n)):
        raise DataError(f"copy_source: expected one index of an original row (0..{n - 1}) per copy, "
                        f"got {len(source)} for {len(y_arr)} rows")
    cv, cv_groups = make_cv(y_arr[:n], groups=groups, folds=folds, seed=seed)
    splits = with_copies(cv.split(np.zeros((n, 1)), y_arr[:n], cv_groups), source, n)
    base = Pipeline([("scaler", "passthrough"), ("select", "passthrough"), ("pca", "passthrough"),
                     ("model", param_grid[0]["model"][0])])
    search = GridSearchCV(base, param_grid, scoring=scorer_for(scoring, np.unique(y_arr)), cv=splits, n_jobs=n_jobs, refit=True,
                          return_train_score=False, error_score=np.nan)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FitFailedWarning)
        warnings.filterwarnings("always", message="Scoring failed", category=UserWarning)
        search.fit(X, y_arr)
    messages = [str(w.message) for w in caught if issubclass(w.category, FitFailedWarning)]
    messages += [str(w.message).strip().splitlines()[-1] for w in caught  # the error, not its traceback
                 if str(w.message).startswith("Scoring failed")]
    fold_scores = np.array([search.cv_results_[f"split{i}_test_score"] for i in range(len(splits))])
    n_failed = int(np.isnan(fold_scores).sum())
    if not np.isfinite(search.cv_results_["mean_test_score"]).any():
        why = (f"; scikit-learn said:\n{messages[0]}" if messages else
               f"; {scoring} is undefined on some fold of every combination (e.g. a test fold holding one class: "
               "grouped folds keep each group's clips together)")
        raise DataError(f"grid search: no parameter combination could be fitted and scored ({scoring}) on these "
                        f"folds{why}")

    def readable(combo: Mapping[str, Any]) -> dict[str, Any]:
        name = model_name.get(id(combo["model"]), type(combo["model"]).__name__)
        out: dict[str, Any] = {"model": name}
        for k, v in combo.items():
            if k.startswith("model__"):
                out[k[len("model__"):]] = v.item() if isinstance(v, np.generic) else v
        for opt, pairs in searched.get(name, {}).items():
            step = combo[_STEP_OF[opt]]
            out[opt] = next((v for s, v in pairs if s is step or (isinstance(s, str) and s == step)), None)
        return out

    res = search.cv_results_
    rows = [readable(p) for p in res["params"]]
    table = pd.DataFrame({
        "model": [r["model"] for r in rows],
        "params": [", ".join(f"{k}={_fmt(v)}" for k, v in r.items() if k != "model") for r in rows],
        "mean_test_score": res["mean_test_score"],
        "std_test_score": res["std_test_score"],
        "rank_test_score": res["rank_test_score"],
        "mean_fit_time": res["mean_fit_time"],
    })
    table = table.sort_values("rank_test_score", kind="mergesort").reset_index(drop=True)
    per_model = {}
    for n in names:
        score = table.loc[table["model"] == n, "mean_test_score"].max()
        per_model[n] = float(score) if np.isfinite(score) else None
    best = search.best_estimator_
    best = Pipeline([(n, s) for n, s in best.steps if not (isinstance(s, str) and s == "passthrough")])
    return SearchResult(
        best_estimator=best,
        best_params=readable(search.best_params_),
        best_score=float(search.best_score_),
        cv_results=table,
        per_model=per_model,
        splits=splits,
        grouped=cv_groups is not None,
        scoring=scoring,
        failed_fits=n_failed,
    )
