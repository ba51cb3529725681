"""``earmark separate``'s driver: separate audio files into stem WAVs, resumably.

>>> from earmark.audio.separate import separate_files
>>> report = separate_files(["song.mp3", "folder/"], "stems/")        # doctest: +SKIP
>>> report.n_skipped        # on a rerun: the files already separated  # doctest: +SKIP

Each input NAME (see :func:`output_names`) gives ``OUT/NAME.vocals.wav`` and
``OUT/NAME.accompaniment.wav``, each written atomically (temporary file, fsync, rename). Once both are
written, the parent process appends one JSON line for the file to the record ``OUT/separated.jsonl``
and fsyncs it::

    {"name": "sub/song", "source": "/data/in/sub/song.mp3", "size": 4817342,
     "mtime_ns": 1718000000123456789,
     "settings": {"method": "repet", "version": 1, "params": {"n_fft": null, ...},
                  "sr": null, "subtype": "PCM_16"},
     "outputs": {"vocals": {"size": 211724, "mtime_ns": 1718000042123456789},
                 "accompaniment": {"size": 211724, "mtime_ns": 1718000042133456789}}}

``source`` is the absolute path, ``size`` and ``mtime_ns`` its ``os.stat`` before the job was
submitted (a file changed later is redone by the next run), ``settings`` the method with its resolved
parameters (:func:`check_separation`) and implementation version, the rate and WAV subtype,
``outputs`` the ``os.stat`` of the two WAVs once written.

A run skips an input whose NAME has a last line with the same source, size, mtime_ns and settings,
and whose two outputs exist as recorded (same size and mtime_ns: not rewritten since). Any other
input -- new, changed, other settings, an output deleted or rewritten (say by a run with other
settings killed between its two WAVs) -- is separated and gets a new line: the last line per NAME
wins. A line that does not parse (one torn by a kill) is ignored. Failed files get no line, so a
rerun retries them; ``overwrite=True`` ignores the record (and still appends to it).

One run at a time writes a folder: a run holds ``OUT/.separate.lock`` (an ``flock``, released by the
system if the run is killed), and a second run into the same folder stops at once with an error. At
its start a run rewrites the record with only the last line per name when earlier lines were
superseded or torn, so that it does not grow run after run.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from earmark.audio.separate import SEPARATORS, STEMS, check_separation, separate
from earmark.checks import is_int
from earmark.errors import ConfigError, DataError, EarmarkError
from earmark.fsutil import atomic_path, exclusive_lock, remove_stale_temporaries

__all__ = ["RECORD", "SeparateReport", "output_names", "read_record", "separate_file", "separate_files"]

RECORD = "separated.jsonl"
LOCK = ".separate.lock"  # held by the run writing the folder


@dataclass
class SeparateReport:
    """What :func:`separate_files` did.

    Attributes
    ----------
    n_files : int
        Input files.
    outputs : list of (input, vocals path, accompaniment path)
        Files separated and written by this run.
    failures : list of (input, reason)
        Files that could not be decoded or separated, with the reason; nothing was written or
        recorded for them (a rerun tries them again).
    seconds : float
        Wall-clock time.
    audio_seconds : float
        Duration of the audio separated by this run (skipped files not included).
    skipped : list of (input, vocals path, accompaniment path)
        Files already separated with the same source and settings by an earlier run (found in the
        record ``OUT/separated.jsonl``, both outputs present): not read, not written.
    """

    n_files: int
    outputs: list[tuple[str, str, str]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    audio_seconds: float = 0.0
    skipped: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def n_skipped(self) -> int:
        """Files already separated by an earlier run."""
        return len(self.skipped)

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio separated per second of wall-clock time."""
        return self.audio_seconds / self.seconds if self.seconds > 0 else float("nan")


def output_names(inputs: Sequence[str | os.PathLike]) -> list[tuple[str, str]]:
    """``(file, name)`` for each input: files named directly keep their stem; files found under a folder
    (recursively) keep their path relative to it, without extension.

    Raises
    ------
    DataError
        No audio file among the inputs.
    ConfigError
        Two inputs would be written under the same name.
    """
    from earmark.data.formats.folder import list_audio

    pairs: list[tuple[str, str]] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            pairs += [(f, os.path.splitext(os.path.relpath(f, p))[0]) for f in list_audio(p, required=False)]
        else:
            pairs.append((str(p), p.stem))  # a missing file is reported with the others separated
    if not pairs:
        raise DataError(f"no audio files in {', '.join(map(str, inputs)) or 'the inputs'}")
    seen: dict[str, str] = {}
    for f, name in pairs:
        if name in seen and os.path.abspath(seen[name]) != os.path.abspath(f):
            raise ConfigError(f"{seen[name]} and {f} would both be written as {name}.vocals.wav; "
                              "separate them into different --out folders")
        seen[name] = f
    return list(dict.fromkeys(pairs))


