"""Classical (scikit-learn) models: the model registry, default grids, pipelines and parameter counts.

Every registered model is a factory ``factory(seed=None, **params) -> estimator`` that seeds the
estimator's ``random_state`` from ``seed`` and validates ``params`` eagerly, with the key path of
the experiment config in the message (``model.params.C: must be > 0, got -1``).

>>> pipe = build_pipeline("svm_rbf", params={"C": 10}, scaler="robust", select_k=100, seed=0)
>>> [name for name, _ in pipe.steps]
['scaler', 'select', 'model']
"""

from __future__ import annotations

import warnings

import copy
import difflib
import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import RobustScaler, StandardScaler
from sklearn.svm import SVC
from sklearn.utils._param_validation import Interval, InvalidParameterError, Options, StrOptions, make_constraint
from sklearn.utils.validation import check_is_fitted, column_or_1d

from earmark.checks import is_int, is_number
from earmark.errors import ConfigError, NotFittedError
from earmark.registry import Registry

MODELS: Registry[Any] = Registry("model")

SCALERS = ("standard", "robust")
PIPELINE_OPTIONS = ("scaler", "select_k", "pca")
STEP_NAMES = ("scaler", "select", "pca", "model")


# --------------------------------------------------------------------------- SVM with probabilities

_SVC_PARAMS = ("C", "kernel", "degree", "gamma", "coef0", "shrinking", "tol", "cache_size", "class_weight",
               "max_iter", "break_ties", "random_state")


class CalibratedSVC(ClassifierMixin, BaseEstimator):
    """:class:`~sklearn.svm.SVC` with calibrated ``predict_proba`` (needed for top-k and soft voting).

    ``SVC(probability=True)`` is deprecated since scikit-learn 1.9; this is what it recommends
    instead, ``CalibratedClassifierCV(SVC(), ensemble=False)``, behind SVC's own parameter names so
    that grids stay ``C`` / ``gamma`` / ``degree``. ``predict`` and ``decision_function`` are those
    of the SVC fitted on all the data; ``predict_proba`` maps its decision values through
    calibrators fitted on cross-validated decision values (``calibration_folds`` folds, fewer when
    the smallest class is smaller; with a single-clip class, a softmax of the decision values).

    Parameters
    ----------
    C, kernel, degree, gamma, coef0, shrinking, tol, cache_size, class_weight, max_iter, break_ties, random_state
        As :class:`~sklearn.svm.SVC` (``decision_function_shape`` is always ``"ovr"``).
    calibration : {"sigmoid", "isotonic"}
        Platt scaling (libsvm's choice) or isotonic regression.
    calibration_folds : int
        Cross-validation folds used to fit the calibrators, >= 2.

    Attributes
    ----------
    svc_ : SVC
        The SVC fitted on all the data.
    calibrated_ : CalibratedClassifierCV or None
    classes_ : ndarray, shape (n_classes,)
    n_features_in_ : int
    """

    _parameter_constraints = {
        **{k: v for k, v in SVC._parameter_constraints.items() if k in _SVC_PARAMS},
        "calibration": [StrOptions({"sigmoid", "isotonic"})],
        "calibration_folds": [Interval(numbers.Integral, 2, None, closed="left")],
    }

    def __init__(self, C=1.0, kernel="rbf", degree=3, gamma="scale", coef0=0.0, shrinking=True, tol=1e-3,
                 cache_size=200, class_weight=None, max_iter=-1, break_ties=False, random_state=None,
                 calibration="sigmoid", calibration_folds=5):
        self.C = C
        self.kernel = kernel
        self.degree = degree
        self.gamma = gamma
        self.coef0 = coef0
        self.shrinking = shrinking
        self.tol = tol
        self.cache_size = cache_size
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.break_ties = break_ties
        self.random_state = random_state
        self.calibration = calibration
        self.calibration_folds = calibration_folds

    def fit(self, X, y, sample_weight=None):
        """Fit the SVC on all of ``X`` (n_clips, n_features) and the calibrators on CV decision values."""
        self._validate_params()
        y = column_or_1d(y, warn=True)
        svc = SVC(**{p: getattr(self, p) for p in _SVC_PARAMS}, decision_function_shape="ovr")
        _, counts = np.unique(np.asarray(y), return_counts=True)
        folds = int(min(self.calibration_folds, counts.min())) if len(counts) else 0
        if folds >= 2:
            cal = CalibratedClassifierCV(svc, method=self.calibration, cv=folds, ensemble=False)
            cal.fit(X, y, sample_weight=sample_weight)
            self.calibrated_ = cal
            self.svc_ = cal.calibrated_classifiers_[0].estimator
        else:
            self.calibrated_ = None
            self.svc_ = clone(svc).fit(X, y, sample_weight=sample_weight)
        self.classes_ = self.svc_.classes_
        self.n_features_in_ = self.svc_.n_features_in_
        self.n_iter_ = self.svc_.n_iter_
        if hasattr(self.svc_, "feature_names_in_"):
            self.feature_names_in_ = self.svc_.feature_names_in_
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _fitted(self) -> SVC:
        check_is_fitted(self, "svc_")
        return self.svc_

    def predict(self, X):
        """Class of each row of ``X``, shape (n_clips,)."""
        return self._fitted().predict(X)

    def decision_function(self, X):
        """SVC decision values, shape (n_clips, n_classes) (``(n_clips,)`` for two classes)."""
        return self._fitted().decision_function(X)

    def predict_proba(self, X):
        """Calibrated class probabilities, shape (n_clips, n_classes); rows sum to 1."""
        svc = self._fitted()
        if self.calibrated_ is not None:
            return self.calibrated_.predict_proba(X)
        d = np.asarray(svc.decision_function(X), dtype=float)
        if d.ndim == 1:
            d = np.column_stack([-d, d])
        e = np.exp(d - d.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))


