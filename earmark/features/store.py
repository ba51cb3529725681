"""The feature store: features computed once, kept on disk, read back as memory maps.

Layout (one folder per feature configuration, so changing a parameter never mixes results)::

    STORE/
      fbank-3f9c0a1b2d4e/          # feature name + hash of its resolved parameters (+ vocal separation)
        params.json                # feature name, parameters, separation settings, store schema
        data.bin                   # every clip's array, appended, 64-byte aligned
        index.sqlite               # key -> (offset, nbytes, dtype, shape) and the clip it came from
        failures.csv               # clips the last extraction could not compute, and why

A clip's key hashes its absolute path, file size, modification time and the manifest's
``offset``/``duration``: editing or replacing a file makes a new key, and the old array is
simply no longer looked up. 100,000 clips are one data file and one index, not 100,000 files.

Crash safety: arrays are appended to ``data.bin`` first and an index row is committed after them,
so a committed row always points at complete bytes. After ``kill -9`` the uncommitted tail of
``data.bin`` is cut off when the store is next opened for writing, and a rerun computes only the
clips without a committed row. (The data file is fsync'ed when a writer closes; a power cut during
extraction may lose the last uncommitted moments, never committed rows' integrity.)
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import os
import sqlite3
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from earmark.errors import DataError
from earmark.features.base import Feature, get_feature
from earmark.fsutil import atomic_path, atomic_write_text

SCHEMA_VERSION = 1
_ALIGN = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    clip_offset REAL,
    clip_duration REAL,
    byte_offset INTEGER NOT NULL,
    nbytes INTEGER NOT NULL,
    dtype TEXT NOT NULL,
    shape TEXT NOT NULL,
    created REAL NOT NULL
)
"""


@dataclass(frozen=True)
class Clip:
    """One clip as the store sees it: a file (absolute path) and an optional excerpt of it."""

    id: str
    path: str
    offset: float | None = None
    duration: float | None = None


@dataclass(frozen=True)
class Failure:
    """A clip that could not be computed, and why (in words)."""

    id: str
    path: str
    reason: str


def clip_key(clip: Clip) -> tuple[str, os.stat_result]:
    """Cache key of ``clip`` from its absolute path, size, mtime and excerpt; raises ``OSError`` if unreadable."""
    st = os.stat(clip.path)
    ident = f"{clip.path}\0{st.st_size}\0{st.st_mtime_ns}\0{clip.offset!r}\0{clip.duration!r}"
    return hashlib.sha1(ident.encode()).hexdigest(), st


def clips_from_manifest(manifest: Any) -> list[Clip]:
    """The :class:`Clip` of every manifest row, in order (paths resolved against the manifest's folder)."""
    df = manifest.df
    paths = manifest.paths()
    offsets = _optional_column(df, "offset")
    durations = _optional_column(df, "duration")
    return [
        Clip(str(i), str(p), offsets[n], durations[n])
        for n, (i, p) in enumerate(zip(df["id"], paths))
    ]


def _optional_column(df: Any, name: str) -> list[float | None]:
    if name not in df.columns:
        return [None] * len(df)
    out = []
    for v in df[name]:
        out.append(None if v is None or v == "" or (isinstance(v, float) and np.isnan(v)) else float(v))
    return out


