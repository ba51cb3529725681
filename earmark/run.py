"""The run directory: what ``earmark train`` writes and ``evaluate`` / ``predict`` / ``compare`` read.

::

    RUN/
      config.yaml        resolved experiment config (every default filled in, paths absolute)
      model.skops        the fitted model (skops: loaded without running arbitrary pickles) and its
                         metadata: labels, feature, best parameters, cross-validation scores, training size
      cv_results.csv     one row per grid-search combination
      metrics.json       evaluation on the test split (``earmark evaluate`` rewrites it)
      confusion.png      confusion matrix, counts and row-normalised
      failures.csv       clips whose audio could not be used, and why
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from earmark.config import ExperimentConfig, load_config
from earmark.errors import DataError

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.skops"


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
        from earmark.models.persist import load_model

        path = Path(path)
        if not path.is_dir():
            raise DataError(f"{path}: no such run folder")
        for name in (CONFIG_FILE, MODEL_FILE):
            if not (path / name).exists():
                raise DataError(f"{path}: run folder has no {name}; did `earmark train` finish?")
        model, meta = load_model(path / MODEL_FILE)
        return cls(dir=path, config=load_config(path / CONFIG_FILE), model=model, meta=meta)

    @property
    def labels(self) -> list[str]:
        """Class labels in the order of ``predict_proba``'s columns."""
        return [str(c) for c in self.model.classes_]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(X))