# --------------------------------------------------------------------------- model specs


@dataclass(frozen=True, eq=False)
class ModelSpec:
    """A registered classical model: its estimator class, earmark's defaults and its default grid.

    Calling the spec is the factory: ``spec(seed=0, C=10) -> SVC(C=10, random_state=0, ...)``.

    Attributes
    ----------
    name : str
        Registry name (``"svm_rbf"``).
    estimator : type
        scikit-learn estimator class.
    defaults : dict
        earmark's defaults, overriding scikit-learn's (``max_iter=5000`` for logreg).
    fixed : dict
        Parameters the name implies and ``params`` may not change (``kernel`` of ``svm_rbf``).
    grid : dict
        Default search grid ``{param: [values]}`` (the studies' grids).
    check : callable, optional
        ``check(params, key)``: extra validation scikit-learn only does at fit time.
    """

    name: str
    estimator: type
    defaults: Mapping[str, Any] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    grid: Mapping[str, list] = field(default_factory=dict)
    check: Callable[[Mapping[str, Any], str], None] | None = None

    def __call__(self, seed: int | None = None, **params: Any) -> BaseEstimator:
        return self.build(params, seed=seed)

    def base(self, seed: int | None = None) -> BaseEstimator:
        """The estimator with earmark's defaults and ``random_state`` from ``seed`` (no user params)."""
        est = self.estimator(**{**self.defaults, **self.fixed})
        if "random_state" in est.get_params(deep=False):
            est.set_params(random_state=seed)
        return est

    def param_names(self) -> list[str]:
        """Parameters a user may set: the default grid's first, then the rest alphabetically."""
        names = set(self.estimator().get_params(deep=False)) - {"random_state"} - set(self.fixed)
        first = [p for p in self.grid if p in names]
        return first + sorted(names - set(first), key=str.lower)

    def build(self, params: Mapping[str, Any] | None = None, *, seed: int | None = None,
              key: str = "model.params") -> BaseEstimator:
        """Estimator with ``params`` set, validated eagerly; errors name ``key.<param>``.

        Raises
        ------
        ConfigError
            Unknown, fixed or ``random_state`` parameter, or a value scikit-learn rejects.
        """
        params = _check_params_mapping(params, key)
        check_seed(seed)
        for p in params:
            if p == "random_state":
                raise ConfigError(f"{key}.random_state: set by the seed; pass seed=... instead")
            if p in self.fixed:
                raise ConfigError(f"{key}.{p}: {self.name} fixes {p}={self.fixed[p]!r}; "
                                  f"choose another model instead")
        unknown_param(self.name, params, self.param_names(), key)
        est = self.base(seed)
        est.set_params(**params)
        validate_estimator_params(est, params, key)
        if self.check is not None:
            self.check(params, key)
        return est


