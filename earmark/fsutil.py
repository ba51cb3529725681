"""Small file-system helpers shared by everything that writes results."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Iterator

from earmark.errors import DataError

# A temporary file's name says which process wrote it: ``.NAME.HOST-PID.RANDOM.tmp``.
_TMP_NAME = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


@contextlib.contextmanager
def temporary_path(folder: str | os.PathLike, name: str) -> Iterator[Path]:
    """Yield a new empty file in ``folder`` named ``.NAME.HOST-PID.RANDOM.tmp``, deleted when the block ends.

    The name says which process writes it, so that what a killed process left behind can be told
    from what a live one is writing (:func:`remove_stale_temporaries`). Whatever the block renames
    it to is kept; the temporary name itself never outlives the block.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.{_host()}-{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    A crash or kill leaves either the old file or the new one, never half a file; the temporary
    file is a :func:`temporary_path`, so one that a killed process left behind is collected by
    :func:`remove_stale_temporaries`.

    >>> with atomic_path("table.csv") as tmp:
    ...     frame.to_csv(tmp)
    """
    path = Path(path)
    with temporary_path(path.parent, path.name) as tmp:
        yield tmp
        os.replace(tmp, path)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files (:func:`temporary_path`, :func:`atomic_path`) in ``folder`` whose process is dead.

    Only files written on this machine (the host in their name) by a process that no longer runs
    (a killed run's half-written checkpoint or stem); another machine's, a live process's, and
    files named otherwise are left alone. Not recursive. Returns the deleted paths.
    """
    folder, host, removed = Path(folder), _host(), []
    if not folder.is_dir():
        return removed
    for tmp in folder.glob(".*.tmp"):
        m = _TMP_NAME.match(tmp.name)
        if m is None or m["host"] != host or _alive(int(m["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, busy: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created) for the ``with`` block, or fail at once.

    For a process that must be the only writer of a folder. Raises :class:`~earmark.errors.DataError`
    with the message ``busy`` when another holder has it (another process, or another ``with`` of
    this one). The lock goes with the process: a killed holder leaves nothing to clean up.
    """
    fh = open(path, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise DataError(busy) from None
    try:
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()
