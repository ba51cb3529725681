"""Where parallel work runs: core code takes a ``concurrent.futures.Executor`` and never imports Ray."""

from earmark.parallel.executor import InlineExecutor, as_finished, default_jobs, make_executor, n_workers

__all__ = ["InlineExecutor", "as_finished", "default_jobs", "make_executor", "n_workers"]
