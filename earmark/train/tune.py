"""Hyperparameter search with Optuna: ``earmark tune CONFIG --trials N``.

The config's ``tune`` section says what to search. Every trial is the experiment the config describes
with some keys changed, fitted on the train split and scored without touching the test split:

* a network on ``data.val_split`` when the config names one, else on a validation hold-out of the
  train split (``train.val_fraction``; 0.2 when the config says 0), reported after every epoch so that
  the pruner (Hyperband by default, as the FMA study searched) stops unpromising trials early; the
  trial's value is its best epoch's ``val_acc`` (or lowest ``val_loss`` with ``tune.metric: val_loss``);
* a classical model by the same stratified, group-aware k-fold cross-validation as the grid search
  (``train.search.folds``, ``train.search.scoring``), reported after every fold.

``tune.space`` maps config key paths to what a trial may choose::

    train.lr: {low: 1.0e-5, high: 1.0e-2, log: true}   # a float (an int when low and high are integers)
    train.batch_size: {low: 16, high: 64, step: 16}    # with a step
    model.params.kernel_size: [3, 5, 7]                # one of these values ({choices: [...]} too);
    model.params.filters: [[16, 32, 64, 128], [32, 64, 128, 256]]   # any YAML value

What ``tune`` writes into ``OUT``::

    study.db      the Optuna study (SQLite), unless --storage names another Optuna storage URL
    trials.csv    one row per trial: number, state, value, the chosen values, epochs, seconds, error
    best.yaml     the best trial's config (resolved), ready for ``earmark train best.yaml --out RUN``
    trials/<n>/   a network trial's history.csv (its checkpoints are deleted when it ends)

Run the same command again to continue: finished trials are kept, and a trial cut off by a kill or
Ctrl-C is run again with the same values, its network continuing from its last checkpoint (at most an
epoch is lost). ``--trials`` is the number of finished trials the study should hold, so processes
on several machines given one ``--storage`` share the work.

>>> result = tune(yaml.safe_load(open("recipes/fma_logmel_cnn4.yaml")), "runs/fma-tune", trials=30,
...               base="recipes")                                         # doctest: +SKIP
>>> result.best_params                                                    # doctest: +SKIP
{'train.lr': 0.00042, 'model.params.kernel_size': 5, 'model.params.dropout': 0.21}
"""

from __future__ import annotations

import copy
import csv
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from earmark.checks import is_int, is_number
from earmark.config import ExperimentConfig, set_key, validate_config
from earmark.errors import ConfigError, DataError, EarmarkError
from earmark.fsutil import atomic_path

KEY = "tune.space"
SECTIONS = ("data", "audio", "features", "model", "train", "eval")
DEFAULT_VAL_FRACTION = 0.2
STUDY_FILE = "study.db"
TRIALS_FILE = "trials.csv"
BEST_FILE = "best.yaml"
OWNER_FILE = "tune.json"  # which study (name, storage) this folder's files belong to
TRIALS_DIR = "trials"
MAX_FAILURES_IN_A_ROW = 3
_RANGE_KEYS = {"low", "high", "log", "step"}
_PRIMITIVE = (type(None), bool, int, float, str)


# ----------------------------------------------------------------------------- the search space


@dataclass(frozen=True)
class Dimension:
    """One config key a trial chooses: a float or int range, or one of some values."""

    key: str
    kind: str  # "float" | "int" | "choice"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    @property
    def labels(self) -> list[Any]:
        """How Optuna stores the choices: the values themselves, or their JSON when some are not
        scalars or some compare equal (``0 == False == 0.0`` in Python, not in a config)."""
        plain = list(self.choices)
        if all(isinstance(c, _PRIMITIVE) for c in plain) and all(
                a != b for i, a in enumerate(plain) for b in plain[i + 1:]):
            return plain
        return [json.dumps(c) for c in plain]

    def suggest(self, trial: Any) -> Any:
        """The value ``trial`` (an ``optuna.Trial``) picks for this key, as the config takes it."""
        if self.kind == "choice":
            return self.value(trial.suggest_categorical(self.key, self.labels))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)

    def value(self, param: Any) -> Any:
        """The config value of a parameter as Optuna stored it."""
        if self.kind == "choice":
            return copy.deepcopy(self.choices[self.labels.index(param)])
        return param

    def extremes(self) -> list[Any]:
        """The values checked before the first trial: both ends of a range, every choice."""
        return list(self.choices) if self.kind == "choice" else [self.low, self.high]


