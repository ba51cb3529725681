"""Built-in synthetic music dataset for ``earmark demo``: five instrument-like families in numpy.

Every clip is one note with a random pitch (family-typical range), envelope, peak level
(-20 to -1 dBFS) and noise (20-50 dB SNR plus family noise such as breath), so a classifier on
MFCC statistics has a real but learnable task. Generation is deterministic: clip ``i`` of family
``f`` uses ``np.random.default_rng([seed, FAMILIES.index(f), i])``, whatever the order or subset.
"""

from __future__ import annotations

import csv
import difflib
import json
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from earmark.errors import ConfigError

FAMILIES = ("plucked", "bowed", "blown", "struck", "organ")
#: Bump when the synthesis changes, so that cached demo folders are regenerated.
GENERATOR_VERSION = 1
_SPLIT_STREAM = 2**32 - 1  # third seed word of the split rng; clip indices never reach it
_TEST_FRACTION = 0.3
# Hammond drawbar footages 16', 5 1/3', 8', 4', 2 2/3', 2', 1 3/5', 1 1/3', 1' as multiples of f0.
_DRAWBAR_RATIOS = np.array([0.5, 1.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0])
_REGISTRATIONS = ("888000000", "838000000", "008888000", "886000004", "808000008", "888888888")
_BAR_RATIOS = np.array([1.0, 2.76, 5.40, 8.93, 13.34])  # free bar / mallet modes


def _n_samples(sr: int, duration: float) -> int:
    return int(round(sr * duration))


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _envelope(rng, n, sr, *, attack, decay, sustain, release) -> np.ndarray:
    """Piecewise-linear ADSR over ``n`` samples with a random onset and note-off, shape ``(n,)``.

    ``attack``, ``decay``, ``sustain``, ``release`` are ``(low, high)`` ranges (seconds, or level
    for ``sustain``), each drawn once per note.
    """
    dur = n / sr
    a, d, s, r = (rng.uniform(*x) for x in (attack, decay, sustain, release))
    onset = rng.uniform(0.0, 0.05 * dur)
    off = max(rng.uniform(0.6, 0.9) * dur - r, onset + a + d)
    xp = np.array([onset, onset + a, onset + a + d, off, off + r])
    return np.interp(np.arange(n) / sr, xp, [0.0, 1.0, s, s, 0.0]).astype(np.float64)


def _noise(rng, n, sr, band=None) -> np.ndarray:
    """White (or band-passed, ``band=(lo_hz, hi_hz)``) unit-RMS noise, shape ``(n,)``."""
    w = rng.standard_normal(n)
    if band is not None:
        sos = signal.butter(2, [band[0], min(band[1], 0.45 * sr)], btype="bandpass", fs=sr, output="sos")
        w = signal.sosfilt(sos, w)
    return w / (np.sqrt(np.mean(w**2)) + 1e-12)


def _rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(y**2)) + 1e-12)


def _harmonics(sr, n, f_inst, numbers, amps, rng) -> np.ndarray:
    """Sum of ``amps[j] * sin(numbers[j] * phase + random offset)``, band-limited, shape ``(n,)``.

    ``phase`` integrates ``f_inst`` (Hz, scalar or ``(n,)``); ``numbers`` are positive integer
    multiples of it. Partials whose highest frequency reaches 0.45 * ``sr`` are dropped. Powers of
    ``exp(1j * phase)`` are built by repeated multiplication, ten times faster than ``np.sin``.
    """
    f_inst = np.broadcast_to(np.asarray(f_inst, dtype=np.float64), (n,))
    numbers = np.asarray(numbers, dtype=np.int64)
    keep = (numbers * f_inst.max() < 0.45 * sr) & (amps > 0)
    numbers, amps = numbers[keep], amps[keep]
    coef = np.zeros(int(numbers.max(initial=0)) + 1, dtype=np.complex128)
    np.add.at(coef, numbers, amps * np.exp(1j * rng.uniform(0, 2 * np.pi, numbers.size)))
    z = np.exp(2j * np.pi * np.cumsum(f_inst) / sr)
    zk, acc = z.copy(), np.zeros(n, dtype=np.complex128)
    for c in coef[1:]:
        if c != 0:
            acc += c * zk
        zk *= z
    return acc.imag


