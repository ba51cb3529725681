"""Train what an experiment config describes: features -> (grid search | trainer) -> saved run.

``model.name`` chooses the path: a classical model (or a list of them) goes through the cross-validated
grid search (:mod:`earmark.train.search`); a registered network (:mod:`earmark.models.nets`) is trained
by :class:`~earmark.models.net_estimator.NetClassifier` on the stored frame features.
"""

from __future__ import annotations

import csv
import os
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np

from earmark.config import ExperimentConfig
from earmark.data import Manifest
from earmark.errors import ConfigError, DataError
from earmark.features.extract import extract
from earmark.features.pool import vectors
from earmark.features.store import Failure, FeatureStore
from earmark.fsutil import atomic_path, exclusive_lock
from earmark.run import CONFIG_FILE, LOCK_FILE, MODEL_FILE, NET_DIR


def is_network(cfg: ExperimentConfig) -> bool:
    """Whether ``model.name`` names a registered network (else: classical models)."""
    from earmark.models.nets import NETWORKS

    return isinstance(cfg.model.name, str) and cfg.model.name in NETWORKS


def clip_features(cfg: ExperimentConfig, manifest: Manifest, *, progress: bool = False,
                  executor: Executor | None = None, compute: bool = True) -> tuple[list[np.ndarray], np.ndarray, list[Failure]]:
    """Per-clip feature arrays of a manifest (memory-mapped), extracted into (or read from) the store
    (of the clips' ``audio.separate`` stem when the config separates vocals). Missing clips are
    extracted through ``executor`` when one is given, else ``features.jobs`` local workers;
    ``compute=False`` only reads what the store holds (ensemble members, whose run extracted the
    features already, and which must not all retry a bad clip in the same store at once).

    Returns
    -------
    arrays : list of np.ndarray
        One array per clip that has features, in manifest order.
    ok : (n_clips,) bool
        Which clips have an array; the others are in ``failures``.
    failures : list of Failure
    """
    f = cfg.features
    sep = cfg.audio.separate
    failures: list[Failure] = []
    if compute:
        failures = extract(manifest, f.name, f.store, params=f.params, jobs=f.jobs, executor=executor,
                           progress=progress, separate=sep).failures
    with FeatureStore(f.store, f.name, f.params, separate=sep) as store:
        table = store.load(manifest)
    if not compute:
        failures = [Failure(c.id, c.path, "not in the feature store") for c in table.missing]
    return [a for a in table.arrays if a is not None], table.present(), failures


def validation_data(cfg: ExperimentConfig, manifest: Manifest, *, progress: bool = False,
                    executor: Executor | None = None, compute: bool = True) -> tuple[tuple[list[np.ndarray], np.ndarray] | None, list[Failure]]:
    """``((arrays, labels), failures)`` of the clips of ``data.val_split`` (networks validate on them),
    or ``(None, [])`` without one.

    Raises
    ------
    DataError
        The manifest has no such split, or none of its clips has usable audio.
    """
    name = cfg.data.val_split
    if name is None:
        return None, []
    if name not in set(manifest.splits):
        raise DataError(f"{cfg.data.manifest}: data.val_split {name!r} is not a split of the manifest "
                        f"(it has {sorted(set(manifest.splits))})")
    val_set = manifest.select(split=name)
    arrays, ok, failures = clip_features(cfg, val_set, progress=progress, executor=executor, compute=compute)
    if not arrays:
        raise DataError(f"{cfg.data.manifest}: split {name!r} (data.val_split) has no clip with usable audio")
    return (arrays, val_set.labels[ok]), failures


