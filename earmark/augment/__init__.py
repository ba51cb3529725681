"""Data augmentation: waveform, spectrogram (SpecAugment) and batch (mixup) augmentations.

Every augmentation is a plain function with an explicit ``rng`` (int seed, ``np.random.Generator``,
``torch.Generator`` or None) and is registered in :data:`AUGMENTATIONS` under a short name:

============== ============ =========================================================
name           kind         function
============== ============ =========================================================
crop           waveform     :func:`random_crop` ``(length)``
noise          waveform     :func:`add_noise` ``(snr_db, color="white")``
background     waveform     :func:`add_background` ``(files, snr_db)`` (needs ``sr`` at call time)
gain           waveform     :func:`gain` ``(db)``
time_stretch   waveform     :func:`time_stretch` ``(rate)`` (needs ``sr`` at call time)
pitch_shift    waveform     :func:`pitch_shift` ``(semitones, formants="shift")`` (needs ``sr`` at call time)
spec_augment   spectrogram  :func:`spec_augment` ``(freq_masks=2, freq_width=8, ...)``
filter_augment spectrogram  :func:`filter_augment` ``(db=6, bands=(3, 6), kind="linear", scale="log")``
mixup          batch        :func:`mixup` ``(alpha=0.2)`` (needs ``n_classes`` at call time)
============== ============ =========================================================

A config list becomes a pipeline with :func:`compose`; its stages run where the data is::

    pipe = compose([{"name": "gain", "db": 6}, {"name": "noise", "snr_db": [10, 30]},
                    {"name": "spec_augment"}, {"name": "mixup", "alpha": 0.2}])
    y = pipe.waveform(y, rng=rng, sr=22050)        # data loading, NumPy/CPU
    S = pipe.spectrogram(S, rng=rng)               # after features, any device
    x, y_soft = pipe.mix(x, labels, rng=rng, n_classes=8)   # on the batch

Offline copies (:func:`offline_copies`, the config's ``train.copies``): each training clip gets ``n``
extra versions, augmented once when features are extracted and cached in the feature store like any
feature. That is where the steps that need the audio and are too slow for every batch (pitch shift,
time stretch) are used, and the FMA study's "k extra masked copies" (``spec_augment``).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from earmark.augment.mixup import mixup
from earmark.augment.spectrogram import (
    filter_augment,
    spec_augment,
    spec_augment_copies,
    spec_augment_dataset,
)
import zlib

import numpy as np

from earmark.augment._common import Invalid, Rng, as_generator
from earmark.augment.waveform import (
    add_background,
    add_noise,
    gain,
    pitch_shift,
    random_crop,
    time_stretch,
)
from earmark.errors import ConfigError
from earmark.registry import Registry

__all__ = [
    "AUGMENTATIONS",
    "KINDS",
    "Augmentation",
    "AugmentationSpec",
    "Compose",
    "add_background",
    "add_noise",
    "as_generator",
    "compose",
    "filter_augment",
    "gain",
    "copy_rng",
    "make_augmentation",
    "mixup",
    "offline_copies",
    "pitch_shift",
    "resolve_labels",
    "resolve_paths",
    "random_crop",
    "spec_augment",
    "spec_augment_copies",
    "spec_augment_dataset",
    "time_stretch",
]

KINDS = ("waveform", "spectrogram", "batch")  # the order stages run in
_CALL_TIME = ("rng", "sr", "n_classes")  # given when the augmentation is applied, never in a config


@dataclass(frozen=True)
class AugmentationSpec:
    """A registered augmentation: its function, its kind, and how many arrays it takes.

    Calling the spec with parameters validates them and returns a ready :class:`Augmentation`,
    so ``AUGMENTATIONS.create("noise", snr_db=[10, 30])`` works like :func:`make_augmentation`.
    """

    name: str
    fn: Callable[..., Any]
    kind: str
    n_inputs: int = 1
    version: int = 1  # raised when the function's output changes for the same parameters (offline copies' store key)
    paths: tuple[str, ...] = ()  # parameters naming files: relative to the config file's folder (resolve_paths)

    @property
    def params(self) -> dict[str, Any]:
        """Configurable parameters and their defaults (``inspect.Parameter.empty`` when required)."""
        sig = inspect.signature(self.fn)
        names = list(sig.parameters)[self.n_inputs :]
        return {k: sig.parameters[k].default for k in names if k not in _CALL_TIME}

    @property
    def call_time(self) -> tuple[str, ...]:
        """Arguments besides ``rng`` that the function needs when applied (``sr``, ``n_classes``)."""
        return tuple(k for k in inspect.signature(self.fn).parameters if k in _CALL_TIME and k != "rng")

    def __call__(self, **params: Any) -> Augmentation:
        return _build(self, params, path=None)


@dataclass(frozen=True, eq=False)
class Augmentation:
    """An augmentation with validated parameters: ``aug(x, rng=..., sr=...)``.

    Attributes
    ----------
    spec : AugmentationSpec
    params : Mapping
        Validated, normalised parameters (ranges become ``(low, high)``); defaults not listed.
    """

    spec: AugmentationSpec
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind

    def __call__(self, *arrays: Any, rng: Rng, sr: int | None = None, n_classes: int | None = None) -> Any:
        """Apply to ``x`` (waveform/spectrogram kinds) or ``(x, y)`` (batch kind, returns a pair)."""
        if len(arrays) != self.spec.n_inputs:
            want = "(x, y)" if self.spec.n_inputs == 2 else "one array"
            raise TypeError(f"augmentation {self.name!r} takes {want}, got {len(arrays)} arrays")
        kwargs = {**self.params, "rng": rng}
        given = {"sr": sr, "n_classes": n_classes}
        for key in self.spec.call_time:
            if given[key] is None:
                raise ConfigError(f"augmentation {self.name!r}: {key} must be given when it is applied")
            kwargs[key] = given[key]
        return self.spec.fn(*arrays, **kwargs)

    def to_config(self) -> dict[str, Any]:
        """``{"name": ..., **params}`` with ranges as lists (YAML-friendly)."""
        return {"name": self.name, **{k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()}}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Augmentation({self.name!r}{', ' if args else ''}{args})"


def _check_order(steps: Sequence[Augmentation], path: str | None) -> None:
    for i in range(1, len(steps)):
        prev, cur = steps[i - 1], steps[i]
        if KINDS.index(cur.kind) < KINDS.index(prev.kind):
            where = f"{path}[{i}]" if path else f"step {i}"
            raise ConfigError(
                f"{where}: {cur.kind} augmentation {cur.name!r} cannot come after {prev.kind} augmentation "
                f"{prev.name!r} (order: {', '.join(KINDS)})"
            )


class Compose:
    """An ordered pipeline of augmentations, split into the stages where they run.

    Parameters
    ----------
    steps : sequence of Augmentation
        Waveform steps first, then spectrogram steps, then batch (mixup) steps.

    Notes
    -----
    Each stage call turns ``rng`` into one NumPy Generator shared by its steps, so a seed gives one
    reproducible result for the whole stage.
    """

    def __init__(self, steps: Sequence[Augmentation] = ()):
        steps = tuple(steps)
        for s in steps:
            if not isinstance(s, Augmentation):
                raise ConfigError(f"Compose: steps must be Augmentation objects, got {type(s).__name__}")
        _check_order(steps, None)
        self.steps = steps

    def _stage(self, kind: str) -> Compose:
        return Compose([s for s in self.steps if s.kind == kind])

    @property
    def waveform(self) -> Compose:
        """The waveform steps: ``pipe.waveform(y, rng=..., sr=...)``."""
        return self._stage("waveform")

    @property
    def spectrogram(self) -> Compose:
        """The spectrogram steps: ``pipe.spectrogram(S, rng=...)``."""
        return self._stage("spectrogram")

    @property
    def batch(self) -> Compose:
        """The batch (label-mixing) steps; apply them with :meth:`mix`."""
        return self._stage("batch")

    @property
    def kinds(self) -> tuple[str, ...]:
        """The stages present, in order."""
        return tuple(k for k in KINDS if any(s.kind == k for s in self.steps))

    def __call__(self, x: Any, *, rng: Rng, sr: int | None = None) -> Any:
        """Apply every step in order to ``x`` (all steps must be of one kind, waveform or spectrogram).

        An empty pipeline returns ``x`` unchanged.
        """
        kinds = self.kinds
        if "batch" in kinds:
            raise ConfigError("pipeline has batch steps (mixup) that need labels: apply them with .mix(x, y, ...)")
        if len(kinds) > 1:
            raise ConfigError(
                "pipeline has waveform and spectrogram steps: apply .waveform(...) to audio and .spectrogram(...) to features"
            )
        g = as_generator(rng)
        for step in self.steps:
            x = step(x, rng=g, sr=sr)
        return x

    def mix(self, x: Any, y: Any, *, rng: Rng, n_classes: int) -> tuple[Any, Any]:
        """Apply the batch steps to ``(x, y)``; without any, return ``(x, y)`` unchanged."""
        g = as_generator(rng)
        for step in self.batch.steps:
            x, y = step(x, y, rng=g, n_classes=n_classes)
        return x, y

    def to_config(self) -> list[dict[str, Any]]:
        return [s.to_config() for s in self.steps]

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Augmentation]:
        return iter(self.steps)

    def __repr__(self) -> str:
        return f"Compose({list(self.steps)!r})"


AUGMENTATIONS: Registry[AugmentationSpec] = Registry("augmentation")
for _spec in (
    AugmentationSpec("crop", random_crop, "waveform"),
    AugmentationSpec("noise", add_noise, "waveform"),
    AugmentationSpec("background", add_background, "waveform", paths=("files",)),
    AugmentationSpec("gain", gain, "waveform"),
    AugmentationSpec("time_stretch", time_stretch, "waveform"),
    AugmentationSpec("pitch_shift", pitch_shift, "waveform"),
    AugmentationSpec("spec_augment", spec_augment, "spectrogram"),
    AugmentationSpec("filter_augment", filter_augment, "spectrogram"),
    AugmentationSpec("mixup", mixup, "batch", n_inputs=2),
):
    AUGMENTATIONS.register(_spec.name, _spec)
del _spec


def _build(spec: AugmentationSpec, params: Mapping[str, Any], path: str | None) -> Augmentation:
    def error(key: str, reason: str) -> ConfigError:
        return ConfigError(f"{path}.{key}: {reason}" if path else f"augmentation {spec.name!r}: {key}: {reason}")

    known = spec.params
    for key in params:
        if key not in known:
            when = " (it is given when the augmentation is applied)" if key in _CALL_TIME else ""
            raise error(str(key), f"unknown parameter{when}; known: {', '.join(known) or 'none'}")
    checks = getattr(spec.fn, "param_checks", {})
    out: dict[str, Any] = {}
    for key, default in known.items():
        if key not in params:
            if default is inspect.Parameter.empty:
                raise error(key, "required")
            continue
        value = params[key]
        if key in checks:
            try:
                value = checks[key](value)
            except Invalid as exc:
                raise error(key, str(exc)) from None
        out[key] = value
    return Augmentation(spec, MappingProxyType(out))


def resolve_paths(specs: Any, base: str | os.PathLike) -> Any:
    """``specs`` (a config list, as :func:`compose` takes) with the relative paths of path parameters
    (``background.files``) made absolute against ``base``, the config file's folder. Entries that are
    not well-formed are returned as they are, for :func:`compose` to report."""
    if not isinstance(specs, list):
        return specs
    out = []
    for entry in specs:
        name = entry.get("name") if isinstance(entry, Mapping) else None
        spec = AUGMENTATIONS.get(name) if isinstance(name, str) and name in AUGMENTATIONS else None
        if spec is not None and spec.paths:
            entry = dict(entry)
            for key in spec.paths:
                value = entry.get(key)
                if isinstance(value, (str, os.PathLike)):
                    entry[key] = os.path.join(base, value)
                elif isinstance(value, list):
                    entry[key] = [os.path.join(base, v) if isinstance(v, (str, os.PathLike)) else v for v in value]
        out.append(entry)
    return out


def resolve_labels(specs: Any, files_of: Callable[[str], list[str]], *, key: str = "train.copies.augment") -> Any:
    """``specs`` with every ``files: {label: NAME}`` replaced by ``files_of(NAME)``, the training clips of
    that class (``earmark train`` resolves them for offline copies).

    Raises
    ------
    ConfigError
        Naming the key: no file has that label (``files_of`` returned none).
    """
    if not isinstance(specs, list):
        return specs
    out = []
    for i, entry in enumerate(specs):
        files = entry.get("files") if isinstance(entry, Mapping) else None
        if isinstance(files, Mapping) and isinstance(files.get("label"), str):
            found = sorted(files_of(files["label"]))
            if not found:
                raise ConfigError(f"{key}[{i}].files: no training clip has label {files['label']!r}")
            entry = {**entry, "files": found}
        out.append(entry)
    return out


def make_augmentation(name: str, **params: Any) -> Augmentation:
    """Look up ``name`` in :data:`AUGMENTATIONS` and bind validated ``params``.

    Raises
    ------
    ConfigError
        Unknown name (with close matches), unknown or missing parameter, or a bad value:
        ``augmentation 'noise': snr_db: expected low <= high, got [30, 10]``.
    """
    return AUGMENTATIONS.get(name)(**params)


def compose(specs: Any, *, key: str = "train.augment") -> Compose:
    """Build a pipeline from a config list, e.g. ``[{"name": "gain", "db": 6}, "spec_augment"]``.

    Parameters
    ----------
    specs : list or None
        Each entry a mapping ``{"name": ..., **params}``, a bare name (default parameters), or an
        :class:`Augmentation`. None or ``[]`` gives an empty pipeline (every stage is the identity).
    key : str
        The entries' key path in the config, used in error messages.

    Raises
    ------
    ConfigError
        Naming the key path: ``train.augment[1].snr_db: expected a number or a (low, high) pair, got 'x'``;
        also for an unknown name or parameter, or steps out of stage order
        (waveform, then spectrogram, then batch).
    """
    if specs is None:
        return Compose()
    if isinstance(specs, (str, bytes, Mapping)) or not isinstance(specs, Sequence):
        raise ConfigError(f"{key}: expected a list of augmentations, got {type(specs).__name__}")
    steps: list[Augmentation] = []
    for i, entry in enumerate(specs):
        where = f"{key}[{i}]"
        if isinstance(entry, Augmentation):
            steps.append(entry)
            continue
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected a mapping with a 'name', got {entry!r}")
        if "name" not in entry:
            raise ConfigError(f"{where}.name: required (one of {', '.join(AUGMENTATIONS.names())})")
        params = dict(entry)
        name = params.pop("name")
        if not isinstance(name, str):
            raise ConfigError(f"{where}.name: expected a string, got {name!r}")
        try:
            spec = AUGMENTATIONS.get(name)
        except ConfigError as exc:
            raise ConfigError(f"{where}.name: {exc}") from None
        steps.append(_build(spec, params, path=where))
    _check_order(steps, key)
    return Compose(steps)


def offline_copies(steps: Any, n: int, *, seed: int, key: str = "train.copies.augment") -> list[dict[str, Any]]:
    """The settings of ``n`` offline copies made with ``steps``, one dict per copy.

    Each is ``{"steps": [...validated step configs...], "copy": i, "seed": seed}``: what a feature store
    keys a copy's features by (:class:`~earmark.features.store.FeatureStore` ``augment=``), so equal
    settings reuse the cached copies and a changed step, seed or count computes new ones.

    Raises
    ------
    ConfigError
        Naming ``key``: a bad step (see :func:`compose`), no steps, or ``mixup`` (it mixes the
        clips of a batch, so it cannot make a copy of one clip).
    """
    pipe = compose(steps, key=key)
    if len(pipe.batch):
        raise ConfigError(f"{key}: mixup mixes the clips of a batch and cannot make an offline copy; "
                          "use it in train.augment")
    if n and not len(pipe):
        raise ConfigError(f"{key}: {n} copies need at least one augmentation step")
    config = pipe.to_config()
    return [{"steps": config, "copy": i, "seed": int(seed)} for i in range(n)]


def copy_rng(settings: Mapping[str, Any], clip_id: str) -> np.random.Generator:
    """The generator of one clip's offline copy: a function of the copy's seed and index and the clip id
    only, so a copy is the same whichever worker, chunk or run computes it."""
    return np.random.default_rng([int(settings["seed"]), int(settings["copy"]), zlib.crc32(str(clip_id).encode())])
