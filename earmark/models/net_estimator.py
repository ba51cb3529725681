"""A registered network as a scikit-learn classifier, and its weights-only persistence.

>>> clf = NetClassifier("resnet34", {"dropout": 0.2}, trainer={"epochs": 20, "lr": 3e-4},
...                     augment=["spec_augment"], mixup_alpha=0.2, frames=299, val_fraction=0.3, seed=8)
>>> clf.fit(FeatureStore("cache", "fbank").load(train).arrays, train.df["label"])   # doctest: +SKIP
>>> clf.predict_proba(test_arrays).shape                                            # (n, n_classes)
>>> clf.embed(test_arrays).shape                                                    # (n, 512)
>>> save_net("run/model", clf); clf2 = load_net("run/model")

``X`` is a sequence of per-clip arrays (the memory-mapped views of a ``FeatureStore``, a list of
arrays) or one dense array ``(n_clips, ...)``: it is read one item at a time through
:class:`~earmark.data.feature_dataset.FeatureDataset`, never loaded whole.

Persistence writes ``weights.safetensors`` (when the optional ``safetensors`` package is installed;
otherwise ``weights.pt``, a ``torch.save``'d state dict read back with ``weights_only=True``) and
``net.json`` (architecture, parameters, classes, input shape, trainer options, history): no pickle
is ever loaded.
"""

from __future__ import annotations

import importlib.util
import json
import math
import numbers
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import type_of_target
from torch.utils.data import Subset

from earmark.augment import compose
from earmark.checks import is_number
from earmark.data.feature_dataset import FeatureDataset, _check_frames, _check_seed
from earmark.data.splits import group_split, stratified_split
from earmark.errors import ConfigError, DataError, NotFittedError
from earmark.fsutil import atomic_path, atomic_write_text
from earmark.models.nets import check_input, count_parameters, create_network
from earmark.train import inference
from earmark.train.checkpoint import load_checkpoint, save_checkpoint
from earmark.train.options import TrainerOptions
from earmark.train.trainer import Trainer

__all__ = ["NET_FORMAT", "NetClassifier", "load_net", "save_net"]

NET_FORMAT = "earmark.net/1"
META_NAME = "net.json"
SAFETENSORS_NAME = "weights.safetensors"
TORCH_NAME = "weights.pt"
_FINITE_SAMPLE = 16  # items checked for NaN/Inf by fit (reading every memory-mapped clip would defeat the point)


# ---------------------------------------------------------------- input handling


def _as_items(X: Any, what: str = "X") -> Sequence[Any]:
    """A sequence of per-clip arrays, without reading any of them."""
    if hasattr(X, "arrays") and not isinstance(X, np.ndarray):  # a FeatureTable
        X = X.arrays
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    elif hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):  # a DataFrame of feature vectors
        X = X.to_numpy()
    if isinstance(X, np.ndarray):
        if X.ndim < 2:
            raise DataError(f"{what}: expected (n_clips, ...) or a list of per-clip arrays, got shape {X.shape}")
        return X
    if isinstance(X, (str, bytes)) or not isinstance(X, Sequence):
        raise DataError(f"{what}: expected a sequence of per-clip arrays or an array (n_clips, ...), "
                        f"got {type(X).__name__}")
    items = list(X)
    for i, a in enumerate(items):
        if a is None:
            raise DataError(f"{what}[{i}]: missing (None); extract the features of that clip or drop it")
        if not isinstance(a, np.ndarray):
            items[i] = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a)
        if items[i].ndim == 0:
            raise DataError(f"{what}[{i}]: expected an array with a leading (time / sample) axis, got a scalar")
    return items


def _check_values(items: Sequence[Any], what: str) -> None:
    """Dtype of every item (free) and finiteness of an evenly spaced sample of items (read)."""
    dtypes = [items.dtype] if isinstance(items, np.ndarray) else [a.dtype for a in items]
    for i, dtype in enumerate(dtypes):
        if dtype.kind not in "biuf":
            where = what if isinstance(items, np.ndarray) else f"{what}[{i}]"
            raise DataError(f"{where}: expected real numbers, got dtype {dtype}")
    for i in np.unique(np.linspace(0, len(items) - 1, min(len(items), _FINITE_SAMPLE)).astype(int)):
        a = np.asarray(items[i])
        if not np.isfinite(a).all():
            raise DataError(f"{what}[{i}]: contains {int((~np.isfinite(a)).sum())} NaN/Inf value(s)")


