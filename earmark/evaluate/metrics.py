"""Classification metrics in the ``metrics.json`` shape every run writes (see DESIGN.md).

``compute_metrics`` turns true labels and class probabilities into that dictionary, ``write_metrics``
writes it atomically and refuses NaN, ``read_metrics`` reads it back, and ``misclassified`` lists the
most confident mistakes for the report.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from earmark.errors import DataError
from earmark.fsutil import atomic_write_text

__all__ = ["compute_metrics", "misclassified", "read_metrics", "write_metrics"]

_DECIMALS = 6
_MAX_UNSEEN_EXAMPLES = 20


def _round(x: float) -> float:
    return round(float(x), _DECIMALS)


def _prepare(y_true, proba, labels, ids=None, *, where: str):
    """Validate inputs; return (y_true str array, proba float array, labels list of str, predicted index, ids)."""
    labels = [str(label) for label in labels]
    if not labels:
        raise DataError(f"{where}: labels is empty; expected the model's class names")
    dup = [label for label, c in Counter(labels).items() if c > 1]
    if dup:
        raise DataError(f"{where}: labels must be unique, got duplicates {dup}")
    y = np.asarray([str(v) for v in np.asarray(y_true, dtype=object).ravel()], dtype=object)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape != (y.size, len(labels)):
        raise DataError(
            f"{where}: expected proba of shape (n, n_classes) = ({y.size}, {len(labels)}) "
            f"to match y_true and labels, got {p.shape}"
        )
    if y.size == 0:
        raise DataError(f"{where}: no examples (y_true is empty); metrics are undefined")
    bad = ~np.isfinite(p)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise DataError(f"{where}: proba holds NaN or infinite values in {rows.size} row(s), first at row {rows[0]}")
    if ids is not None:
        ids = [str(i) for i in np.asarray(ids, dtype=object).ravel()]
        if len(ids) != y.size:
            raise DataError(f"{where}: expected {y.size} ids (one per example), got {len(ids)}")
    return y, p, labels, p.argmax(axis=1), ids


def compute_metrics(
    y_true: Sequence,
    proba: np.ndarray,
    labels: Sequence,
    *,
    split: str = "test",
    top_k: Iterable[int] = (1, 3),
    inference_ms_per_clip: float | None = None,
    params: int | None = None,
    ids: Sequence | None = None,
) -> dict[str, Any]:
    """Accuracy, top-k accuracy, macro F1, confusion matrix and per-class scores of one split.

    Parameters
    ----------
    y_true : sequence of str, shape (n,)
        True labels. Compared as strings (``str(label)``), as in the manifest.
    proba : array, shape (n, n_classes)
        Class probabilities (or any scores: only their order is used), columns in ``labels`` order.
    labels : sequence of str, shape (n_classes,)
        The model's classes, in its column order (``model.classes_``).
    split : str
        Name of the evaluated split, stored as ``"split"``.
    top_k : iterable of int
        The k of the top-k accuracies, stored under string keys (``{"1": .., "3": ..}``). A k larger
        than ``n_classes`` is clipped to ``n_classes`` (so it is 1.0 when every label was seen) and
        still reported under the k asked for.
    inference_ms_per_clip : float, optional
        Measured prediction time per clip, in milliseconds.
    params : int, optional
        Number of model parameters.
    ids : sequence of str, shape (n,), optional
        Clip ids, used to list examples of unseen labels.

    Returns
    -------
    dict
        The keys of DESIGN.md's ``metrics.json``: ``split, n, accuracy, top_k_accuracy, macro_f1,
        labels, confusion_matrix, per_class, inference_ms_per_clip, params``. Floats are rounded
        to 6 decimals.

        * ``confusion_matrix`` is always square over ``labels`` (rows = true, columns = predicted),
          so it plots and compares the same way for every run.
        * ``per_class`` has one entry per label of ``labels`` (precision, recall and F1 are 0 where
          undefined, never NaN) plus one per unseen label.
        * ``macro_f1`` averages F1 over the labels that occur in ``y_true`` or in the predictions
          (scikit-learn's default), unseen labels included with F1 = 0. A model class that is
          neither present nor predicted does not pull the average down.

        **Unseen labels** (in ``y_true`` but not in ``labels``) can never be predicted: they count
        as errors in accuracy, top-k and macro F1, and are reported rather than raised. Only when
        there are some, three keys are added:

        * ``"unseen_labels"``: ``{label: count}``, most frequent first;
        * ``"unseen_confusion"``: ``{label: [count predicted as each of labels]}``, the confusion
          rows of those labels, kept out of the square matrix, so that
          ``sum(confusion_matrix) + sum(unseen_labels.values()) == n``;
        * ``"unseen_examples"``: the ids of the first 20 such examples, when ``ids`` are given.

    Raises
    ------
    DataError
        Shapes that do not match, no examples, duplicate labels, NaN or infinite probabilities,
        a k below 1, or a non-finite ``inference_ms_per_clip``.

    Examples
    --------
    >>> m = compute_metrics(["a", "b"], [[0.9, 0.1], [0.6, 0.4]], ["a", "b"])
    >>> m["accuracy"], m["confusion_matrix"]
    (0.5, [[1, 0], [1, 0]])
    """
    from sklearn.metrics import precision_recall_fscore_support

    y, p, labels, pred_idx, ids = _prepare(y_true, proba, labels, ids, where="compute_metrics")
    n, n_classes = p.shape
    ks = []
    for k in top_k:
        if isinstance(k, bool) or int(k) != k or int(k) < 1:
            raise DataError(f"compute_metrics: top_k values must be integers >= 1, got {k!r}")
        ks.append(int(k))
    if inference_ms_per_clip is not None and not math.isfinite(float(inference_ms_per_clip)):
        raise DataError(f"compute_metrics: inference_ms_per_clip must be a finite number, got {inference_ms_per_clip!r}")

    index = {label: i for i, label in enumerate(labels)}
    true_idx = np.array([index.get(v, -1) for v in y])  # -1: a label the model never saw
    seen = true_idx >= 0
    predicted = np.asarray(labels, dtype=object)[pred_idx]

    accuracy = float(np.mean(true_idx == pred_idx))
    # stable order: ties go to the lower column, exactly as argmax does, so top-1 == accuracy
    order = np.argsort(-p, axis=1, kind="stable")
    top_k_accuracy = {}
    for k in ks:
        hit = (order[:, : min(k, n_classes)] == true_idx[:, None]).any(axis=1)
        top_k_accuracy[str(k)] = _round(np.mean(hit))

    unseen_counts = Counter(y[~seen].tolist())
    unseen = sorted(unseen_counts, key=lambda label: (-unseen_counts[label], label))
    all_labels = labels + unseen
    prec, rec, f1, support = precision_recall_fscore_support(
        y, predicted, labels=all_labels, zero_division=0.0
    )
    n_predicted = np.bincount(pred_idx, minlength=n_classes)
    present = support > 0
    present[:n_classes] |= n_predicted > 0
    macro_f1 = float(np.mean(f1[present]))

    full = np.zeros((len(all_labels), n_classes), dtype=np.int64)
    all_index = {label: i for i, label in enumerate(all_labels)}
    np.add.at(full, (np.array([all_index[v] for v in y]), pred_idx), 1)

    out: dict[str, Any] = {
        "split": str(split),
        "n": int(n),
        "accuracy": _round(accuracy),
        "top_k_accuracy": top_k_accuracy,
        "macro_f1": _round(macro_f1),
        "labels": labels,
        "confusion_matrix": full[:n_classes].tolist(),
        "per_class": {
            label: {
                "precision": _round(prec[i]),
                "recall": _round(rec[i]),
                "f1": _round(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(all_labels)
        },
        "inference_ms_per_clip": None if inference_ms_per_clip is None else _round(inference_ms_per_clip),
        "params": None if params is None else int(params),
    }
    if unseen:
        out["unseen_labels"] = {label: int(unseen_counts[label]) for label in unseen}
        out["unseen_confusion"] = {label: full[n_classes + i].tolist() for i, label in enumerate(unseen)}
        if ids is not None:
            out["unseen_examples"] = [ids[i] for i in np.flatnonzero(~seen)[:_MAX_UNSEEN_EXAMPLES]]
    return out


def misclassified(
    y_true: Sequence,
    proba: np.ndarray,
    labels: Sequence,
    ids: Sequence,
    n: int | None = 20,
) -> list[dict[str, Any]]:
    """The wrongly predicted examples, most confident mistakes first.

    Parameters
    ----------
    y_true : sequence of str, shape (n_examples,)
    proba : array, shape (n_examples, n_classes), columns in ``labels`` order
    labels : sequence of str, shape (n_classes,)
    ids : sequence of str, shape (n_examples,)
        Clip ids, as in the manifest.
    n : int or None
        At most this many (``None``: all).

    Returns
    -------
    list of dict
        ``{"id", "true", "predicted", "confidence"}`` per mistake, where ``confidence`` is the score
        of the predicted class (rounded to 6 decimals). Examples of labels the model never saw are
        mistakes too. Ties keep the input order.
    """
    if n is not None and (isinstance(n, bool) or int(n) != n or n < 0):
        raise DataError(f"misclassified: n must be an integer >= 0 or None, got {n!r}")
    y, p, labels, pred_idx, ids = _prepare(y_true, proba, labels, ids, where="misclassified")
    predicted = np.asarray(labels, dtype=object)[pred_idx]
    confidence = p[np.arange(len(y)), pred_idx]
    wrong = np.flatnonzero(predicted != y)
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")]
    if n is not None:
        wrong = wrong[: int(n)]
    return [
        {"id": ids[i], "true": y[i], "predicted": predicted[i], "confidence": _round(confidence[i])}
        for i in wrong
    ]


def _jsonable(value: Any, where: str) -> Any:
    """Plain JSON types (numpy scalars and arrays converted); NaN or infinity raises, naming the key path."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, np.bool_, str)):
        return bool(value) if isinstance(value, np.bool_) else value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise DataError(f"metrics: {where or 'value'} is {float(value)}; refusing to write a non-finite metric")
        return float(value)
    raise DataError(f"metrics: {where or 'value'} has type {type(value).__name__}, which JSON cannot hold")


def _dumps(value: Any, level: int = 0) -> str:
    """Indented JSON where lists of scalars (a confusion-matrix row) stay on one line."""
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = (f"{inner}{json.dumps(k)}: {_dumps(v, level + 1)}" for k, v in value.items())
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(inner + _dumps(v, level + 1) for v in value) + f"\n{pad}]"
    return json.dumps(value, allow_nan=False, ensure_ascii=False)


def write_metrics(metrics: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``metrics`` to ``path`` as indented JSON, atomically (temp file + rename).

    Raises
    ------
    DataError
        When any value is NaN or infinite (the message names its key path, e.g.
        ``per_class.bass.f1``) or not representable in JSON; nothing is written then.
    """
    if not isinstance(metrics, dict):
        raise DataError(f"write_metrics: expected a dict, got {type(metrics).__name__}")
    text = _dumps(_jsonable(metrics, "")) + "\n"
    path = Path(path)
    atomic_write_text(path, text)
    return path


def read_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``metrics.json`` written by :func:`write_metrics` (DataError when missing or not a JSON object)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such metrics file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object of metrics, got {type(data).__name__}")
    return data
