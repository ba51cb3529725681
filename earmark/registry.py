"""One registry type for named things: features, models, augmentations, dataset formats.

>>> FEATURES = Registry("feature")
>>> @FEATURES.register("fbank")
... def fbank(y, sr=16000): ...
>>> FEATURES.names("fb*")
['fbank']
"""

from __future__ import annotations

import difflib
import fnmatch
from typing import Any, Generic, Iterator, TypeVar

from earmark.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object mapping where duplicates are an error and unknown names suggest close matches.

    Parameters
    ----------
    kind : str
        What the registry holds, used in messages ("feature", "model", "dataset format").
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None, obj: T | None = None) -> Any:
        """Register ``obj`` under ``name``; without ``obj``, return a decorator.

        Raises
        ------
        ConfigError
            If the name is already taken.
        """
        if obj is not None:
            self._add(name or getattr(obj, "__name__"), obj)
            return obj

        def decorator(o: T) -> T:
            self._add(name or getattr(o, "__name__"), o)
            return o

        return decorator

    def _add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        """Return the object registered as ``name``.

        Raises
        ------
        ConfigError
            Unknown name; the message lists close matches or all names.
        """
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), list(self._items), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(map(repr, close))}?" if close else f"known: {', '.join(self.names())}"
            raise ConfigError(f"unknown {self.kind} {name!r}; {hint}") from None

    def create(self, name: str, **kwargs: Any) -> Any:
        """Call the object registered as ``name`` with ``kwargs`` (build a model, a feature, ...)."""
        factory = self.get(name)
        if not callable(factory):
            raise ConfigError(f"{self.kind} {name!r} cannot be created (not callable)")
        return factory(**kwargs)  # type: ignore[operator]

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching a shell-style ``pattern`` (``"resnet*"``)."""
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
