"""Helpers shared by the benchmark scripts: run `earmark extract` as a user does, on a settled machine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def settle() -> None:
    """Write back dirty pages (e.g. a reference pipeline's thousands of .npz files) so they do not
    slow the next timed run."""
    os.sync()
    time.sleep(1.0)


def earmark_process(manifest: Path, feature: str, store: Path, jobs: int) -> tuple[float, float]:
    """`earmark extract` as its own process, from start-up to exit, into a fresh store.

    Returns (whole process seconds, seconds inside the extraction as the command reports them).
    """
    shutil.rmtree(store, ignore_errors=True)
    settle()
    cmd = [sys.executable, "-m", "earmark", "extract", str(manifest), "--features", feature, "--store", str(store),
           "--jobs", str(jobs), "--no-progress"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"earmark extract failed:\n{proc.stdout}\n{proc.stderr}")
    inner = float(re.search(r"failed in ([0-9.]+) s", proc.stdout.replace("\n", " ")).group(1))
    return seconds, inner
