"""Evaluate a trained run on one split of a manifest: metrics.json, predictions, confusion matrices, failures."""

from __future__ import annotations

import csv
import os
from concurrent.futures import Executor
from pathlib import Path
from typing import Sequence

import numpy as np

from earmark.data import Manifest
from earmark.evaluate.metrics import compute_metrics, write_metrics
from earmark.evaluate.plots import plot_confusion_pair
from earmark.fsutil import atomic_path

#: Prefix of the probability columns of ``predictions-<split>.csv`` (``p:bass``, ``p:brass``, ...).
PROBA_PREFIX = "p:"


def evaluate(run_dir: str | os.PathLike, manifest: str | os.PathLike, *, split: str = "test",
             out: str | os.PathLike | None = None, progress: bool = False,
             executor: Executor | None = None) -> dict:
    """Score the run's model on ``manifest``'s ``split``; write ``metrics.json``, ``confusion.png`` and
    ``predictions-<split>.csv`` (see :func:`write_predictions`), all beside ``out``.

    Clips that fail to decode are left out and counted (``n_failed``); labels the model never saw
    count as errors and are listed (``unseen_labels``). ``inference_ms_per_clip`` is the median
    end-to-end time of one clip (decode, feature, model) on this machine. Missing features are
    extracted through ``executor`` when one is given (see :func:`earmark.features.extract.extract`).
    ``run_dir`` may be a fusion of runs (``earmark fuse``): each run scores the clips with its own
    features, and ``members`` lists each run's accuracy on the clips all of them could use.
    """
    from earmark.fuse import load_run
    from earmark.predict import time_per_clip

    run = load_run(run_dir)
    m = Manifest.read(manifest).select(split=split)
    s = run.scores(m, progress=progress, executor=executor)
    ok = s.ok
    metrics = compute_metrics(
        m.labels[ok], s.proba, run.labels, split=split, top_k=tuple(run.config.eval.top_k),
        inference_ms_per_clip=time_per_clip(run, [p for p, good in zip(m.paths(), ok) if good]),
        params=run.count_params(), ids=list(m.ids[ok]),
    )
    metrics.update(model=run.meta.get("model"), features=run.feature_names, n_failed=len(s.failures))
    if s.members:  # an ensemble or a fusion: each member's accuracy beside the whole's
        y_true = m.labels[ok]
        metrics["members"] = [
            {"member": i, "accuracy": round(float(np.mean(np.asarray(run.labels)[p.argmax(1)] == y_true)), 6)}
            for i, p in enumerate(s.members)
        ]
        for member, r in zip(metrics["members"], getattr(run, "runs", [])):  # a fusion: name its runs
            member["run"] = r.dir.name
    out = Path(out) if out else Path(run_dir) / "metrics.json"
    write_metrics(metrics, out)
    plot_confusion_pair(metrics["confusion_matrix"], metrics["labels"], out.with_name("confusion.png"))
    write_predictions(out.with_name(f"predictions-{split}.csv"), Manifest(m.df[ok].reset_index(drop=True), m.root),
                      s.proba, run.labels)
    if s.failures:
        from earmark.train.experiment import write_failures

        write_failures(out.with_name(f"failures-{split}.csv"), s.failures)
    return metrics


def write_predictions(path: str | os.PathLike, manifest: Manifest, proba: np.ndarray, labels: Sequence[str]) -> Path:
    """Write one row per evaluated clip, atomically: what the report needs without recomputing.

    Parameters
    ----------
    path : path
        The CSV to write (``RUN/predictions-<split>.csv``).
    manifest : Manifest, n_clips rows
        The evaluated clips, aligned with ``proba``.
    proba : array, shape (n_clips, n_classes)
        Class probabilities, columns in ``labels`` order.
    labels : sequence of str, shape (n_classes,)
        The model's classes.

    Returns
    -------
    Path
        ``path``. Columns: ``id, path`` (absolute), ``label`` (true), ``predicted``, then ``offset`` and
        ``duration`` when the manifest has them (the excerpt of the file, in seconds), then one
        probability per class, ``p:<label>``, to 6 significant digits.
    """
    proba = np.asarray(proba, dtype=np.float64)
    labels = [str(label) for label in labels]
    predicted = np.asarray(labels, dtype=object)[proba.argmax(axis=1)]
    extra = [c for c in ("offset", "duration") if c in manifest.df.columns]
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "path", "label", "predicted", *extra, *(PROBA_PREFIX + label for label in labels)])
        columns = [manifest.ids, manifest.paths(), manifest.labels, predicted,
                   *(manifest.df[c].to_numpy(dtype=object) for c in extra)]
        for row, p in zip(zip(*columns), proba):
            w.writerow([*("" if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in row),
                        *(f"{x:.6g}" for x in p)])
    return path
