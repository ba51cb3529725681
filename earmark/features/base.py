"""The feature registry and the contract every feature follows.

A feature is a pure function over waveforms::

    fn(y, sr=<declared rate>, *, <keyword-only parameters with defaults>) -> features

* ``y`` is a float waveform of shape ``(..., n_samples)``, a NumPy array or a torch tensor
  (CPU or GPU). Leading dimensions are a batch and are vectorised over.
* The output has shape ``(..., n_frames, n_bins)`` (time first, as the studies stored them) and
  the input's kind: NumPy float32 in, NumPy float32 out; a tensor in, a tensor on the same device out.
* The default of ``sr`` is the rate the feature is defined at; the feature store resamples audio
  to it before calling the function.

Registering a function reads its parameters and defaults from its signature, so the signature is
the one place they are written.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from earmark.checks import is_int
from earmark.errors import ConfigError
from earmark.registry import Registry

FEATURES: Registry["Feature"] = Registry("feature")


@dataclass(frozen=True)
class Feature:
    """A registered feature: its function, declared sample rate and default parameters.

    Attributes
    ----------
    name : str
        Registry name (``"fbank"``).
    fn : callable
        ``fn(y, sr=..., **params)``.
    sr : int
        Sample rate the audio is resampled to (the default of ``fn``'s ``sr``), unless
        the parameters override ``sr``.
    defaults : dict
        Keyword parameters of ``fn`` (``sr`` excluded) and their defaults.
    min_samples : callable
        ``min_samples(params) -> int``: shortest input (at the feature's rate) that holds one
        analysis frame; shorter clips are reported by the store instead of being padded silently.
    version : int
        The implementation's version, part of the feature store's key: whoever changes what the
        function returns for the same parameters raises it, so stores computed before are not reused.
    """

    name: str
    fn: Callable[..., Any]
    sr: int
    defaults: dict[str, Any] = field(default_factory=dict)
    min_samples: Callable[[dict[str, Any]], int] = lambda params: 1
    version: int = 1

    def resolve(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated with ``params`` (``sr`` included); unknown keys are a ``ConfigError``."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.defaults) - {"sr"})
        if unknown:
            known = ", ".join(["sr", *self.defaults])
            raise ConfigError(f"feature {self.name!r}: unknown parameter {unknown[0]!r}; known: {known}")
        out = {"sr": self.sr, **self.defaults, **params}
        if not is_int(out["sr"]) or out["sr"] <= 0:
            raise ConfigError(f"feature {self.name!r}: sr must be a positive integer, got {out['sr']!r}")
        out["sr"] = int(out["sr"])
        return out

    def __call__(self, y: Any, **params: Any) -> Any:
        return self.fn(y, **self.resolve(params))


def register_feature(
    name: str | None = None, *, min_samples: Callable[[dict[str, Any]], int] | None = None, version: int = 1
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a feature function; its signature declares ``sr`` and the defaults.

    Raise ``version`` when a change makes the function return other values for the same parameters
    (a bug fix, another window): stores keyed by the old version are then left alone.
    """

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn)
        if "sr" not in sig.parameters or sig.parameters["sr"].default is inspect.Parameter.empty:
            raise TypeError(f"feature function {fn.__name__} must declare a default for 'sr'")
        defaults = {
            k: p.default
            for k, p in sig.parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and k != "sr"
        }
        spec = Feature(
            name=name or fn.__name__,
            fn=fn,
            sr=int(sig.parameters["sr"].default),
            defaults=defaults,
            min_samples=min_samples or (lambda params: 1),
            version=int(version),
        )
        FEATURES.register(spec.name, spec)
        return fn

    return decorator


def get_feature(name: str) -> Feature:
    """The registered :class:`Feature` called ``name`` (``ConfigError`` with close matches if unknown)."""
    return FEATURES.get(name)


def as_tensor(y: Any) -> tuple[torch.Tensor, bool]:
    """``(tensor, was_numpy)`` for a NumPy array or tensor; NumPy input becomes a float32 CPU tensor."""
    if isinstance(y, torch.Tensor):
        return (y if y.is_floating_point() else y.float()), False
    arr = np.asarray(y)
    if arr.dtype != np.float32 and arr.dtype != np.float64:
        arr = arr.astype(np.float32)
    arr = np.ascontiguousarray(arr)
    if not arr.flags.writeable:  # e.g. a strided view from audio.segment: torch needs its own copy
        arr = arr.copy()
    return torch.from_numpy(arr), True


def like_input(x: torch.Tensor, was_numpy: bool) -> Any:
    """Return ``x`` as float32 NumPy when the input was NumPy, else as the tensor itself."""
    if was_numpy:
        return x.detach().to("cpu", torch.float32).numpy()
    return x
