"""Extract one feature for every clip of a manifest into a :class:`~earmark.features.store.FeatureStore`.

Clips already in the store are skipped, so a rerun after a crash or ``kill -9`` computes only the
rest. Work is cut into chunks and sent through an executor (all cores by default); the calling
process decodes nothing and only appends finished arrays. A clip that cannot be decoded or
computed is reported (``ExtractReport.failures`` and ``failures.csv``) and skipped, never fatal.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.text import Text

from earmark.errors import EarmarkError
from earmark.features.base import get_feature
from earmark.features.store import Clip, Failure, FeatureStore, _as_clips, clip_key
from earmark.parallel import as_finished, make_executor, n_workers


@dataclass
class ExtractReport:
    """What an extraction did.

    Attributes
    ----------
    n_clips : int
        Clips in the manifest.
    n_cached : int
        Clips whose features were already stored.
    n_computed : int
        Clips computed and stored by this run.
    failures : list of Failure
        Clips that could not be computed, with the reason.
    seconds : float
        Wall-clock time of the run.
    audio_seconds : float
        Duration of the audio decoded by this run (at the feature's rate).
    store_dir : str
        Folder of this feature configuration in the store.
    """

    n_clips: int
    n_cached: int = 0
    n_computed: int = 0
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    audio_seconds: float = 0.0
    store_dir: str = ""

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio processed per second of wall-clock time by this run."""
        return self.audio_seconds / self.seconds if self.seconds > 0 else float("nan")


def compute_chunk(feature: str, params: dict[str, Any], clips: Sequence[Clip],
                  separate: dict[str, Any] | None = None,
                  augment: dict[str, Any] | None = None) -> list[tuple[Any, float]]:
    """Decode, optionally augment and separate, and compute ``feature`` for ``clips`` (runs in a worker).

    ``separate`` holds resolved separation settings (:func:`earmark.audio.separate.resolve_separation`):
    the feature is then computed on that stem of each decoded clip. ``augment`` holds the settings of
    one offline copy (:func:`earmark.augment.offline_copies`): its waveform steps are applied to each
    decoded clip (before separation) and its spectrogram steps to the feature, with the clip's own
    generator (:func:`earmark.augment.copy_rng`).

    Returns
    -------
    list of (result, audio_seconds), aligned with ``clips``
        ``result`` is the feature array, or a string saying why the clip failed.
    """
    from earmark.audio import load  # imported here so workers started by spawn stay light to unpickle
    from earmark.audio.separate import apply_separation

    spec = get_feature(feature)
    sr = params["sr"]
    min_samples = spec.min_samples(params)
    pipe, rngs = None, []
    if augment is not None:
        from earmark.augment import compose, copy_rng

        pipe = compose(augment["steps"], key="augment.steps")
        rngs = [copy_rng(augment, clip.id) for clip in clips]
    waves: list[np.ndarray | None] = []
    results: list[Any] = []
    for c, clip in enumerate(clips):
        try:
            y = load(clip.path, sr=sr, offset=clip.offset or 0.0, duration=clip.duration)
            if y.shape[-1] < min_samples:
                raise EarmarkError(f"{y.shape[-1]} samples at {sr} Hz is shorter than one {feature} frame ({min_samples} samples)")
            if pipe is not None and len(pipe.waveform):
                try:
                    y = np.asarray(pipe.waveform(y, rng=rngs[c], sr=sr), dtype=np.float32)
                except Exception as exc:
                    raise EarmarkError(f"augmentation failed: {type(exc).__name__}: {exc}") from None
            waves.append(y)
            results.append(None)
        except EarmarkError as exc:
            waves.append(None)
            results.append(getattr(exc, "reason", None) or str(exc))
        except Exception as exc:  # a bad file among thousands must never stop the run
            waves.append(None)
            results.append(f"{type(exc).__name__}: {exc}")
    # Clips of equal length go through the feature function as one batch.
    by_length: dict[int, list[int]] = {}
    for i, y in enumerate(waves):
        if y is not None:
            by_length.setdefault(y.shape[-1], []).append(i)
    for idx in by_length.values():
        batch = np.stack([waves[i] for i in idx])
        if separate is not None:
            try:
                batch = apply_separation(batch, sr, separate)
            except Exception as exc:
                reason = getattr(exc, "reason", None) or str(exc)
                for i in idx:
                    results[i] = f"separation ({separate['method']}) failed: {reason}"
                continue
        try:
            out = spec.fn(batch, **params)
        except Exception as exc:
            for i in idx:
                results[i] = f"{feature} failed: {type(exc).__name__}: {exc}"
            continue
        for j, i in enumerate(idx):
            arr = np.ascontiguousarray(out[j])
            if pipe is not None and len(pipe.spectrogram):
                try:
                    arr = np.ascontiguousarray(pipe.spectrogram(arr, rng=rngs[i]), dtype=arr.dtype)
                except Exception as exc:
                    results[i] = f"augmentation of the {feature} failed: {type(exc).__name__}: {exc}"
                    continue
            results[i] = arr if np.isfinite(arr).all() else f"{feature} produced non-finite values (NaN/Inf)"
    return [(r, (w.shape[-1] / sr if w is not None else 0.0)) for r, w in zip(results, waves)]


def extract(
    manifest: Any,
    feature: str,
    store: str | os.PathLike | FeatureStore,
    *,
    params: dict[str, Any] | None = None,
    jobs: int | None = None,
    executor: Executor | None = None,
    chunk_size: int | None = None,
    progress: bool = False,
    separate: Any = None,
    augment: dict[str, Any] | None = None,
) -> ExtractReport:
    """Compute ``feature`` for every clip of ``manifest`` that the store does not hold yet.

    Parameters
    ----------
    manifest : Manifest, path of a manifest file, or sequence of Clip
    feature : str
        Registered feature name.
    store : path or FeatureStore
        Store folder (a :class:`FeatureStore` for ``feature``/``params`` is opened in it).
    params : dict, optional
        Feature parameters; audio is resampled to ``params["sr"]`` (default: the feature's rate).
    jobs : int, optional
        Worker processes when no ``executor`` is given (default: all cores; 1 = in this process).
    executor : concurrent.futures.Executor, optional
        Where chunks run (a process pool, :class:`earmark.parallel.ray_executor.RayExecutor`, ...);
        the caller shuts it down. Only this process writes the store.
    chunk_size : int, optional
        Clips per job (default: about 8 jobs per worker, at most 64 clips each).
    progress : bool
        Show a progress bar on the terminal.
    separate : dict or config section, optional
        Vocal separation applied to each decoded clip before the feature, e.g.
        ``{"method": "repet", "params": {}, "stem": "vocals"}`` (the config's ``audio.separate``).
        The settings are part of the store key, so separated and unseparated features never mix.
    augment : dict, optional
        Compute one offline augmented copy of each clip instead (settings from
        :func:`earmark.augment.offline_copies`); it gets its own store folder.

    Returns
    -------
    ExtractReport
    """
    t0 = time.perf_counter()
    own_store = not isinstance(store, FeatureStore)
    fs = FeatureStore(store, feature, params, separate=separate, augment=augment) if own_store else store
    try:
        clips = _as_clips(manifest)
        report = ExtractReport(n_clips=len(clips), store_dir=str(fs.dir))
        done = fs.keys()
        todo: dict[str, tuple[Clip, os.stat_result]] = {}
        for clip in clips:
            try:
                key, st = clip_key(clip)
            except FileNotFoundError:
                report.failures.append(Failure(clip.id, clip.path, "file not found"))
                continue
            except OSError as exc:
                report.failures.append(Failure(clip.id, clip.path, f"cannot read ({exc.strerror or exc})"))
                continue
            if key in done:
                report.n_cached += 1
            elif key not in todo:
                todo[key] = (clip, st)
        if todo:
            _run(fs, todo, report, jobs=jobs, executor=executor, chunk_size=chunk_size, progress=progress)
        fs.write_failures(report.failures)
    finally:
        if own_store:
            fs.close()
    report.seconds = time.perf_counter() - t0
    return report


def _run(fs: FeatureStore, todo: dict, report: ExtractReport, *, jobs, executor, chunk_size, progress) -> None:
    own_executor = executor is None
    executor = executor or make_executor(jobs)
    try:
        with fs.writer(wait=True) as writer:
            items = list(todo.items())  # [(key, (clip, stat))]
            if writer.waited:  # another process wrote this store meanwhile: skip what it stored
                done = fs.keys()
                items = [item for item in items if item[0] not in done]
                report.n_cached += len(todo) - len(items)
            if chunk_size is None:
                chunk_size = int(np.clip(len(items) // (n_workers(executor) * 8), 1, 64))
            chunks = (items[i : i + chunk_size] for i in range(0, len(items), chunk_size))
            jobs_ = ((chunk, compute_chunk, (fs.feature.name, fs.params, [c for _, (c, _) in chunk], fs.separate,
                                             fs.augment)) for chunk in chunks)
            with progress_bar(progress, len(items), f"extract {fs.feature.name}") as advance:
                for chunk, future in as_finished(executor, jobs_):  # each chunk is stored as it arrives
                    entries = []
                    for (key, (clip, st)), (result, audio_s) in zip(chunk, future.result()):
                        if isinstance(result, str):
                            report.failures.append(Failure(clip.id, clip.path, result))
                        else:
                            entries.append((clip, key, st, result))
                            report.audio_seconds += audio_s
                    report.n_computed += writer.add(entries)
                    advance(len(chunk))
    finally:
        if own_executor:
            executor.shutdown(wait=True, cancel_futures=True)


class progress_bar:
    """A rich progress bar (done, rate, elapsed, ETA) or nothing; ``with`` gives ``advance(n)``."""

    def __init__(self, enabled: bool, total: int, description: str, unit: str = "clips"):
        self.enabled, self.total, self.description, self.unit = enabled, total, description, unit

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        self._bar = Progress("[bold]{task.description}", BarColumn(), MofNCompleteColumn(), _RateColumn(self.unit),
                             TimeElapsedColumn(), TimeRemainingColumn())
        self._bar.start()
        task = self._bar.add_task(self.description, total=self.total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc):
        if self.enabled:
            self._bar.stop()


class _RateColumn(ProgressColumn):
    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        return Text(f"{task.speed or 0:,.0f} {self.unit}/s")
