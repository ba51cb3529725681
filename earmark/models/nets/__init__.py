"""The studies' neural networks, one architecture per module, in one registry.

>>> net = create_network("resnet34", n_classes=4, seed=0)   # 1 input channel, dropout 0.2
>>> check_input(net, (299, 40))                              # a 3 s fbank; returns the output shape
(4,)
>>> NETWORKS.names("resnet*")
['resnet18', 'resnet34', 'resnet50', 'resnet_compact']

Contract of every network (an ``nn.Module``)
--------------------------------------------
- ``forward_features(x) -> (batch, embedding_dim)``: the embedding (everything up to the
  classifier's dropout and last ``Linear``);
- ``head``: the classifier, so that ``forward(x) == head(forward_features(x))`` -> ``(batch, n_classes)``
  logits;
- ``embedding_dim`` (int) and ``arch`` (the registered name);
- inputs: ``(batch, time, bins)`` or ``(batch, in_channels, time, bins)`` for the 2-D spectrogram nets
  (``cnn_small``, ``cnn4``, ``resnet*``), ``(batch, n_samples)`` or ``(batch, in_channels, n_samples)``
  for ``cnn1d``, ``(batch, d)`` for ``ffnn`` and any ``(batch, ...)`` for ``linear``;
- any input size above the network's minimum (``check_input`` finds it): where a study flattened the
  last feature map, an adaptive pooling to a fixed size precedes the flatten (see each module).

Registered factories ``NETWORKS.create(name, n_classes=..., in_channels=1, **params)``: ``cnn_small``,
``cnn4``, ``cnn1d``, ``linear``, ``ffnn``, ``resnet18``, ``resnet34``, ``resnet50``, ``resnet_compact`` and
``pretrained`` (a backbone of :mod:`earmark.models.pretrained` fine-tuned with a new head; waveform in).
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from earmark.checks import is_int, is_number
from earmark.errors import ConfigError, DataError
from earmark.registry import Registry

NETWORKS: Registry = Registry("network")

__all__ = [
    "NETWORKS",
    "SeededLazyLinear",
    "as_image",
    "check_input",
    "count_parameters",
    "create_network",
    "load_imagenet_weights",
]


# ---------------------------------------------------------------- helpers for the architecture modules


def as_image(x: torch.Tensor, in_channels: int, arch: str) -> torch.Tensor:
    """``(batch, time, bins)`` -> ``(batch, 1, time, bins)``; ``(batch, in_channels, time, bins)`` unchanged.

    Raises
    ------
    DataError
        Any other shape (the message names the network and the shape that came).
    """
    if x.dim() == 3 and in_channels == 1:
        return x.unsqueeze(1)
    if x.dim() == 4 and x.shape[1] == in_channels:
        return x
    want = f"(batch, time, bins) or (batch, {in_channels}, time, bins)" if in_channels == 1 else (
        f"(batch, {in_channels}, time, bins)")
    raise DataError(f"{arch}: expected input {want}; got shape {tuple(x.shape)}")


def check_probability(value: Any, arch: str, key: str = "dropout") -> float:
    """Validate a dropout rate in [0, 1) and return it as a float."""
    if not is_number(value) or not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"network {arch!r}: {key} must be in [0, 1), got {value!r}")
    return float(value)


def check_positive_ints(values: Any, arch: str, key: str, length: int | None = None) -> tuple[int, ...]:
    """Validate one positive int or a sequence of them (of ``length`` if given); return a tuple."""
    seq = (values,) if isinstance(values, numbers.Integral) else values
    ok = isinstance(seq, Sequence) and not isinstance(seq, str) and len(seq) > 0 and all(
        is_int(v) and v >= 1 for v in seq)
    if not ok or (length is not None and len(seq) != length):
        what = f"{length} positive integers" if length else "positive integers"
        raise ConfigError(f"network {arch!r}: {key} must be {what}, got {values!r}")
    return tuple(int(v) for v in seq)


class SeededLazyLinear(nn.LazyLinear):
    """``nn.LazyLinear`` whose deferred initialisation uses ``seed`` (set by :func:`create_network`).

    A lazy layer draws its weights at the first forward, long after construction; with a seed the
    draw is made from a forked RNG seeded with it, so ``create_network(..., seed=s)`` is reproducible
    whatever the global RNG did in between. Becomes an ordinary ``nn.Linear`` once materialised.
    """

    seed: int | None = None

    def reset_parameters(self) -> None:
        seed = getattr(self, "seed", None)
        if seed is None or self.has_uninitialized_params():
            super().reset_parameters()
            return
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            super().reset_parameters()


def _has_lazy(net: nn.Module) -> bool:
    return any(isinstance(p, nn.parameter.UninitializedParameter) for p in net.parameters())


def count_parameters(net: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter scalars (buffers excluded).

    Raises
    ------
    ConfigError
        The network still has lazy (unsized) layers: run one forward or :func:`check_input` first.
    """
    if _has_lazy(net):
        raise ConfigError(f"{_arch(net)}: parameters not sized yet (lazy layer); run check_input first")
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)


# ---------------------------------------------------------------- public API


