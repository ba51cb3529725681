"""Optimizers and learning-rate schedules for the deep-learning trainer, by name.

Optimizers: ``"adamw"``, ``"adam"``, ``"sgd"`` (Nesterov momentum 0.9), built by :func:`make_optimizer`.

Four schedules are registered; each is built by :func:`make_scheduler` and advanced by the trainer
with :func:`step_after_batch` (after every optimizer step) and :func:`step_after_epoch` (after
validation). Which of the two moves a given schedule is decided here, not in the trainer.

- ``"cosine_restarts"``: ``CosineAnnealingWarmRestarts`` (``T_0`` in epochs), stepped per batch
  with the fractional epoch reached;
- ``"cosine"``: ``CosineAnnealingLR`` over ``epochs * steps_per_epoch`` batches;
- ``"onecycle"``: ``OneCycleLR`` over ``epochs * steps_per_epoch`` batches;
- ``"plateau"``: ``ReduceLROnPlateau`` (mode min) on the validation loss, stepped per epoch.

>>> sched = make_scheduler("cosine_restarts", opt, epochs=20, steps_per_epoch=100, T_0=10)
>>> make_scheduler("cosin", opt, epochs=20, steps_per_epoch=100)
Traceback (most recent call last):
ConfigError: train.schedule: unknown schedule 'cosin'; did you mean 'cosine', 'cosine_restarts'?
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    OneCycleLR,
    ReduceLROnPlateau,
)

from earmark.checks import is_int, is_number
from earmark.errors import ConfigError
from earmark.registry import Registry

KEY = "train.schedule"
PARAMS_KEY = "train.schedule_params"

SCHEDULES: Registry[Callable[..., Any]] = Registry("schedule")
OPTIMIZERS: Registry[Callable[..., Optimizer]] = Registry("optimizer")
OPTIMIZERS.register("adamw", lambda params, lr, weight_decay: torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay))
OPTIMIZERS.register("adam", lambda params, lr, weight_decay: torch.optim.Adam(params, lr=lr, weight_decay=weight_decay))
OPTIMIZERS.register("sgd", lambda params, lr, weight_decay: torch.optim.SGD(
    params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay))

#: Schedules whose shape depends on the total number of epochs (a resumed run cannot extend them).
LENGTH_DEPENDENT = frozenset({"cosine", "onecycle"})


def _number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
            low_open: bool = False, integer: bool = False) -> Any:
    """Check one schedule parameter; ConfigError names ``train.schedule_params.<name>``."""
    what = "an integer" if integer else "a number"
    if not (is_int(value) if integer else is_number(value)):
        raise ConfigError(f"{PARAMS_KEY}.{name}: must be {what}, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise ConfigError(f"{PARAMS_KEY}.{name}: must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise ConfigError(f"{PARAMS_KEY}.{name}: must be <= {high}, got {value!r}")
    return value


@SCHEDULES.register("cosine_restarts")
def _cosine_restarts(optimizer: Optimizer, *, epochs: int, steps_per_epoch: int,
                     T_0: int = 10, T_mult: int = 1, eta_min: float = 0.0) -> CosineAnnealingWarmRestarts:
    """SGDR: cosine decay restarting every ``T_0`` epochs, each cycle ``T_mult`` times longer."""
    _number("T_0", T_0, low=1, integer=True)
    _number("T_mult", T_mult, low=1, integer=True)
    _number("eta_min", eta_min, low=0)
    return CosineAnnealingWarmRestarts(optimizer, T_0=int(T_0), T_mult=int(T_mult), eta_min=float(eta_min))


@SCHEDULES.register("cosine")
def _cosine(optimizer: Optimizer, *, epochs: int, steps_per_epoch: int, eta_min: float = 0.0) -> CosineAnnealingLR:
    """One cosine decay from the base learning rate to ``eta_min`` over the whole run."""
    _number("eta_min", eta_min, low=0)
    return CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch, eta_min=float(eta_min))


@SCHEDULES.register("onecycle")
def _onecycle(optimizer: Optimizer, *, epochs: int, steps_per_epoch: int, max_lr: float | None = None,
              pct_start: float = 0.3, div_factor: float = 25.0, final_div_factor: float = 1e4,
              anneal_strategy: str = "cos") -> OneCycleLR:
    """1cycle: warm up to ``max_lr`` (default: the optimizer's lr), then anneal far below it."""
    if max_lr is None:
        max_lr = [group["lr"] for group in optimizer.param_groups]
    else:
        _number("max_lr", max_lr, low=0, low_open=True)
    _number("pct_start", pct_start, low=0, high=1, low_open=True)
    _number("div_factor", div_factor, low=0, low_open=True)
    _number("final_div_factor", final_div_factor, low=0, low_open=True)
    if anneal_strategy not in ("cos", "linear"):
        raise ConfigError(f"{PARAMS_KEY}.anneal_strategy: must be 'cos' or 'linear', got {anneal_strategy!r}")
    return OneCycleLR(optimizer, max_lr=max_lr, total_steps=epochs * steps_per_epoch, pct_start=float(pct_start),
                      div_factor=float(div_factor), final_div_factor=float(final_div_factor),
                      anneal_strategy=anneal_strategy)


@SCHEDULES.register("plateau")
def _plateau(optimizer: Optimizer, *, epochs: int, steps_per_epoch: int, factor: float = 0.1,
             patience: int = 10, threshold: float = 1e-4, cooldown: int = 0,
             min_lr: float = 0.0) -> ReduceLROnPlateau:
    """Multiply the lr by ``factor`` when the validation loss stalls for ``patience`` epochs."""
    _number("factor", factor, low=0, high=1, low_open=True)
    if factor == 1:
        raise ConfigError(f"{PARAMS_KEY}.factor: must be < 1, got {factor!r}")
    _number("patience", patience, low=0, integer=True)
    _number("threshold", threshold, low=0)
    _number("cooldown", cooldown, low=0, integer=True)
    _number("min_lr", min_lr, low=0)
    return ReduceLROnPlateau(optimizer, mode="min", factor=float(factor), patience=int(patience),
                             threshold=float(threshold), cooldown=int(cooldown), min_lr=float(min_lr))


def schedule_params(name: str) -> list[str]:
    """Names of the parameters schedule ``name`` accepts (for messages and config docs)."""
    params = inspect.signature(SCHEDULES.get(name)).parameters
    return [p for p in params if p not in ("optimizer", "epochs", "steps_per_epoch")]


def check_schedule(name: str | None, params: dict[str, Any] | None = None) -> None:
    """Raise ConfigError if ``name`` is not a schedule or ``params`` holds a key it does not take."""
    if name is None:
        if params:
            raise ConfigError(f"{PARAMS_KEY}: given ({', '.join(map(str, params))}) but train.schedule is None")
        return
    if not isinstance(name, str):
        raise ConfigError(f"{KEY}: must be a schedule name or None, got {name!r}")
    try:
        SCHEDULES.get(name)
    except ConfigError as exc:
        raise ConfigError(f"{KEY}: {exc}") from None
    if params is not None and not isinstance(params, dict):
        raise ConfigError(f"{PARAMS_KEY}: must be a mapping, got {params!r}")
    known = schedule_params(name)
    for key in params or {}:
        if key not in known:
            raise ConfigError(f"{PARAMS_KEY}.{key}: unknown parameter of schedule {name!r}; known: {', '.join(known)}")


def make_scheduler(name: str | None, optimizer: Optimizer, *, epochs: int, steps_per_epoch: int,
                   **kw: Any) -> Any:
    """Build the learning-rate scheduler ``name`` for ``optimizer``.

    Parameters
    ----------
    name : str or None
        ``"cosine_restarts"``, ``"cosine"``, ``"onecycle"``, ``"plateau"``; None gives no scheduler.
    optimizer : torch.optim.Optimizer
        Its current learning rate(s) are the schedule's base (or peak, for ``"onecycle"``).
    epochs, steps_per_epoch : int
        Length of the run; the per-batch schedules span ``epochs * steps_per_epoch`` steps.
    **kw
        Schedule parameters: ``T_0`` (epochs, default 10), ``T_mult`` (1), ``eta_min`` (0) for
        ``cosine_restarts``; ``eta_min`` for ``cosine``; ``max_lr``, ``pct_start`` (0.3),
        ``div_factor`` (25), ``final_div_factor`` (1e4), ``anneal_strategy`` for ``onecycle``;
        ``factor`` (0.1), ``patience`` (10), ``threshold``, ``cooldown``, ``min_lr`` for ``plateau``.

    Returns
    -------
    torch.optim.lr_scheduler.LRScheduler or ReduceLROnPlateau or None

    Raises
    ------
    ConfigError
        Unknown name (with close matches), unknown or invalid parameter, non-positive length.
    """
    check_schedule(name, kw)
    if name is None:
        return None
    for key, value in (("train.epochs", epochs), ("steps_per_epoch", steps_per_epoch)):
        if not is_int(value) or value < 1:
            raise ConfigError(f"{key}: must be an integer >= 1, got {value!r}")
    return SCHEDULES.get(name)(optimizer, epochs=int(epochs), steps_per_epoch=int(steps_per_epoch), **kw)


def make_optimizer(name: str, params: Any, *, lr: float, weight_decay: float = 0.0) -> Optimizer:
    """Build optimizer ``name`` (``"adamw"``, ``"adam"``, ``"sgd"``) over ``params``.

    Raises
    ------
    ConfigError
        Unknown name, with close matches (``train.optimizer: unknown optimizer 'adm'; ...``).
    """
    try:
        factory = OPTIMIZERS.get(name)
    except ConfigError as exc:
        raise ConfigError(f"train.optimizer: {exc}") from None
    return factory(params, lr, weight_decay)


def step_after_batch(scheduler: Any, *, epoch: int, batch: int, steps_per_epoch: int) -> None:
    """Advance a per-batch schedule after optimizer step ``batch`` (0-based) of ``epoch`` (0-based).

    ``CosineAnnealingWarmRestarts`` is given the fractional epoch reached,
    ``epoch + (batch + 1) / steps_per_epoch``, so the first batch of epoch ``e`` runs at the
    schedule's value at ``e`` exactly and a restart lands on an epoch boundary.
    Per-epoch schedules (``plateau``) and None are left alone.
    """
    if scheduler is None or isinstance(scheduler, ReduceLROnPlateau):
        return
    if isinstance(scheduler, CosineAnnealingWarmRestarts):
        scheduler.step(epoch + (batch + 1) / steps_per_epoch)
    else:
        scheduler.step()


def step_after_epoch(scheduler: Any, *, metric: float) -> None:
    """Advance a per-epoch schedule (``plateau``) with the epoch's monitored loss; others are left alone."""
    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.step(metric)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate of the optimizer's first parameter group."""
    return float(optimizer.param_groups[0]["lr"])
