"""Predict labels for audio files with a trained run; long audio is split into windows and aggregated."""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from earmark.audio import load, segment
from earmark.audio.separate import apply_separation, resolve_separation
from earmark.errors import DataError, EarmarkError
from earmark.features.base import get_feature
from earmark.fsutil import atomic_path
from earmark.fuse import FusedRun
from earmark.run import Run


@dataclass
class Prediction:
    """Class probabilities of one file (aggregated over its windows)."""

    path: str
    proba: np.ndarray
    n_windows: int


def collect_audio(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files named directly, and the audio files under named folders (recursively, sorted)."""
    from earmark.data.formats import list_audio

    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files.extend(list_audio(p, recursive=True, required=False))
        else:
            files.append(p)  # a missing file is reported by predict_files, with the others predicted
    if not files:
        raise DataError(f"no audio files in {', '.join(map(str, inputs))}")
    return files


def clip_proba(run: Run | FusedRun, path: str | os.PathLike, _audio: dict | None = None) -> tuple[np.ndarray, int]:
    """Decode ``path``, separate vocals if the run was trained so (``audio.separate``), compute the run's
    feature (per window when ``eval.window`` is set) and predict.

    Separation runs on each window, as it ran on each training clip. Returns the aggregated
    probability vector and the number of windows. A fusion (``earmark fuse``) asks each of its runs
    and averages their probabilities with its weights (the number of windows is the largest); runs
    that read the audio alike (rate, windows, separation) share one decoding and separation.
    """
    if isinstance(run, FusedRun):
        audio: dict = {}
        parts = [clip_proba(r, path, audio) for r in run.runs]
        return run.combine([p[np.newaxis] for p, _ in parts])[0], max(n for _, n in parts)
    cfg = run.config
    spec = get_feature(cfg.features.name)
    params = spec.resolve(cfg.features.params)
    sr = params["sr"]
    memo = {} if _audio is None else _audio  # shared by a fusion's runs: decode and separate once

    def once(key: tuple, compute):
        if key not in memo:
            memo[key] = compute()
        return memo[key]

    decoded = once(("decoded", sr), lambda: load(path, sr=sr))
    if decoded.shape[-1] < spec.min_samples(params):
        raise DataError(f"{path}: {decoded.shape[-1]} samples at {sr} Hz is shorter than one {spec.name} frame")
    separation = resolve_separation(cfg.audio.separate)
    y = once(("windows", sr, cfg.eval.window, cfg.eval.hop, json.dumps(separation, sort_keys=True, default=str)),
             lambda: apply_separation(_windows(decoded, sr, cfg.eval.window, cfg.eval.hop), sr, separation))
    P = run.predict_proba(run.inputs(list(np.asarray(spec.fn(y, **params)))))  # one row per window
    if cfg.eval.aggregate == "vote":
        votes = np.bincount(P.argmax(axis=1), minlength=P.shape[1]).astype(np.float64)
        return votes / votes.sum(), len(P)
    return P.mean(axis=0), len(P)


def _windows(y: np.ndarray, sr: int, window: float | None, hop: float | None) -> np.ndarray:
    """``y`` as ``(n_windows, n_samples)`` windows of ``window`` seconds every ``hop``; one row without ``window``."""
    if not window:
        return y[np.newaxis]
    return segment(y, int(round(window * sr)), int(round((hop or window) * sr)))[0]


def predict_files(run: Run | FusedRun, files: Sequence[str | os.PathLike]) -> tuple[list[Prediction], list[tuple[str, str]]]:
    """Predictions for the files that decode, and ``(path, reason)`` for those that do not."""
    preds, failures = [], []
    for f in files:
        try:
            proba, n = clip_proba(run, f)
            preds.append(Prediction(str(f), proba, n))
        except EarmarkError as exc:
            failures.append((str(f), getattr(exc, "reason", None) or str(exc)))
    return preds, failures


def time_per_clip(run: Run | FusedRun, files: Sequence[str | os.PathLike], n: int = 20) -> float | None:
    """Median end-to-end milliseconds per clip (decode, feature, model) over up to ``n`` files."""
    times = []
    for f in list(files)[:n]:
        t0 = time.perf_counter()
        try:
            clip_proba(run, f)
        except EarmarkError:
            continue
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times)) if times else None


def write_predictions(path: str | os.PathLike, preds: Sequence[Prediction], labels: Sequence[str], top_k: int = 3,
                      root: str | os.PathLike | None = None, submission: bool = False) -> Path:
    """CSV ``id, path, label, top1, p1, ..., topk, pk, windows`` (``id``: path relative to ``root``, no
    extension); with ``submission``, only ``id, label`` (a competition's submission file)."""
    k = min(top_k, len(labels))
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        top = [c for i in range(1, k + 1) for c in (f"top{i}", f"p{i}")]
        w.writerow(["id", "label"] if submission else ["id", "path", "label", *top, "windows"])
        for p in preds:
            order = np.argsort(-p.proba, kind="stable")[:k]
            rel = os.path.relpath(p.path, root) if root else Path(p.path).name
            clip_id = os.path.splitext(rel)[0]
            if submission:
                w.writerow([clip_id, labels[order[0]]])
                continue
            row = [clip_id, p.path, labels[order[0]]]
            for j in order:
                row += [labels[j], f"{p.proba[j]:.6f}"]
            w.writerow(row + [p.n_windows])
    return path
