"""Classical models: registry contract, pipelines, eager validation, persistence, parameter counts."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.preprocessing import FunctionTransformer

from earmark.errors import ConfigError, DataError, NotFittedError
from earmark.models import (
    MODELS,
    CalibratedSVC,
    ClippedSelectKBest,
    build_pipeline,
    count_params,
    default_grid,
    load_model,
    save_model,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

EXPECTED = {"logreg", "svm_linear", "svm_rbf", "svm_poly", "rf", "knn", "mlp"}


@pytest.fixture(scope="module")
def data():
    """60 clips, 6 features, 3 well separated classes."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(3.0 * i, 1.0, size=(20, 6)) for i in range(3)])
    y = np.repeat(["bass", "brass", "flute"], 20)
    return X, y


def _same_params(a, b):
    pa, pb = a.get_params(deep=False), b.get_params(deep=False)
    assert pa.keys() == pb.keys()
    for k in pa:
        assert repr(pa[k]) == repr(pb[k]), k


def test_registry_holds_the_studies_models():
    assert EXPECTED <= set(MODELS.names())
    assert MODELS.names("svm_*") == ["svm_linear", "svm_poly", "svm_rbf"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_contract(name, data):
    X, y = data
    est = MODELS.create(name, seed=3)
    with pytest.raises((SklearnNotFittedError, NotFittedError)):
        est.predict(X)
    _same_params(clone(est), est)
    assert est.fit(X, y) is est
    pred = est.predict(X)
    assert pred.shape == (60,) and set(pred) <= set(y)
    assert (pred == y).mean() > 0.5  # chance is 1/3; the early-stopped MLP learns slowly on 60 clips
    proba = est.predict_proba(X)
    assert proba.shape == (60, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert list(est.classes_) == ["bass", "brass", "flute"]
    again = MODELS.create(name, seed=3).fit(X, y)
    np.testing.assert_array_equal(again.predict(X), pred)
    np.testing.assert_allclose(again.predict_proba(X), proba)
    if "random_state" in est.get_params():
        assert est.get_params()["random_state"] == 3
    assert count_params(est) > 0


def test_factories_seed_and_defaults():
    assert MODELS.create("rf", seed=1).get_params()["n_estimators"] == 200
    assert MODELS.create("rf").get_params()["n_jobs"] == 1
    assert MODELS.create("knn").get_params()["n_neighbors"] == 5
    assert MODELS.create("mlp").get_params()["early_stopping"] is True
    assert MODELS.create("svm_poly", C=10).get_params()["kernel"] == "poly"
    assert MODELS.create("logreg", seed=4).random_state == 4


def test_default_grids_are_the_studies():
    assert default_grid("svm_rbf") == {"C": [0.01, 0.1, 1, 10], "gamma": [1e-2, 1e-3, 1e-4]}
    assert default_grid("svm_poly")["degree"] == [2, 3]
    assert default_grid("rf") == {"n_estimators": [100, 200, 300], "max_depth": [None, 20]}
    assert default_grid("knn") == {"n_neighbors": [3, 5, 7, 9, 11, 13, 15], "weights": ["uniform", "distance"]}
    assert default_grid("logreg") == {"C": [0.01, 0.1, 1, 10]}
    assert default_grid("mlp") == {"hidden_layer_sizes": [(256,), (512, 256)], "alpha": [1e-4, 1e-3]}
    g = default_grid("knn")
    g["weights"].append("x")
    assert default_grid("knn")["weights"] == ["uniform", "distance"]  # a copy


@pytest.mark.parametrize(
    "kw, steps",
    [
        ({}, ["scaler", "model"]),
        ({"scaler": None}, ["model"]),
        ({"scaler": "robust", "select_k": 4}, ["scaler", "select", "model"]),
        ({"pca": 0.95}, ["scaler", "pca", "model"]),
        ({"scaler": "robust", "select_k": 100, "pca": 2}, ["scaler", "select", "pca", "model"]),
        ({"pca": 3.0}, ["scaler", "pca", "model"]),  # a float-typed config field gives 3.0
    ],
)
def test_pipeline_steps(kw, steps, data):
    X, y = data
    pipe = build_pipeline("logreg", seed=0, **kw)
    assert [n for n, _ in pipe.steps] == steps
    pipe.fit(X, y)
    assert pipe.predict(X).shape == (60,)
    _same_params(clone(pipe).named_steps["model"], pipe.named_steps["model"])


def test_pipeline_step_settings(data):
    X, y = data
    pipe = build_pipeline("svm_rbf", params={"C": 10, "gamma": 1e-3}, scaler="robust", select_k=100,
                          pca=0.9, seed=7)
    assert type(pipe.named_steps["scaler"]).__name__ == "RobustScaler"
    pca = pipe.named_steps["pca"]
    assert (pca.n_components, pca.svd_solver, pca.random_state) == (0.9, "full", 7)
    model = pipe.named_steps["model"]
    assert (model.C, model.gamma, model.kernel, model.random_state) == (10, 1e-3, "rbf", 7)
    pipe.fit(X, y)  # k=100 > 6 features: clipped, every feature kept
    assert pipe.named_steps["select"].get_support().all()


def test_clipped_select_k_best(data):
    X, y = data
    sel = ClippedSelectKBest(k=2).fit(X, y)
    assert sel.transform(X).shape == (60, 2)
    assert ClippedSelectKBest(k=50).fit(X, y).transform(X).shape == (60, 6)
    c = clone(sel)
    assert c.k == 2 and not hasattr(c, "scores_")


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"model": "svm_rfb"}, "model.name: unknown model 'svm_rfb'; did you mean 'svm_rbf'"),
        ({"model": "svn"}, "model.name: unknown model 'svn'; known: knn, logreg"),
        ({"model": "svm_rbf", "params": {"gama": 1}}, "model.params.gama: svm_rbf has no parameter 'gama'; valid: C, gamma, "),
        ({"model": "svm_rbf", "params": {"C": -1}}, "model.params.C: must be > 0, got -1"),
        ({"model": "svm_rbf", "params": {"gamma": "often"}}, "model.params.gamma: must be one of 'auto', 'scale' or >= 0, got 'often'"),
        ({"model": "knn", "params": {"n_neighbors": 0}}, "model.params.n_neighbors: must be an integer >= 1"),
        ({"model": "knn", "params": {"weights": "heavy"}}, "model.params.weights: must be one of 'distance', 'uniform'"),
        ({"model": "rf", "params": {"n_estimators": 0}}, "model.params.n_estimators: must be an integer >= 1, got 0"),
        ({"model": "logreg", "params": {"C": "1e-3"}}, "model.params.C: must be > 0, got '1e-3' (a string"),
        ({"model": "mlp", "params": {"hidden_layer_sizes": (256, 0)}}, "model.params.hidden_layer_sizes: must be a list of integers >= 1"),
        ({"model": "svm_rbf", "params": {"kernel": "linear"}}, "model.params.kernel: svm_rbf fixes kernel='rbf'"),
        ({"model": "rf", "params": {"random_state": 1}}, "model.params.random_state: set by the seed"),
        ({"model": "rf", "params": [1, 2]}, "model.params: expected a mapping"),
        ({"model": "rf", "scaler": "minmax"}, "model.scaler: expected one of 'standard', 'robust' or None, got 'minmax'"),
        ({"model": "rf", "select_k": 0}, "model.select_k: expected an integer >= 1"),
        ({"model": "rf", "select_k": 2.5}, "model.select_k: expected an integer >= 1"),
        ({"model": "rf", "pca": 1.0}, "model.pca: expected an explained-variance fraction in (0, 1)"),
        ({"model": "rf", "pca": -3}, "model.pca: expected"),
        ({"model": "rf", "pca": True}, "model.pca: expected"),
        ({"model": "rf", "seed": -1}, "seed: expected None or an integer"),
    ],
)
def test_pipeline_errors_name_the_key_path(kw, message):
    with pytest.raises(ConfigError) as e:
        build_pipeline(**kw)
    assert str(e.value).startswith(message), str(e.value)