def _check_params_mapping(params: Any, key: str) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"{key}: expected a mapping of parameter -> value, got {params!r}")
    bad = [p for p in params if not isinstance(p, str)]
    if bad:
        raise ConfigError(f"{key}: parameter names must be strings, got {bad[0]!r}")
    return dict(params)


def check_seed(seed: Any, key: str = "seed") -> None:
    """``seed`` must be None or an integer in [0, 2**32 - 1] (what ``random_state`` accepts)."""
    if seed is None:
        return
    if not is_int(seed) or not 0 <= int(seed) < 2**32:
        raise ConfigError(f"{key}: expected None or an integer in [0, 2**32 - 1], got {seed!r}")


def unknown_param(model: str, params: Mapping[str, Any], valid: list[str], key: str) -> None:
    """Raise ``ConfigError`` ``key.p: model has no parameter 'p'; valid: ...`` for the first unknown ``p``."""
    for p in params:
        if p not in valid:
            close = difflib.get_close_matches(p, valid, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{key}.{p}: {model} has no parameter {p!r}; valid: {', '.join(valid)}{hint}")


_INVALID_RE = re.compile(r"The '([^']+)' parameter of \w+ must be")


def validate_estimator_params(est: BaseEstimator, params: Mapping[str, Any], key: str) -> None:
    """Run scikit-learn's own parameter constraints now and restate a failure with the key path."""
    validate = getattr(est, "_validate_params", None)
    if validate is None:
        return
    try:
        validate()
    except InvalidParameterError as e:
        m = _INVALID_RE.match(str(e))
        name = m.group(1) if m else None
        constraints = getattr(type(est), "_parameter_constraints", {}).get(name)
        if name is None or constraints is None:
            raise ConfigError(f"{key}: {e}") from None
        value = params.get(name, getattr(est, name, None))
        raise ConfigError(f"{key}.{name}: must be {describe_constraints(constraints)}, "
                          f"got {value!r}{_yaml_hint(value)}") from None


def _yaml_hint(value: Any) -> str:
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return " (a string: YAML reads 1e-3 as text; write 1.0e-3 or 0.001)"
    return ""


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, numbers.Real) else str(x)


def _describe_interval(c: Interval) -> str:
    lo_closed = c.closed in ("left", "both")
    hi_closed = c.closed in ("right", "both")
    if c.left is None and c.right is None:
        cond = ""
    elif c.right is None:
        cond = f"{'>=' if lo_closed else '>'} {_num(c.left)}"
    elif c.left is None:
        cond = f"{'<=' if hi_closed else '<'} {_num(c.right)}"
    else:
        cond = f"in {'[' if lo_closed else '('}{_num(c.left)}, {_num(c.right)}{']' if hi_closed else ')'}"
    if c.type is numbers.Integral:
        return f"an integer {cond}".rstrip()
    return cond or "a number"


def describe_constraints(constraints: list[Any]) -> str:
    """Readable text of scikit-learn parameter constraints: ``> 0``, ``one of 'a', 'b' or None``."""
    parts = []
    for raw in constraints:
        c = make_constraint(raw)
        if getattr(c, "hidden", False):
            continue
        if isinstance(c, Interval):
            parts.append(_describe_interval(c))
        elif isinstance(c, Options):
            parts.append("one of " + ", ".join(repr(o) for o in sorted(c.options, key=str)))
        else:
            parts.append(str(c))
    return " or ".join(parts) if parts else "valid"