class FeatureStore:
    """The cached arrays of one feature configuration under a store folder.

    Parameters
    ----------
    root : path
        The store folder (created if missing).
    feature : str
        Registered feature name (``"fbank"``, ``"logmel"``, ...).
    params : dict, optional
        Feature parameters (``sr`` included); unspecified ones take the feature's defaults.
    separate : dict or config section, optional
        Vocal separation applied to the audio before the feature (the config's ``audio.separate``);
        its resolved settings are part of the folder's hash, so separated and unseparated features
        never mix. ``None`` (no separation) keeps the hash of stores written before separation existed.
    augment : dict, optional
        The settings of one offline augmented copy (:func:`earmark.augment.offline_copies`): the
        store then holds that copy of each clip. Part of the folder's hash, like ``separate``.

    Examples
    --------
    >>> store = FeatureStore("features", "fbank")
    >>> X = store.load(manifest).stack()        # (n_clips, 299, 40) for 3 s clips
    """

    def __init__(self, root: str | os.PathLike, feature: str = "fbank", params: dict[str, Any] | None = None,
                 *, separate: Any = None, augment: dict[str, Any] | None = None):
        from earmark.audio.separate import resolve_separation

        self.feature: Feature = get_feature(feature)
        self.params = self.feature.resolve(params)
        self.separate: dict[str, Any] | None = resolve_separation(separate)
        key: dict[str, Any] = {"feature": self.feature.name, "params": self.params, "schema": SCHEMA_VERSION}
        if self.separate is not None:
            key["separate"] = self.separate
        self.augment = None if augment is None else dict(augment)
        if self.augment is not None:
            key["augment"] = self.augment
        versions = self._code_versions()
        if versions:  # only versions above 1: stores made before versions existed keep their key
            key["versions"] = versions
        blob = json.dumps(key, sort_keys=True, default=str)
        self.dir = Path(root) / f"{self.feature.name}-{hashlib.sha1(blob.encode()).hexdigest()[:12]}"
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / "params.json").exists():
            atomic_write_text(self.dir / "params.json", json.dumps(json.loads(blob), indent=2) + "\n")
        self._db = sqlite3.connect(self.dir / "index.sqlite", timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._mm: np.memmap | None = None
        self._writer: _Writer | None = None

    def _code_versions(self) -> dict[str, int]:
        """The implementation versions (above 1) of the feature, the separation method and the copy's
        steps: a changed implementation gets a new folder instead of reusing arrays it no longer makes."""
        from earmark.audio.separate import SEPARATORS
        from earmark.augment import AUGMENTATIONS

        versions = {f"feature:{self.feature.name}": self.feature.version}
        if self.separate is not None:
            versions[f"separate:{self.separate['method']}"] = SEPARATORS.get(self.separate["method"]).version
        for step in (self.augment or {}).get("steps", []):
            versions[f"augment:{step['name']}"] = AUGMENTATIONS.get(step["name"]).version
        return {k: v for k, v in sorted(versions.items()) if v != 1}

    # -- reading ---------------------------------------------------------------------------------

    @property
    def data_path(self) -> Path:
        return self.dir / "data.bin"

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def keys(self) -> set[str]:
        """Keys of every committed entry."""
        return {k for (k,) in self._db.execute("SELECT key FROM entries")}

    def __contains__(self, key: object) -> bool:
        return self._db.execute("SELECT 1 FROM entries WHERE key=?", (key,)).fetchone() is not None

    def _map(self, end: int) -> np.memmap:
        if self._mm is None or self._mm.size < end:
            self._mm = np.memmap(self.data_path, dtype=np.uint8, mode="r")
        return self._mm

    def _view(self, byte_offset: int, nbytes: int, dtype: str, shape: str) -> np.ndarray:
        mm = self._map(byte_offset + nbytes)
        return mm[byte_offset : byte_offset + nbytes].view(np.dtype(dtype)).reshape(json.loads(shape))

    def get(self, key: str) -> np.ndarray:
        """The array stored under ``key`` as a read-only memory-mapped view (no copy, no decoding)."""
        row = self._db.execute("SELECT byte_offset, nbytes, dtype, shape FROM entries WHERE key=?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return self._view(*row)

    def load(self, manifest_or_clips: Any) -> "FeatureTable":
        """Arrays of a manifest's clips (memory-mapped views), with the clips not in the store listed.

        Parameters
        ----------
        manifest_or_clips : Manifest or sequence of Clip
        """
        clips = _as_clips(manifest_or_clips)
        index = {
            k: (o, n, d, s)
            for k, o, n, d, s in self._db.execute("SELECT key, byte_offset, nbytes, dtype, shape FROM entries")
        }
        arrays: list[np.ndarray | None] = []
        missing: list[Clip] = []
        for clip in clips:
            try:
                key, _ = clip_key(clip)
            except OSError:
                key = None
            if key is None or key not in index:
                arrays.append(None)
                missing.append(clip)
            else:
                arrays.append(self._view(*index[key]))
        return FeatureTable(clips=list(clips), arrays=arrays, missing=missing)

    # -- writing ---------------------------------------------------------------------------------

    def writer(self, *, wait: bool = False) -> "_Writer":
        """Open the store for appending, as a context manager (one writer at a time across processes;
        cuts an uncommitted tail left by a killed writer).

        While another process writes this store: ``wait=False`` raises :class:`DataError`,
        ``wait=True`` warns once and waits for it (the writer's ``waited`` is then True: what that
        process stored meanwhile is in :meth:`keys`).
        """
        if self._writer is not None:
            raise DataError(f"{self.dir}: this store already has an open writer")
        self._writer = _Writer(self, wait=wait)
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._mm = None
        self._db.close()

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def write_failures(self, failures: Sequence[Failure]) -> Path:
        """Write ``failures.csv`` (id, path, reason) atomically; returns its path."""
        path = self.dir / "failures.csv"
        with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["id", "path", "reason"])
            w.writerows((x.id, x.path, x.reason) for x in failures)
        return path

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.dir)!r}, {len(self)} entries)"