def test_factory_errors_name_the_key_path():
    with pytest.raises(ConfigError, match=r"^model\.params\.C: must be > 0, got -1$"):
        MODELS.create("svm_linear", C=-1)


def test_calibrated_svc_small_classes_and_binary(data):
    X, y = data
    # a class with one clip: no calibration folds, probabilities from a softmax of decision values
    idx = np.r_[0:10, 20:30, 40]
    est = CalibratedSVC(random_state=0).fit(X[idx], y[idx])
    assert est.calibrated_ is None
    np.testing.assert_allclose(est.predict_proba(X).sum(axis=1), 1.0)
    two = CalibratedSVC(kernel="linear", random_state=0).fit(X[:40], y[:40])
    assert two.predict_proba(X).shape == (60, 2)
    assert two.decision_function(X).shape == (60,)


def test_count_params_is_plausible(data):
    X, y = data
    logreg = build_pipeline("logreg", seed=0).fit(X, y)
    assert count_params(logreg) == (6 + 6) + (3 * 6 + 3)  # scaler mean/scale + coef/intercept
    knn = build_pipeline("knn", scaler="robust").fit(X, y)
    assert count_params(knn) == (6 + 6) + 60 * 6  # center/scale + stored training data
    pca = build_pipeline("logreg", scaler=None, pca=2, seed=0).fit(X, y)
    assert count_params(pca) == (2 * 6 + 6) + (3 * 2 + 3)
    rf = build_pipeline("rf", params={"n_estimators": 5}, seed=0).fit(X, y)
    trees = rf.named_steps["model"].estimators_
    assert count_params(rf) == 12 + sum(t.tree_.node_count for t in trees)
    mlp = build_pipeline("mlp", params={"hidden_layer_sizes": (8,)}, scaler=None, seed=0).fit(X, y)
    assert count_params(mlp) == (6 * 8 + 8) + (8 * 3 + 3)
    svm = build_pipeline("svm_rbf", scaler=None, seed=0).fit(X, y)
    inner = svm.named_steps["model"].svc_
    n_sv = inner.support_vectors_.shape[0]
    assert count_params(svm) == n_sv * 6 + n_sv * 2 + 3 + 2 * 3  # SVs, dual coefs, intercepts, Platt a/b
    with pytest.raises(NotFittedError, match="not fitted"):
        count_params(build_pipeline("rf"))


