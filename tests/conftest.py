"""Shared fixtures: every test writes its own real audio files."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

# Numba's on-disk cache is not safe to fill from several processes at once: two pytest-xdist
# workers compiling one of librosa's cached gufuncs together (librosa.cqt -> estimate_tuning ->
# piptrack's _parabolic_interpolation, in the reference comparisons) can write a wrapper and a
# kernel that do not match, and the next call segfaults (numba/numba#10128, open). Each worker
# gets its own cache folder (kept between runs, one set per virtual environment) before anything
# imports numba (set, not defaulted: workers inherit the controller's environment); subprocesses
# the tests start inherit it.
os.environ["NUMBA_CACHE_DIR"] = str(
    Path(tempfile.gettempdir())
    / "earmark-tests-numba"
    / hashlib.sha256(sys.prefix.encode()).hexdigest()[:12]
    / os.environ.get("PYTEST_XDIST_WORKER", "main")
)

import numpy as np
import pytest
import soundfile as sf


def music_like(sr: int = 16000, duration: float = 1.0, f0: float = 220.0, seed: int = 0) -> np.ndarray:
    """A harmonic tone with vibrato, a decaying envelope and a little noise, float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(sr * duration))) / sr
    phase = 2 * np.pi * f0 * t + 0.3 * np.sin(2 * np.pi * 5.0 * t)
    y = sum((0.6 / k) * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) for k in range(1, 8))
    y = y * np.exp(-1.5 * t) + 0.01 * rng.standard_normal(t.size)
    return (0.8 * y / np.max(np.abs(y))).astype(np.float32)


@pytest.fixture
def write_audio(tmp_path: Path):
    """``write_audio(name, y, sr, **soundfile_kw) -> Path``: write a real file under tmp_path."""

    def _write(name: str, y: np.ndarray, sr: int, **kw) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.asarray(y).T if np.ndim(y) > 1 else y, sr, **kw)
        return path

    return _write


_BANDS = (slice(0, 5), slice(5, 10), slice(10, 16))


def spectrograms(n: int = 48, *, seed: int = 0, frames: int = 40, bins: int = 16):
    """3 classes of noisy (frames, bins) 'spectrograms' whose energy sits in different bins."""
    rng = np.random.default_rng(seed)
    y = np.array(["bass", "brass", "flute"])[np.arange(n) % 3]
    X = rng.normal(0.0, 1.0, (n, frames, bins)).astype(np.float32)
    for i in range(n):
        X[i, :, _BANDS[i % 3]] += 2.0
    return X, y
