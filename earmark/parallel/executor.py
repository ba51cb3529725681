"""Executors for independent jobs (feature chunks, ensemble members).

Library code receives a :class:`concurrent.futures.Executor` and only calls ``submit``; which pool
runs the work is the caller's choice (lhotse's ``compute_and_store_features(executor=...)``).
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import sys
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterable, Iterator

from earmark.errors import ConfigError


def default_jobs() -> int:
    """Number of CPU cores this process may use (respects CPU affinity / container limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def n_workers(executor: Executor) -> int:
    """How many jobs ``executor`` runs at once: its ``n_workers`` (earmark's executors, a Ray
    cluster's CPUs), a standard pool's ``max_workers``, else the number of cores."""
    return int(getattr(executor, "n_workers", None) or getattr(executor, "_max_workers", None) or default_jobs())


def as_finished(executor: Executor, jobs: Iterable[tuple[Any, Callable[..., Any], tuple]], *,
                in_flight: int | None = None) -> Iterator[tuple[Any, Future]]:
    """Run ``(tag, fn, args)`` jobs through ``executor``, yielding ``(tag, future)`` as each finishes.

    At most ``in_flight`` jobs (default: 4 per worker) are submitted and unfinished at a time, so the
    caller stores each result as it comes: memory stays bounded, a kill loses only the jobs in flight,
    and an inline executor (which runs a job when it is submitted) is consumed job by job as well.
    Jobs that finish together are yielded in the order they were submitted (so an inline executor
    gives them all in order). When the caller stops early or raises, the jobs not yet started are
    cancelled.
    """
    limit = max(1, in_flight or 4 * n_workers(executor))
    queue = iter(jobs)
    pending: dict[Future, Any] = {}

    def submit_next() -> None:
        job = next(queue, None)
        if job is not None:
            tag, fn, args = job
            pending[executor.submit(fn, *args)] = tag

    try:
        for _ in range(limit):
            submit_next()
        while pending:
            done = wait(pending, return_when=FIRST_COMPLETED).done
            for future in [f for f in pending if f in done]:  # in submission order (the inline executor: all)
                yield pending.pop(future), future
                submit_next()
    finally:
        for future in pending:
            future.cancel()


class InlineExecutor(Executor):
    """Runs each job in the calling process when it is submitted (``jobs=1``; easy to debug)."""

    n_workers = 1

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered through the future, as a pool would
            future.set_exception(exc)
        return future


def tune_allocator() -> None:
    """Keep freed buffers of up to 32 MiB in this process's heap instead of returning them to the OS.

    With glibc's defaults every decoded clip's buffer (a few MB) is mmap'ed and unmapped again, and
    the page faults of touching fresh pages cost as much as decoding: with this, ``load`` + resample
    of a 3 s 44.1 kHz stereo clip drops from ~1.9 ms to ~0.9 ms. A no-op off glibc.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 64 << 20)
    mallopt(m_top_pad, 16 << 20)


def _init_worker() -> None:
    # One math thread per worker: the pool already uses every core, and oversubscribed BLAS/OpenMP
    # threads make extraction slower, not faster.
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)  # and NumPy's / SciPy's BLAS, which would otherwise start a thread per core
    tune_allocator()
    # The objects inherited from the parent (torch's import-time ones above all) stay alive for the
    # worker's life: keep the collector from walking them, and from writing to their shared pages
    # (the pattern the gc module's documentation gives for forked workers).
    gc.freeze()


def make_executor(jobs: int | None = None, *, ray: str | None = None) -> Executor:
    """A local executor with ``jobs`` workers (default: all cores; 1 runs inline in this process),
    or, with ``ray``, one that runs the jobs on a Ray cluster.

    Parameters
    ----------
    jobs : int, optional
        Worker processes. ``None`` or ``0`` means all cores; negative values are an error.
        ``1`` runs jobs inline, in this process (whose allocator then gets :func:`tune_allocator`).
        With ``ray="local"``: the CPUs of the Ray instance started for this executor.
    ray : str, optional
        Address of a Ray cluster (``local``, ``auto``, ``HOST:PORT``, ``ray://HOST:PORT``; see
        :class:`earmark.parallel.ray_executor.RayExecutor`). Needs ``pip install 'earmark[ray]'``.

    The caller owns the executor: ``shutdown()`` it (or use it in a ``with`` block).
    """
    if jobs is not None and jobs < 0:
        raise ConfigError(f"jobs must be >= 0 (0 = all cores), got {jobs}")
    if ray is not None:
        from earmark.parallel.ray_executor import RayExecutor

        return RayExecutor(ray, num_cpus=jobs or None)
    if jobs is None or jobs == 0:
        jobs = default_jobs()
    if jobs == 1:
        tune_allocator()
        return InlineExecutor()
    # fork starts workers in milliseconds with numpy/torch already imported; elsewhere spawn.
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context(method), initializer=_init_worker)
    pool.n_workers = jobs
    return pool