def copy_features(cfg: ExperimentConfig, manifest: Manifest, ok: np.ndarray, *, progress: bool = False,
                  executor: Executor | None = None, compute: bool = True) -> tuple[list[np.ndarray], np.ndarray, list[Failure]]:
    """The offline augmented copies (``train.copies``) of the clips that have features (``ok``).

    Each copy is extracted into (or read from) its own store folder, keyed by the copy's settings
    (seeded by ``train.seed``: ensemble members, whose seeds differ, share their run's copies).

    Returns
    -------
    arrays : list of np.ndarray
        Every copy of every usable clip (memory-mapped), copy by copy.
    source : (n_arrays,) int
        For each, the index of its original among the usable clips (the order of ``clip_features``).
    failures : list of Failure
        Copies that could not be made (the reason starts with ``copy i:``); the original is kept.
    """
    from earmark.augment import offline_copies, resolve_labels

    f, c = cfg.features, cfg.train.copies
    steps = resolve_labels(c.augment, lambda label: list(manifest.select(label=label).paths()))  # background {label: ...}
    settings = offline_copies(steps, c.n, seed=cfg.train.seed)
    position = np.cumsum(ok) - 1  # clip index -> index among the usable clips
    arrays: list[np.ndarray] = []
    source: list[int] = []
    failures: list[Failure] = []
    for s in settings:
        if compute:
            report = extract(manifest, f.name, f.store, params=f.params, jobs=f.jobs, executor=executor,
                             progress=progress, separate=cfg.audio.separate, augment=s)
            failures += [Failure(x.id, x.path, f"copy {s['copy']}: {x.reason}") for x in report.failures
                         if not x.reason.startswith(("file not found", "cannot read"))]
        with FeatureStore(f.store, f.name, f.params, separate=cfg.audio.separate, augment=s) as store:
            table = store.load(manifest)
        for i, a in enumerate(table.arrays):
            if a is not None and ok[i]:
                arrays.append(a)
                source.append(int(position[i]))
    return arrays, np.asarray(source, dtype=np.int64), failures


def check_classes(cfg: ExperimentConfig, y: np.ndarray) -> None:
    """DataError unless the train split's usable clips hold at least 2 classes."""
    if len(set(y)) < 2:
        raise DataError(f"{cfg.data.manifest}: split {cfg.data.train_split!r} has {len(set(y))} class(es) with usable "
                        "audio; need at least 2")


def write_failures(path: str | os.PathLike, failures: list[Failure]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "path", "reason"])
        w.writerows((x.id, x.path, x.reason) for x in failures)


def train(cfg: ExperimentConfig, out: str | os.PathLike, *, resume: bool = False, progress: bool = False,
          executor: Executor | None = None) -> Path:
    """Fit the config's model on its train split and save the run; evaluate on the test split if present.

    Every configuration error is raised before features are extracted. Returns the run folder, which
    ends with ``report.html`` (:func:`earmark.evaluate.report.write_report`).
    Clips whose audio fails are reported in ``failures.csv`` and left out. ``resume`` continues a
    network's interrupted training from ``out/checkpoint.pt`` (features are cached anyway).
    ``executor`` (e.g. a :class:`~earmark.parallel.ray_executor.RayExecutor`), when given, runs the
    feature extraction and the ensemble members instead of ``features.jobs`` / ``train.ensemble.jobs``
    local workers; the caller shuts it down. One process at a time trains into ``out`` (it holds
    ``out/.train.lock``); another raises :class:`~earmark.errors.DataError` at once.
    """
    manifest = Manifest.read(cfg.data.manifest)
    train_set = manifest.select(split=cfg.data.train_split)
    network = is_network(cfg)
    estimator = network_estimator(cfg, out, progress) if network else None
    if not network:
        check_val_split(cfg)
        _check_classical(cfg, train_set)
        if resume:
            raise ConfigError("--resume continues a network's training; a classical run is simply trained again "
                              "(its features are cached)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out / LOCK_FILE, f"{out}: another earmark train is writing this run folder; "
                        "wait for it to finish, or train into another --out"):
        cfg.save(out / CONFIG_FILE)
        arrays, ok, failures = clip_features(cfg, train_set, progress=progress, executor=executor)
        val, val_failures = validation_data(cfg, manifest, progress=progress, executor=executor)
        failures = failures + val_failures
        y = train_set.labels[ok]
        try:
            check_classes(cfg, y)
        except DataError:
            write_failures(out / "failures.csv", failures)
            raise
        copies, source, copy_failures = copy_features(cfg, train_set, ok, progress=progress, executor=executor)
        write_failures(out / "failures.csv", failures + copy_failures)
        if network and cfg.train.ensemble.members > 1:
            _train_ensemble(cfg, out, resume=resume, executor=executor)
        elif network:
            from earmark.models.net_estimator import save_net

            estimator.fit(arrays, y, groups=train_set.groups[ok] if cfg.train.val_groups else None, resume=resume,
                          copies=(copies, source) if copies else None, validation_data=val)
            save_net(out / NET_DIR, estimator)
        else:
            if copies:  # appended after the originals; they train in their original's folds, never scored
                arrays, y = arrays + copies, np.concatenate([y, y[source]])
            _fit_classical(cfg, vectors(arrays, cfg.features.pool), y, train_set.groups[ok], failures, out,
                           copy_source=source if copies else None)
        if cfg.data.test_split and cfg.data.test_split in set(manifest.splits):
            from earmark.evaluate.evaluate import evaluate

            evaluate(out, cfg.data.manifest, split=cfg.data.test_split, progress=progress, executor=executor)
        from earmark.evaluate.report import refresh_report

        refresh_report(out)  # a problem with the report is a warning, never the loss of a trained run
        return out