def _shape_groups(ds: FeatureDataset) -> dict[tuple[int, ...], list[int]]:
    groups: dict[tuple[int, ...], list[int]] = {}
    for i in range(len(ds)):
        groups.setdefault(ds.item_shape(i), []).append(i)
    return groups


def _json_value(value: Any, key: str) -> Any:
    """``value`` as plain JSON data (tuples become lists); ConfigError naming ``key`` otherwise."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise ConfigError(f"{key}: {value!r} cannot be saved to JSON")
        return float(value)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _json_value(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise ConfigError(f"{key}: {type(value).__name__} cannot be saved to JSON")


class Standardized(nn.Module):
    """``net((x - mean) / std)``: inputs standardised with statistics of the training clips.

    Spectrogram-like inputs get one mean and std per feature bin (the last axis), vector inputs one
    per value, raw waveforms (``cnn1d``) a single pair. Kept inside the model, so prediction and
    export apply the same scaling.
    """

    def __init__(self, net: nn.Module, mean: Any, std: Any):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.embedding_dim = getattr(net, "embedding_dim", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features((x - self.mean) / self.std)


def _input_statistics(dataset: FeatureDataset, network: str, n: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of (up to ``n`` evenly spaced) training inputs, per last-axis position."""
    idx = np.unique(np.linspace(0, len(dataset) - 1, min(n, len(dataset))).astype(int))
    X = np.stack([dataset[int(i)][0].numpy() for i in idx]).astype(np.float64)
    if network == "cnn1d":  # a waveform: one scale for every sample
        mean, std = np.array(X.mean()), np.array(X.std())
    else:
        axes = tuple(range(X.ndim - 1))
        mean, std = X.mean(axis=axes), X.std(axis=axes)
    return mean.astype(np.float32), np.maximum(std, 1e-5).astype(np.float32)


# ---------------------------------------------------------------- the estimator


