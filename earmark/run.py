"""The run directory: what ``earmark train`` writes and ``evaluate`` / ``predict`` / ``compare`` read.

::

    RUN/
      config.yaml        resolved experiment config (every default filled in, paths absolute)
      model.skops        a classical model (skops: loaded without running arbitrary pickles) and its
                         metadata: labels, feature, best parameters, cross-validation scores, training size
      net/               or a network: net.json (architecture, classes, options, history) + weights;
                         for an ensemble, ensemble.json listing members/<i>/net/ (each with its history)
      history.csv        networks: loss, accuracy (train and validation) and learning rate per epoch;
                         checkpoint.pt, best.pt and epoch1.pt (the weights after epoch 1) beside it
                         (an ensemble's members keep theirs in members/<i>/)
      cv_results.csv     one row per grid-search combination
      metrics.json       evaluation on the test split (``earmark evaluate`` rewrites it)
      predictions-<split>.csv   one row per evaluated clip: id, path (absolute), label, predicted,
                         [offset, duration,] then p:<label> per class (the model's probabilities)
      confusion.png      confusion matrix, counts and row-normalised
      failures.csv       clips whose audio could not be used, and why (failures-<split>.csv: evaluation)
      report.html        self-contained HTML report (``earmark report RUN`` rewrites it)

A folder written by ``earmark fuse`` holds ``fusion.json`` instead (several runs whose probabilities
are averaged, :mod:`earmark.fuse`); :func:`earmark.fuse.load_run` loads either kind.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from earmark.config import ExperimentConfig, load_config
from earmark.errors import DataError

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.skops"
NET_DIR = "net"
FUSION_FILE = "fusion.json"
LOCK_FILE = ".train.lock"  # held by the process training into the run folder


@dataclass
class Scores:
    """A model's probabilities on the clips of a manifest it could use.

    Attributes
    ----------
    proba : np.ndarray, shape (n_ok, n_classes)
        Columns in the run's ``labels`` order; rows: the clips where ``ok`` holds, in manifest order.
    ok : np.ndarray of bool, shape (n_clips,)
    failures : list of Failure
        The other clips, and why.
    members : list of np.ndarray
        Each member's probabilities (an ensemble's networks, a fusion's runs); empty otherwise.
    """

    proba: np.ndarray
    ok: np.ndarray
    failures: list
    members: list[np.ndarray] = field(default_factory=list)


@dataclass
class Run:
    """A trained run loaded from its folder."""

    dir: Path
    config: ExperimentConfig
    model: Any
    meta: dict[str, Any]

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Run":
        """Load ``path``'s config and model (refusing untrusted model files)."""
        path = Path(path)
        if not path.is_dir():
            raise DataError(f"{path}: no such run folder")
        if (path / FUSION_FILE).exists() and not (path / CONFIG_FILE).exists():
            raise DataError(f"{path}: a fusion of runs ({FUSION_FILE}); `earmark evaluate`, `predict`, `compare` and "
                            f"`serve` take it, this command needs one trained run: give one of the fused runs")
        if not (path / CONFIG_FILE).exists():
            raise DataError(f"{path}: run folder has no {CONFIG_FILE}; did `earmark train` finish?")
        if (path / NET_DIR / "ensemble.json").exists():
            import json

            from earmark.models.ensemble import EnsembleClassifier
            from earmark.models.net_estimator import load_net

            info = json.loads((path / NET_DIR / "ensemble.json").read_text(encoding="utf-8"))
            members = [load_net((path / NET_DIR / m).resolve()) for m in info["members"]]
            model = EnsembleClassifier(members).fit()
            meta = {"model": f"{members[0].network} x{len(members)}", "labels": [str(c) for c in model.classes_]}
        elif (path / NET_DIR / "net.json").exists():
            import json

            from earmark.models.net_estimator import load_net

            model = load_net(path / NET_DIR)
            info = json.loads((path / NET_DIR / "net.json").read_text(encoding="utf-8"))
            meta = {"model": info.get("network"), "labels": [str(c) for c in model.classes_],
                    "best_epoch": info.get("best_epoch")}
        elif (path / MODEL_FILE).exists():
            from earmark.models.persist import load_model

            model, meta = load_model(path / MODEL_FILE)
        else:
            raise DataError(f"{path}: run folder has no {MODEL_FILE} or {NET_DIR}/; did `earmark train` finish?")
        return cls(dir=path, config=load_config(path / CONFIG_FILE), model=model, meta=meta)

    @property
    def is_network(self) -> bool:
        """Whether the model is a network (takes frames) rather than a classical pipeline (takes vectors)."""
        from earmark.models.ensemble import EnsembleClassifier
        from earmark.models.net_estimator import NetClassifier

        return isinstance(self.model, (NetClassifier, EnsembleClassifier))

    def inputs(self, arrays: list[np.ndarray]) -> Any:
        """What the model takes for these per-clip feature arrays: pooled vectors, or the arrays themselves."""
        from earmark.features.pool import vectors

        return list(arrays) if self.is_network else vectors(list(arrays), self.config.features.pool)

    @property
    def labels(self) -> list[str]:
        """Class labels in the order of ``predict_proba``'s columns."""
        return [str(c) for c in self.model.classes_]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(X))

    def scores(self, manifest: Any, *, progress: bool = False, executor: Executor | None = None) -> Scores:
        """Probabilities on ``manifest``'s clips, features read from (or extracted into) the run's store."""
        from earmark.train.experiment import clip_features

        arrays, ok, failures = clip_features(self.config, manifest, progress=progress, executor=executor)
        X = self.inputs(arrays)
        members = self.model.member_proba(X) if hasattr(self.model, "member_proba") else []
        proba = self.model.average(members) if members else self.predict_proba(X)  # members computed once
        return Scores(proba=proba, ok=ok, failures=failures, members=members)

    def count_params(self) -> int:
        """Fitted parameters of the model (:func:`earmark.models.classical.count_params`)."""
        from earmark.models.classical import count_params

        return count_params(self.model)

    @property
    def feature_names(self) -> str:
        return self.config.features.name
