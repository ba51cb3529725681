"""``earmark features``: list the registered features, their sample rates and parameters."""

from __future__ import annotations

from earmark.cli.app import app


@app.command("features")
def features_command() -> None:
    """List the features `earmark extract --features NAME` accepts, with their rate and default parameters."""
    from rich.console import Console
    from rich.table import Table

    from earmark.features import FEATURES

    table = Table("feature", "sr (Hz)", "parameters (defaults; override with --param KEY=VALUE)", "what")
    for name in FEATURES.names():
        spec = FEATURES.get(name)
        params = ", ".join(f"{k}={v!r}" for k, v in spec.defaults.items())
        doc = (spec.fn.__doc__ or "").strip().splitlines()[0] if spec.fn.__doc__ else ""
        table.add_row(name, str(spec.sr), params, doc)
    Console().print(table)
