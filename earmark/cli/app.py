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
