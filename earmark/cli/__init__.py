"""Command-line interface: ``earmark --help`` lists the commands; each is a thin wrapper over a library call."""

from __future__ import annotations

import gc
import sys

import typer

from earmark.cli.app import app
from earmark.cli import compare, demo, evaluate, export, extract, features, predict, prepare, report, train  # noqa: F401  (register commands)
from earmark.cli import plot, serve  # noqa: F401  (register `earmark plot` / `earmark serve`)
from earmark.cli import weights  # noqa: F401  (register `earmark weights list` / `earmark weights fetch`)
from earmark.cli import separate  # noqa: F401  (register `earmark separate`)
from earmark.cli import tune  # noqa: F401  (register `earmark tune`)
from earmark.cli import fuse  # noqa: F401  (register `earmark fuse`)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``earmark`` console script; earmark's own errors print as one line, not a traceback."""
    from rich.console import Console

    from earmark.errors import ConfigError, EarmarkError

    try:
        # standalone_mode=False: click returns typer.Exit codes instead of calling sys.exit
        result = app(args=argv, standalone_mode=False)
    except EarmarkError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted; finished work is kept")
        return 130
    except typer.Abort:
        return 130
    except typer.exceptions.TyperException as exc:  # usage errors (bad option, missing argument)
        if hasattr(exc, "show"):
            exc.show()
        return int(getattr(exc, "exit_code", 2))
    return result if isinstance(result, int) else 0


def console_main() -> int:
    """The ``earmark`` console script and ``python -m earmark``: :func:`main`, then a quick exit.

    Once a command has returned, everything it wrote is closed. The interpreter's last garbage
    collection would still walk every object alive, torch's import-time objects above all: 0.3-0.5 s
    of the wall time of every command that imports torch, on the 2-core development VM. Frozen
    objects are skipped by it (their memory goes back to the OS with the process). Not done in
    :func:`main`, which tests and other programs call in-process.
    """
    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(console_main())