# --------------------------------------------------------------------------- persistence


@pytest.mark.parametrize("name, kw", [("svm_rbf", {"select_k": 4, "pca": 0.95}), ("rf", {"scaler": "robust"}),
                                      ("mlp", {}), ("knn", {"scaler": None})])
def test_save_load_round_trip(name, kw, data, tmp_path):
    X, y = data
    pipe = build_pipeline(name, seed=0, **kw).fit(X, y)
    meta = {"labels": ["bass", "brass", "flute"], "features": "mfcc", "n": np.int64(60)}
    path = save_model(tmp_path / "run" / "model.skops", pipe, meta=meta)
    assert sorted(os.listdir(tmp_path / "run")) == ["model.skops"]  # written atomically, no leftovers
    loaded, got = load_model(path)
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))
    assert got == {"labels": ["bass", "brass", "flute"], "features": "mfcc", "n": 60}
    assert count_params(loaded) == count_params(pipe)


def test_load_refuses_corrupt_and_foreign_files(tmp_path):
    junk = tmp_path / "junk.skops"
    junk.write_bytes(np.random.default_rng(0).bytes(512))
    with pytest.raises(DataError, match="junk.skops"):
        load_model(junk)
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps({"evil": [1, 2, 3]}))
    with pytest.raises(DataError, match="model.pkl: not a model file"):
        load_model(pkl)
    with pytest.raises(DataError, match="missing.skops: no such model file"):
        load_model(tmp_path / "missing.skops")


def test_load_refuses_untrusted_types(tmp_path):
    path = save_model(tmp_path / "evil.skops", FunctionTransformer(func=os.system), meta={})
    with pytest.raises(DataError, match=r"refusing to load .*evil\.skops: untrusted types \[.*system"):
        load_model(path)


def test_save_rejects_bad_meta(tmp_path, data):
    X, y = data
    pipe = build_pipeline("logreg").fit(X, y)
    with pytest.raises(ConfigError, match="meta: not JSON-serialisable"):
        save_model(tmp_path / "m.skops", pipe, meta={"f": object()})
    assert not list(tmp_path.iterdir())
