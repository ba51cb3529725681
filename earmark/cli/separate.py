"""``earmark separate``: split audio files into vocals and accompaniment."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from earmark.cli.app import RAY_HELP, app, parse_assignments, print_failures


@app.command("separate")
def separate_command(
    inputs: list[Path] = typer.Argument(..., help="Audio files and folders (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: NAME.vocals.wav and NAME.accompaniment.wav per input."),
    method: str = typer.Option("repet", "--method", "-m", help="repet (built in, no weights), demucs or spleeter (`pip install demucs` / `spleeter`)."),
    param: Optional[list[str]] = typer.Option(None, "--param", "-p", help="Method parameter KEY=VALUE (repeatable), e.g. -p margin_v=2 -p hpss=before."),
    sr: Optional[int] = typer.Option(None, "--sr", help="Separate and write at this rate (Hz); default: each file's own rate."),
    float32: bool = typer.Option(False, "--float32", help="Write 32-bit float WAV instead of 16-bit PCM."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Worker processes; 0 = all cores, 1 = in this process (with --ray local: the local Ray instance's CPUs)."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help=RAY_HELP + " Inputs and OUT must be visible to every node."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Separate every file again, even those OUT/separated.jsonl says are done."),
) -> None:
    """Separate the vocals of every INPUT into OUT/NAME.vocals.wav and OUT/NAME.accompaniment.wav.

    NAME is a file's name without extension, or its path relative to a folder given as input. Audio
    is downmixed to mono; vocals + accompaniment = the mono mixture (repet). Files are written
    atomically. Files that cannot be decoded or separated are listed and skipped; the exit status is
    1 when any failed, 0 otherwise.

    Resumable: each finished file gets a line in OUT/separated.jsonl (its source path, size and
    modification time, and the method, parameters, --sr and --float32), so a rerun -- after a kill,
    say -- skips the files already separated with the same source and settings whose two WAVs are
    still there unchanged, and separates the rest: new or changed files, other settings, deleted outputs, and
    the files that failed. --overwrite separates everything again. One run at a time writes OUT:
    a second one into the same folder stops at once (exit 1).
    """
    from rich.console import Console

    from earmark.audio.separate import separate_files

    console = Console()
    options = dict(method=method, params=parse_assignments(param, "--param"), sr=sr,
                   subtype="FLOAT" if float32 else "PCM_16", progress=progress, overwrite=overwrite)
    if ray is None:
        report = separate_files(inputs, out, jobs=jobs, **options)
    else:
        from earmark.parallel import make_executor

        with make_executor(jobs, ray=ray) as executor:
            report = separate_files(inputs, out, executor=executor, **options)
    console.print(
        f"separate ({method}): {report.n_files} files, {len(report.outputs)} separated, "
        f"{report.n_skipped} already separated, {len(report.failures)} failed in {report.seconds:.1f} s"
        + (f" ({report.realtime_factor:,.1f}x real time)" if report.outputs else "")
    )
    console.print(f"output: {out}", highlight=False)
    if report.failures:
        print_failures(console, report.failures, "file")
        raise typer.Exit(1)
