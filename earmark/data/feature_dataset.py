"""A torch ``Dataset`` over per-clip feature arrays (memory-mapped or not), cropped or padded to one length.

>>> table = FeatureStore("cache", "fbank").load(manifest)          # memory-mapped views
>>> ds = FeatureDataset(table.arrays, labels, frames=299, crop="random", seed=8)
>>> ds.set_epoch(3)                                                # a new random crop per epoch
>>> x, y = ds[0]                                                   # tensor (299, 40), int

Only the item asked for is read: ``ds[i]`` copies the (cropped) slice of ``arrays[i]`` into a new
tensor and never touches the other arrays, so a dataset larger than memory can be trained on.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from earmark.checks import is_int
from earmark.errors import ConfigError, DataError

__all__ = ["CROPS", "FeatureDataset"]

CROPS = ("random", "center", "start")


def _check_seed(seed: Any, key: str = "seed") -> int:
    if not is_int(seed) or not 0 <= seed < 2**63:
        raise ConfigError(f"{key}: must be an integer in [0, 2**63), got {seed!r}")
    return int(seed)


def _check_frames(frames: Any, key: str = "frames") -> int | None:
    if frames is None:
        return None
    if not is_int(frames) or frames < 1:
        raise ConfigError(f"{key}: must be a positive integer or None, got {frames!r}")
    return int(frames)


class FeatureDataset(Dataset):
    """Items ``(x, y)`` (or ``x`` without labels) from a list of per-clip feature arrays.

    Parameters
    ----------
    arrays : sequence of array-like
        One array per clip, shape ``(n_frames_i, n_bins)`` (spectrogram), ``(n_samples_i,)``
        (waveform) or ``(d,)`` (feature vector): typically the memory-mapped views of
        ``FeatureStore.load(...).arrays``, or a dense ``(n_clips, ...)`` array. A ``FeatureTable``
        (anything with an ``arrays`` attribute) is accepted too. No array is read here.
    labels : sequence of int, optional
        Class index of each clip (``>= 0``); encoding class names is the estimator's job.
    frames : int, optional
        Crop (longer arrays) or zero-pad at the end (shorter ones) every item to exactly ``frames``
        along axis 0, so that items stack into batches. None: items keep their shape.
    crop : {"random", "center", "start"}
        Where a longer array is cut. ``"random"`` draws the start from a generator seeded with
        ``(seed, epoch, i)``: the same epoch gives the same crop, another epoch (see
        :meth:`set_epoch`) another one.
    seed : int
    dtype : numpy dtype, default float32
        Dtype of the returned tensors.

    Attributes
    ----------
    labels : ndarray of int64 or None
        As given (read by the trainer's balanced sampling).
    epoch : int
        The epoch the random crops are drawn for (0 until :meth:`set_epoch`).
    """

    def __init__(self, arrays: Any, labels: Any = None, *, frames: int | None = None, crop: str = "random",
                 seed: int = 0, dtype: Any = np.float32):
        if hasattr(arrays, "arrays") and not isinstance(arrays, np.ndarray):
            arrays = arrays.arrays
        if isinstance(arrays, torch.Tensor):
            arrays = arrays.detach().cpu().numpy()
        if isinstance(arrays, (str, bytes)) or not isinstance(arrays, (Sequence, np.ndarray)):
            raise DataError(f"arrays: expected a sequence of arrays, got {type(arrays).__name__}")
        if isinstance(arrays, np.ndarray) and arrays.ndim < 2:
            raise DataError(f"arrays: a dense array must have shape (n_clips, ...), got {arrays.shape}")
        self.arrays = arrays
        for i, a in enumerate(() if isinstance(arrays, np.ndarray) else arrays):
            if a is None:
                raise DataError(f"arrays[{i}]: missing (None); extract the features of that clip or drop it")
            if np.ndim(a) == 0:
                raise DataError(f"arrays[{i}]: expected an array with a leading (time / sample) axis, got a scalar")
        if labels is not None:
            lab = np.asarray(labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else labels)
            if lab.ndim != 1 or len(lab) != len(arrays):
                raise DataError(f"labels: expected {len(arrays)} labels (one per array), got shape {lab.shape}")
            if lab.size and (lab.dtype.kind not in "iu" or lab.min() < 0):
                raise DataError(f"labels: must be non-negative integer class indices, got dtype {lab.dtype}"
                                + (f", min {lab.min()}" if lab.dtype.kind in "iu" else ""))
            labels = lab.astype(np.int64)
        self.labels = labels
        self.frames = _check_frames(frames)
        if crop not in CROPS:
            raise ConfigError(f"crop: must be one of {', '.join(map(repr, CROPS))}, got {crop!r}")
        self.crop = crop
        self.seed = _check_seed(seed)
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            raise ConfigError(f"dtype: not a numpy dtype: {dtype!r}") from None
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.arrays)

    def set_epoch(self, epoch: int) -> None:
        """Draw the random crops of epoch ``epoch`` from now on (call it before each epoch)."""
        self.epoch = _check_seed(epoch, "epoch")

    def _index(self, i: Any) -> int:
        n = len(self)
        try:
            i = operator.index(i)
        except TypeError:
            raise TypeError(f"FeatureDataset indices must be integers, got {type(i).__name__}") from None
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for a FeatureDataset of {n} items")
        return i + n if i < 0 else i

    def raw_shape(self, i: int) -> tuple[int, ...]:
        """Shape of ``arrays[i]`` as stored (nothing is read)."""
        return tuple(int(s) for s in np.shape(self.arrays[self._index(i)]))

    def item_shape(self, i: int) -> tuple[int, ...]:
        """Shape of item ``i``'s tensor after the crop / pad (nothing is read)."""
        shape = self.raw_shape(i)
        return shape if self.frames is None else (self.frames, *shape[1:])

    def crop_start(self, i: int, n: int) -> int:
        """First row of the crop of item ``i`` from an array of ``n`` rows (0 when ``n <= frames``)."""
        if self.frames is None or n <= self.frames:
            return 0
        if self.crop == "start":
            return 0
        if self.crop == "center":
            return (n - self.frames) // 2
        rng = np.random.default_rng([self.seed, self.epoch, self._index(i)])
        return int(rng.integers(0, n - self.frames + 1))

    def __getitem__(self, i: Any) -> Any:
        i = self._index(i)
        a = self.arrays[i]
        if not isinstance(a, np.ndarray):
            a = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a)
        if a.dtype.kind not in "biuf":
            raise DataError(f"arrays[{i}]: expected real numbers, got dtype {a.dtype}")
        if self.frames is None:
            x = np.array(a, dtype=self.dtype, copy=True)
        else:
            n = a.shape[0]
            if n >= self.frames:
                start = self.crop_start(i, n)
                x = np.array(a[start:start + self.frames], dtype=self.dtype, copy=True)
            else:
                x = np.zeros((self.frames, *a.shape[1:]), dtype=self.dtype)
                x[:n] = a
        x = torch.from_numpy(x)
        if self.labels is None:
            return x
        return x, int(self.labels[i])

    def __repr__(self) -> str:
        lab = "unlabelled" if self.labels is None else "labelled"
        return (f"FeatureDataset({len(self)} items, {lab}, frames={self.frames}, crop={self.crop!r}, "
                f"seed={self.seed}, epoch={self.epoch})")