def parse_space(space: Any) -> list[Dimension]:
    """Check ``tune.space`` and return its dimensions, in the order given.

    Raises
    ------
    ConfigError
        Naming the key (``tune.space.train.lr: low must be < high, got low=0.1, high=0.01``).
    """
    if not isinstance(space, Mapping):
        raise ConfigError(f"{KEY}: expected a mapping of config key paths to ranges or choices, got {type(space).__name__}")
    dims = []
    for key, spec in space.items():
        where = f"{KEY}.{key}"
        if not isinstance(key, str) or key.split(".")[0] not in SECTIONS or "" in key.split(".") or "." not in key:
            raise ConfigError(f"{KEY}: keys are config key paths such as train.lr or model.params.C "
                              f"(sections {', '.join(SECTIONS)}), got {key!r}")
        if isinstance(spec, Mapping) and set(spec) == {"choices"}:
            spec = spec["choices"]
        if isinstance(spec, list):
            if not spec:
                raise ConfigError(f"{where}: expected at least one choice, got []")
            dim = Dimension(key, "choice", choices=tuple(spec))
            if len(set(map(str, dim.labels))) < len(spec):
                raise ConfigError(f"{where}: choices must differ, got {spec!r}")
            dims.append(dim)
            continue
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: expected {{low, high[, log][, step]}} or a list of choices, got {spec!r}")
        unknown = set(spec) - _RANGE_KEYS
        if unknown or not {"low", "high"} <= set(spec):
            what = f"unknown key(s) {sorted(map(str, unknown))}" if unknown else f"missing {sorted({'low', 'high'} - set(spec))}"
            raise ConfigError(f"{where}: expected {{low, high[, log][, step]}} or {{choices: [...]}}, {what}")
        low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
        if not (is_number(low) and is_number(high)):
            raise ConfigError(f"{where}: low and high must be numbers, got low={low!r}, high={high!r}")
        if not low < high:
            raise ConfigError(f"{where}: low must be < high, got low={low!r}, high={high!r}")
        if not isinstance(log, bool):
            raise ConfigError(f"{where}.log: expected true or false, got {log!r}")
        if log and low <= 0:
            raise ConfigError(f"{where}: a log range needs low > 0, got low={low!r}")
        if step is not None and (not is_number(step) or step <= 0):
            raise ConfigError(f"{where}.step: expected a number > 0, got {step!r}")
        if step is not None and log:
            raise ConfigError(f"{where}: give either step or log: true, not both")
        kind = "int" if is_int(low) and is_int(high) and (step is None or is_int(step)) else "float"
        dims.append(Dimension(key, kind, low=low, high=high, log=log, step=step))
    return dims


def trial_config(raw: Mapping[str, Any], values: Mapping[str, Any], *, base: str | os.PathLike | None = None) -> ExperimentConfig:
    """The validated config of a trial: ``raw`` with each ``key: value`` of ``values`` set."""
    out = copy.deepcopy(dict(raw))
    for key, value in values.items():
        set_key(out, key, value, what=f"{KEY}.{key}")
    return validate_config(out, base=base)