def _output_paths(out_dir: str | os.PathLike, name: str) -> tuple[str, str]:
    return str(Path(out_dir) / f"{name}.{STEMS[0]}.wav"), str(Path(out_dir) / f"{name}.{STEMS[1]}.wav")


def _write_wav(path: str, y: np.ndarray, sr: int, subtype: str) -> None:
    import soundfile as sf

    if subtype != "FLOAT":
        y = np.clip(y, -1.0, 1.0)  # integer PCM would wrap around
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        sf.write(fh, y, sr, subtype=subtype, format="WAV")
        fh.flush()
        os.fsync(fh.fileno())  # on disk before the record can say so


def separate_file(path: str, name: str, out_dir: str, settings: dict[str, Any], sr: int | None,
                  subtype: str = "PCM_16") -> tuple[float, str, str] | str:
    """Separate one file and write ``OUT/<name>.vocals.wav`` and ``.accompaniment.wav`` atomically (a job).

    Returns ``(audio seconds, vocals path, accompaniment path)``, or the reason the file failed.
    It does not touch the record: :func:`separate_files` appends to it when the job is done.
    """
    from earmark.audio.io import info, load

    try:
        rate = sr or info(path).sr
        y = load(path, sr=rate)
        vocals, accompaniment = separate(y, rate, method=settings["method"], **settings["params"])
        written = _output_paths(out_dir, name)
        for out, audio in zip(written, (vocals, accompaniment)):
            _write_wav(out, audio, rate, subtype)
        return y.shape[-1] / rate, written[0], written[1]
    except ConfigError:
        raise  # a bad setting or a missing backend is not this file's fault: stop the run
    except EarmarkError as exc:
        return getattr(exc, "reason", None) or str(exc)
    except Exception as exc:  # a bad file among thousands must never stop the run
        return f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- the record


