"""Evaluation: metrics in the ``metrics.json`` shape, plots, the HTML run report, and pages comparing runs.

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
    "write_comparison": "earmark.evaluate.compare",
    "write_predictions": "earmark.evaluate.evaluate",
    "write_report": "earmark.evaluate.report",
}

# spelled out (not ``sorted(_EXPORTS)``) so that linters see the names imported under TYPE_CHECKING as used
__all__ = [
    "compare_runs", "compute_metrics", "misclassified", "plot_confusion", "plot_confusion_pair", "read_metrics",
    "to_markdown", "write_comparison", "write_metrics", "write_predictions", "write_report",
]

if TYPE_CHECKING:  # pragma: no cover
    from earmark.evaluate.compare import compare_runs, to_markdown, write_comparison
    from earmark.evaluate.evaluate import write_predictions
    from earmark.evaluate.metrics import compute_metrics, misclassified, read_metrics, write_metrics
    from earmark.evaluate.plots import plot_confusion, plot_confusion_pair
    from earmark.evaluate.report import write_report


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'earmark.evaluate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
