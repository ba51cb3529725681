"""Evaluation: metrics in the ``metrics.json`` shape, confusion-matrix plots, and tables comparing runs.

Names are imported on first use, so ``from earmark.evaluate import compute_metrics`` does not load
matplotlib or pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "compute_metrics": "earmark.evaluate.metrics",
    "misclassified": "earmark.evaluate.metrics",
    "read_metrics": "earmark.evaluate.metrics",
    "write_metrics": "earmark.evaluate.metrics",
    "plot_confusion": "earmark.evaluate.plots",
    "plot_confusion_pair": "earmark.evaluate.plots",
    "compare_runs": "earmark.evaluate.compare",
    "to_markdown": "earmark.evaluate.compare",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from earmark.evaluate.compare import compare_runs, to_markdown
    from earmark.evaluate.metrics import compute_metrics, misclassified, read_metrics, write_metrics
    from earmark.evaluate.plots import plot_confusion, plot_confusion_pair


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'earmark.evaluate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