def create_network(name: str, *, n_classes: int, in_channels: int = 1, seed: int | None = None,
                   **params: Any) -> nn.Module:
    """Build the registered network ``name``.

    Parameters
    ----------
    name : str
        A name in :data:`NETWORKS` (``NETWORKS.names()``).
    n_classes : int
        Number of outputs of the classifier (>= 1).
    in_channels : int
        Input channels (1 for a spectrogram or a mono waveform).
    seed : int, optional
        Seeds the weight initialisation (from a forked RNG: the global RNG is left as it was),
        lazy layers included.
    **params
        The architecture's own parameters (``dropout``, ``filters``, ...).

    Raises
    ------
    ConfigError
        Unknown name or parameter (with close matches), or a bad value.
    """
    factory = NETWORKS.get(name)
    for key, value in (("n_classes", n_classes), ("in_channels", in_channels)):
        if not is_int(value) or value < 1:
            raise ConfigError(f"network {name!r}: {key} must be a positive integer, got {value!r}")
    sig = inspect.signature(factory)
    if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        valid = [k for k in sig.parameters if k not in ("n_classes", "in_channels", "self")]
        for key in params:
            if key not in valid:
                close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
                hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
                raise ConfigError(f"network {name!r}: unknown parameter {key!r}; {hint}"
                                  f"valid: {', '.join(valid) or '(none)'}")
    kwargs = dict(n_classes=int(n_classes), in_channels=int(in_channels), **params)
    if seed is None:
        net = factory(**kwargs)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            net = factory(**kwargs)
            for module in net.modules():
                if isinstance(module, SeededLazyLinear):
                    module.seed = int(torch.randint(0, 2**62, (1,)).item())
    net.arch = name
    return net


def _arch(net: nn.Module) -> str:
    return getattr(net, "arch", type(net).__name__)


def _try_forward(net: nn.Module, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    return net(torch.zeros((1, *shape), device=device))


def _find_minimum(net: nn.Module, shape: tuple[int, ...], size_dims: int,
                  device: torch.device) -> tuple[int, ...] | None:
    """Smallest size per trailing dim that runs (others held large enough), or None if none found.

    An empirical search (doubling, then bisection) with zero inputs: it needs no knowledge of the
    architecture, and each trial is a forward on a small tensor.
    """
    if size_dims == 0 or len(shape) < size_dims or _has_lazy(net):
        return None
    lead, sizes = shape[: len(shape) - size_dims], list(shape[len(shape) - size_dims:])

    def runs(candidate: Sequence[int]) -> bool:
        try:
            _try_forward(net, (*lead, *candidate), device)
            return True
        except (RuntimeError, ValueError):
            return False

    m = 1
    while not runs([max(s, m) for s in sizes]):
        m *= 2
        if m ** size_dims * math.prod(lead) > 2**23:
            return None
    floor = [max(s, m) for s in sizes]
    minimum = []
    for d in range(size_dims):
        lo, hi = 1, floor[d]  # hi runs; find the smallest that runs
        while lo < hi:
            mid = (lo + hi) // 2
            trial = list(floor)
            trial[d] = mid
            if runs(trial):
                hi = mid
            else:
                lo = mid + 1
        minimum.append(hi)
    return tuple(minimum)


def check_input(net: nn.Module, input_shape: Sequence[int]) -> tuple[int, ...]:
    """Run one forward on zeros of shape ``(1, *input_shape)`` (no grad, eval mode) and check it works.

    Lazy layers are sized by this forward. The training mode is restored afterwards.

    Parameters
    ----------
    net : nn.Module
        A network from :func:`create_network`.
    input_shape : sequence of int
        One example's shape, without the batch dim: ``(time, bins)``, ``(n_samples,)``, ``(d,)``...

    Returns
    -------
    tuple of int
        One example's output shape, without the batch dim: ``(n_classes,)``.

    Raises
    ------
    ConfigError
        The network cannot take this input; the message names the network and the shape, and where
        the input is too small, the smallest size that works.
    """
    shape = tuple(int(s) for s in input_shape)
    arch = _arch(net)
    if any(s < 1 for s in shape):
        raise ConfigError(f"{arch}: input shape {shape} has an empty dimension")
    try:
        device = next(iter(net.parameters())).device
    except StopIteration:
        device = torch.device("cpu")
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            try:
                return tuple(_try_forward(net, shape, device).shape[1:])
            except (RuntimeError, ValueError) as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                size_dims = getattr(net, "size_dims", 0)
                minimum = None if isinstance(exc, DataError) else _find_minimum(net, shape, size_dims, device)
                if minimum is not None:
                    names = getattr(net, "size_names", None) or tuple(f"dim{i}" for i in range(size_dims))
                    need = ", ".join(f"{n} >= {v}" for n, v in zip(names, minimum))
                    lead = len(shape) - size_dims
                    example = (*shape[:lead], *(max(s, v) for s, v in zip(shape[lead:], minimum)))
                    raise ConfigError(f"{arch}: input shape {shape} is too small; needs {need} "
                                      f"(e.g. {example}) [{reason}]") from exc
                raise ConfigError(f"{arch}: cannot take input shape {shape} [{reason}]") from exc
    finally:
        net.train(was_training)


# Importing the architecture modules registers them (they import the helpers defined above).
from earmark.models.nets import (  # noqa: F401
    cnn1d,
    cnn4,
    cnn_small,
    ffnn,
    linear,
    pretrained,
    resnet,
    resnet_compact,
)
from earmark.models.nets.resnet import load_imagenet_weights