_WRITING: set[str] = set()  # store folders this process holds the writer lock of (waiting on them would hang)


class _Writer:
    """Appends arrays to ``data.bin`` and commits their index rows after them."""

    def __init__(self, store: FeatureStore, *, wait: bool = False):
        self.store = store
        self.waited = False
        self._lock = open(store.dir / "lock", "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self_held = str(store.dir) in _WRITING
            if not wait or self_held:
                self._lock.close()
                if self_held:
                    raise DataError(f"{store.dir}: this process already has a writer open on this feature store "
                                    "(through another FeatureStore); close it first") from None
                raise DataError(f"{store.dir}: another process is writing this feature store; wait for it to finish") from None
            warnings.warn(f"{store.dir}: another process is writing this feature store; waiting for it to finish",
                          stacklevel=3)
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX)
            except BaseException:  # Ctrl-C while waiting
                self._lock.close()
                raise
            self.waited = True
        _WRITING.add(str(store.dir))
        end = store._db.execute("SELECT COALESCE(MAX(byte_offset + nbytes), 0) FROM entries").fetchone()[0]
        self._f = open(store.data_path, "a+b")
        self._f.seek(0, os.SEEK_END)
        if self._f.tell() > end:  # bytes a killed writer appended but never committed
            self._f.truncate(end)
        self._end = end
        self._last_sync = time.monotonic()

    def add(self, entries: Iterable[tuple[Clip, str, os.stat_result, np.ndarray]]) -> int:
        """Append ``(clip, key, stat, array)`` entries and commit them as one transaction."""
        rows = []
        f = self._f
        for clip, key, st, arr in entries:
            arr = np.ascontiguousarray(arr)
            start = -(-self._end // _ALIGN) * _ALIGN
            if start > self._end:
                f.write(b"\0" * (start - self._end))
            f.write(arr.data)
            self._end = start + arr.nbytes
            rows.append((key, clip.path, st.st_size, st.st_mtime_ns, clip.offset, clip.duration,
                         start, arr.nbytes, arr.dtype.str, json.dumps(arr.shape), time.time()))
        if not rows:
            return 0
        f.flush()  # bytes reach the OS before the row that points at them is committed
        if time.monotonic() - self._last_sync > 5.0:
            os.fdatasync(f.fileno())
            self._last_sync = time.monotonic()
        db = self.store._db
        db.execute("BEGIN")
        db.executemany("INSERT OR REPLACE INTO entries VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
        db.execute("COMMIT")
        return len(rows)

    def close(self) -> None:
        if self._f.closed:
            return
        self._f.flush()
        os.fdatasync(self._f.fileno())
        self._f.close()
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()
        _WRITING.discard(str(self.store.dir))
        self.store._writer = None

    def __enter__(self) -> "_Writer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class FeatureTable:
    """Arrays of a list of clips, aligned with them; ``None`` where a clip is not in the store."""

    clips: list[Clip]
    arrays: list[np.ndarray | None]
    missing: list[Clip] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int) -> np.ndarray | None:
        return self.arrays[i]

    def present(self) -> np.ndarray:
        """Boolean mask of the clips that have an array."""
        return np.array([a is not None for a in self.arrays], dtype=bool)

    def stack(self, *, skip_missing: bool = False) -> np.ndarray:
        """One dense ``(n_clips, *shape)`` array (a copy into memory).

        Raises
        ------
        DataError
            If clips are missing (unless ``skip_missing``) or shapes differ (pad/crop the audio or
            use per-clip access for variable-length features).
        """
        if self.missing and not skip_missing:
            names = ", ".join(c.id for c in self.missing[:5])
            raise DataError(f"{len(self.missing)} clip(s) have no stored features (e.g. {names}); run `earmark extract` first")
        arrays = [a for a in self.arrays if a is not None]
        if not arrays:
            raise DataError("no stored features to stack")
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise DataError(f"cannot stack features of different shapes: {sorted(shapes)[:4]}; crop or pad the clips to one length")
        return np.stack(arrays)


def _as_clips(manifest_or_clips: Any) -> list[Clip]:
    """Clips of a Manifest, of a manifest file (path), or a sequence of Clip as given."""
    if isinstance(manifest_or_clips, (str, os.PathLike)):
        from earmark.data import Manifest

        manifest_or_clips = Manifest.read(manifest_or_clips)
    if hasattr(manifest_or_clips, "df") and hasattr(manifest_or_clips, "paths"):
        return clips_from_manifest(manifest_or_clips)
    return list(manifest_or_clips)
