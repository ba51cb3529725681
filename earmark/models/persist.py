"""Save and load fitted scikit-learn models safely with skops (never an arbitrary pickle).

The file is a skops archive (a zip) with earmark's metadata inside as ``earmark_meta.json``, so the
model and its metadata are written in one atomic rename.

>>> save_model("run/model.skops", pipe, meta={"labels": ["bass", "brass"], "features": "mfcc"})
>>> pipe, meta = load_model("run/model.skops")
"""

from __future__ import annotations

import importlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from earmark.errors import ConfigError, DataError
from earmark.fsutil import atomic_path

META_NAME = "earmark_meta.json"
FORMAT = "earmark.sklearn/1"

#: Module prefixes whose classes (and, for sklearn / earmark, functions) a model file may name.
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "earmark.")
_FUNCTION_PREFIXES = ("sklearn.", "earmark.")  # score functions (f_classif) and earmark's own
_SAFE_BUILTINS = {f"builtins.{t}" for t in (
    "bool", "int", "float", "complex", "str", "bytes", "bytearray", "list", "tuple", "dict", "set",
    "frozenset", "slice", "range", "NoneType", "object")}


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def save_model(path: str | os.PathLike, estimator: Any, *, meta: Mapping[str, Any] | None = None) -> Path:
    """Write a fitted estimator and its metadata to ``path`` (a skops archive), atomically.

    Parameters
    ----------
    path : str or PathLike
        Destination, conventionally ``model.skops``; parent folders are created.
    estimator : estimator
        Usually a fitted :class:`~sklearn.pipeline.Pipeline`.
    meta : dict
        JSON-serialisable metadata (labels, feature name and parameters, earmark version, ...).

    Returns
    -------
    Path

    Raises
    ------
    ConfigError
        ``meta`` is not a mapping or not JSON-serialisable.
    """
    import skops.io as sio

    path = Path(path)
    if meta is None:
        meta = {}
    if not isinstance(meta, Mapping):
        raise ConfigError(f"meta: expected a mapping, got {type(meta).__name__}")
    try:
        meta_text = json.dumps({"format": FORMAT, "meta": dict(meta)}, default=_json_default, indent=2)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"meta: not JSON-serialisable ({e})") from None
    with atomic_path(path) as tmp:
        sio.dump(estimator, tmp)
        with zipfile.ZipFile(tmp, "a") as zf:
            zf.writestr(META_NAME, meta_text)
    return path


def _resolve(name: str) -> Any:
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(name)


def _is_trusted(name: str) -> bool:
    if name in _SAFE_BUILTINS:
        return True
    if not name.startswith(TRUSTED_PREFIXES):
        return False
    try:
        obj = _resolve(name)
    except Exception:
        return False
    if isinstance(obj, (type, np.ufunc)):
        return True
    return callable(obj) and name.startswith(_FUNCTION_PREFIXES)


def untrusted_types(path: str | os.PathLike) -> list[str]:
    """Types and functions named in a skops file that earmark refuses to load (empty: safe to load).

    Raises
    ------
    DataError
        The file is missing or not a skops archive.
    """
    import skops.io as sio

    path = Path(path)
    _check_archive(path)
    try:
        listed = sio.get_untrusted_types(file=path)
    except Exception as e:
        raise DataError(f"{path}: not a readable model file ({type(e).__name__}: {e})") from None
    return sorted(t for t in listed if not _is_trusted(t))


def _check_archive(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"{path}: no such model file")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a model file (expected a skops archive written by save_model; "
                        f"pickles are never loaded)")


def load_model(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """Load an estimator written by :func:`save_model`, refusing any type outside the trusted modules.

    Only classes from ``sklearn``, ``numpy``, ``scipy`` and ``earmark``, functions from ``sklearn``
    and ``earmark``, and plain builtin data types are accepted; nothing is unpickled.

    Returns
    -------
    estimator : estimator
    meta : dict
        The metadata given to :func:`save_model` (empty for a plain skops file).

    Raises
    ------
    DataError
        Missing, corrupt or foreign file, or one naming untrusted types
        (``refusing to load model.skops: untrusted types ['posix.system']``).
    """
    import skops.io as sio

    path = Path(path)
    bad = untrusted_types(path)
    if bad:
        raise DataError(f"refusing to load {path}: untrusted types {bad}")
    try:
        trusted = sio.get_untrusted_types(file=path)
        estimator = sio.load(path, trusted=trusted)
    except Exception as e:
        raise DataError(f"{path}: cannot load model ({type(e).__name__}: {e})") from None
    meta: dict[str, Any] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            if META_NAME in zf.namelist():
                meta = json.loads(zf.read(META_NAME).decode("utf-8")).get("meta", {})
    except (zipfile.BadZipFile, ValueError, AttributeError) as e:
        raise DataError(f"{path}: unreadable {META_NAME} ({e})") from None
    return estimator, meta