def read_record(out_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The last well-formed line per name of ``OUT/separated.jsonl`` (``{}`` when there is none).

    Lines that are not a JSON object with a ``name`` (a last line torn by a kill) are ignored.
    """
    return _read_record(Path(out_dir) / RECORD)[0]


def _read_record(path: Path) -> tuple[dict[str, dict[str, Any]], int]:
    """``(last well-formed entry per name, number of lines)``."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return {}, 0
    entries: dict[str, dict[str, Any]] = {}
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            entries[entry["name"]] = entry
    return entries, len(lines)


def _compact_record(path: Path) -> dict[str, dict[str, Any]]:
    """Rewrite the record (atomically) with one line per name when lines were superseded or torn;
    returns its entries. Only under the folder's lock: another run's appends would be lost."""
    entries, n_lines = _read_record(path)
    if n_lines > len(entries):
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(b"".join((json.dumps(e) + "\n").encode() for e in entries.values()))
                fh.flush()
                os.fsync(fh.fileno())
    return entries


class _RecordWriter:
    """Appends one line per finished file to the record, each flushed and fsync'ed before it returns."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = None

    def append(self, entry: dict[str, Any]) -> None:
        if self._fh is None:
            torn = self.path.exists() and self.path.stat().st_size > 0 and not _ends_with_newline(self.path)
            self._fh = open(self.path, "ab", buffering=0)
            if torn:  # a kill cut the last line short: the next line must not be glued to it
                self._fh.write(b"\n")
        self._fh.write((json.dumps(entry) + "\n").encode())
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def _source_stat(path: str) -> tuple[str, int, int] | None:
    """``(absolute path, size, mtime_ns)``, or None when the file cannot be stat'ed (it will fail and say why)."""
    source = os.path.abspath(path)
    try:
        st = os.stat(source)
    except OSError:
        return None
    return source, st.st_size, st.st_mtime_ns


def _settings_key(settings: dict[str, Any], sr: int | None, subtype: str) -> dict[str, Any]:
    key = {"method": settings["method"], "version": SEPARATORS.get(settings["method"]).version,
           "params": settings["params"], "sr": sr, "subtype": subtype}
    return json.loads(json.dumps(key, default=str))  # as it reads back from the record


def _output_stats(paths: Sequence[str]) -> dict[str, dict[str, int]] | None:
    try:
        stats = [os.stat(p) for p in paths]
    except OSError:
        return None
    return {stem: {"size": st.st_size, "mtime_ns": st.st_mtime_ns} for stem, st in zip(STEMS, stats)}


def _is_done(entry: dict[str, Any] | None, source: tuple[str, int, int] | None, key: dict[str, Any],
             outputs: tuple[str, str]) -> bool:
    if entry is None or source is None:
        return False
    if (entry.get("source"), entry.get("size"), entry.get("mtime_ns")) != source or entry.get("settings") != key:
        return False
    stats = _output_stats(outputs)
    return stats is not None and stats == entry.get("outputs")


# --------------------------------------------------------------------------- the run


def separate_files(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    method: str = "repet",
    params: dict[str, Any] | None = None,
    sr: int | None = None,
    subtype: str = "PCM_16",
    jobs: int | None = None,
    executor: Any = None,
    progress: bool = False,
    overwrite: bool = False,
) -> SeparateReport:
    """Separate audio files into ``OUT/<name>.vocals.wav`` and ``OUT/<name>.accompaniment.wav``, resumably.

    Files already separated by an earlier run into the same folder, from the same source file (path,
    size, mtime) with the same settings, are skipped: the record ``OUT/separated.jsonl`` (one line per
    finished file, see the module docstring) says which, so a run killed half-way resumes where it
    stopped.

    Parameters
    ----------
    inputs : sequence of path
        Audio files, and folders searched recursively (see :func:`output_names` for the names).
    out_dir : path
        Output folder (created); files are written atomically (temporary file + rename), and each
        finished file gets a line in ``OUT/separated.jsonl`` (appended and fsync'ed by this process).
    method, params
        Separation method and its parameters (see :func:`separate`).
    sr : int, optional
        Rate to separate and write at; default: each file's own rate. Audio is downmixed to mono.
    subtype : str
        WAV encoding: ``"PCM_16"`` (default, clipped to [-1, 1]), ``"PCM_24"`` or ``"FLOAT"``.
    jobs : int, optional
        Worker processes when no ``executor`` is given (default: all cores; 1 = in this process).
    executor : concurrent.futures.Executor, optional
        Where the per-file jobs run.
    progress : bool
        Show a progress bar (of the files to separate, skipped ones not counted).
    overwrite : bool
        Separate every file again, ignoring the record (new lines are still appended).

    Returns
    -------
    SeparateReport
        Files separated (``outputs``), already separated (``skipped``), and files that cannot be
        decoded or separated (``failures``: skipped and not recorded, so a rerun retries them).

    Raises
    ------
    ConfigError
        Bad method, parameters, ``sr`` or ``subtype``, a backend that is not installed, or two inputs
        with the same output name -- all before any file is read.
    DataError
        Another run is separating into ``out_dir`` (it holds ``OUT/.separate.lock``).
    """
    from earmark.features.extract import progress_bar
    from earmark.parallel import as_finished, make_executor

    t0 = time.perf_counter()
    settings = check_separation({"method": method, "params": params or {}}, key="separate")
    if sr is not None and not (is_int(sr) and sr > 0):
        raise ConfigError(f"separate: sr must be a positive integer (Hz) or None, got {sr!r}")
    sr = None if sr is None else int(sr)
    if subtype not in ("PCM_16", "PCM_24", "FLOAT"):
        raise ConfigError(f"separate: subtype must be PCM_16, PCM_24 or FLOAT, got {subtype!r}")
    pairs = output_names(inputs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out_dir / LOCK, f"{out_dir}: another earmark separate is writing "
                        "this folder; wait for it to finish"):
        remove_stale_temporaries(out_dir)  # stems a killed run was writing
        report = SeparateReport(n_files=len(pairs))
        key = _settings_key(settings, sr, subtype)
        done = _compact_record(out_dir / RECORD)  # superseded lines go: the record does not grow run after run
        if overwrite:
            done = {}
        todo = []  # (path, name, source stat when planned: a file changed after this is redone next run)
        for path, name in pairs:
            source = _source_stat(path)
            if _is_done(done.get(name), source, key, _output_paths(out_dir, name)):
                report.skipped.append((path, *_output_paths(out_dir, name)))
            else:
                todo.append((path, name, source))

        record = _RecordWriter(out_dir / RECORD)

        def finish(result: Any, path: str, name: str, source: tuple[str, int, int] | None) -> None:
            if isinstance(result, str):
                report.failures.append((path, result))
                return
            report.audio_seconds += result[0]
            report.outputs.append((path, result[1], result[2]))
            stats = _output_stats(result[1:])
            if source is not None and stats is not None:
                record.append({"name": name, "source": source[0], "size": source[1], "mtime_ns": source[2],
                               "settings": key, "outputs": stats})

        own = executor is None
        executor = executor or make_executor(jobs)
        jobs_ = (((path, name, source), separate_file, (path, name, str(out_dir), settings, sr, subtype))
                 for path, name, source in todo)
        try:
            with progress_bar(progress, len(todo), f"separate ({method})", unit="files") as advance:
                for (path, name, source), future in as_finished(executor, jobs_):  # recorded as each finishes
                    finish(future.result(), path, name, source)
                    advance(1)
        finally:
            record.close()
            if own:
                executor.shutdown(wait=True, cancel_futures=True)
        order = {p: i for i, (p, _) in enumerate(pairs)}
        for items in (report.outputs, report.failures, report.skipped):
            items.sort(key=lambda o: order[o[0]])
        report.seconds = time.perf_counter() - t0
        return report
