"""Helpers shared by the benchmark scripts: run `earmark extract` as a user does, on a settled machine."""

from __future__ import annotations

import argparse
import compileall
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def settle() -> None:
    """Write back dirty pages (e.g. a reference pipeline's thousands of .npz files) so they do not
    slow the next timed run."""
    os.sync()
    time.sleep(1.0)


def earmark_process(manifest: Path, feature: str, store: Path, jobs: int, ray: str | None = None) -> tuple[float, float]:
    """`earmark extract` as its own process, from start-up to exit, into a fresh store (``ray``: with
    ``--ray ADDRESS``).

    Returns (whole process seconds, seconds inside the extraction as the command reports them).
    """
    shutil.rmtree(store, ignore_errors=True)
    # Byte-compile earmark as `pip install` does for an installed package: an editable checkout run with
    # PYTHONDONTWRITEBYTECODE=1 (as on the development VM) would otherwise compile it at every start.
    compileall.compile_dir(REPO / "earmark", quiet=1)
    settle()
    cmd = [sys.executable, "-m", "earmark", "extract", str(manifest), "--features", feature, "--store", str(store),
           "--jobs", str(jobs), "--no-progress"] + (["--ray", ray] if ray else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"earmark extract failed:\n{proc.stdout}\n{proc.stderr}")
    inner = float(re.search(r"failed in ([0-9.]+) s", proc.stdout.replace("\n", " ")).group(1))
    return seconds, inner


# --------------------------------------------------------------------------- the benchdata tasks
# Manifests for the development sets rendered by ../shared/benchdata (default /work/bench-data): each task
# tests on audio never heard in training (another sound font, other pieces, other voices).


def family_manifest(bench: Path, out: Path) -> Path:
    import pandas as pd

    from earmark.data import Manifest, prepare

    train_m = prepare("nsynth", bench / "gm-notes-fluidr3", target="instrument_family")
    test_m = prepare("nsynth", bench / "gm-notes-musescore", target="instrument_family")
    frames = []
    for m, split in ((train_m, "train"), (test_m, "test")):
        df = m.df.copy()
        df["path"] = m.paths()
        df["split"] = split
        frames.append(df)
    path = out / "family.csv"
    Manifest.from_frame(pd.concat(frames, ignore_index=True), out).write(path)
    return path


def styles_manifest(bench: Path, out: Path) -> Path:
    from earmark.data import prepare

    return prepare("fma", bench / "styles", out=out / "styles.csv").root / "styles.csv"


def vocal_manifest(bench: Path, out: Path) -> Path:
    from earmark.data import prepare

    path = out / "vocal.csv"
    prepare("csv", bench / "vocal-gender" / "labels.csv", out=path, path_col="file", group_col="voice_ids")
    return path


TASKS = {
    "family": (family_manifest, "test", "gm-notes-fluidr3 -> gm-notes-musescore (unseen recordings), 11 families"),
    "styles": (styles_manifest, "test", "styles, train pieces -> test pieces, 6 classes"),
    "vocal": (vocal_manifest, "val", "vocal-gender, train voices -> unseen val voices, 4 classes"),
}


def ge2e_partials(spec: str) -> tuple[float, float, str]:
    """``--partials`` values (argparse ``type``): ``SECONDS:RATE[:WEIGHTING]`` -> (partial, rate, weighting)."""
    parts = spec.split(":")
    try:
        if len(parts) > 3:
            raise ValueError(spec)
        return float(parts[0]), float(parts[1]), (parts[2:] or ["equal"])[0]
    except (IndexError, ValueError):
        raise argparse.ArgumentTypeError(f"expected SECONDS:RATE[:WEIGHTING], e.g. 0.6:5:energy, got {spec!r}") from None
