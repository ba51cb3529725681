"""The ``earmark`` Typer application; each command lives in its own module of this package."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="earmark",
    help=(
        "Music-audio classification: from a folder of clips and labels to a trained, evaluated classifier.\n\n"
        "Pipeline: prepare (dataset -> manifest) -> extract (features -> store) -> train -> evaluate -> predict."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

RAY_HELP = ("Run the jobs on a Ray cluster (pip install 'earmark\\[ray]'): local (start one on this machine), "
            "auto (the cluster this machine joined with `ray start`), HOST:PORT or ray://HOST:10001.")


def parse_assignments(items: list[str] | None, what: str) -> dict[str, object]:
    """``["n_mels=64", "fmax=8000"]`` -> ``{"n_mels": 64, "fmax": 8000}`` (values parsed as YAML scalars)."""
    import yaml

    from earmark.errors import ConfigError

    out: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what}: expected KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def print_failures(console, failures: list[tuple[str, str]], what: str, *, listed_in: str | None = None,
                   limit: int = 20) -> None:
    """Name the first ``limit`` failed inputs ``(path, reason)`` and count the rest (extract, separate)."""
    where = f" (all listed in {listed_in})" if listed_in else ""
    console.print(f"[bold red]{len(failures)} {what}(s) failed[/]{where}:")
    for path, reason in failures[:limit]:
        console.print(f"  {path}: {reason}", highlight=False, soft_wrap=True)
    if len(failures) > limit:
        console.print(f"  ... and {len(failures) - limit} more")