def check_space(raw: Mapping[str, Any], dims: list[Dimension], *, base: str | os.PathLike | None = None) -> bool:
    """Build the experiment at both ends of every range and with every choice, before any trial runs.

    Returns whether the trials train networks. Raises ConfigError naming the key and the value
    (``tune.space.model.params.dropout = 1.5: model.params.dropout: must be in [0, 1)``), or when
    the space mixes networks and classical models.
    """
    from earmark.train.experiment import is_network

    kinds = set()
    for dim in dims:
        for value in dim.extremes():
            try:
                cfg = trial_config(raw, {dim.key: value}, base=base)
                kinds.add(is_network(cfg))
                _check_experiment(cfg)
            except ConfigError as exc:
                raise ConfigError(f"{KEY}.{dim.key} = {value!r}: {exc}") from None
    if len(kinds) > 1:
        raise ConfigError(f"{KEY}: trials would train networks and classical models; tune one kind at a time")
    return kinds.pop()


def _check_experiment(cfg: ExperimentConfig) -> None:
    import tempfile

    from earmark.models.classical import build_pipeline
    from earmark.train.experiment import check_val_split, is_network, network_estimator

    if is_network(cfg):
        with tempfile.TemporaryDirectory(prefix="earmark-tune-") as tmp:
            network_estimator(cfg, tmp, progress=False)  # network params, trainer options, augment steps
        return
    check_val_split(cfg)
    if not isinstance(cfg.model.name, str):
        raise ConfigError(f"model.name: tune fits one classical model per trial; put the candidates in "
                          f"tune.space (model.name: {cfg.model.name!r}), got a list")
    if cfg.tune.metric is not None:
        raise ConfigError(f"tune.metric: classical models are scored by cross-validation "
                          f"(train.search.scoring: {cfg.train.search.scoring!r}), got {cfg.tune.metric!r}")
    from sklearn.metrics import get_scorer

    try:
        get_scorer(cfg.train.search.scoring)
    except ValueError:
        raise ConfigError(f"train.search.scoring: not a scikit-learn scoring name, got {cfg.train.search.scoring!r}") from None
    build_pipeline(cfg.model.name, params=cfg.model.params, scaler=cfg.model.scaler, select_k=cfg.model.select_k,
                   pca=cfg.model.pca, seed=cfg.train.seed)


# ----------------------------------------------------------------------------- the study


@dataclass
class TuneResult:
    """What :func:`tune` leaves behind.

    Attributes
    ----------
    out : Path
        The folder with ``trials.csv``, ``best.yaml`` and (default storage) ``study.db``.
    storage : str
        The Optuna storage URL of the study (run ``tune`` again with it to continue).
    best_value : float or None
        Best trial's value (None when no trial completed).
    best_params : dict
        Its chosen values, as config values by key path.
    best_config : Path or None
        ``out/best.yaml``.
    direction : str
        ``"maximize"`` or ``"minimize"``.
    counts : dict
        Trials by state: ``{"complete": 7, "pruned": 12, "fail": 1}``.
    ran : int
        Trials this call ran.
    """

    out: Path
    storage: str
    best_value: float | None
    best_params: dict[str, Any]
    best_config: Path | None
    direction: str
    counts: dict[str, int] = field(default_factory=dict)
    ran: int = 0