def check_val_split(cfg: ExperimentConfig) -> None:
    """ConfigError for a ``data.val_split`` that cannot be used as given."""
    d = cfg.data
    if d.val_split is None:
        return
    if not is_network(cfg):
        raise ConfigError(f"data.val_split: classical models are cross-validated on the train split; val_split is for "
                          f"networks, got {d.val_split!r} with model.name {cfg.model.name!r}")
    if d.val_split in (d.train_split, d.test_split):
        which = "train_split" if d.val_split == d.train_split else "test_split (choosing epochs on the test set biases it)"
        raise ConfigError(f"data.val_split: must differ from data.{which}, got {d.val_split!r}")
    if cfg.train.val_fraction > 0:
        raise ConfigError(f"data.val_split ({d.val_split!r}) and train.val_fraction ({cfg.train.val_fraction}): "
                          "validate on one or the other")


def network_estimator(cfg: ExperimentConfig, out: str | os.PathLike, progress: bool) -> Any:
    """The (unfitted) NetClassifier of the config, its options validated eagerly."""
    from earmark.augment import compose
    from earmark.models.net_estimator import NetClassifier
    from earmark.models.nets import create_network
    from earmark.train.options import TrainerOptions

    t = cfg.train
    check_val_split(cfg)
    if cfg.model.scaler not in ("standard", None):
        raise ConfigError(f"model.scaler: networks standardise their inputs ('standard') or not (null), got {cfg.model.scaler!r}")
    TrainerOptions.from_dict(t.trainer_options())  # train.lr: must be > 0, ...
    compose(t.augment, key="train.augment")
    create_network(cfg.model.name, n_classes=2, **cfg.model.params)  # model.params.<name>: ...
    return NetClassifier(network=cfg.model.name, network_params=dict(cfg.model.params), trainer=t.trainer_options(),
                         augment=t.augment, mixup_alpha=t.mixup_alpha, frames=cfg.features.frames,
                         val_fraction=t.val_fraction, seed=t.seed, out_dir=str(out), progress=progress,
                         standardize=cfg.model.scaler == "standard")


def train_member(config: dict[str, Any], index: int, out: str, resume: bool = False) -> str:
    """Train ensemble member ``index`` (seed ``train.seed + index``) into ``out/members/<index>``.

    A self-contained job for an executor: it reads its features from the store itself, so it can
    run in another process or on another machine that sees the same files. Returns the member's
    saved model folder.
    """
    from earmark.config import validate_config
    from earmark.models.net_estimator import save_net

    cfg = validate_config(config)
    manifest = Manifest.read(cfg.data.manifest)
    train_set = manifest.select(split=cfg.data.train_split)
    # The run extracted every feature before starting its members: read them, never extract again.
    arrays, ok, _ = clip_features(cfg, train_set, compute=False)
    val, _ = validation_data(cfg, manifest, compute=False)
    copies, source, _ = copy_features(cfg, train_set, ok, compute=False)  # the run's copies, made once for every member
    cfg.train.seed = cfg.train.seed + index
    folder = Path(out) / "members" / str(index)
    estimator = network_estimator(cfg, folder, progress=False)
    estimator.fit(arrays, train_set.labels[ok], groups=train_set.groups[ok] if cfg.train.val_groups else None,
                  resume=resume and (folder / "checkpoint.pt").exists(), copies=(copies, source) if copies else None,
                  validation_data=val)
    save_net(folder / NET_DIR, estimator)
    return str(folder / NET_DIR)