def _check_hidden_layers(params: Mapping[str, Any], key: str) -> None:
    if "hidden_layer_sizes" not in params:
        return
    v = params["hidden_layer_sizes"]
    sizes = [v] if isinstance(v, numbers.Integral) else v
    ok = isinstance(sizes, (list, tuple)) and len(sizes) > 0 and all(
        is_int(s) and s >= 1 for s in sizes)
    if not ok:
        raise ConfigError(f"{key}.hidden_layer_sizes: must be a list of integers >= 1 (one per hidden layer), "
                          f"got {v!r}")


_C_GRID = [0.01, 0.1, 1, 10]
_GAMMA_GRID = [1e-2, 1e-3, 1e-4]

for _spec in (
    ModelSpec("logreg", LogisticRegression, defaults={"max_iter": 5000}, grid={"C": _C_GRID}),
    ModelSpec("svm_linear", CalibratedSVC, fixed={"kernel": "linear"}, grid={"C": _C_GRID}),
    ModelSpec("svm_rbf", CalibratedSVC, fixed={"kernel": "rbf"}, grid={"C": _C_GRID, "gamma": _GAMMA_GRID}),
    ModelSpec("svm_poly", CalibratedSVC, fixed={"kernel": "poly"},
              grid={"C": _C_GRID, "gamma": _GAMMA_GRID, "degree": [2, 3]}),
    ModelSpec("rf", RandomForestClassifier, defaults={"n_estimators": 200, "n_jobs": 1},
              grid={"n_estimators": [100, 200, 300], "max_depth": [None, 20]}),
    ModelSpec("knn", KNeighborsClassifier, defaults={"n_neighbors": 5, "weights": "uniform"},
              grid={"n_neighbors": [3, 5, 7, 9, 11, 13, 15], "weights": ["uniform", "distance"]}),
    ModelSpec("mlp", MLPClassifier,
              defaults={"hidden_layer_sizes": (256,), "early_stopping": True, "max_iter": 500},
              grid={"hidden_layer_sizes": [(256,), (512, 256)], "alpha": [1e-4, 1e-3]},
              check=_check_hidden_layers),
):
    MODELS.register(_spec.name, _spec)


def get_model(name: str, key: str = "model.name") -> Any:
    """The registered factory ``name``; unknown names raise ``ConfigError`` prefixed with ``key``."""
    try:
        return MODELS.get(name)
    except ConfigError as e:
        raise ConfigError(f"{key}: {e}") from None


def default_grid(name: str) -> dict[str, list]:
    """A fresh copy of model ``name``'s default search grid ``{param: [values]}``."""
    spec = get_model(name)
    return copy.deepcopy(dict(getattr(spec, "grid", {}) or {}))


def make_model(name: str, params: Mapping[str, Any] | None = None, *, seed: int | None = None,
               key: str = "model.params", name_key: str = "model.name") -> BaseEstimator:
    """Build registered model ``name`` with ``params`` (validated eagerly; errors name ``key.<param>``).

    A plain factory registered by other code (not a :class:`ModelSpec`) gets the same checks from
    the estimator it returns for ``seed`` alone.
    """
    factory = get_model(name, name_key)
    if isinstance(factory, ModelSpec):
        return factory.build(params, seed=seed, key=key)
    params = _check_params_mapping(params, key)
    check_seed(seed)
    base = factory(seed=seed)
    if hasattr(base, "get_params"):
        valid = [p for p in base.get_params(deep=False) if p != "random_state"]
        unknown_param(name, params, valid, key)
        est = base.set_params(**params)
    else:
        est = factory(seed=seed, **params)
    validate_estimator_params(est, params, key)
    return est


# --------------------------------------------------------------------------- pipeline