class NetClassifier(ClassifierMixin, BaseEstimator):
    """A network of :data:`~earmark.models.nets.NETWORKS` trained by :class:`~earmark.train.trainer.Trainer`.

    Parameters
    ----------
    network : str, default "cnn_small"
        A registered network name (``NETWORKS.names()``).
    network_params : dict, optional
        The architecture's parameters (``dropout``, ``widths``, ...).
    trainer : dict, optional
        :class:`~earmark.train.options.TrainerOptions` fields, e.g. ``{"epochs": 20, "lr": 3e-4}``.
        Its ``seed`` defaults to this estimator's ``seed``.
    augment : list, optional
        Augmentation specs for :func:`earmark.augment.compose`, applied to every training batch:
        waveform steps that need no sample rate (``gain``, ``noise``), spectrogram steps
        (``spec_augment``) and at most one ``mixup`` (or use ``mixup_alpha``). ``crop`` is refused:
        use ``frames``.
    mixup_alpha : float, optional
        Train with mixup of this Beta parameter (> 0).
    frames : int, optional
        Crop / zero-pad every clip to this many rows along axis 0: random crops (new ones each
        epoch) for training, center crops for validation and prediction. None: clips must share one
        shape to be trained on.
    val_fraction : float in [0, 1), default 0.0
        Stratified (seeded) share of the training clips held out for validation (``val_loss``,
        early stopping).
    seed : int, default 0
        Seeds the weights, the validation split, the crops and (unless ``trainer`` names one) training.
    out_dir : path-like, optional
        Where the trainer writes ``checkpoint.pt`` / ``best.pt`` / ``history.csv``; None: a temporary
        folder removed after ``fit``.
    progress : bool, default False
        Show the trainer's progress bars.
    on_epoch : callable, optional
        Passed to the :class:`~earmark.train.trainer.Trainer`: ``on_epoch(history)`` after every
        epoch (``earmark tune`` reports validation scores and prunes through it). Not saved.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        Sorted class labels (the dtype of ``y``).
    model_ : nn.Module
        The trained network, in eval mode, on the CPU.
    history_ : list of dict
        One row per epoch (``epoch, train_loss, train_acc, val_loss, val_acc, lr, seconds``).
    n_train_ : int
        Items trained on per epoch: the training clips (without the validation share) plus the
        copies of them given to ``fit``.
    best_epoch_ : int or None
        Epoch of the lowest validation loss (None without validation).
    val_index_ : ndarray of int or None
        Positions in ``X`` of the clips held out for validation (None without validation; not saved).
    input_shape_ : tuple of int
        The shape of one training item after the crop (what the network was checked on).
    options_ : TrainerOptions
        The options the network was trained with.
    """

    def __init__(self, network: str = "cnn_small", network_params: dict | None = None, trainer: dict | None = None,
                 augment: list | None = None, mixup_alpha: float | None = None, frames: int | None = None,
                 val_fraction: float = 0.0, seed: int = 0, out_dir: str | os.PathLike | None = None,
                 progress: bool = False, standardize: bool = True, on_epoch: Callable | None = None):
        self.network = network
        self.network_params = network_params
        self.trainer = trainer
        self.augment = augment
        self.mixup_alpha = mixup_alpha
        self.frames = frames
        self.val_fraction = val_fraction
        self.seed = seed
        self.out_dir = out_dir
        self.progress = progress
        self.standardize = standardize
        self.on_epoch = on_epoch

    # ------------------------------------------------------------ parameter checks

    def _network_params(self) -> dict[str, Any]:
        if self.network_params is None:
            return {}
        if not isinstance(self.network_params, Mapping):
            raise ConfigError(f"network_params: expected a mapping, got {type(self.network_params).__name__}")
        return dict(self.network_params)

    def _options(self) -> TrainerOptions:
        given = {} if self.trainer is None else self.trainer
        if isinstance(given, TrainerOptions):
            return TrainerOptions.from_dict(given.to_dict())
        if not isinstance(given, Mapping):
            raise ConfigError(f"trainer: expected a mapping of trainer options, got {type(given).__name__}")
        return TrainerOptions.from_dict({"seed": self.seed, **given})

    def _pipelines(self, item_ndim: int, n_classes: int):
        """``(augment, mixup)`` callables for the trainer (each None when unused)."""
        pipe = compose(self.augment, key="augment")
        for i, step in enumerate(pipe):
            if step.name == "crop":
                raise ConfigError(f"augment[{i}]: 'crop' changes the input length; use frames= instead")
            if "sr" in step.spec.call_time:
                raise ConfigError(f"augment[{i}]: {step.name!r} needs the sample rate; NetClassifier applies "
                                  "augmentations to feature batches (apply it when extracting features)")
            if step.kind == "spectrogram" and item_ndim < 2:
                raise ConfigError(f"augment[{i}]: {step.name!r} needs (time, bins) items, "
                                  f"got {item_ndim}-D items")
        batch_steps = list(pipe.batch)
        if len(batch_steps) > 1 or (batch_steps and self.mixup_alpha is not None):
            raise ConfigError("augment: give mixup once (either an augment entry or mixup_alpha)")
        if self.mixup_alpha is not None:
            try:
                batch_steps = list(compose([{"name": "mixup", "alpha": self.mixup_alpha}], key="mixup_alpha"))
            except ConfigError as exc:
                raise ConfigError(f"mixup_alpha: must be > 0 or None, got {self.mixup_alpha!r} ({exc})") from None
        wave, spec = pipe.waveform, pipe.spectrogram
        augment = None
        if len(wave) or len(spec):
            def augment(x, gen):
                x = wave(x, rng=gen) if len(wave) else x
                return spec(x, rng=gen) if len(spec) else x
        mixup = None
        if batch_steps:
            step = batch_steps[0]

            def mixup(x, y, gen):
                return step(x, y, rng=gen, n_classes=n_classes)
        return augment, mixup

    # ------------------------------------------------------------ fit

    def fit(self, X: Any, y: Any, *, groups: Any = None, resume: bool = False,
            copies: tuple[Any, Any] | None = None, validation_data: tuple[Any, Any] | None = None) -> NetClassifier:
        """Train a new network on ``X`` (clips) and ``y`` (labels).

        Parameters
        ----------
        X : sequence of arrays or ndarray, shape (n_clips, ...)
            Per-clip features, e.g. ``FeatureStore(...).load(manifest).arrays`` (memory-mapped).
        y : array-like, shape (n_clips,)
            Class labels (strings or integers).
        groups : array-like, shape (n_clips,), optional
            Group of each clip (instrument, voice, piece, artist). With ``val_fraction``, the
            validation hold-out then takes whole groups (:func:`~earmark.data.splits.group_split`,
            stratified by label), so ``val_acc`` and early stopping measure groups never trained on.
            None, or every clip its own group: clips are held out one by one (stratified).
        resume : bool
            Continue from ``out_dir/checkpoint.pt`` (an interrupted run with the same data and
            options) instead of starting over; on CPU the result equals an unbroken run.
        copies : (sequence of arrays, array of int), optional
            Augmented copies of clips of ``X`` (offline augmentation, ``train.copies``) and, for each,
            the index of its original in ``X``. A copy takes its original's label and is trained on
            only when its original is: copies of validation clips are left out (no leak into
            ``val_loss``), and the input statistics come from the originals.
        validation_data : (X_val, y_val), optional
            Clips to validate on instead of a ``val_fraction`` of ``X`` (e.g. a dataset's official
            validation split): ``val_loss`` / ``val_acc``, early stopping and the best epoch use
            them. Their labels must be among ``y``'s; ``val_fraction`` must then be 0.

        Returns
        -------
        self

        Raises
        ------
        ConfigError
            A bad parameter, or an input the network cannot take (raised before any training,
            the message naming the shape and the smallest that works).
        DataError
            Mismatched lengths, fewer than 2 classes, NaN/Inf in the checked sample, items of
            different shapes without ``frames``, or a failure during training.
        """
        items = _as_items(X)
        frames = _check_frames(self.frames)
        seed = _check_seed(self.seed)
        vf = self.val_fraction
        if not is_number(vf) or not 0.0 <= float(vf) < 1.0:
            raise ConfigError(f"val_fraction: must be in [0, 1), got {vf!r}")
        if not isinstance(self.network, str):
            raise ConfigError(f"network: expected a registered network name, got {self.network!r}")
        params = self._network_params()
        options = self._options()

        y_arr = np.asarray(y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y)
        if y_arr.ndim != 1:
            raise DataError(f"y: expected one label per clip (1-D), got shape {y_arr.shape}")
        if len(y_arr) != len(items):
            raise DataError(f"X and y: {len(items)} clips but {len(y_arr)} labels")
        if len(items) == 0:
            raise DataError("X: is empty")
        try:
            kind = type_of_target(y_arr)
        except (TypeError, ValueError) as exc:
            raise DataError(f"y: not usable as class labels ({exc})") from None
        if kind not in ("binary", "multiclass"):
            raise DataError(f"y: expected class labels, got {kind} targets")
        try:
            classes, y_int = np.unique(y_arr, return_inverse=True)
        except TypeError as exc:
            raise DataError(f"y: labels of mixed types cannot be sorted ({exc})") from None
        if len(classes) < 2:
            raise DataError(f"y: needs at least 2 classes, got {len(classes)} ({classes.tolist()!r})")
        y_int = y_int.reshape(-1).astype(np.int64)
        _check_values(items, "X")

        probe = FeatureDataset(items, y_int, frames=frames, crop="center", seed=seed)
        shapes = _shape_groups(probe)
        if len(shapes) > 1:
            (s1, i1), (s2, i2) = [(s, idx[0]) for s, idx in list(shapes.items())[:2]]
            hint = "set frames= to crop / pad them to one length" if frames is None else "the non-time axes differ"
            raise DataError(f"X: clips have different shapes, e.g. X[{i1}] {s1} and X[{i2}] {s2}; {hint}")
        input_shape = next(iter(shapes))
        augment, mixup = self._pipelines(len(input_shape), len(classes))

        net = create_network(self.network, n_classes=len(classes), seed=seed, **params)
        check_input(net, input_shape)  # before training: a too-small input fails here, with the shapes

        train_idx, val_idx = np.arange(len(items)), None
        val_items, val_y = self._validation_data(validation_data, classes, input_shape, frames)
        if val_items is not None and vf > 0:
            raise ConfigError(f"validation_data: given with val_fraction={vf}; validate on one or the other "
                              "(set val_fraction to 0)")
        if vf > 0:
            fractions = {"train": 1.0 - float(vf), "val": float(vf)}
            g = None if groups is None else np.asarray(groups)
            if g is not None and (g.ndim != 1 or len(g) != len(items)):
                raise DataError(f"groups: expected one group per clip ({len(items)}), got shape {g.shape}")
            if g is not None and len(set(g.tolist())) < len(g):
                split = group_split(y_int, g.astype(str), fractions, seed=seed)
            else:
                split = stratified_split(y_int, fractions, seed=seed)
            train_idx, val_idx = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
            if len(val_idx) == 0:
                by = f" in {len(set(g.tolist()))} groups" if g is not None and len(set(g.tolist())) < len(g) else ""
                raise DataError(f"val_fraction={vf} of {len(items)} clips{by} leaves no validation clip")
        def pick(idx: np.ndarray) -> list[Any]:
            return [items[i] for i in idx]  # views, nothing is read
        extra, extra_y = self._copies(copies, len(items), input_shape, frames, train_idx, y_int)
        train_set = FeatureDataset(pick(train_idx) + extra, np.concatenate([y_int[train_idx], extra_y]), frames=frames,
                                   crop="random", seed=seed)
        if self.standardize and getattr(net, "standardize_inputs", True):  # `pretrained` takes raw waveforms
            center = FeatureDataset(pick(train_idx), y_int[train_idx], frames=frames, crop="center", seed=seed)
            net = Standardized(net, *_input_statistics(center, self.network))
        val_set = None if val_idx is None else FeatureDataset(pick(val_idx), y_int[val_idx], frames=frames,
                                                              crop="center", seed=seed)
        if val_items is not None:
            val_set = FeatureDataset(val_items, val_y, frames=frames, crop="center", seed=seed)

        if resume and self.out_dir is None:
            raise ConfigError("resume: needs out_dir, the folder holding checkpoint.pt")
        tmp = tempfile.TemporaryDirectory(prefix="earmark-net-") if self.out_dir is None else None
        try:
            out_dir = tmp.name if tmp is not None else self.out_dir
            trainer = Trainer(net, options, out_dir=out_dir, mixup=mixup, augment=augment,
                              progress=bool(self.progress), n_classes=len(classes), on_epoch=self.on_epoch)
            history = trainer.fit(train_set, val_set, resume=resume)
        finally:
            if tmp is not None:
                tmp.cleanup()
        self.model_ = net.to("cpu").eval()
        self.classes_ = classes
        self.n_classes_ = len(classes)
        self.input_shape_ = tuple(int(s) for s in input_shape)
        self.options_ = options
        self.history_ = [dict(r) for r in history.rows]
        self.n_train_ = len(train_set)
        self.val_index_ = val_idx
        self.best_epoch_ = history.best_epoch
        return self

    @staticmethod
    def _validation_data(data: Any, classes: np.ndarray, input_shape: tuple[int, ...],
                         frames: int | None) -> tuple[list[Any] | None, np.ndarray | None]:
        """``validation_data``'s items and integer labels, checked against the training clips."""
        if data is None:
            return None, None
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise DataError("validation_data: expected (X_val, y_val)")
        items = _as_items(data[0], "validation_data X")
        labels = np.asarray(data[1].detach().cpu().numpy() if isinstance(data[1], torch.Tensor) else data[1])
        if labels.ndim != 1 or len(labels) != len(items) or not len(items):
            raise DataError(f"validation_data: {len(items)} clips but labels of shape {labels.shape}")
        unseen = sorted({str(v) for v in labels.tolist()} - {str(c) for c in classes.tolist()})
        if unseen:
            raise DataError(f"validation_data: label(s) {unseen[:5]} are not among the training classes {classes.tolist()}")
        _check_values(items, "validation_data X")
        ds = FeatureDataset(items, frames=frames, crop="center", seed=0)
        for shape, idx in _shape_groups(ds).items():
            if shape != tuple(input_shape):
                raise DataError(f"validation_data X[{idx[0]}]: shape {shape} does not match the training clips' "
                                f"{tuple(input_shape)}")
        lookup = {str(c): i for i, c in enumerate(classes.tolist())}
        return list(items), np.array([lookup[str(v)] for v in labels.tolist()], dtype=np.int64)

    @staticmethod
    def _copies(copies: Any, n: int, input_shape: tuple[int, ...], frames: int | None, train_idx: np.ndarray,
                y_int: np.ndarray) -> tuple[list[Any], np.ndarray]:
        """The copies of training clips (items, integer labels), checked against the originals."""
        if copies is None:
            return [], np.zeros(0, dtype=np.int64)
        if not isinstance(copies, (tuple, list)) or len(copies) != 2:
            raise DataError("copies: expected (arrays, source indices)")
        extra = _as_items(copies[0], "copies")
        source = np.asarray(copies[1])
        if source.ndim != 1 or len(source) != len(extra):
            raise DataError(f"copies: {len(extra)} arrays but source indices of shape {source.shape}")
        if len(source) and (source.dtype.kind not in "iu" or source.min() < 0 or source.max() >= n):
            raise DataError(f"copies: source indices must be integers in [0, {n}), got {source.dtype} "
                            f"in [{source.min()}, {source.max()}]")
        if len(extra):
            _check_values(extra, "copies")
        ds = FeatureDataset(extra, frames=frames, crop="center", seed=0)
        for shape, idx in _shape_groups(ds).items():
            if shape != tuple(input_shape):
                raise DataError(f"copies[{idx[0]}]: shape {shape} does not match the clips' {tuple(input_shape)}")
        keep = np.flatnonzero(np.isin(source, train_idx))
        return [extra[j] for j in keep], y_int[source[keep]]

    # ------------------------------------------------------------ inference

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def _check_fitted(self, what: str) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"{type(self).__name__}: not fitted; call fit before {what}")

    def _forward(self, X: Any, fn: Any, what: str) -> np.ndarray:
        self._check_fitted(what)
        items = _as_items(X)
        if len(items) == 0:
            raise DataError("X: is empty")
        ds = FeatureDataset(items, frames=self.frames, crop="center", seed=0)
        fitted = self.input_shape_
        groups = _shape_groups(ds)
        for shape, idx in groups.items():
            if len(shape) != len(fitted) or shape[1:] != fitted[1:]:
                raise DataError(f"X[{idx[0]}]: shape {shape} does not match the training input "
                                f"{fitted} (only axis 0 may differ)")
        device = inference.resolve_device(self.options_.device, key="trainer.device")
        out: np.ndarray | None = None
        try:
            for shape, idx in groups.items():
                part = ds if len(groups) == 1 else Subset(ds, idx)
                try:
                    res = fn(self.model_, part, batch_size=self.options_.batch_size, device=device)
                except RuntimeError as exc:
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise DataError(f"X: the network cannot take items of shape {shape} "
                                    f"(trained on {fitted}) [{reason}]") from exc
                if out is None:
                    out = np.empty((len(ds), *res.shape[1:]), dtype=res.dtype)
                out[idx] = res
        finally:
            self.model_.to("cpu").eval()
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape ``(n_clips, n_classes)``, columns in the order of ``classes_``."""
        return self._forward(X, inference.predict_proba, "predict_proba")

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each clip, shape ``(n_clips,)``."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def embed(self, X: Any) -> np.ndarray:
        """The network's embedding (``forward_features``) of each clip, shape ``(n_clips, embedding_dim)``."""
        return self._forward(X, inference.embed, "embed")

    def count_params(self) -> int:
        """Number of parameter scalars of the fitted network."""
        self._check_fitted("count_params")
        return count_parameters(self.model_)


