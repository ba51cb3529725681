"""Late fusion: one classifier made of several trained runs, their class probabilities averaged.

Runs trained on different features see different things: a network on the fbank of a clip, a
classical model on a pretrained speaker embedding of it. ``earmark fuse RUN_A RUN_B --out FUSED``
writes a folder that ``earmark evaluate``, ``predict``, ``compare`` and ``serve`` take like a
trained run; for each clip, every run computes its own features (from its own store, with its own
``audio.separate``) and probabilities, and the fusion is their weighted mean::

    FUSED/
      fusion.json        {"runs": [run folders, relative to FUSED], "weights": [...] (sum 1), "labels": [...]}
      metrics.json, predictions-<split>.csv, confusion.png, failures-<split>.csv   (earmark evaluate)

The runs must have the same classes (columns are matched by label, not position). A clip one of
the runs cannot use (a bad file, too short for its feature) is left out of the fusion and listed.
The runs are referenced, not copied, by paths relative to the fusion's folder: moving the folder that
holds them all keeps the fusion working; moving or deleting one run breaks it (the error names it).
``earmark export`` and the model sections of ``report`` (training curves, t-SNE) take one trained run.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from earmark.checks import is_number
from earmark.errors import ConfigError, DataError
from earmark.fsutil import atomic_write_text
from earmark.run import CONFIG_FILE, FUSION_FILE, MODEL_FILE, NET_DIR, Run, Scores

__all__ = ["FusedRun", "fuse_runs", "load_run", "read_fusion"]


@dataclass
class FusedRun:
    """Several trained runs whose probabilities are averaged with ``weights``.

    Attributes
    ----------
    dir : Path
        The fusion's folder (``fusion.json``).
    runs : list of Run
        The fused runs.
    weights : np.ndarray, shape (n_runs,)
        Positive, summing to 1.
    labels : list of str
        Class order of :meth:`combine`'s columns (the first run's).
    meta : dict
        ``model`` ("fusion: resnet_compact x5 + logreg") and ``labels``, as :attr:`Run.meta`.
    """

    dir: Path
    runs: list[Run]
    weights: np.ndarray
    labels: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FusedRun":
        """Read ``path/fusion.json`` and load its runs.

        Raises
        ------
        DataError
            No such folder, an unreadable or malformed ``fusion.json``, a run that no longer loads
            (moved, deleted: the message names it), or runs whose classes differ.
        """
        path = Path(path)
        runs, weights = read_fusion(path)
        loaded = []
        for folder in runs:
            try:
                loaded.append(Run.load(folder))
            except DataError as exc:
                raise DataError(f"{path}: fused run {folder} cannot be loaded ({exc})") from None
        return _make(path, loaded, _weights(weights, len(loaded), where=str(path / FUSION_FILE)))

    @property
    def config(self):
        """The first run's config (evaluation settings such as ``eval.top_k`` come from it)."""
        return self.runs[0].config

    def combine(self, probas: Sequence[np.ndarray]) -> np.ndarray:
        """Weighted mean of each run's ``(n, n_classes_i)`` probabilities, columns in :attr:`labels` order."""
        return self._mean([_aligned(p, run.labels, self.labels) for p, run in zip(probas, self.runs)])

    def _mean(self, aligned: Sequence[np.ndarray]) -> np.ndarray:
        """Weighted mean of probabilities whose columns are already in :attr:`labels` order."""
        return sum(w * p for w, p in zip(self.weights, aligned))

    def scores(self, manifest: Any, *, progress: bool = False, executor: Executor | None = None) -> Scores:
        """:meth:`Run.scores` of every run on ``manifest``, fused on the clips all of them could use.

        ``members`` holds each run's probabilities on those clips (aligned to :attr:`labels`).
        """
        n = len(manifest)
        full, ok, failures, seen = [], np.ones(n, dtype=bool), [], set()
        for run in self.runs:
            s = run.scores(manifest, progress=progress, executor=executor)
            p = np.zeros((n, len(self.labels)))
            p[s.ok] = _aligned(s.proba, run.labels, self.labels)
            full.append(p)
            ok &= s.ok
            for f in s.failures:
                if f.path not in seen:
                    seen.add(f.path)
                    failures.append(f)
        members = [p[ok] for p in full]
        return Scores(proba=self._mean(members), ok=ok, failures=failures, members=members)

    def count_params(self) -> int:
        """Parameters of all the fused runs' models."""
        return int(sum(r.count_params() for r in self.runs))

    @property
    def feature_names(self) -> str:
        return " + ".join(dict.fromkeys(r.config.features.name for r in self.runs))


