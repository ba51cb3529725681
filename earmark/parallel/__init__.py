"""Where parallel work runs: core code takes a ``concurrent.futures.Executor`` and never imports Ray."""

from earmark.parallel.executor import InlineExecutor, default_jobs, make_executor

__all__ = ["InlineExecutor", "default_jobs", "make_executor"]
