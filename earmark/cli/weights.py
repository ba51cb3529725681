"""``earmark weights``: list the known pretrained weights and fetch them into the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from earmark.cli.app import app

weights_app = typer.Typer(
    name="weights",
    help="Pretrained backbone weights: `earmark weights list`, `earmark weights fetch NAME`.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(weights_app, name="weights")

_CACHE_HELP = "Weights cache folder (default: $EARMARK_WEIGHTS_DIR, else ~/.cache/earmark/weights)."


@weights_app.command("list")
def list_command(cache: Optional[Path] = typer.Option(None, "--cache", help=_CACHE_HELP)) -> None:
    """List the known weights, whether each is in the cache, and its path there."""
    from rich.console import Console
    from rich.table import Table

    from earmark.models.pretrained.weights import KNOWN_WEIGHTS, weights_dir

    folder = weights_dir(cache)
    table = Table("name", "cached", "size", "path")
    table.columns[3].overflow = "fold"
    for spec in KNOWN_WEIGHTS.values():
        path = folder / spec.filename
        kept = spec.member_size if spec.member else spec.size  # an archive entry keeps only its member
        size = f"{kept / 2**20:,.0f} MiB" if kept else "?"
        table.add_row(spec.name, "yes" if path.is_file() else "no", size, str(path))
    console = Console()
    console.print(table)
    for spec in KNOWN_WEIGHTS.values():
        console.print(f"{spec.name}: {spec.source}; {spec.url}", highlight=False, soft_wrap=True)
    console.print(f"cache: {folder} (--cache or $EARMARK_WEIGHTS_DIR); fetch with `earmark weights fetch NAME`",
                  highlight=False, soft_wrap=True)


@weights_app.command("fetch")
def fetch_command(
    name: str = typer.Argument(..., help="Known weights name (see `earmark weights list`): cnn14, cnn14_16k, vgg16, resnet50, ge2e."),
    cache: Optional[Path] = typer.Option(None, "--cache", help=_CACHE_HELP),
    url: Optional[str] = typer.Option(None, "--url", help="Download from this address instead (a mirror); the file is checked as the official one."),
    sha256: Optional[str] = typer.Option(None, "--sha256", help="Expect this SHA-256 instead of the official file's (a mirror serving other weights)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Download NAME into the cache, checked (size, SHA-256, and the published MD5 for Zenodo files).

    The download streams into a temporary file in the cache folder and is renamed only after every
    check passed: a cut connection or a checksum mismatch leaves nothing behind, and what a killed
    download left is deleted by the next fetch. A file already in the cache that passes the checks is kept.
    """
    from rich.console import Console

    from earmark.models.pretrained.weights import KNOWN_WEIGHTS, fetch_weights

    path = fetch_weights(name, cache=cache, url=url, sha256=sha256, progress=progress)
    checks = KNOWN_WEIGHTS[name].checks if sha256 is None else f"sha256 {sha256[:12]}..."
    Console().print(f"{name}: {path} ({checks} verified)", highlight=False, soft_wrap=True)