class ClippedSelectKBest(SelectKBest):
    """:class:`~sklearn.feature_selection.SelectKBest` whose ``k`` is clipped to the features seen in fit.

    ``k`` >= n_features keeps every feature (no warning), so one pipeline config (``select_k=100``)
    works on feature sets of any width. Parameters, attributes and cloning are SelectKBest's.
    """

    def _check_params(self, X, y):
        pass

    def fit(self, X, y=None, **fit_params):
        # Constant features (silent bands, fixed-tempo stats) have no F-score; SelectKBest ranks
        # them last anyway, so f_classif's per-fit warnings would only flood a grid search's output.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Features .* are constant", category=UserWarning)
            warnings.filterwarnings("ignore", message="invalid value encountered in divide", category=RuntimeWarning)
            return super().fit(X, y, **fit_params)

    def _get_support_mask(self):
        check_is_fitted(self)
        n = len(self.scores_)
        if self.k == "all" or self.k >= n:
            return np.ones(n, dtype=bool)
        return super()._get_support_mask()


def make_step(option: str, value: Any, *, seed: int | None = None, key: str | None = None) -> Any:
    """The pipeline step for a pipeline-level option, or None when the step is absent.

    Parameters
    ----------
    option : {"scaler", "select_k", "pca"}
    value
        ``scaler``: "standard", "robust" or None; ``select_k``: int >= 1 or None;
        ``pca``: explained-variance fraction in (0, 1), a number of components >= 1 (an integral
        float > 1 such as 2.0 counts as one), or None. 1.0 is refused as ambiguous.
    seed : int, optional
        ``random_state`` of PCA.
    key : str, optional
        Key path used in errors (default ``model.<option>``).

    Raises
    ------
    ConfigError
        A value outside the ones above.
    """
    key = key or f"model.{option}"
    if option not in PIPELINE_OPTIONS:
        raise ConfigError(f"{key}: unknown pipeline option {option!r}; known: {', '.join(PIPELINE_OPTIONS)}")
    if value is None:
        return None
    if option == "scaler":
        if value == "standard":
            return StandardScaler()
        if value == "robust":
            return RobustScaler()
        raise ConfigError(f"{key}: expected one of 'standard', 'robust' or None, got {value!r}")
    if option == "select_k":
        if not is_int(value) or value < 1:
            raise ConfigError(f"{key}: expected an integer >= 1 (number of features kept) or None, got {value!r}")
        return ClippedSelectKBest(f_classif, k=int(value))
    # pca
    is_frac = is_number(value) and not is_int(value)
    if is_frac and 0 < value < 1:
        n = float(value)
    elif is_int(value) and value >= 1:
        n = int(value)
    elif is_frac and value > 1 and float(value).is_integer():  # 2.0 from a float-typed config field
        n = int(value)
    else:
        raise ConfigError(f"{key}: expected an explained-variance fraction in (0, 1) (e.g. 0.95), "
                          f"a number of components >= 1, or None; got {value!r}")
    check_seed(seed)
    return PCA(n_components=n, svd_solver="full", random_state=seed)


def build_pipeline(
    model: str,
    *,
    params: Mapping[str, Any] | None = None,
    scaler: str | None = "standard",
    select_k: int | None = None,
    pca: float | int | None = None,
    seed: int | None = None,
) -> Pipeline:
    """An unfitted pipeline ``scaler -> select -> pca -> model``; absent steps are omitted.

    Everything is validated here, before any fit, with the config key path in the message.

    Parameters
    ----------
    model : str
        Registered model name (``MODELS.names()``).
    params : dict, optional
        Model parameters (``{"C": 10, "gamma": 1e-3}``).
    scaler : {"standard", "robust"} or None
    select_k : int, optional
        Keep the ``k`` best features by ANOVA F (clipped to the number of features at fit time).
    pca : float in (0, 1) or int, optional
        Explained-variance fraction (0.90 / 0.95 / 0.99) or number of components.
    seed : int, optional
        ``random_state`` of the model and PCA.

    Returns
    -------
    Pipeline
        Named steps ``scaler``, ``select``, ``pca``, ``model`` (the present ones, in that order).

    Raises
    ------
    ConfigError
        ``model.name``, ``model.params.<p>``, ``model.scaler``, ``model.select_k``, ``model.pca``, ``seed``.
    """
    est = make_model(model, params, seed=seed)
    steps = []
    for option, step_name, value in (("scaler", "scaler", scaler), ("select_k", "select", select_k),
                                     ("pca", "pca", pca)):
        step = make_step(option, value, seed=seed)
        if step is not None:
            steps.append((step_name, step))
    steps.append(("model", est))
    return Pipeline(steps)