def synth_plucked(*, sr: int, duration: float, rng: np.random.Generator) -> np.ndarray:
    """Karplus-Strong string: a noise burst in a damped comb filter; sharp attack, exp. decay.

    Returns the dry note, float64, shape ``(round(sr * duration),)``.
    """
    n = _n_samples(sr, duration)
    f0 = _log_uniform(rng, 82.0, 660.0)
    period = max(int(round(sr / f0 - 0.5)), 2)  # the two-tap average adds half a sample of delay
    t60 = rng.uniform(0.6, 3.0)
    g = 10 ** (-3.0 / (t60 * sr / period))  # loss per trip round the loop
    burst = rng.uniform(-1, 1, period)
    burst = signal.lfilter([1 - (c := rng.uniform(0.0, 0.7))], [1, -c], burst)  # pluck brightness
    x = np.zeros(n)
    x[:period] = burst
    a = np.zeros(period + 2)
    a[0], a[period], a[period + 1] = 1.0, -g / 2, -g / 2
    y = signal.lfilter([1.0], a, x)
    env = _envelope(rng, n, sr, attack=(0.0005, 0.003), decay=(0.0, 0.0), sustain=(1, 1), release=(0.03, 0.15))
    return y * env


def synth_bowed(*, sr: int, duration: float, rng: np.random.Generator) -> np.ndarray:
    """Band-limited sawtooth-like partials with 5-7 Hz vibrato; slow attack, sustained."""
    n = _n_samples(sr, duration)
    t = np.arange(n) / sr
    f0 = _log_uniform(rng, 100.0, 900.0)
    depth = rng.uniform(0.002, 0.012) * np.clip((t - rng.uniform(0.1, 0.4)) / 0.3, 0, 1)
    f_inst = f0 * (1 + depth * np.sin(2 * np.pi * rng.uniform(5.0, 7.0) * t + rng.uniform(0, 2 * np.pi)))
    k = np.arange(1, 41, dtype=np.float64)
    amps = k ** -rng.uniform(0.8, 1.4) * np.exp(0.3 * rng.standard_normal(k.size))  # body resonances
    env = _envelope(rng, n, sr, attack=(0.08, 0.35), decay=(0.05, 0.2), sustain=(0.6, 0.95), release=(0.1, 0.3))
    y = _harmonics(sr, n, f_inst, k, amps, rng)
    bow = _noise(rng, n, sr, band=(2000.0, 7000.0)) * _rms(y) * 10 ** (-rng.uniform(25, 40) / 20)
    return (y + bow) * env


def synth_blown(*, sr: int, duration: float, rng: np.random.Generator) -> np.ndarray:
    """Clarinet-like odd harmonics or flute-like few harmonics, plus breath noise; moderate attack."""
    n = _n_samples(sr, duration)
    t = np.arange(n) / sr
    f0 = _log_uniform(rng, 150.0, 1100.0)
    if rng.random() < 0.5:  # clarinet: odd harmonics, weak even ones
        k = np.arange(1, 26, dtype=np.float64)
        amps = np.where(k % 2 == 1, 1.0, rng.uniform(0.02, 0.15)) / k ** rng.uniform(0.9, 1.5)
        breath_db = rng.uniform(-32, -20)
    else:  # flute: a strong fundamental and a few weak harmonics
        k = np.arange(1, 5, dtype=np.float64)
        amps = np.array([1.0, rng.uniform(0.1, 0.5), rng.uniform(0.02, 0.2), rng.uniform(0.0, 0.1)])
        breath_db = rng.uniform(-24, -12)
    tremolo = 1 + rng.uniform(0.0, 0.05) * np.sin(2 * np.pi * rng.uniform(4.0, 6.0) * t)
    y = _harmonics(sr, n, f0, k, amps, rng) * tremolo
    env = _envelope(rng, n, sr, attack=(0.03, 0.12), decay=(0.02, 0.1), sustain=(0.7, 1.0), release=(0.05, 0.15))
    lo = rng.uniform(800.0, 2500.0)
    breath = _noise(rng, n, sr, band=(lo, 2.5 * lo)) * _rms(y) * 10 ** (breath_db / 20)
    return (y + breath) * env


