"""Helpers shared by the augmentation modules: explicit randomness and eager parameter checks.

Randomness (``rng``) is one of: an ``int`` seed (same seed, same output), a ``np.random.Generator``
(advanced), a ``torch.Generator`` (advanced; it seeds a NumPy generator), or ``None`` (fresh entropy).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from earmark.checks import is_int, is_number
from earmark.errors import ConfigError

Rng = int | np.random.Generator | torch.Generator | None



def as_generator(rng: Any) -> np.random.Generator:
    """A ``np.random.Generator`` from an int seed, a NumPy or torch Generator, or None.

    A NumPy Generator is returned as is (and advanced by whoever draws from it); a
    ``torch.Generator`` (any device) is advanced once to draw a 62-bit seed; an int gives the same
    stream every time; None draws fresh OS entropy.

    Raises
    ------
    ConfigError
        ``rng`` is none of these.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, torch.Generator):
        seed = torch.randint(0, 2**62, (1,), generator=rng, device=rng.device)
        return np.random.default_rng(int(seed.item()))
    if isinstance(rng, bool):
        raise ConfigError(f"rng must be an int seed, a numpy/torch Generator or None, got {rng!r}")
    try:
        return np.random.default_rng(rng)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"rng must be an int seed, a numpy/torch Generator or None, got {rng!r} ({exc})") from None


class Invalid(ValueError):
    """A parameter check failed; the message says what was expected and what came (no key)."""


def _real(value: Any, what: str = "a finite number") -> float:
    if not is_number(value):
        raise Invalid(f"expected {what}, got {value!r}")
    return float(value)


def number_or_range(*, gt: float | None = None, symmetric: bool = False) -> Callable[[Any], tuple[float, float]]:
    """Check for a number or a ``(low, high)`` pair; returns ``(low, high)``.

    A number ``x`` means the fixed value ``(x, x)``, or ``(-|x|, |x|)`` when ``symmetric``.
    ``gt``: every value must be greater than this.
    """

    def check(value: Any) -> tuple[float, float]:
        if isinstance(value, (list, tuple, np.ndarray)):
            if len(value) != 2:
                raise Invalid(f"expected a number or a (low, high) pair, got {value!r}")
            low, high = (_real(v, "a number or a (low, high) pair of finite numbers") for v in value)
            if low > high:
                raise Invalid(f"expected low <= high, got {value!r}")
        else:
            x = _real(value, "a number or a (low, high) pair")
            low, high = (-abs(x), abs(x)) if symmetric else (x, x)
        if gt is not None and low <= gt:
            raise Invalid(f"must be > {gt:g}, got {value!r}")
        return low, high

    return check


def integer(*, minimum: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if not is_int(value) or value < minimum:
            what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise Invalid(f"expected {what}, got {value!r}")
        return int(value)

    return check


def choice(*options: Any) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, str) or value not in options:
            raise Invalid(f"expected one of {', '.join(map(repr, options))}, got {value!r}")
        return value

    return check


def boolean(value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise Invalid(f"expected true or false, got {value!r}")
    return bool(value)


def validated(**checks: Callable[[Any], Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: check (and normalise) the named arguments on every call.

    A failed check raises ``ConfigError("<function>: <param>: <reason>")``. The checks are kept on
    the function as ``param_checks`` so that :func:`earmark.augment.make_augmentation` can validate a
    config before any data is seen.
    """

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            for name, check in checks.items():
                try:
                    bound.arguments[name] = check(bound.arguments[name])
                except Invalid as exc:
                    raise ConfigError(f"{fn.__name__}: {name}: {exc}") from None
            return fn(*bound.args, **bound.kwargs)

        wrapper.param_checks = dict(checks)  # type: ignore[attr-defined]
        return wrapper

    return decorator


def draw(rng: np.random.Generator, bounds: tuple[float, float], size: int) -> np.ndarray:
    """``size`` values uniform in ``bounds`` (all equal, without using ``rng``, when low == high)."""
    low, high = bounds
    if low == high:
        return np.full(size, low)
    return rng.uniform(low, high, size)
