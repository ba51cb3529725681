"""Atomic writes and what a killed process leaves behind (``earmark.fsutil``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from conftest import music_like
from earmark.audio.stems import separate_files
from earmark.fsutil import _host, atomic_path, remove_stale_temporaries
from earmark.train.options import TrainerOptions
from earmark.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]

# Writes TARGET through atomic_path, says so, and blocks until killed (its stdin is never closed).
WRITER = """
import sys
from earmark.fsutil import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a checkpoint")
    print(tmp, flush=True)
    sys.stdin.read()
"""


def killed_writer(target: Path) -> Path:
    """The temporary file a real process was writing for ``target`` when it was SIGKILLed."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], cwd=REPO, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        tmp = Path(proc.stdout.readline().strip())  # written and announced: now kill it mid-write
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdin.close()
        proc.stdout.close()
    assert tmp.is_file() and not target.exists()
    return tmp


def test_atomic_path_names_its_process_and_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "sub" / "table.v1.csv"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(f".table.v1.csv.{_host()}-{os.getpid()}.")
        assert tmp.name.endswith(".tmp")
        tmp.write_text("a,b\n")
    assert target.read_text() == "a,b\n" and not list(target.parent.glob(".*.tmp"))
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "a,b\n" and not list(target.parent.glob(".*.tmp"))


def test_only_a_dead_local_processes_temporaries_are_removed(tmp_path):
    dead = killed_writer(tmp_path / "checkpoint.pt")
    mine = tmp_path / f".metrics.json.{_host()}-{os.getpid()}.abc123_x.tmp"  # a live process: this one
    foreign = tmp_path / f".checkpoint.pt.{_host()}x-{os.getpid() + 1}.abc123_x.tmp"  # another machine's
    other = tmp_path / ".notes.tmp"  # not named by atomic_path
    for path in (mine, foreign, other):
        path.write_text("keep")
    (tmp_path / "sub").mkdir()
    nested = killed_writer(tmp_path / "sub" / "x.wav")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert not dead.exists() and mine.exists() and foreign.exists() and other.exists() and nested.exists()
    assert remove_stale_temporaries(tmp_path) == []
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_training_and_separation_clear_what_a_killed_run_left(tmp_path, write_audio):
    run = tmp_path / "run"
    run.mkdir()
    stale = killed_writer(run / "checkpoint.pt")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 4, generator=g), torch.arange(48) % 3
    Trainer(nn.Linear(4, 3), TrainerOptions(epochs=1, batch_size=16), out_dir=run, progress=False).fit(TensorDataset(x, y))
    assert not stale.exists() and (run / "checkpoint.pt").is_file() and not list(run.glob(".*.tmp"))

    out = tmp_path / "stems"
    stale = killed_writer(out / "song.vocals.wav")
    song = write_audio("song.wav", np.tile(music_like(16000, 0.5, seed=1), 4), 16000)
    report = separate_files([song], out, jobs=1)
    assert len(report.outputs) == 1 and not stale.exists() and not list(out.glob(".*.tmp"))
