"""Grid search over classical pipelines: model choice, group-aware folds, determinism, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, top_k_accuracy_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline

from earmark.errors import ConfigError, DataError
from earmark.train import SearchResult, grid_search, make_cv
from earmark.train.search import multiclass_roc_auc, scorer_for

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def ring():
    """2 classes no linear model can separate: |x0| < 1 vs |x0| > 2 (plus 3 noise features)."""
    rng = np.random.default_rng(1)
    n = 40
    inner = rng.uniform(-1, 1, n)
    outer = rng.uniform(2, 3, n) * rng.choice([-1, 1], n)
    X = np.column_stack([np.r_[inner, outer], rng.normal(0, 1, (2 * n, 3))])
    y = np.repeat(["in", "out"], n)
    return X, y


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(3.0 * i, 1.0, size=(12, 4)) for i in range(3)])
    y = np.repeat(["a", "b", "c"], 12)
    groups = np.repeat([f"album{i}" for i in range(12)], 3)  # 4 albums per class, 3 clips each
    return X, y, groups


def test_picks_the_nonlinear_model(ring):
    X, y = ring
    res = grid_search(["logreg", "svm_rbf"], X, y, folds=3, seed=0,
                      grids={"svm_rbf": {"C": [1, 10], "gamma": [0.1, 1.0]}})
    assert isinstance(res, SearchResult)
    assert res.best_params["model"] == "svm_rbf"
    assert set(res.best_params) == {"model", "C", "gamma"}
    assert res.best_score > 0.9
    assert res.per_model["svm_rbf"] > res.per_model["logreg"] + 0.2
    assert list(res.per_model) == ["logreg", "svm_rbf"]
    assert isinstance(res.best_estimator, Pipeline)
    assert [n for n, _ in res.best_estimator.steps] == ["scaler", "model"]
    assert (res.best_estimator.predict(X) == y).mean() > 0.9
    np.testing.assert_allclose(res.best_estimator.predict_proba(X).sum(axis=1), 1.0)
    table = res.cv_results
    assert len(table) == 4 + 4  # logreg default grid (4 C values) + 2x2
    assert list(table.columns[:5]) == ["model", "params", "mean_test_score", "std_test_score", "rank_test_score"]
    assert table.loc[0, "rank_test_score"] == 1 and table.loc[0, "model"] == "svm_rbf"
    assert table.loc[0, "mean_test_score"] == pytest.approx(res.best_score)
    assert "C=" in table.loc[0, "params"] and "gamma=" in table.loc[0, "params"]
    assert len(res.splits) == 3


def test_same_seed_same_result(blobs):
    X, y, _ = blobs
    kw = dict(folds=3, seed=5, grids={"rf": {"n_estimators": [5, 10]}, "knn": {"n_neighbors": [3, 7]}})
    a = grid_search(["rf", "knn"], X, y, **kw)
    b = grid_search(["rf", "knn"], X, y, **kw)
    assert a.best_params == b.best_params and a.best_score == b.best_score
    cols = ["model", "params", "mean_test_score", "std_test_score", "rank_test_score"]
    pd.testing.assert_frame_equal(a.cv_results[cols], b.cv_results[cols])
    for (ta, va), (tb, vb) in zip(a.splits, b.splits):
        np.testing.assert_array_equal(va, vb)
    np.testing.assert_array_equal(a.best_estimator.predict_proba(X), b.best_estimator.predict_proba(X))


def test_group_folds_never_straddle(blobs):
    X, y, groups = blobs
    cv, g = make_cv(y, groups=groups, folds=4, seed=0)
    assert isinstance(cv, StratifiedGroupKFold)
    splits = list(cv.split(X, y, g))
    res = grid_search(["knn"], X, y, groups=groups, folds=4, seed=0, grids={"knn": {"n_neighbors": [3]}})
    assert res.grouped
    for tr, va in splits + res.splits:
        assert not set(groups[tr]) & set(groups[va])
        assert len(tr) + len(va) == len(y)
    seen = np.concatenate([va for _, va in res.splits])
    assert sorted(seen) == list(range(len(y)))  # every clip validated once


def test_singleton_groups_use_plain_stratified_folds(blobs):
    X, y, _ = blobs
    cv, g = make_cv(y, groups=[f"clip{i}" for i in range(len(y))], folds=3, seed=0)
    assert isinstance(cv, StratifiedKFold) and g is None
    assert (cv.n_splits, cv.shuffle, cv.random_state) == (3, True, 0)


def test_pipeline_options_in_the_grid(blobs):
    X, y, _ = blobs
    res = grid_search(["logreg"], X, y, folds=3, seed=0, scaler="robust",
                      grids={"logreg": {"C": [1.0], "select_k": [None, 2], "pca": [None, 0.9]}})
    assert len(res.cv_results) == 4
    assert set(res.best_params) == {"model", "C", "select_k", "pca"}
    names = [n for n, _ in res.best_estimator.steps]
    assert names[0] == "scaler" and names[-1] == "model"
    assert ("select" in names) == (res.best_params["select_k"] is not None)
    assert ("pca" in names) == (res.best_params["pca"] is not None)
    assert type(res.best_estimator.named_steps["scaler"]).__name__ == "RobustScaler"
    assert any("select_k=None" in p for p in res.cv_results["params"])


def test_default_grids_and_top_k_scoring(blobs):
    X, y, _ = blobs
    res = grid_search("knn", X, y, folds=3, seed=0, scoring="top_k_accuracy")
    assert len(res.cv_results) == 14  # 7 n_neighbors x 2 weights
    assert 0.9 <= res.best_score <= 1.0


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"candidates": ["rf"], "grids": {"rf": {"gamma": [0.1]}}}, r"^train\.search\.grid\.rf\.gamma: rf has no parameter 'gamma'"),
        ({"candidates": ["svm_rbf"], "grids": {"svm_rbf": {"C": []}}}, r"^train\.search\.grid\.svm_rbf\.C: expected a non-empty list"),
        ({"candidates": ["svm_rbf"], "grids": {"svm_rbf": {"C": 10}}}, r"^train\.search\.grid\.svm_rbf\.C: expected a non-empty list of values, got 10"),
        ({"candidates": ["svm_rbf"], "grids": {"svm_rbf": {"C": [1, -1]}}}, r"^train\.search\.grid\.svm_rbf\.C: must be > 0, got -1"),
        ({"candidates": ["rf"], "grids": {"rf": {"select_k": [0]}}}, r"^train\.search\.grid\.rf\.select_k: expected an integer >= 1"),
        ({"candidates": ["rf"], "grids": {"knn": {"n_neighbors": [3]}}}, r"^train\.search\.grid\.knn: not among the candidates \(rf\)"),
        ({"candidates": ["rf"], "grids": {"rf": [1]}}, r"^train\.search\.grid\.rf: expected a mapping"),
        ({"candidates": ["rf", "svn"]}, r"^model\.name\[1\]: unknown model 'svn'"),
        ({"candidates": []}, r"^model\.name: expected a model name or a non-empty list"),
        ({"candidates": ["rf", "rf"]}, r"^model\.name\[1\]: 'rf' listed twice"),
        ({"candidates": ["rf"], "folds": 1}, r"^train\.search\.folds: expected an integer >= 2, got 1"),
        ({"candidates": ["rf"], "scoring": "acuracy"}, r"^train\.search\.scoring: unknown scorer 'acuracy'; did you mean 'accuracy'"),
        ({"candidates": ["rf"], "pca": 1.0}, r"^model\.pca: expected"),
        ({"candidates": ["rf"], "folds": 13}, r"^train\.search\.folds: 13 folds need at least 13 clips in every class; class 'a' has 12"),
    ],
)
def test_search_errors_name_the_key_path(kw, message, blobs):
    X, y, _ = blobs
    candidates = kw.pop("candidates")
    with pytest.raises(ConfigError, match=message):
        grid_search(candidates, X, y, **kw)


def test_small_class_and_too_few_groups(blobs):
    X, y, groups = blobs
    y2 = y.copy()
    y2[:10] = "b"  # class 'a' keeps 2 clips
    with pytest.raises(ConfigError, match=r"train\.search\.folds: 3 folds need at least 3 clips in every class; class 'a' has 2"):
        grid_search(["knn"], X, y2, folds=3)
    few = np.repeat(["g1", "g2", "g3"], 12)
    with pytest.raises(ConfigError, match=r"train\.search\.folds: 4 folds need at least 4 groups; found 3"):
        grid_search(["knn"], X, y, groups=few, folds=4)


def test_data_errors(blobs):
    X, y, _ = blobs
    with pytest.raises(DataError, match="at least 2 classes, got 1"):
        grid_search(["knn"], X, np.repeat("a", len(y)), folds=3)
    bad = X.copy()
    bad[4, 1] = np.nan
    with pytest.raises(DataError, match=r"X: 1 non-finite values .* rows 4"):
        grid_search(["knn"], bad, y, folds=3)
    with pytest.raises(DataError, match="differ in length"):
        grid_search(["knn"], X[:-1], y, folds=3)
    with pytest.raises(DataError, match="groups: expected one group per clip"):
        grid_search(["knn"], X, y, groups=["g"] * 5, folds=3)


def test_fixed_params_apply_to_candidates(blobs):
    X, y, _ = blobs
    res = grid_search(["logreg", "svm_linear"], X, y, folds=3, seed=0, params={"class_weight": "balanced"},
                      grids={"logreg": {"C": [1.0]}, "svm_linear": {"C": [1.0]}})
    assert res.best_estimator.named_steps["model"].class_weight == "balanced"
    per = grid_search(["logreg", "knn"], X, y, folds=3, seed=0, params={"knn": {"weights": "distance"}},
                      grids={"logreg": {"C": [0.001]}, "knn": {"n_neighbors": [3]}})
    assert per.best_params == {"model": "knn", "n_neighbors": 3}
    assert per.best_estimator.named_steps["model"].weights == "distance"
    with pytest.raises(ConfigError, match=r"^model\.params\.C: knn has no parameter 'C'"):
        grid_search(["logreg", "knn"], X, y, folds=3, params={"C": 10})
    with pytest.raises(ConfigError, match=r"^model\.params\.knn\.n_neighbors: must be an integer >= 1"):
        grid_search(["logreg", "knn"], X, y, folds=3, params={"knn": {"n_neighbors": 0}})


def test_combinations_that_cannot_fit_a_small_fold_are_skipped_not_fatal():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(c, 1.0, size=(6, 4)) for c in (0.0, 3.0)])
    y = np.repeat(["a", "b"], 6)
    result = grid_search(["knn"], X, y, folds=2, grids={"knn": {"n_neighbors": [3, 9]}})
    assert result.best_params["n_neighbors"] == 3 and result.failed_fits == 2
    scores = result.cv_results.set_index("params")["mean_test_score"]
    assert np.isnan(scores["n_neighbors=9, weights='uniform'"] if "n_neighbors=9, weights='uniform'" in scores
                    else scores.iloc[-1])
    with pytest.raises(DataError, match="no parameter combination could be fitted"):
        grid_search(["knn"], X, y, folds=2, grids={"knn": {"n_neighbors": [9]}})


def test_offline_copies_train_beside_their_original_and_are_never_scored():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.repeat(["a", "b"], 20)
    source = np.repeat(np.arange(40), 2)  # two copies of every clip, appended after the originals
    X_all, y_all = np.vstack([X, X[source] + 0.01]), np.concatenate([y, y[source]])
    res = grid_search("logreg", X_all, y_all, folds=4, seed=0, copy_source=source)
    assert len(res.splits) == 4
    for tr, va in res.splits:
        assert va.max() < 40  # only originals are validated
        copies = tr[tr >= 40] - 40
        assert set(source[copies]) == set(tr[tr < 40])  # every training original brings its copies, no other
    with pytest.raises(DataError, match="copy_source"):
        grid_search("logreg", X_all, y_all, folds=4, copy_source=source + 40)


@pytest.mark.parametrize("scoring", ["neg_log_loss", "top_k_accuracy", "roc_auc_ovr", "roc_auc_ovo_weighted"])
def test_probability_scorers_work_when_a_grouped_fold_lacks_a_class(scoring):
    """One singer per class: holding a singer out leaves their class out of that fold, which
    scikit-learn's own log-loss and top-k scorers refuse (every fold scored NaN)."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(2.0 * i, 1.0, size=(10, 3)) for i in range(3) for _ in range(2)])
    y = np.repeat(["a", "b", "c"], 20)
    groups = np.repeat(["a1", "a2", "b1", "b2", "c1", "c2"], 10)  # two singers per class
    res = grid_search(["logreg"], X, y, groups=groups, folds=3, seed=0, scoring=scoring,
                      grids={"logreg": {"C": [0.001, 1.0]}})
    assert res.grouped and res.failed_fits == 0
    assert any(len(set(y[va])) < 3 for _, va in res.splits)  # the case this is about
    scores = res.cv_results["mean_test_score"]
    assert np.isfinite(scores).all()
    if scoring == "neg_log_loss":
        assert (scores < 0).all() and res.best_params["C"] == 1.0  # C=0.001 gives near-uniform probabilities
    if scoring.startswith("roc_auc"):
        assert ((scores > 0.5) & (scores <= 1.0)).all()
    assert res.scoring == scoring