# ---------------------------------------------------------------- persistence


def _has_safetensors() -> bool:
    return importlib.util.find_spec("safetensors") is not None


def save_net(path_dir: str | os.PathLike, est: NetClassifier) -> Path:
    """Write a fitted :class:`NetClassifier` to the folder ``path_dir`` (weights-only).

    Writes ``weights.safetensors`` (``safetensors`` installed) or ``weights.pt`` (a state dict of
    tensors), then ``net.json``; each file atomically.

    Returns
    -------
    Path
        The folder.

    Raises
    ------
    NotFittedError
        ``est`` is not fitted.
    ConfigError
        A parameter cannot be written as JSON.
    """
    if not isinstance(est, NetClassifier):
        raise ConfigError(f"save_net: expected a NetClassifier, got {type(est).__name__}")
    est._check_fitted("save_net")
    folder = Path(path_dir)
    folder.mkdir(parents=True, exist_ok=True)
    params = est.get_params(deep=False)
    params["out_dir"] = None  # a training folder on the machine that trained it
    params["on_epoch"] = None  # a callback of the process that trained it
    if params["augment"] is not None:
        params["augment"] = compose(params["augment"], key="augment").to_config()
    if isinstance(params["trainer"], TrainerOptions):
        params["trainer"] = params["trainer"].to_dict()
    meta = {
        "format": NET_FORMAT,
        "network": est.network,
        "network_params": est._network_params(),
        "classes": est.classes_.tolist(),
        "classes_dtype": est.classes_.dtype.kind,
        "input_shape": list(est.input_shape_),
        "trainer_options": est.options_.to_dict(),
        "params": params,
        "history": est.history_,
        "best_epoch": est.best_epoch_,
        "n_train": est.n_train_,
        "n_params": est.count_params(),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in est.model_.state_dict().items()}
    if _has_safetensors():
        from safetensors.torch import save_file

        meta["weights"] = SAFETENSORS_NAME
        with atomic_path(folder / SAFETENSORS_NAME) as tmp:
            save_file({k: v.clone() for k, v in state.items()}, os.fspath(tmp), metadata={"format": NET_FORMAT})
    else:
        meta["weights"] = TORCH_NAME
        save_checkpoint(folder / TORCH_NAME, state)
    text = json.dumps(_json_value(meta, "net"), indent=2)
    atomic_write_text(folder / META_NAME, text + "\n")
    return folder


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise DataError(f"{path}: no such weights file")
    if path.name.endswith(".safetensors"):
        if not _has_safetensors():
            raise DataError(f"{path}: reading .safetensors weights needs the 'safetensors' package "
                            "(pip install safetensors)")
        from safetensors.torch import load_file

        try:
            state = load_file(os.fspath(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types for damaged files
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"{path}: not a readable safetensors file ({reason[:300]})") from exc
    else:
        state = load_checkpoint(path)
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise DataError(f"{path}: expected a state dict of tensors; entry {bad[0]!r} is not a tensor")
    return state


def load_net(path_dir: str | os.PathLike) -> NetClassifier:
    """Rebuild a :class:`NetClassifier` written by :func:`save_net` (strict weight loading).

    Raises
    ------
    DataError
        A missing, corrupt or foreign ``net.json`` or weights file (the message names the file), or
        weights that do not fit the described network.
    """
    folder = Path(path_dir)
    meta_path = folder / META_NAME
    if not meta_path.is_file():
        raise DataError(f"{meta_path}: no such file (not a folder written by save_net)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{meta_path}: not readable JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != NET_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise DataError(f"{meta_path}: not an earmark network description (format {found!r}, expected {NET_FORMAT!r})")
    try:
        params = dict(meta["params"])
        weights_name = meta["weights"]
        if weights_name not in (SAFETENSORS_NAME, TORCH_NAME):
            raise DataError(f"{meta_path}: unknown weights file {weights_name!r}")
        classes = np.asarray(meta["classes"], dtype=object if meta["classes_dtype"] == "O" else None)
        input_shape = tuple(int(s) for s in meta["input_shape"])
        est = NetClassifier(**params)
        network_params = dict(meta["network_params"])
        if "weights" in network_params:  # initial weights of a pretrained backbone: the run has its own
            network_params["weights"] = "random"
        net = create_network(meta["network"], n_classes=len(classes), seed=params.get("seed"), **network_params)
        check_input(net, input_shape)  # sizes lazy layers
        if params.get("standardize", False) and getattr(net, "standardize_inputs", True):  # filled by load_state_dict
            width = () if meta["network"] == "cnn1d" else (input_shape[-1],)
            net = Standardized(net, np.zeros(width, np.float32), np.ones(width, np.float32))
        options = TrainerOptions.from_dict(meta["trainer_options"])
    except (KeyError, TypeError, ValueError) as exc:  # ConfigError and DataError are ValueErrors
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{meta_path}: inconsistent network description ({type(exc).__name__}: {exc})") from exc
    weights_path = folder / weights_name
    state = _read_weights(weights_path)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        reason = " ".join(str(exc).split())[:400]
        raise DataError(f"{weights_path}: does not fit network {meta['network']!r} ({reason})") from exc
    est.model_ = net.to("cpu").eval()
    est.classes_ = classes
    est.n_classes_ = len(classes)
    est.input_shape_ = input_shape
    est.options_ = options
    est.history_ = [dict(r) for r in meta.get("history") or []]
    est.val_index_ = None  # which clips validated is not saved
    est.best_epoch_ = meta.get("best_epoch")
    est.n_train_ = meta.get("n_train")
    return est
