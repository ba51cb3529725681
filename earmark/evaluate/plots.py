"""Evaluation plots: confusion matrices, training curves, 2-D embeddings (t-SNE), run comparisons.

Drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas: pyplot is never imported, so the
caller's pyplot state and backend stay as they were, and no window ever opens. ``plot_*`` functions
with a ``path`` write a PNG atomically; the others return the ``Figure`` (for :func:`save_figure`, or
:func:`earmark.evaluate.audio_plots.figure_png` to embed it in a page).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from earmark.errors import DataError
from earmark.fsutil import atomic_path

__all__ = ["confusion_pair_figure", "new_figure", "plot_comparison", "plot_confusion", "plot_confusion_pair", "plot_embedding",
           "plot_training_curves", "save_figure"]

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


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` to ``path`` as PNG, atomically (parent folders created); returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)
    return path


def new_figure(width: float, height: float):
    """An empty constrained-layout ``Figure`` of ``width`` x ``height`` inches with the Agg canvas (no pyplot)."""
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
    fig = new_figure(width, height)
    _draw(fig, fig.add_subplot(), m, labels, normalize=normalize, title=title)
    return save_figure(fig, path)


def plot_confusion_pair(
    matrix: Sequence[Sequence[float]] | np.ndarray,
    labels: Sequence[str],
    path: str | os.PathLike,
) -> Path:
    """Counts (left) and row-normalised percentages (right) side by side in one PNG (written atomically).

    Parameters and sizing as in :func:`plot_confusion`.
    """
    return save_figure(confusion_pair_figure(matrix, labels), path)


def confusion_pair_figure(matrix: Sequence[Sequence[float]] | np.ndarray, labels: Sequence[str]):
    """The figure of :func:`plot_confusion_pair` (counts left, row-normalised right), not saved."""
    m, labels = _validate(matrix, labels, "plot_confusion_pair")
    width, height = _panel_inches(labels)
    fig = new_figure(2 * width, height)
    left, right = fig.subplots(1, 2)
    _draw(fig, left, m, labels, normalize=False, title=None)
    _draw(fig, right, m, labels, normalize=True, title=None)
    return fig


# --------------------------------------------------------------------------- training curves


def _column(rows: Sequence[dict], key: str) -> np.ndarray:
    """``rows[i][key]`` as floats, NaN where missing or empty (a run without validation)."""
    out = []
    for row in rows:
        v = row.get(key)
        try:
            out.append(float(v) if v not in (None, "") else np.nan)
        except (TypeError, ValueError):
            out.append(np.nan)
    return np.asarray(out, dtype=np.float64)


def plot_training_curves(histories: Sequence[Sequence[dict]], *, names: Sequence[str] | None = None):
    """Loss, accuracy (train vs validation) and learning rate per epoch, three panels side by side.

    Parameters
    ----------
    histories : sequence of sequences of dict
        One history per network (an ensemble has several), each a list of per-epoch rows with the
        columns of ``history.csv``: ``epoch, train_loss, train_acc, val_loss, val_acc, lr``
        (values may be None / empty, e.g. without a validation set or learning-rate column).
    names : sequence of str, optional
        Legend name of each history (``"member 0"``, ...); only used with several histories.

    Returns
    -------
    matplotlib.figure.Figure
        Train in blue (solid), validation in orange (dashed); several histories are drawn thinner,
        one line each. The learning rate uses a log scale when it spans more than a factor of 20.

    Raises
    ------
    DataError
        No history, or a history without any epoch.
    """
    histories = [list(h) for h in histories]
    if not histories or any(not h for h in histories):
        raise DataError("plot_training_curves: expected at least one history with at least one epoch")
    many = len(histories) > 1
    fig = new_figure(13.0, 3.6)
    axes = fig.subplots(1, 3)
    panels = [(axes[0], "loss", "Loss"), (axes[1], "acc", "Accuracy")]
    width = 1.0 if many else 1.8
    lrs = []
    for n, rows in enumerate(histories):
        epoch = _column(rows, "epoch")
        if np.isnan(epoch).all():
            epoch = np.arange(1, len(rows) + 1, dtype=np.float64)
        suffix = f" ({names[n]})" if many and names is not None else ""
        for ax, key, _ in panels:
            for split, color, style in (("train", "tab:blue", "-"), ("val", "tab:orange", "--")):
                values = _column(rows, f"{split}_{key}")
                if np.isfinite(values).any():
                    label = ("train" if split == "train" else "validation") + suffix if (n == 0 or suffix) else None
                    ax.plot(epoch, values, style, color=color, linewidth=width, marker="o" if len(rows) < 30 else None,
                            markersize=3, label=label, alpha=0.8 if many else 1.0)
        lr = _column(rows, "lr")
        if np.isfinite(lr).any():
            lrs.append(lr[np.isfinite(lr)])
            axes[2].plot(epoch, lr, "-", color="tab:green", linewidth=width, marker="o" if len(rows) < 30 else None,
                         markersize=3, alpha=0.8 if many else 1.0)
    for ax, _, title in panels:
        ax.set_title(title)
        ax.set_xlabel("Epoch")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    axes[1].set_ylim(-0.02, 1.02)
    axes[2].set_title("Learning rate")
    axes[2].set_xlabel("Epoch")
    axes[2].grid(alpha=0.3)
    if lrs:
        lr_all = np.concatenate(lrs)
        if lr_all.min() > 0 and lr_all.max() / lr_all.min() > 20:
            axes[2].set_yscale("log")
        else:  # from 0, without an offset: a constant rate reads as one level line, not as noise
            axes[2].set_ylim(0.0, 1.1 * max(float(lr_all.max()), 1e-12))
            axes[2].ticklabel_format(axis="y", style="sci", scilimits=(-3, 3), useOffset=False)
    else:
        axes[2].text(0.5, 0.5, "not logged", ha="center", va="center", transform=axes[2].transAxes, color="0.4")
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


# --------------------------------------------------------------------------- embeddings


def _class_colors(n: int) -> list:
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["turbo"](x) for x in np.linspace(0.05, 0.95, n)]


def plot_embedding(points: np.ndarray, y: Sequence[str], labels: Sequence[str], *, title: str | None = None):
    """A 2-D embedding (e.g. t-SNE) as a scatter plot, one colour per class, legend at the right.

    Parameters
    ----------
    points : array, shape (n, 2)
    y : sequence of str, shape (n,)
        Class of each point.
    labels : sequence of str
        The classes in legend order (classes of ``y`` not listed are added at the end).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    DataError
        ``points`` is not ``(n, 2)`` and finite, or ``y`` does not have ``n`` entries.
    """
    pts = np.asarray(points, dtype=np.float64)
    y = np.asarray([str(v) for v in y], dtype=object)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0 or not np.isfinite(pts).all():
        raise DataError(f"plot_embedding: expected finite points of shape (n, 2), got {pts.shape}")
    if len(y) != len(pts):
        raise DataError(f"plot_embedding: {len(pts)} points but {len(y)} labels")
    classes = [str(c) for c in labels]
    classes += sorted(set(y) - set(classes))
    colors = _class_colors(len(classes))
    columns = 1 if len(classes) <= 20 else 2
    fig = new_figure(6.5 + 1.6 * columns, 5.5)
    ax = fig.add_subplot()
    size = 36 if len(pts) <= 200 else 16 if len(pts) <= 1000 else 8 if len(pts) <= 3000 else 4
    for cls, color in zip(classes, colors):
        mask = y == cls
        if mask.any():
            ax.scatter(pts[mask, 0], pts[mask, 1], s=size, color=color, label=cls, alpha=0.8, linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, markerscale=max(1.0, 30.0 / size) ** 0.5,
              frameon=False, ncols=columns)
    return fig


# --------------------------------------------------------------------------- comparison of runs


def plot_comparison(names: Sequence[str], scores: dict[str, Sequence[float | None]]):
    """Horizontal grouped bars: one group per run (first at the top), one bar per score.

    Parameters
    ----------
    names : sequence of str, shape (n_runs,)
        Run names, in display order.
    scores : dict of str to sequence of float or None
        ``{"accuracy": [...], "top-3": [...], "macro F1": [...]}``, each of length ``n_runs``, in
        [0, 1]; a missing score (None / NaN) leaves its bar out.

    Returns
    -------
    matplotlib.figure.Figure
    """
    names = [str(n) for n in names]
    if not names:
        raise DataError("plot_comparison: no runs to draw")
    for key, values in scores.items():
        if len(values) != len(names):
            raise DataError(f"plot_comparison: {len(names)} runs but {len(values)} {key!r} scores")
    n, k = len(names), max(len(scores), 1)
    height = 1.2 + n * (0.25 + 0.22 * k)
    fig = new_figure(8.0, max(2.5, height))
    ax = fig.add_subplot()
    bar = 0.8 / k
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    rows = np.arange(n)
    for j, (key, values) in enumerate(scores.items()):
        v = np.array([np.nan if x is None else float(x) for x in values], dtype=np.float64)
        pos = rows - 0.4 + bar * (j + 0.5)
        ok = np.isfinite(v)
        ax.barh(pos[ok], v[ok], height=bar, color=colors[j % len(colors)], label=key)
        for p, x in zip(pos[ok], v[ok]):
            ax.text(x + 0.005, p, f"{x:.3f}", va="center", fontsize=7)
    ax.set_yticks(rows, labels=names)
    ax.invert_yaxis()
    ax.set_xlim(0.0, 1.08)
    ax.set_xlabel("Score on the evaluation split")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=k, fontsize=8, frameon=False)
    return fig
