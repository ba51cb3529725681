"""Run executor jobs as Ray tasks (``--ray ADDRESS``). The only module of earmark that imports Ray.

Library code keeps calling ``executor.submit(fn, *args)``; :class:`RayExecutor` sends each call to a
Ray cluster as a task of one CPU and hands back a :class:`concurrent.futures.Future`. What a job
needs must be visible where it runs: earmark installed on every node, and the audio files (feature
extraction, separation) or the feature store and run folder (ensemble members) on a shared
filesystem under the same paths. Extraction sends the arrays back to the driver, which alone writes
the store.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Executor, Future, InvalidStateError
from typing import Any, Callable

from earmark.checks import is_int
from earmark.errors import ConfigError

_worker_ready = False
CONNECT_TIMEOUT_S = 5.0


def _check_reachable(address: str) -> None:
    """Fail fast when nothing listens at a ``HOST:PORT`` or ``ray://HOST:PORT`` address.

    ``ray.init`` retries an unreachable head for minutes before it gives up; one TCP connection
    with a short timeout tells a typo or a stopped cluster at once. ``local`` and ``auto`` are not
    checked (``auto`` finds the address itself).
    """
    import socket

    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if address in ("local", "auto") or not sep or not host or not port.isdigit():
        return  # not HOST:PORT: ray.init says what is wrong with it
    host = host.strip("[]")  # [::1]:6379
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        if isinstance(exc, TimeoutError):
            reason = f"no answer within {CONNECT_TIMEOUT_S:g} s"
        else:
            reason = (exc.strerror or type(exc).__name__).lower()
        raise ConfigError(f"--ray {address}: cannot reach a Ray cluster at {host}:{port} ({reason}); start its "
                          f"head there with `ray start --head`, or check the address") from None


def _run_job(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """A Ray task: prepare this worker process once (as the local pool's initializer does), run ``fn``."""
    global _worker_ready
    if not _worker_ready:
        from earmark.parallel.executor import _init_worker

        _init_worker()
        _worker_ready = True
    return fn(*args, **kwargs)


class RayExecutor(Executor):
    """A :class:`concurrent.futures.Executor` whose jobs run as Ray tasks (one CPU each).

    Parameters
    ----------
    address : str
        ``"local"`` starts a Ray instance on this machine for the executor's lifetime (``num_cpus``
        CPUs); ``"auto"`` joins the cluster this machine belongs to (started with ``ray start``);
        ``"HOST:PORT"`` joins the cluster whose head listens there (GCS port, 6379 by default) and
        ``"ray://HOST:10001"`` goes through the Ray Client. When Ray is already initialised in this
        process (a notebook that called ``ray.init``), that connection is used and left open.
    num_cpus : int, optional
        CPUs of a ``"local"`` instance (default: all cores); ignored for a cluster, whose own CPUs
        decide how many jobs run at once.

    Attributes
    ----------
    n_workers : int
        Jobs the cluster runs at once (its CPUs), used to size chunks of work.

    Raises
    ------
    ConfigError
        Ray is not installed, or no cluster answers at ``address``.

    Notes
    -----
    Exceptions raised by a job reach ``future.result()`` as the job raised them (not wrapped in
    Ray's ``RayTaskError``). ``shutdown(cancel_futures=True)``, and leaving a ``with`` block on an
    error or Ctrl-C, asks Ray to cancel the unfinished tasks and returns without waiting for them
    (Ray's cancellation is best effort; an instance started by the executor is stopped anyway).
    """

    def __init__(self, address: str = "local", *, num_cpus: int | None = None):
        try:
            import ray
        except ImportError:
            raise ConfigError(f"--ray {address}: Ray is not installed (pip install 'earmark[ray]')") from None
        if not isinstance(address, str) or not address.strip():
            raise ConfigError(f"--ray: expected an address (local, auto, HOST:PORT or ray://HOST:PORT), got {address!r}")
        if num_cpus is not None and (not is_int(num_cpus) or num_cpus < 1):
            raise ConfigError(f"--ray {address}: num_cpus must be a positive integer, got {num_cpus!r}")
        self._ray = ray
        self.address = address.strip()
        self._owns_connection = not ray.is_initialized()
        if self._owns_connection:
            options: dict[str, Any] = {"logging_level": logging.WARNING}
            if self.address == "local":
                options.update(num_cpus=num_cpus, include_dashboard=False)
            _check_reachable(self.address)
            try:
                ray.init(address=self.address, **options)
            except Exception as exc:  # ConnectionError, RuntimeError, ValueError... by version and address
                raise ConfigError(f"--ray {self.address}: cannot start or reach a Ray cluster "
                                  f"({type(exc).__name__}: {exc})") from None
        self.n_workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._task = ray.remote(num_cpus=1)(_run_job)
        self._refs: set[Any] = set()  # unfinished tasks only: a finished one's result must not stay pinned
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit a job after shutdown")
            ref = self._task.remote(fn, args, kwargs)
            self._refs.add(ref)
        future: Future = Future()
        ref.future().add_done_callback(lambda done: self._finished(ref, done, future))
        return future

    def _finished(self, ref: Any, done: Future, future: Future) -> None:
        with self._lock:
            self._refs.discard(ref)
        _deliver(done, future)

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.shutdown(wait=True, cancel_futures=exc_type is not None)  # an error or Ctrl-C stops the tasks
        return False

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            refs, self._refs = list(self._refs), set()
        if cancel_futures:
            for ref in refs:
                try:
                    self._ray.cancel(ref)  # best effort: Ray may still finish a task it was starting
                except Exception:  # already finished, or the cluster is gone: nothing left to stop
                    pass
        if wait and refs and not cancel_futures:
            self._ray.wait(refs, num_returns=len(refs))
        if self._owns_connection:
            self._ray.shutdown()


def _deliver(done: Future, future: Future) -> None:
    """Copy a finished Ray future's outcome into ours, unwrapping ``RayTaskError`` to the job's own error."""
    if done.cancelled():
        future.cancel()
        return
    exc = done.exception()
    try:
        if exc is None:
            future.set_result(done.result())
        else:
            cause = getattr(exc, "cause", None)
            future.set_exception(cause if isinstance(cause, BaseException) else exc)
    except InvalidStateError:  # the caller cancelled ours meanwhile
        pass
