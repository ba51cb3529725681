"""Evaluate a trained run on one split of a manifest: metrics.json, confusion matrices, failures."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from earmark.data import Manifest
from earmark.evaluate.metrics import compute_metrics, write_metrics
from earmark.evaluate.plots import plot_confusion_pair
from earmark.run import Run


def evaluate(run_dir: str | os.PathLike, manifest: str | os.PathLike, *, split: str = "test",
             out: str | os.PathLike | None = None, progress: bool = False) -> dict:
    """Score the run's model on ``manifest``'s ``split``; write ``metrics.json`` and ``confusion.png``.

    Clips that fail to decode are left out and counted (``n_failed``); labels the model never saw
    count as errors and are listed (``unseen_labels``). ``inference_ms_per_clip`` is the median
    end-to-end time of one clip (decode, feature, model) on this machine.
    """
    from earmark.models.classical import count_params
    from earmark.predict import time_per_clip
    from earmark.train.experiment import clip_features, write_failures

    run = Run.load(run_dir)
    m = Manifest.read(manifest).select(split=split)
    arrays, ok, failures = clip_features(run.config, m, progress=progress)
    X = run.inputs(arrays)
    proba = run.predict_proba(X)
    metrics = compute_metrics(
        m.labels[ok], proba, run.labels, split=split, top_k=tuple(run.config.eval.top_k),
        inference_ms_per_clip=time_per_clip(run, [p for p, good in zip(m.paths(), ok) if good]),
        params=count_params(run.model), ids=list(m.ids[ok]),
    )
    metrics.update(model=run.meta.get("model"), features=run.config.features.name, n_failed=len(failures))
    if hasattr(run.model, "member_proba"):  # an ensemble: each member's accuracy beside the ensemble's
        y_true = m.labels[ok]
        metrics["members"] = [
            {"member": i, "accuracy": round(float(np.mean(np.asarray(run.labels)[p.argmax(1)] == y_true)), 6)}
            for i, p in enumerate(run.model.member_proba(X))
        ]
    out = Path(out) if out else Path(run_dir) / "metrics.json"
    write_metrics(metrics, out)
    plot_confusion_pair(metrics["confusion_matrix"], metrics["labels"], out.with_name("confusion.png"))
    if failures:
        write_failures(out.with_name(f"failures-{split}.csv"), failures)
    return metrics