def tune(raw: Mapping[str, Any], out: str | os.PathLike, *, trials: int, storage: str | None = None,
         study_name: str = "earmark", timeout: float | None = None, base: str | os.PathLike | None = None,
         progress: bool = False, on_trial: Callable[[Any, Any], None] | None = None) -> TuneResult:
    """Run (or continue) the study of ``raw``'s ``tune`` section until it holds ``trials`` finished trials.

    Parameters
    ----------
    raw : mapping
        The experiment config as read from YAML (``--set`` overrides applied).
    out : path-like
        Folder for ``study.db``, ``trials.csv``, ``best.yaml`` and ``trials/``.
    trials : int
        Finished trials (complete, pruned or failed) the study should hold; a rerun runs the rest.
    storage : str, optional
        Optuna storage URL (``sqlite:///path.db``, ``postgresql://...``); default ``out/study.db``.
    study_name : str
        The study's name in the storage.
    timeout : float, optional
        Start no new trial after this many seconds.
    base : path-like, optional
        Folder that relative paths in ``raw`` are relative to (the config file's).
    progress : bool
        Show the trainer's and the extraction's progress bars.
    on_trial : callable, optional
        ``on_trial(study, frozen_trial)`` after each trial of this call.

    Raises
    ------
    ConfigError
        An empty or bad ``tune.space``, a value the experiment refuses (checked before any trial),
        a storage that holds this study over another space or direction.
    EarmarkError
        Data problems found before the first trial; or the error of the last of
        ``MAX_FAILURES_IN_A_ROW`` trials that failed in a row (a failing trial is otherwise recorded
        in ``trials.csv`` and the search goes on).
    """
    import optuna
    from optuna.trial import TrialState

    if not is_int(trials) or trials < 1:
        raise ConfigError(f"--trials: expected an integer >= 1, got {trials!r}")
    if timeout is not None and not (is_number(timeout) and timeout > 0):
        raise ConfigError(f"--timeout: expected seconds > 0, got {timeout!r}")
    cfg = validate_config(copy.deepcopy(dict(raw)), base=base)
    dims = parse_space(cfg.tune.space)
    if not dims:
        raise ConfigError(f"{KEY}: empty; name the config keys to search, e.g. "
                          "tune: {space: {train.lr: {low: 1.0e-5, high: 1.0e-2, log: true}}}")
    network = check_space(raw, dims, base=base)
    _check_experiment(cfg)
    metric = (cfg.tune.metric or "val_acc") if network else cfg.train.search.scoring
    direction = "minimize" if metric == "val_loss" else "maximize"

    from sqlalchemy.exc import SQLAlchemyError

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(out / STUDY_FILE).resolve()}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(study_name=study_name, storage=url, load_if_exists=True, direction=direction)
    except (ValueError, ImportError, SQLAlchemyError) as exc:  # a malformed URL, no driver, a database it cannot open
        raise ConfigError(f"--storage {url}: cannot open the study ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    _claim(out, study_name, url)
    _check_same_study(study, cfg, metric, direction, url)
    n_before = len(study.get_trials(deepcopy=False))
    study.sampler = _sampler(cfg, seed=cfg.train.seed + n_before)  # a rerun does not repeat the first run's draws
    study.pruner = _pruner(cfg, network, dims)
    _requeue_cut_trials(study)

    data = _TrialData(progress)
    data.get(cfg)  # a data problem stops here, before the first trial
    if network:
        data.validation(cfg)
    start, ran, failures_in_a_row = time.monotonic(), 0, 0
    while _finished(study) < trials:
        if timeout is not None and time.monotonic() - start > timeout:
            break
        trial = study.ask()
        trial.set_user_attr("owner", f"{socket.gethostname()}:{os.getpid()}")
        t0, cut_off, stop = time.monotonic(), False, None
        try:
            values = {d.key: d.suggest(trial) for d in dims}
            tcfg = trial_config(raw, values, base=base)
            if network:
                value = _network_trial(trial, tcfg, out, metric, direction, data)
            else:
                value = _classical_trial(trial, tcfg, data)
        except optuna.TrialPruned as exc:
            trial.set_user_attr("seconds", round(time.monotonic() - t0, 3))
            trial.set_user_attr("pruned", str(exc))
            study.tell(trial, state=TrialState.PRUNED)
            failures_in_a_row = 0
        except KeyboardInterrupt:
            cut_off = True  # its checkpoints stay: the rerun continues from them
            trial.set_user_attr("interrupted", True)
            study.tell(trial, state=TrialState.FAIL)
            _write_outputs(study, dims, raw, base, out, network)
            raise
        except EarmarkError as exc:
            trial.set_user_attr("seconds", round(time.monotonic() - t0, 3))
            trial.set_user_attr("error", str(exc))
            study.tell(trial, state=TrialState.FAIL)
            failures_in_a_row += 1
            if failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                stop = (ConfigError if isinstance(exc, ConfigError) else DataError)(
                    f"{failures_in_a_row} trials failed in a row (see {out / TRIALS_FILE}); the last: {exc}")
                stop.__cause__ = exc
        else:
            trial.set_user_attr("seconds", round(time.monotonic() - t0, 3))
            study.tell(trial, value)
            failures_in_a_row = 0
        finally:
            if not cut_off:
                for number in (trial.number, trial.user_attrs.get("retry_of")):
                    if number is not None:
                        _drop_checkpoints(out / TRIALS_DIR / _trial_folder(number))
        ran += 1
        _write_outputs(study, dims, raw, base, out, network)
        if on_trial is not None:
            on_trial(study, _frozen(study, trial.number))
        if stop is not None:
            raise stop
    _write_outputs(study, dims, raw, base, out, network)
    return _result(study, dims, out, url, direction, ran)


def _claim(out: Path, study_name: str, url: str) -> None:
    """``out`` holds the files of one study: refuse another one (its trials.csv, best.yaml and
    trial folders would mix with these)."""
    from earmark.fsutil import atomic_write_text

    mine = {"study_name": study_name, "storage": url}
    held = None
    try:
        held = json.loads((out / OWNER_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{out / OWNER_FILE}: unreadable ({exc}); is {out} a tune folder?") from None
    if held is not None and held != mine:
        raise ConfigError(f"{out}: holds study {held.get('study_name')!r} of {held.get('storage')}; give another --out "
                          f"for study {study_name!r} of {url}")
    if held is None:
        atomic_write_text(out / OWNER_FILE, json.dumps(mine, indent=2) + "\n")


def _frozen(study: Any, number: int) -> Any:
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


def _sampler(cfg: ExperimentConfig, *, seed: int) -> Any:
    import optuna

    if cfg.tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.tune.startup_trials)


def _pruner(cfg: ExperimentConfig, network: bool, dims: list[Dimension]) -> Any:
    import optuna

    t = cfg.tune
    if t.pruner == "none":
        return optuna.pruners.NopPruner()
    if t.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=t.startup_trials, n_warmup_steps=t.min_epochs - 1)
    if network:  # the resource is epochs (Hyperband's own guess when trials choose train.epochs)
        max_resource: Any = "auto" if any(d.key == "train.epochs" for d in dims) else cfg.train.epochs
    else:
        max_resource = "auto" if any(d.key == "train.search.folds" for d in dims) else cfg.train.search.folds
    if max_resource != "auto" and max_resource < t.min_epochs:
        raise ConfigError(f"tune.min_epochs: must be <= the epochs (folds) of a trial ({max_resource}), got {t.min_epochs}")
    return optuna.pruners.HyperbandPruner(min_resource=t.min_epochs, max_resource=max_resource,
                                          reduction_factor=t.reduction_factor)


def _check_same_study(study: Any, cfg: ExperimentConfig, metric: str, direction: str, url: str) -> None:
    """A rerun must search what the study searched; else its trials would mean nothing."""
    signature = json.dumps({"space": cfg.tune.space, "metric": metric}, sort_keys=True, default=str)
    held = study.user_attrs.get("signature")
    if held is None:  # a new study, or one made with Optuna directly: from now on it searches this space
        study.set_user_attr("signature", signature)
        held = signature
    if held != signature or study.direction.name.lower() != direction:
        raise ConfigError(f"{url}: study {study.study_name!r} searched another space or metric "
                          f"({held}); give another --out or --study-name for this one")


def _requeue_cut_trials(study: Any) -> None:
    """Trials cut off by a kill (left RUNNING by a process of this machine that is gone) or by Ctrl-C
    are marked failed and run again with the same values (continuing from their checkpoint)."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:
        owner = str(t.user_attrs.get("owner", ""))
        killed = t.state == TrialState.RUNNING and owner.rpartition(":")[0] == host and not _alive(owner.rpartition(":")[2])
        if killed:
            study.tell(t.number, state=TrialState.FAIL)
        if (killed or (t.state == TrialState.FAIL and t.user_attrs.get("interrupted"))) and t.number not in retried:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _finished(study: Any) -> int:
    """Complete, pruned and failed trials, leaving out those cut off and run again."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED)
               or (t.state == TrialState.FAIL and t.number not in retried and not t.user_attrs.get("interrupted"))
               for t in trials)


