"""``earmark serve``: a web page and a JSON API over a trained run (FastAPI + uvicorn)."""

from __future__ import annotations

from pathlib import Path

import typer

from earmark.cli.app import app


@app.command("serve")
def serve_command(
    run: Path = typer.Argument(..., help="Run folder written by `earmark train` (or a fusion, `earmark fuse`)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    max_mb: float = typer.Option(50.0, "--max-mb", help="Largest upload accepted, in MB (larger: HTTP 413)."),
    top_k: int = typer.Option(5, "--top-k", help="Labels (with probabilities) returned per file."),
) -> None:
    """Serve RUN: open http://HOST:PORT/ and drop an audio file on the page to see its top labels and
    spectrogram; programs POST a multipart file field `file` to /api/predict (JSON back).
    Other endpoints: GET /api/info, GET /healthz, GET /api/openapi.json."""
    import uvicorn
    from rich.console import Console

    from earmark.serve import create_app

    application = create_app(run, max_mb=max_mb, top_k=top_k)  # the model is loaded once, here
    Console().print(f"serving {run} on http://{host}:{port}/  (Ctrl+C stops)", highlight=False, soft_wrap=True)
    uvicorn.run(application, host=host, port=port, log_level="info")
