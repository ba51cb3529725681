"""What a training run persists: atomic weights-only checkpoints, RNG states, the per-epoch history.

A checkpoint is a plain dict of tensors and Python primitives, written with :func:`torch.save`
to a temporary file that replaces the target in one rename, and read back with
``torch.load(path, weights_only=True)``: no arbitrary object is ever unpickled, so a checkpoint
from an untrusted place cannot run code. RNG states are therefore stored as tensors and plain
numbers (:func:`capture_rng_state` / :func:`restore_rng_state`).

>>> save_checkpoint("run/checkpoint.pt", {"epoch": 3, "model": model.state_dict(),
...                                       "rng": capture_rng_state({"loader": gen})})
>>> state = load_checkpoint("run/checkpoint.pt")
>>> restore_rng_state(state["rng"], {"loader": gen})
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from earmark.errors import DataError
from earmark.fsutil import atomic_path, atomic_write_text

COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "load_seconds")


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file beside it, then ``os.replace``).

    Parameters
    ----------
    path : path-like
        Target file; its folder is created if needed. A kill during the write leaves the previous
        file intact.
    state : mapping
        Tensors, numbers, strings, None, and lists / tuples / dicts of these, so that
        :func:`load_checkpoint` can read it with ``weights_only=True``.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(dict(state), fh)
        fh.flush()
        os.fsync(fh.fileno())
    return path


def load_checkpoint(path: str | os.PathLike, *, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Parameters
    ----------
    path : path-like
    map_location : str or torch.device, default "cpu"
        Where tensors are placed; ``load_state_dict`` moves them onto the model's device.

    Returns
    -------
    dict

    Raises
    ------
    DataError
        The file is missing, truncated, not a torch file, holds objects other than tensors and
        plain values (an arbitrary pickle), or is not a dict; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint file")
    try:
        with warnings.catch_warnings():  # a foreign pickle fails below; torch's protocol warning adds nothing
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many kinds for a foreign or damaged file; all mean the same here
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable weights-only checkpoint ({reason[:300]})") from exc
    if not isinstance(state, dict):
        raise DataError(f"{path}: expected a checkpoint dict, got {type(state).__name__}")
    return state


def _rng_tensor(value: Any, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8:
        raise DataError(f"checkpoint rng.{what}: expected a uint8 tensor, got {type(value).__name__}")
    return value.cpu()


def capture_rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Snapshot every random-number generator a training run draws from.

    Parameters
    ----------
    generators : mapping of str to torch.Generator, optional
        Named explicit generators (the DataLoader's, the sampler's, the augmentations').

    Returns
    -------
    dict
        ``{"torch": ByteTensor, "cuda": [ByteTensor, ...], "numpy": {...}, "python": {...},
        "generators": {name: ByteTensor}}`` -- tensors and plain values only, so it survives a
        weights-only save / load.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, py_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss_next": None if gauss_next is None else float(gauss_next)},
        "generators": {name: gen.get_state() for name, gen in (generators or {}).items()},
    }


def restore_rng_state(state: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Put back the RNG states captured by :func:`capture_rng_state`.

    CUDA states are restored only where CUDA is available (a GPU run resumed on a CPU cannot be
    exact anyway). A generator named in ``generators`` but absent from ``state`` is an error.

    Raises
    ------
    DataError
        ``state`` is not what :func:`capture_rng_state` produces.
    """
    try:
        torch.set_rng_state(_rng_tensor(state["torch"], "torch"))
        cuda = state.get("cuda") or []
        if cuda and torch.cuda.is_available():
            for device, s in enumerate(cuda[: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(_rng_tensor(s, "cuda"), device)
        npst = state["numpy"]
        np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), int(npst["pos"]),
                             int(npst["has_gauss"]), float(npst["cached_gaussian"])))
        py = state["python"]
        random.setstate((int(py["version"]), tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
        saved = state.get("generators") or {}
        for name, gen in (generators or {}).items():
            if name not in saved:
                raise DataError(f"checkpoint rng.generators: no state for generator {name!r}")
            gen.set_state(_rng_tensor(saved[name], f"generators.{name}"))
    except DataError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise DataError(f"checkpoint rng: malformed RNG state ({type(exc).__name__}: {exc})") from exc


@dataclass
class History:
    """Per-epoch metrics of a run: one row per epoch with the :data:`COLUMNS`.

    ``val_loss`` / ``val_acc`` are None without a validation set; ``lr`` is the learning rate of
    the epoch's last optimizer step; ``seconds`` the epoch's wall time (train + validation);
    ``load_seconds`` the part of the training pass spent waiting for the data loader and augmenting
    batches (the input pipeline, against the steps proper).
    ``history["val_loss"]`` gives a column as a list.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_loss: float | None = None
    stopped_early: bool = False

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, column: str) -> list[Any]:
        if column not in COLUMNS:
            raise KeyError(f"history has no column {column!r}; columns: {', '.join(COLUMNS)}")
        return [row.get(column) for row in self.rows]

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write ``history.csv`` atomically (empty cells for missing validation metrics)."""
        lines = [",".join(COLUMNS)]
        lines += [",".join("" if row.get(c) is None else repr(row[c]) for c in COLUMNS) for row in self.rows]
        atomic_write_text(path, "\n".join(lines) + "\n")

    def to_state(self) -> dict[str, Any]:
        """Plain values only, for a weights-only checkpoint."""
        return {"rows": [dict(r) for r in self.rows], "best_epoch": self.best_epoch,
                "best_val_loss": self.best_val_loss, "stopped_early": self.stopped_early}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> History:
        return cls(rows=[dict(r) for r in state["rows"]], best_epoch=state["best_epoch"],
                   best_val_loss=state["best_val_loss"], stopped_early=bool(state["stopped_early"]))