# ----------------------------------------------------------------------------- one trial


class _TrialData:
    """Features of the train split, read once per feature setting (trials that only change the
    model share them)."""

    def __init__(self, progress: bool):
        self.progress = progress
        self._cache: dict[str, Any] = {}

    def get(self, cfg: ExperimentConfig) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, Any]:
        """``(arrays, labels, groups, copies)`` of the train split's usable clips; ``copies`` is
        ``(arrays, source)`` or None."""
        from earmark.data import Manifest
        from earmark.train.experiment import check_classes, clip_features, copy_features

        key = json.dumps([cfg.data.model_dump(mode="json"), cfg.audio.model_dump(mode="json"),
                          cfg.features.model_dump(mode="json"), cfg.train.copies.model_dump(mode="json"),
                          cfg.train.seed if cfg.train.copies.n else None], sort_keys=True)
        if key not in self._cache:
            train_set = Manifest.read(cfg.data.manifest).select(split=cfg.data.train_split)
            arrays, ok, _ = clip_features(cfg, train_set, progress=self.progress)
            y = train_set.labels[ok]
            check_classes(cfg, y)
            copies, source, _ = copy_features(cfg, train_set, ok, progress=self.progress)
            self._cache[key] = (arrays, y, train_set.groups[ok], (copies, source) if copies else None)
        return self._cache[key]

    def validation(self, cfg: ExperimentConfig) -> tuple[list[np.ndarray], np.ndarray] | None:
        """``(arrays, labels)`` of ``data.val_split`` (None without one)."""
        from earmark.data import Manifest
        from earmark.train.experiment import validation_data

        key = json.dumps(["val", cfg.data.model_dump(mode="json"), cfg.audio.model_dump(mode="json"),
                          cfg.features.model_dump(mode="json")], sort_keys=True)
        if key not in self._cache:
            self._cache[key] = validation_data(cfg, Manifest.read(cfg.data.manifest), progress=self.progress)[0]
        return self._cache[key]


