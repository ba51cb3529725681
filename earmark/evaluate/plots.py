"""Confusion-matrix plots as PNG files.

Drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas: pyplot is never imported, so the
caller's pyplot state and backend stay as they were, and no window ever opens.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from earmark.errors import DataError
from earmark.fsutil import atomic_path

__all__ = ["plot_confusion", "plot_confusion_pair"]

_ANNOTATE_MAX = 30  # classes; above this the cells are too small for numbers
_DPI = 100


def _validate(matrix, labels, where: str) -> tuple[np.ndarray, list[str]]:
    m = np.asarray(matrix, dtype=np.float64)
    labels = [str(label) for label in labels]
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise DataError(f"{where}: expected a non-empty square confusion matrix, got shape {m.shape}")
    if m.shape[0] != len(labels):
        raise DataError(f"{where}: the matrix is {m.shape[0]}x{m.shape[1]} but {len(labels)} labels were given")
    if not np.isfinite(m).all() or (m < 0).any():
        raise DataError(f"{where}: the confusion matrix must hold finite counts >= 0")
    return m, labels


def _row_normalise(m: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the support of that true class); rows without examples stay 0."""
    sums = m.sum(axis=1, keepdims=True)
    return np.divide(m, sums, out=np.zeros_like(m), where=sums > 0)


def _panel_inches(labels: list[str]) -> tuple[float, float]:
    """(width, height) of one panel: cells of ~0.45 in above 10 classes, plus room for the tick labels."""
    n = len(labels)
    cells = max(3.0, 0.45 * n)
    margin = 0.9 + 0.075 * min(max(len(s) for s in labels), 30)  # rotated / horizontal tick labels
    return cells + margin + 1.1, cells + margin + 0.6  # + colour bar; + title


def _draw(fig, ax, m: np.ndarray, labels: list[str], *, normalize: bool, title: str | None) -> None:
    n = len(labels)
    values = _row_normalise(m) if normalize else m
    vmax = 1.0 if normalize else max(float(values.max()), 1.0)
    im = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest", aspect="equal")
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if normalize:
        cbar.ax.yaxis.set_major_formatter(lambda v, _pos: f"{100 * v:.0f}%")
    else:
        from matplotlib.ticker import MaxNLocator

        cbar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))

    tick_size = 10 if n <= 10 else 8 if n <= 30 else 6
    rotate = n > 6 or max(len(s) for s in labels) > 4
    ax.set_xticks(np.arange(n), labels=labels, rotation=45 if rotate else 0, ha="right" if rotate else "center",
                  rotation_mode="anchor", fontsize=tick_size)
    ax.set_yticks(np.arange(n), labels=labels, fontsize=tick_size)
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    if title is None:
        title = "Confusion matrix (% of each true class)" if normalize else "Confusion matrix (counts)"
    ax.set_title(title)

    if n <= _ANNOTATE_MAX:
        cell_size = 11 if n <= 6 else 9 if n <= 12 else 7 if n <= 20 else 6
        for i in range(n):
            for j in range(n):
                v = values[i, j]
                if normalize:
                    if m[i, j] == 0 and n > 10:
                        continue
                    text = f"{100 * v:.0f}%" if v >= 0.005 or v == 0 else "<1%"
                else:
                    if v == 0 and n > 10:
                        continue  # zeros left blank on big matrices: the errors stand out
                    text = f"{int(round(v))}" if float(v).is_integer() else f"{v:.3g}"
                ax.text(j, i, text, ha="center", va="center", fontsize=cell_size,
                        color="white" if v > 0.5 * vmax else "black")


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)
    return path


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_confusion(
    matrix: Sequence[Sequence[float]] | np.ndarray,
    labels: Sequence[str],
    path: str | os.PathLike,
    *,
    normalize: bool = False,
    title: str | None = None,
) -> Path:
    """Draw a confusion matrix to a PNG file (written atomically).

    Parameters
    ----------
    matrix : array, shape (n_classes, n_classes)
        Counts, rows = true label, columns = predicted label (``metrics["confusion_matrix"]``).
    labels : sequence of str, shape (n_classes,)
        Class names in the matrix order (``metrics["labels"]``).
    path : path
        The PNG to write; parent folders are created.
    normalize : bool
        False: counts. True: each row divided by its total, shown as percentages (the recall of each
        class on the diagonal); a class without examples shows an empty row, not NaN.
    title : str, optional
        Defaults to "Confusion matrix (counts)" or "... (% of each true class)".

    Returns
    -------
    Path
        ``path``. The figure grows with the number of classes (about 0.45 in per class above 10),
        tick labels are rotated, and cells carry their numbers up to 30 classes.
    """
    m, labels = _validate(matrix, labels, "plot_confusion")
    width, height = _panel_inches(labels)
    fig = _new_figure(width, height)
    _draw(fig, fig.add_subplot(), m, labels, normalize=normalize, title=title)
    return _save(fig, path)


def plot_confusion_pair(
    matrix: Sequence[Sequence[float]] | np.ndarray,
    labels: Sequence[str],
    path: str | os.PathLike,
) -> Path:
    """Counts (left) and row-normalised percentages (right) side by side in one PNG (written atomically).

    Parameters and sizing as in :func:`plot_confusion`.
    """
    m, labels = _validate(matrix, labels, "plot_confusion_pair")
    width, height = _panel_inches(labels)
    fig = _new_figure(2 * width, height)
    left, right = fig.subplots(1, 2)
    _draw(fig, left, m, labels, normalize=False, title=None)
    _draw(fig, right, m, labels, normalize=True, title=None)
    return _save(fig, path)