def synth_struck(*, sr: int, duration: float, rng: np.random.Generator) -> np.ndarray:
    """Inharmonic bar/bell partials (stretched 1, 2.76, 5.40, ...) each with its own fast decay."""
    n = _n_samples(sr, duration)
    t = np.arange(n) / sr
    f0 = _log_uniform(rng, 150.0, 1200.0)
    ratios = _BAR_RATIOS ** rng.uniform(0.95, 1.05) * (1 + 0.01 * rng.standard_normal(_BAR_RATIOS.size))
    ratios[0] = 1.0
    amps = np.concatenate([[1.0], rng.uniform(0.1, 0.8, ratios.size - 1)])
    tau = rng.uniform(0.3, 1.5) / ratios ** rng.uniform(0.5, 1.0)  # higher modes die faster
    keep = ratios * f0 < 0.45 * sr
    ratios, amps, tau = ratios[keep], amps[keep], tau[keep]
    modes = np.sin(2 * np.pi * f0 * ratios[:, None] * t + rng.uniform(0, 2 * np.pi, (ratios.size, 1)))
    y = (amps[:, None] * np.exp(-t / tau[:, None]) * modes).sum(axis=0)
    click = _noise(rng, n, sr) * np.exp(-t / rng.uniform(0.002, 0.008)) * rng.uniform(0.05, 0.3)
    env = _envelope(rng, n, sr, attack=(0.0003, 0.002), decay=(0.0, 0.0), sustain=(1, 1), release=(0.05, 0.2))
    onset = int(np.argmax(env > 0))  # the decays start when the mallet hits
    return np.concatenate([np.zeros(onset), (y + click)[: n - onset]]) * env


def synth_organ(*, sr: int, duration: float, rng: np.random.Generator) -> np.ndarray:
    """Additive drawbar harmonics (a fixed registration); instant attack, flat sustain, no vibrato."""
    n = _n_samples(sr, duration)
    f0 = _log_uniform(rng, 65.0, 1000.0)
    bars = np.array([int(c) for c in _REGISTRATIONS[rng.integers(len(_REGISTRATIONS))]])
    amps = np.where(bars > 0, 10 ** (-3.0 * (8 - bars) / 20), 0.0)  # 3 dB per drawbar step
    y = _harmonics(sr, n, f0 / 2, 2 * _DRAWBAR_RATIOS, amps, rng)  # 16' is f0 / 2
    env = _envelope(rng, n, sr, attack=(0.001, 0.006), decay=(0.0, 0.0), sustain=(1, 1), release=(0.01, 0.05))
    return y * env


_GENERATORS = {
    "plucked": synth_plucked,
    "bowed": synth_bowed,
    "blown": synth_blown,
    "struck": synth_struck,
    "organ": synth_organ,
}


def _check_family(family: str) -> int:
    if family not in FAMILIES:
        close = difflib.get_close_matches(str(family), FAMILIES, n=2)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"family: expected one of {', '.join(FAMILIES)}, got {family!r}{hint}")
    return FAMILIES.index(family)


def synth_note(family: str, *, sr: int, duration: float, rng: np.random.Generator) -> np.ndarray:
    """Synthesise one random note of an instrument-like ``family``, with level and noise applied.

    Parameters
    ----------
    family : str
        One of :data:`FAMILIES`.
    sr : int
        Sample rate in Hz (at least 8000).
    duration : float
        Clip length in seconds (the note starts in the first 5 % and ends before the clip does).
    rng : numpy.random.Generator
        Source of every random choice (pitch, envelope, timbre, level, noise).

    Returns
    -------
    numpy.ndarray
        float32 waveform, shape ``(round(sr * duration),)``, peak between -20 and -1 dBFS.
    """
    _check_family(family)
    if sr < 8000 or duration <= 0:
        raise ConfigError(f"synth_note: expected sr >= 8000 and duration > 0, got sr={sr}, duration={duration}")
    y = _GENERATORS[family](sr=sr, duration=duration, rng=rng)
    y = y + _noise(rng, y.size, sr) * _rms(y) * 10 ** (-rng.uniform(20.0, 50.0) / 20)
    y *= 10 ** (rng.uniform(-20.0, -1.0) / 20) / (np.max(np.abs(y)) + 1e-12)
    return y.astype(np.float32)