def _trial_folder(number: int) -> str:
    return f"{number:04d}"


def _network_trial(trial: Any, cfg: ExperimentConfig, out: Path, metric: str, direction: str,
                   data: _TrialData) -> float:
    """Train the trial's network, reporting ``metric`` after every epoch; its best epoch's value."""
    import optuna

    from earmark.train.experiment import network_estimator

    folder = out / TRIALS_DIR / _trial_folder(trial.number)
    retry_of = trial.user_attrs.get("retry_of")
    resume = False
    if retry_of is not None and (out / TRIALS_DIR / _trial_folder(retry_of) / "checkpoint.pt").exists():
        shutil.copytree(out / TRIALS_DIR / _trial_folder(retry_of), folder, dirs_exist_ok=True)
        resume = True
    reported: set[int] = set()

    def report(history: Any) -> None:
        trial.set_user_attr("epochs", len(history.rows))
        for row in history.rows:
            if row["epoch"] not in reported:
                trial.report(float(row[metric]), int(row["epoch"]))
                reported.add(row["epoch"])
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {history.rows[-1]['epoch']}")

    arrays, y, groups, copies = data.get(cfg)
    val = data.validation(cfg)
    est = network_estimator(cfg, folder, data.progress)
    est.set_params(val_fraction=0.0 if val is not None else cfg.train.val_fraction or DEFAULT_VAL_FRACTION,
                   on_epoch=report)
    est.fit(arrays, y, groups=groups if cfg.train.val_groups else None, resume=resume, copies=copies,
            validation_data=val)
    scores = [float(r[metric]) for r in est.history_]
    trial.set_user_attr("epochs", len(scores))
    return max(scores) if direction == "maximize" else min(scores)


