"""Running a trained network: devices, batches of (x, y), class probabilities and embeddings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from earmark.errors import ConfigError, DataError


def resolve_device(spec: str, *, key: str = "device") -> torch.device:
    """``"auto"`` -> CUDA, else MPS, else CPU; other names are checked to be available."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{key}: must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {spec!r}") from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise ConfigError(f"{key}: {spec!r} requested but CUDA (that device) is not available")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{key}: 'mps' requested but MPS is not available")
    return dev


def split_batch(batch: Any, *, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` from a collated batch or a dataset item; y as int64."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise DataError(f"{what}: items must be (x, y) pairs, got {type(batch).__name__}"
                        f"{'' if not isinstance(batch, (tuple, list)) else f' of length {len(batch)}'}")
    x, y = batch
    y = torch.as_tensor(y)
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise DataError(f"{what}: labels must be integer class indices, got dtype {y.dtype}")
    return torch.as_tensor(x), y.long()


def check_targets(y: torch.Tensor, n_classes: int, *, what: str) -> None:
    """DataError when a label (CPU tensor) is outside ``[0, n_classes)``."""
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= n_classes:
        raise DataError(f"{what}: label {lo if lo < 0 else hi} is outside [0, {n_classes}) for a model with {n_classes} outputs")


def dataset_labels(dataset: Dataset, *, what: str) -> np.ndarray:
    """Integer labels of every item: from ``TensorDataset``, ``Subset``, a ``targets`` / ``labels``
    attribute, else by reading every item."""
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
        labels = dataset.tensors[1]
    elif isinstance(dataset, Subset):
        labels = dataset_labels(dataset.dataset, what=what)[np.asarray(dataset.indices)]
    else:
        labels = next((getattr(dataset, a) for a in ("targets", "labels") if hasattr(dataset, a)), None)
        if labels is None or len(labels) != len(dataset):
            labels = [split_batch(dataset[i], what=what)[1] for i in range(len(dataset))]
    labels = np.asarray(torch.as_tensor(np.asarray(labels)).reshape(-1))
    if labels.dtype.kind not in "iu" or labels.size != len(dataset) or labels.min() < 0:
        raise DataError(f"{what}: labels must be one non-negative integer per item")
    return labels.astype(np.int64)


def iter_inputs(data: Any, batch_size: int):
    """Yield input batches from a tensor / array ``(n, ...)`` or a Dataset of ``x`` or ``(x, ...)``."""
    if isinstance(data, (torch.Tensor, np.ndarray)):
        data = torch.as_tensor(data)
        yield from data.split(batch_size)
        return
    for batch in DataLoader(data, batch_size=batch_size, shuffle=False, generator=torch.Generator()):
        yield torch.as_tensor(batch[0] if isinstance(batch, (tuple, list)) else batch)


def _forward_all(model: nn.Module, data: Any, fn: Callable, batch_size: int, device: str | torch.device) -> np.ndarray:
    dev = resolve_device(device, key="device") if isinstance(device, str) else torch.device(device)
    was_training = model.training
    model.to(dev).eval()
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    outputs = []
    try:
        with torch.no_grad():
            for x in iter_inputs(data, batch_size):
                x = x.to(dev, dtype=dtype if x.is_floating_point() else x.dtype)
                outputs.append(fn(x).float().cpu())
    finally:
        model.train(was_training)
    if not outputs:
        raise DataError("predict: no inputs (empty dataset or tensor)")
    return torch.cat(outputs).numpy()


def predict_proba(model: nn.Module, data: Any, *, batch_size: int = 64, device: str | torch.device = "auto") -> np.ndarray:
    """Class probabilities ``(n, n_classes)`` (softmax of the logits) in eval mode, without gradients.

    ``data`` is a tensor / array ``(n, ...)`` or a Dataset of ``x`` or ``(x, y, ...)`` items.
    The model is moved to ``device`` and its train / eval mode is restored afterwards.
    """
    return _forward_all(model, data, lambda x: torch.softmax(model(x).float(), dim=-1), batch_size, device)


def embed(model: nn.Module, data: Any, *, batch_size: int = 64, device: str | torch.device = "auto") -> np.ndarray:
    """Embeddings ``(n, ...)`` from ``model.forward_features`` (same inputs as :func:`predict_proba`).

    Raises
    ------
    ConfigError
        The model has no ``forward_features`` method.
    """
    if not callable(getattr(model, "forward_features", None)):
        raise ConfigError(f"embed: {type(model).__name__} has no forward_features method")
    return _forward_all(model, data, model.forward_features, batch_size, device)