@pytest.mark.filterwarnings("ignore:Only one class is present")  # scikit-learn's own, on the reference call
@pytest.mark.parametrize("multi_class", ["ovr", "ovo"])
@pytest.mark.parametrize("average", ["macro", "weighted"])
def test_multiclass_roc_auc_is_scikit_learns_over_the_classes_present(multi_class, average):
    rng = np.random.default_rng(1)
    labels = ["a", "b", "c", "d"]
    y = rng.choice(labels, size=80)
    P = rng.dirichlet(np.ones(4), size=80) + 0.6 * (y[:, None] == np.array(labels))  # informative, not perfect
    P /= P.sum(axis=1, keepdims=True)
    ours = multiclass_roc_auc(y, P, labels=labels, multi_class=multi_class, average=average)
    assert ours == pytest.approx(roc_auc_score(y, P, labels=labels, multi_class=multi_class, average=average))
    keep = y != "d"  # a fold without 'd'
    ours = multiclass_roc_auc(y[keep], P[keep], labels=labels, multi_class=multi_class, average=average)
    if (multi_class, average) == ("ovr", "macro"):  # scikit-learn: NaN (class d's AUC is undefined)
        with pytest.warns(UserWarning, match="Only one class"):
            assert np.isnan(roc_auc_score(y[keep], P[keep], labels=labels, multi_class="ovr"))
        assert ours == pytest.approx(np.mean([roc_auc_score(y[keep] == c, P[keep][:, i]) for i, c in enumerate("abc")]))
    else:  # scikit-learn leaves the absent class out by itself here
        assert ours == pytest.approx(roc_auc_score(y[keep], P[keep], labels=labels, multi_class=multi_class,
                                                   average=average))
    assert np.isnan(multiclass_roc_auc(y[y == "a"], P[y == "a"], labels=labels))  # one class: undefined
    with pytest.raises(ValueError, match="one column per label"):
        multiclass_roc_auc(y, P[:, :3], labels=labels)