def _classical_trial(trial: Any, cfg: ExperimentConfig, data: _TrialData) -> float:
    """Cross-validate the trial's pipeline, reporting the running mean score after every fold."""
    import optuna
    from sklearn.metrics import get_scorer

    from earmark.features.pool import vectors
    from earmark.models.classical import build_pipeline
    from earmark.train.search import make_cv, scorer_for, with_copies

    arrays, y, groups, copies = data.get(cfg)
    s, m = cfg.train.search, cfg.model
    cv, g = make_cv(y, groups=groups if len(set(groups)) < len(groups) else None, folds=s.folds, seed=cfg.train.seed)
    source = np.zeros(0, dtype=np.int64) if copies is None else copies[1]
    splits = with_copies(cv.split(np.zeros((len(y), 1)), y, g), source, len(y))  # copies train, never score
    X = vectors(arrays + ([] if copies is None else list(copies[0])), cfg.features.pool)
    y_all = np.concatenate([y, y[source]])
    scorer = get_scorer(scorer_for(s.scoring, np.unique(y)))  # every class named: a fold may lack one
    scores: list[float] = []
    for i, (tr, va) in enumerate(splits):
        pipe = build_pipeline(m.name, params=m.params, scaler=m.scaler, select_k=m.select_k, pca=m.pca,
                              seed=cfg.train.seed).fit(X[tr], y_all[tr])
        scores.append(float(scorer(pipe, X[va], y_all[va])))
        trial.report(float(np.mean(scores)), i + 1)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after fold {i + 1}")
    return float(np.mean(scores))


def _drop_checkpoints(folder: Path) -> None:
    """A finished trial keeps its history.csv; its weights are not worth the disk."""
    if folder.is_dir():
        for p in folder.glob("*.pt"):
            p.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- outputs


def trial_values(t: Any, dims: list[Dimension]) -> dict[str, Any]:
    """The config values a trial (an Optuna trial or frozen trial) chose, by key path."""
    by_key = {d.key: d for d in dims}
    return {k: by_key[k].value(v) if k in by_key else v for k, v in t.params.items()}


def _write_outputs(study: Any, dims: list[Dimension], raw: Mapping[str, Any], base: Any, out: Path,
                   network: bool) -> None:
    """Rewrite ``trials.csv`` and ``best.yaml`` (atomically: a kill never leaves half a file)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    rerun_as = {t.user_attrs["retry_of"]: t.number for t in trials if "retry_of" in t.user_attrs}
    with atomic_path(out / TRIALS_FILE) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["number", "state", "value", *[d.key for d in dims], "epochs", "seconds", "retry_of", "note"])
        for t in trials:
            params = trial_values(t, dims)
            pruned = t.user_attrs.get("pruned")
            if pruned and t.intermediate_values:
                pruned += f" (score {t.intermediate_values[max(t.intermediate_values)]:.4g})"
            note = t.user_attrs.get("error") or pruned or (
                f"cut off (kill or Ctrl-C); run again as trial {rerun_as[t.number]}" if t.number in rerun_as else
                "interrupted" if t.user_attrs.get("interrupted") else "")
            value = t.value if t.state == TrialState.COMPLETE else ""  # a pruned trial's last score is in the note
            w.writerow([t.number, t.state.name.lower(), value,
                        *[_cell(params.get(d.key, "")) for d in dims], t.user_attrs.get("epochs", ""),
                        t.user_attrs.get("seconds", ""), t.user_attrs.get("retry_of", ""), note])
    if any(t.state == TrialState.COMPLETE for t in trials):
        best = trial_config(raw, trial_values(study.best_trial, dims), base=base)
        if not network:  # the trial cross-validated these parameters; training must not search a grid again
            best.train.search.enabled = False
        best.save(out / BEST_FILE)


def _cell(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, (list, dict)) else v


def _result(study: Any, dims: list[Dimension], out: Path, url: str, direction: str, ran: int) -> TuneResult:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials)
              for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    complete = counts["complete"] > 0
    return TuneResult(out=out, storage=url, best_value=study.best_value if complete else None,
                      best_params=trial_values(study.best_trial, dims) if complete else {},
                      best_config=out / BEST_FILE if complete else None, direction=direction, counts=counts, ran=ran)
