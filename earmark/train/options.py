"""Options of the deep-learning trainer, validated eagerly with key paths (``train.lr: must be > 0, got -1``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from earmark.checks import is_int, is_number
from earmark.errors import ConfigError
from earmark.train.schedules import OPTIMIZERS, check_schedule

KEY = "train"


def _device_name(v: Any) -> bool:
    try:
        return v == "auto" or (isinstance(v, str) and torch.device(v) is not None)
    except (RuntimeError, ValueError):
        return False


_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epochs": (lambda v: is_int(v) and v >= 1, "must be an integer >= 1"),
    "batch_size": (lambda v: is_int(v) and v >= 1, "must be an integer >= 1"),
    "optimizer": (lambda v: isinstance(v, str), "must be an optimizer name"),
    "lr": (lambda v: is_number(v) and v > 0, "must be > 0"),
    "backbone_lr": (lambda v: v is None or (is_number(v) and v > 0), "must be > 0 or None"),
    "weight_decay": (lambda v: is_number(v) and v >= 0, "must be >= 0"),
    "schedule_params": (lambda v: isinstance(v, dict), "must be a mapping"),
    "label_smoothing": (lambda v: is_number(v) and 0 <= v < 1, "must be in [0, 1)"),
    "early_stopping_patience": (lambda v: v is None or (is_int(v) and v >= 1), "must be an integer >= 1 or None"),
    "grad_clip": (lambda v: v is None or (is_number(v) and v > 0), "must be > 0 or None"),
    "amp": (lambda v: isinstance(v, bool), "must be true or false"),
    "seed": (lambda v: is_int(v) and 0 <= v < 2**32, "must be an integer in [0, 2**32)"),
    "num_workers": (lambda v: is_int(v) and v >= 0, "must be an integer >= 0"),
    "balanced_sampling": (lambda v: isinstance(v, bool), "must be true or false"),
    "device": (_device_name, "must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
}


@dataclass
class TrainerOptions:
    """How :class:`Trainer` trains; validated on construction and again by ``fit``.

    Attributes
    ----------
    epochs : int, default 20
    batch_size : int, default 32
    optimizer : {"adamw", "adam", "sgd"}, default "adamw"
        SGD uses Nesterov momentum 0.9.
    lr : float, default 3e-4
    backbone_lr : float or None, default None
        Learning rate of a pretrained backbone's parameters (those under a module named
        ``backbone``, as in the ``pretrained`` network) when fine-tuning it with a new head;
        None: the same as ``lr``. Schedules scale both alike.
    weight_decay : float, default 1e-5
    schedule : {"cosine_restarts", "cosine", "plateau", "onecycle"} or None, default "cosine_restarts"
        See :mod:`earmark.train.schedules`; ``plateau`` watches the validation loss (the training
        loss when there is no validation set).
    schedule_params : dict, default {}
        Parameters of the schedule, e.g. ``{"T_0": 10, "T_mult": 1}``.
    label_smoothing : float in [0, 1), default 0.0
        Applied to the training loss; ``val_loss`` is plain cross-entropy.
    early_stopping_patience : int or None, default None
        Stop after this many epochs without a lower validation loss; at the end of ``fit``
        (stopped early or not) the weights of the best epoch are loaded from ``best.pt``.
    grad_clip : float or None, default None
        Maximum global gradient norm.
    amp : bool, default True
        Mixed precision on CUDA only (bfloat16 where supported, else float16 with a GradScaler).
    seed : int, default 0
        Seeds torch, numpy and ``random`` at the start of ``fit``, and the loader, sampler and
        augmentation generators.
    num_workers : int, default 0
    balanced_sampling : bool, default False
        Draw training examples with probability inversely proportional to their class frequency.
    device : str, default "auto"
        "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:1", "mps".
    """

    epochs: int = 20
    batch_size: int = 32
    optimizer: str = "adamw"
    lr: float = 3e-4
    backbone_lr: float | None = None
    weight_decay: float = 1e-5
    schedule: str | None = "cosine_restarts"
    schedule_params: dict[str, Any] = field(default_factory=dict)
    label_smoothing: float = 0.0
    early_stopping_patience: int | None = None
    grad_clip: float | None = None
    amp: bool = True
    seed: int = 0
    num_workers: int = 0
    balanced_sampling: bool = False
    device: str = "auto"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first bad option (``train.lr: must be > 0, got -1``)."""
        for key, (ok, expected) in _RULES.items():
            value = getattr(self, key)
            if not ok(value):
                raise ConfigError(f"{KEY}.{key}: {expected}, got {value!r}")
            if isinstance(value, (np.integer, np.floating)):  # plain values, for weights-only checkpoints
                setattr(self, key, value.item())
        try:
            OPTIMIZERS.get(self.optimizer)
        except ConfigError as exc:
            raise ConfigError(f"{KEY}.optimizer: {exc}") from None
        check_schedule(self.schedule, self.schedule_params)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainerOptions:
        """Build from a mapping (a config's ``train`` section); unknown keys are refused."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise ConfigError(f"{KEY}.{key}: unknown key; known: {', '.join(sorted(known))}")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """Plain-value copy (as stored in checkpoints)."""
        out = dataclasses.asdict(self)
        out["schedule_params"] = {k: v.item() if isinstance(v, np.generic) else v for k, v in self.schedule_params.items()}
        return out