# --------------------------------------------------------------------------- parameter count

_PARAM_ATTRS = ("coef_", "intercept_", "components_", "center_", "scale_")
_IGNORED_ATTRS = {"classes_", "n_features_in_", "feature_names_in_", "n_iter_", "n_samples_seen_",
                  "var_", "scores_", "pvalues_", "explained_variance_", "explained_variance_ratio_",
                  "singular_values_", "n_support_", "support_", "class_count_", "fit_status_"}


def _size(a: Any) -> int:
    return int(np.asarray(a).size) if a is not None else 0


def _count_calibrators(cal: CalibratedClassifierCV | None) -> int:
    if cal is None:
        return 0
    total = 0
    for cc in cal.calibrated_classifiers_:
        for c in cc.calibrators:
            if hasattr(c, "a_"):  # sigmoid: a, b
                total += 2
            else:  # isotonic: its breakpoints
                total += _size(getattr(c, "X_thresholds_", None)) + _size(getattr(c, "y_thresholds_", None))
    return total


def count_params(estimator: Any) -> int:
    """Number of fitted parameters of a fitted estimator or pipeline (what inference has to store).

    Per step: scaler ``mean_``/``center_`` + ``scale_``; PCA ``components_`` + ``mean_``;
    linear models ``coef_`` + ``intercept_``; SVC ``support_vectors_`` + ``dual_coef_`` +
    ``intercept_`` (+ 2 per sigmoid calibrator); trees and forests the sum of
    ``tree_.node_count``; k-NN the stored training data; MLP ``coefs_`` + ``intercepts_``.
    Feature selection counts 0 (a mask, not weights). An estimator with its own ``count_params()``
    (the torch models) is asked directly.

    Raises
    ------
    NotFittedError
        The estimator (or a pipeline step) is not fitted.
    """
    if isinstance(estimator, Pipeline):
        return sum(count_params(s) for _, s in estimator.steps if s is not None and s != "passthrough")
    own = getattr(estimator, "count_params", None)
    if callable(own):
        return int(own())
    try:
        check_is_fitted(estimator)
    except SklearnNotFittedError:
        raise NotFittedError(f"{type(estimator).__name__}: not fitted; call fit before count_params") from None
    if isinstance(estimator, SelectKBest):
        return 0
    if isinstance(estimator, CalibratedSVC):
        return count_params(estimator.svc_) + _count_calibrators(estimator.calibrated_)
    if hasattr(estimator, "support_vectors_") and hasattr(estimator, "dual_coef_"):
        # SVMs: a linear kernel's coef_ is derived from these, not stored
        return sum(_size(getattr(estimator, a)) for a in ("support_vectors_", "dual_coef_", "intercept_"))
    if hasattr(estimator, "tree_"):
        return int(estimator.tree_.node_count)
    subs = getattr(estimator, "estimators_", None)
    if isinstance(subs, np.ndarray):  # gradient boosting: (n_stages, n_trees) of trees
        subs = list(subs.ravel())
    if isinstance(subs, (list, tuple)) and subs:
        return sum(count_params(s) for s in subs)
    if hasattr(estimator, "coefs_"):
        return sum(_size(a) for a in estimator.coefs_) + sum(_size(a) for a in estimator.intercepts_)
    if hasattr(estimator, "_fit_X"):
        return _size(estimator._fit_X)
    total = sum(_size(getattr(estimator, a)) for a in _PARAM_ATTRS if hasattr(estimator, a))
    if hasattr(estimator, "mean_") and (hasattr(estimator, "components_") or hasattr(estimator, "scale_")):
        total += _size(estimator.mean_)
    if total:
        return total
    # an estimator we know nothing about: its public fitted numeric arrays
    return sum(int(v.size) for k, v in vars(estimator).items()
               if k.endswith("_") and not k.startswith("_") and k not in _IGNORED_ATTRS
               and isinstance(v, np.ndarray) and v.dtype.kind in "fciub")