def _train_ensemble(cfg: ExperimentConfig, out: Path, *, resume: bool, executor: Executor | None = None) -> None:
    """Train the members as independent executor jobs (``train.ensemble.jobs`` local workers unless an
    ``executor`` is given); record them in ``out/net/ensemble.json``."""
    import json

    from earmark.fsutil import atomic_write_text
    from earmark.parallel import make_executor

    config = cfg.model_dump(mode="json")
    n = cfg.train.ensemble.members
    own = executor is None
    executor = executor or make_executor(cfg.train.ensemble.jobs)
    futures = []
    try:
        futures = [executor.submit(train_member, config, i, str(out), resume) for i in range(n)]
        folders = [f.result() for f in futures]
    finally:
        for f in futures:
            f.cancel()
        if own:
            executor.shutdown(wait=True, cancel_futures=True)
    members = [os.path.relpath(f, out / NET_DIR) for f in folders]
    atomic_write_text(out / NET_DIR / "ensemble.json", json.dumps({"members": members}, indent=2) + "\n")


def _check_classical(cfg: ExperimentConfig, train_set: Manifest) -> None:
    from earmark.models.classical import build_pipeline
    from earmark.train.search import build_param_grid, make_cv

    m, s = cfg.model, cfg.train.search
    if s.enabled:
        build_param_grid(m.name, grids=s.grid, params=m.params, seed=cfg.train.seed, scaler=m.scaler,
                         select_k=m.select_k, pca=m.pca)
        labelled = train_set.labels != ""
        make_cv(train_set.labels[labelled], groups=train_set.groups[labelled], folds=s.folds, seed=cfg.train.seed)
    elif len(m.candidates) > 1:
        raise ConfigError("model.name: several candidates need train.search.enabled: true to choose between them")
    else:
        build_pipeline(m.candidates[0], params=m.params, scaler=m.scaler, select_k=m.select_k, pca=m.pca,
                       seed=cfg.train.seed)


def _fit_classical(cfg: ExperimentConfig, X: np.ndarray, y: np.ndarray, groups: np.ndarray,
                   failures: list[Failure], out: Path, copy_source: np.ndarray | None = None) -> None:
    from earmark.models.classical import build_pipeline
    from earmark.models.persist import save_model
    from earmark.train.search import grid_search

    m, s = cfg.model, cfg.train.search
    n_copies = 0 if copy_source is None else len(copy_source)
    meta: dict[str, Any] = {"labels": sorted(set(y)), "feature": cfg.features.name, "n_train": int(len(y)) - n_copies,
                            "n_copies": n_copies, "n_failed": len(failures)}
    if s.enabled:
        result = grid_search(
            m.name, X, y, groups=groups if len(set(groups)) < len(groups) else None, folds=s.folds,
            seed=cfg.train.seed, scoring=s.scoring, n_jobs=s.jobs, scaler=m.scaler, select_k=m.select_k,
            pca=m.pca, grids=s.grid, params=m.params, copy_source=copy_source,
        )
        model = result.best_estimator
        result.cv_results.to_csv(out / "cv_results.csv", index=False)
        meta.update(model=result.best_params["model"], best_params=_jsonable(result.best_params),
                    cv_score=float(result.best_score), cv_per_model=result.per_model, failed_fits=result.failed_fits)
    else:
        model = build_pipeline(m.candidates[0], params=m.params, scaler=m.scaler, select_k=m.select_k, pca=m.pca,
                               seed=cfg.train.seed).fit(X, y)
        meta.update(model=m.candidates[0], best_params=_jsonable(m.params))
    save_model(out / MODEL_FILE, model, meta=meta)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v)) for k, v in d.items()}
