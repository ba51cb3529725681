"""Training: grid search over classical pipelines, and the deep-learning trainer.

The trainer's names are loaded on first use, so ``import earmark.train`` stays light for the
classical commands.
"""

from __future__ import annotations

import importlib
from typing import Any

from earmark.train.search import SearchResult, build_param_grid, grid_search, make_cv

_LAZY = {
    "Trainer": "earmark.train.trainer",
    "TrainerOptions": "earmark.train.options",
    "History": "earmark.train.checkpoint",
    "save_checkpoint": "earmark.train.checkpoint",
    "load_checkpoint": "earmark.train.checkpoint",
    "predict_proba": "earmark.train.inference",
    "embed": "earmark.train.inference",
    "make_scheduler": "earmark.train.schedules",
    "make_optimizer": "earmark.train.schedules",
}

__all__ = ["SearchResult", "build_param_grid", "grid_search", "make_cv", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'earmark.train' has no attribute {name!r}")