def read_fusion(path: str | os.PathLike) -> tuple[list[Path], list[Any]]:
    """The run folders (absolute; stored relative to ``path``) and weights that ``path/fusion.json``
    lists, without loading the runs.

    Raises
    ------
    DataError
        No ``fusion.json``, not readable JSON, or not ``{"runs": [folders], "weights": [one per run]}``.
    """
    path = Path(path)
    file = path / FUSION_FILE
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no {FUSION_FILE}; `earmark fuse RUN... --out {path}` writes it") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{file}: not readable JSON ({exc})") from None
    runs, weights = (info.get("runs"), info.get("weights")) if isinstance(info, dict) else (None, None)
    if (not isinstance(runs, list) or not all(isinstance(r, str) for r in runs) or not isinstance(weights, list)
            or len(weights) != len(runs)):
        raise DataError(f"{file}: expected {{\"runs\": [run folders], \"weights\": [one number per run]}}, "
                        f"got {str(info)[:200]}")
    return [(path / r).resolve() for r in runs], weights


def load_run(path: str | os.PathLike) -> Run | FusedRun:
    """A trained run (:meth:`Run.load`), or a fusion of runs when the folder holds ``fusion.json``."""
    if (Path(path) / FUSION_FILE).is_file():
        return FusedRun.load(path)
    return Run.load(path)


def fuse_runs(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike,
              weights: Sequence[float] | None = None) -> FusedRun:
    """Write ``out/fusion.json`` fusing ``run_dirs`` and return the fusion.

    Parameters
    ----------
    run_dirs : sequence of paths, at least two
        Run folders written by ``earmark train`` (ensembles included; not other fusions).
    out : path
        The fusion's folder (created). It must not be one of the runs, nor a trained run's folder.
    weights : sequence of float, optional
        One positive weight per run (normalised to sum 1); default: equal weights.

    Raises
    ------
    ConfigError
        Fewer than two runs, a run given twice, a fusion among them, weights that do not match the
        runs or are not positive finite numbers, or ``out`` holding a trained run.
    DataError
        A run that does not load, or runs whose classes differ (the message names the labels).
    """
    dirs = [Path(d).resolve() for d in run_dirs]
    if len(dirs) < 2:
        raise ConfigError(f"fuse: expected at least two runs, got {len(dirs)}")
    twice = sorted({str(d) for d in dirs if dirs.count(d) > 1})
    if twice:
        raise ConfigError(f"fuse: run given more than once: {', '.join(twice)} (give it a larger weight instead)")
    out = Path(out)
    if out.resolve() in dirs:
        raise ConfigError(f"fuse: --out {out} is one of the fused runs; choose a new folder")
    for d in dirs:
        if (d / FUSION_FILE).is_file():
            raise ConfigError(f"fuse: {d} is itself a fusion; fuse its runs directly")
    if any((out / name).exists() for name in (CONFIG_FILE, MODEL_FILE, NET_DIR)):
        raise ConfigError(f"fuse: {out} holds a trained run; choose a new folder for the fusion")
    w = _weights(weights if weights is not None else [1.0] * len(dirs), len(dirs), where="fuse --weights")
    fused = _make(out, [Run.load(d) for d in dirs], w)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / FUSION_FILE, json.dumps(
        {"runs": [os.path.relpath(d, out.resolve()) for d in dirs], "weights": [float(x) for x in w], "labels": fused.labels,
         "models": [r.meta.get("model") for r in fused.runs]}, indent=2) + "\n")
    return fused


def _make(path: Path, runs: list[Run], weights: np.ndarray) -> FusedRun:
    labels = runs[0].labels
    for r in runs[1:]:
        if sorted(r.labels) != sorted(labels):
            only_a = sorted(set(labels) - set(r.labels))
            only_b = sorted(set(r.labels) - set(labels))
            raise DataError(f"fuse: {runs[0].dir} and {r.dir} have different classes "
                            f"(only in the first: {only_a or 'none'}; only in the second: {only_b or 'none'})")
    model = "fusion: " + " + ".join(str(r.meta.get("model") or r.config.model.name) for r in runs)
    return FusedRun(dir=path, runs=runs, weights=weights, labels=list(labels), meta={"model": model, "labels": list(labels)})


def _weights(values: Sequence[Any], n: int, *, where: str) -> np.ndarray:
    values = list(values)
    if len(values) != n:
        raise ConfigError(f"{where}: expected one weight per run ({n}), got {len(values)}")
    bad = [v for v in values if not is_number(v) or not math.isfinite(v) or v <= 0]
    if bad:
        raise ConfigError(f"{where}: weights must be positive finite numbers, got {bad[0]!r}")
    w = np.asarray(values, dtype=np.float64)
    return w / w.sum()


def _aligned(proba: np.ndarray, labels: Sequence[str], order: Sequence[str]) -> np.ndarray:
    """``proba``'s columns (in ``labels`` order) rearranged into ``order``."""
    index = {label: i for i, label in enumerate(labels)}
    return np.asarray(proba, dtype=np.float64)[:, [index[label] for label in order]]