def test_a_class_missing_from_the_training_folds_gets_probability_zero():
    """One singer in class c: the fold that tests them was trained without c; log loss and AUC still
    score it (badly), where scikit-learn's scorers fail on the column count."""
    rng = np.random.default_rng(0)
    y = np.array(["a"] * 12 + ["b"] * 12 + ["c"] * 6)
    X = rng.standard_normal((30, 4)) + (y[:, None] == "a") - (y[:, None] == "c")
    groups = np.where(y == "c", "c", np.char.add(y, (np.arange(30) % 3).astype(str)))
    for scoring in ("neg_log_loss", "roc_auc_ovr", "top_k_accuracy"):
        res = grid_search("logreg", X, y, groups=groups, folds=3, scoring=scoring, grids={"logreg": {"C": [0.1, 1.0]}})
        assert np.isfinite(res.cv_results["mean_test_score"]).all(), scoring
    res = grid_search("svm_rbf", X, y, groups=groups, folds=3, scoring="top_k_accuracy", grids={"svm_rbf": {"C": [0.1, 1.0]}})
    assert np.isfinite(res.cv_results["mean_test_score"]).all()  # decision_function, one column short


@pytest.mark.parametrize("trained_on", [("a", "b", "c"), ("a", "c")])
def test_top_k_scorer_places_decision_scores_by_class(trained_on):
    """A model trained without class b: b's column ranks last, so top-2 is right exactly where the
    true class is among the model's two best of the classes it knows."""
    rng = np.random.default_rng(3)
    y = rng.choice(["a", "b", "c"], size=60)
    X = rng.standard_normal((60, 3)) + 1.5 * (y[:, None] == np.array(["a", "b", "c"]))
    keep = np.isin(y, trained_on)
    model = LogisticRegression().fit(X[keep], y[keep])
    scorer = scorer_for("top_k_accuracy", np.array(["a", "b", "c"]))
    if len(trained_on) == 3:  # scikit-learn's own where it applies
        expected = top_k_accuracy_score(y, model.decision_function(X), k=2, labels=model.classes_)
    else:  # top-2 of three is {a, c} for every clip
        expected = np.mean(y != "b")
    assert 0.5 < expected < 1.0
    assert scorer(model, X, y) == pytest.approx(expected)


def test_a_score_undefined_on_every_combination_says_why():
    rng = np.random.default_rng(0)
    y = np.repeat(["a", "b", "c"], 10)
    X = rng.standard_normal((30, 4))
    groups = np.repeat(["a", "b", "c"], 10)  # each fold tests one class: AUC undefined everywhere
    with pytest.raises(DataError, match=r"fitted and scored \(roc_auc_ovr\).*undefined on some fold.*one class"):
        grid_search("logreg", X, y, groups=groups, folds=3, scoring="roc_auc_ovr")
    with pytest.raises(DataError, match=r"scikit-learn said:\nValueError: multi_class must be in"):
        grid_search("logreg", X, y, folds=3, scoring="roc_auc")  # a binary scorer on three classes