def _params(n_per_class, sr, duration, seed, families) -> dict:
    return {"version": GENERATOR_VERSION, "n_per_class": int(n_per_class), "sr": int(sr),
            "duration": float(duration), "seed": int(seed), "families": list(families)}


def _is_complete(out_dir: Path, params: dict) -> bool:
    try:
        if json.loads((out_dir / "demo.json").read_text()) != params:
            return False
        with open(out_dir / "manifest.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError):
        return False
    return len(rows) == params["n_per_class"] * len(params["families"]) and all(
        (out_dir / r["path"]).is_file() for r in rows)


def make_demo_dataset(out_dir, *, n_per_class: int = 60, sr: int = 16000, duration: float = 2.0,
                      seed: int = 0, families=None) -> Path:
    """Write the synthetic demo dataset and its manifest; skip if ``out_dir`` already holds it.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Folder to write into; created if missing.
    n_per_class : int, default 60
        Clips per family (at least 2, so each family has a train and a test clip).
    sr : int, default 16000
        Sample rate in Hz.
    duration : float, default 2.0
        Clip length in seconds.
    seed : int, default 0
        Non-negative seed; the same seed gives byte-identical files.
    families : sequence of str, optional
        Subset of :data:`FAMILIES` (default all). A family's clips do not depend on the others.

    Returns
    -------
    pathlib.Path
        ``out_dir/manifest.csv`` with columns ``id,path,label,split,group``: paths relative to
        ``out_dir`` (``plucked/plucked_000.wav``), ``label`` the family, ``group`` the id, and a
        per-family stratified 70/30 ``train``/``test`` split drawn from the seed.

    Notes
    -----
    ``out_dir/demo.json`` (the parameters) is written last; a folder whose ``demo.json`` matches
    and whose manifest and files are all present is reused as is.
    """
    families = tuple(FAMILIES if families is None else families)
    indices = [_check_family(f) for f in families]
    if not families or len(set(families)) != len(families):
        raise ConfigError(f"families: expected distinct names from {FAMILIES}, got {families}")
    if int(n_per_class) != n_per_class or n_per_class < 2:
        raise ConfigError(f"n_per_class: expected an integer >= 2, got {n_per_class!r}")
    if int(seed) != seed or seed < 0:
        raise ConfigError(f"seed: expected a non-negative integer, got {seed!r}")
    out_dir = Path(out_dir)
    params = _params(n_per_class, sr, duration, seed, families)
    manifest = out_dir / "manifest.csv"
    if _is_complete(out_dir, params):
        return manifest
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "demo.json").unlink(missing_ok=True)  # an interrupted rewrite must not look complete
    n_test = max(1, int(round(_TEST_FRACTION * n_per_class)))
    rows = []
    for family, fi in zip(families, indices):
        (out_dir / family).mkdir(exist_ok=True)
        wanted = {f"{family}_{i:03d}.wav" for i in range(n_per_class)}
        for stale in (out_dir / family).glob(f"{family}_[0-9][0-9][0-9]*.wav"):
            if stale.name not in wanted:
                stale.unlink()
        test = set(np.random.default_rng([seed, fi, _SPLIT_STREAM]).permutation(n_per_class)[:n_test].tolist())
        for i in range(n_per_class):
            y = synth_note(family, sr=sr, duration=duration, rng=np.random.default_rng([seed, fi, i]))
            rel = f"{family}/{family}_{i:03d}.wav"
            sf.write(out_dir / rel, y, sr, subtype="PCM_16", format="WAV")
            clip_id = f"{family}_{i:03d}"
            rows.append({"id": clip_id, "path": rel, "label": family,
                         "split": "test" if i in test else "train", "group": clip_id})
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "path", "label", "split", "group"])
        writer.writeheader()
        writer.writerows(rows)
    (out_dir / "demo.json").write_text(json.dumps(params, indent=2) + "\n")
    return manifest
