"""Speed of the FMA statistics (``stats518``): `earmark extract` against FMA's own librosa code.

Measures, in one run and on the same files (page cache warm for both):

* the reference: FMA's ``compute_features`` (``features.py`` of the FMA repository) as its users
  run it, one process, a loop over the clips: ``librosa.load(sr=None)``, then one librosa call per
  feature (zcr; ``cqt(tuning=None)`` shared by chroma_cqt / chroma_cens / tonnetz; ``stft`` shared
  by chroma_stft, rms, centroid, bandwidth, contrast, rolloff, mel -> mfcc) and the seven
  ``scipy.stats``-style statistics. librosa's import and its first call (numba compilation) are
  excluded: one warm-up clip runs before the clock starts;
* `earmark extract MANIFEST --features stats518` as its own process with ``--jobs`` workers
  (default 0 = all cores): the whole process (start-up, imports, decoding, features, store) and
  the extraction alone as the command reports it (``... failed in X s``);
* in this process, one thread: milliseconds per 30 s clip of ``stats518`` and ``artist_stats``
  against the plain librosa implementations (FMA's code; for artist_stats each feature from ``y``);
* the agreement of the stored values with the reference: the largest difference relative to the
  largest magnitude of the same feature block, and the lowest correlation of a block's statistics.

Clips: the styles set under /work/bench-data/styles/audio when it exists (10 s, 22.05 kHz renders
of real scores; all 600 by default), else N synthetic music-like 30 s clips written under --data.
Usage::

    .venv/bin/python benchmarks/stats_speed.py                 # full run
    .venv/bin/python benchmarks/stats_speed.py --n 60          # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import earmark_process, settle  # noqa: E402

STYLES = Path("/work/bench-data/styles/audio")
FMA_ORDER = ("chroma_cens", "chroma_cqt", "chroma_stft", "mfcc", "rmse", "spectral_bandwidth",
             "spectral_centroid", "spectral_contrast", "spectral_rolloff", "tonnetz", "zcr")
FMA_SIZES = {"chroma_cens": 12, "chroma_cqt": 12, "chroma_stft": 12, "mfcc": 20, "rmse": 1, "spectral_bandwidth": 1,
             "spectral_centroid": 1, "spectral_contrast": 7, "spectral_rolloff": 1, "tonnetz": 6, "zcr": 1}
STATS = ("kurtosis", "max", "mean", "median", "min", "skew", "std")


def synth(sr: int, duration: float, seed: int) -> np.ndarray:
    """Chords of harmonic notes that change every second, with vibrato, clicks and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * duration)) / sr
    y = 0.02 * rng.standard_normal(t.size)
    for start in range(int(duration)):
        seg = slice(start * sr, (start + 1) * sr)
        tt = t[: sr]
        for semis in rng.choice(24, size=3, replace=False):
            f0 = 110.0 * 2 ** (semis / 12)
            phase = 2 * np.pi * f0 * tt + 0.2 * np.sin(2 * np.pi * 5 * tt)
            y[seg] += np.exp(-2 * tt) * sum(np.sin(k * phase) / k for k in range(1, 7))
    y[:: sr // 2][: int(2 * duration)] += 1.0
    return (0.7 * y / np.abs(y).max()).astype(np.float32)


def make_manifest(folder: Path, n: int | None) -> tuple[Path, float]:
    """A manifest of the styles clips (absolute paths) or of synthetic 30 s clips; (path, seconds per clip)."""
    from earmark.data import Manifest

    folder.mkdir(parents=True, exist_ok=True)
    if STYLES.is_dir():
        paths = sorted(str(p) for p in STYLES.rglob("*.wav"))[: n or None]
        clip_s = sf.info(paths[0]).duration
        tag = "styles"
    else:
        n = n or 60
        paths, clip_s, tag = [], 30.0, "synth"
        for i in range(n):
            p = folder / "audio" / f"{i:05d}.wav"
            if not p.exists():
                p.parent.mkdir(parents=True, exist_ok=True)
                sf.write(p, synth(22050, clip_s, i), 22050, subtype="PCM_16")
            paths.append(str(p))
    rows = [{"id": f"{i:05d}", "path": p, "label": "x"} for i, p in enumerate(paths)]
    manifest = folder / f"manifest-{tag}-{len(rows)}.csv"
    Manifest.from_frame(pd.DataFrame(rows), folder).write(manifest)
    return manifest, clip_s


def fma_compute_features(x: np.ndarray, sr: int) -> np.ndarray:
    """FMA's compute_features (features.py), values in features.csv column order."""
    import librosa
    import scipy.stats

    features: dict[tuple[str, str], np.ndarray] = {}

    def feature_stats(name, values):
        features[name, "mean"] = np.mean(values, axis=1)
        features[name, "std"] = np.std(values, axis=1)
        features[name, "skew"] = scipy.stats.skew(values, axis=1)
        features[name, "kurtosis"] = scipy.stats.kurtosis(values, axis=1)
        features[name, "median"] = np.median(values, axis=1)
        features[name, "min"] = np.min(values, axis=1)
        features[name, "max"] = np.max(values, axis=1)

    f = librosa.feature.zero_crossing_rate(x, frame_length=2048, hop_length=512)
    feature_stats("zcr", f)
    cqt = np.abs(librosa.cqt(x, sr=sr, hop_length=512, bins_per_octave=12, n_bins=7 * 12, tuning=None))
    f = librosa.feature.chroma_cqt(C=cqt, n_chroma=12, n_octaves=7)
    feature_stats("chroma_cqt", f)
    f = librosa.feature.chroma_cens(C=cqt, n_chroma=12, n_octaves=7)
    feature_stats("chroma_cens", f)
    f = librosa.feature.tonnetz(chroma=f)
    feature_stats("tonnetz", f)
    del cqt
    stft = np.abs(librosa.stft(x, n_fft=2048, hop_length=512))
    f = librosa.feature.chroma_stft(S=stft**2, n_chroma=12)
    feature_stats("chroma_stft", f)
    f = librosa.feature.rms(S=stft)
    feature_stats("rmse", f)
    f = librosa.feature.spectral_centroid(S=stft)
    feature_stats("spectral_centroid", f)
    f = librosa.feature.spectral_bandwidth(S=stft)
    feature_stats("spectral_bandwidth", f)
    f = librosa.feature.spectral_contrast(S=stft, n_bands=6)
    feature_stats("spectral_contrast", f)
    f = librosa.feature.spectral_rolloff(S=stft)
    feature_stats("spectral_rolloff", f)
    mel = librosa.feature.melspectrogram(sr=sr, S=stft**2)
    del stft
    f = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=20)
    feature_stats("mfcc", f)
    return np.concatenate([features[name, s] for name in FMA_ORDER for s in STATS])


def artist_plain(y: np.ndarray, sr: int) -> np.ndarray:
    """The artist20 set as a user writes it: every librosa feature from y, mean / std / max / min, tempo."""
    import librosa

    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=128), ref=np.max)
    rows = [mfcc, librosa.feature.delta(mfcc), librosa.feature.delta(mfcc, order=2), mel,
            librosa.feature.spectral_centroid(y=y, sr=sr), librosa.feature.spectral_bandwidth(y=y, sr=sr),
            librosa.feature.spectral_rolloff(y=y, sr=sr), librosa.feature.spectral_contrast(y=y, sr=sr),
            librosa.feature.rms(y=y), librosa.feature.zero_crossing_rate(y), librosa.feature.chroma_stft(y=y, sr=sr)]
    tempo = librosa.feature.tempo(onset_envelope=librosa.onset.onset_strength(S=mel, sr=sr), sr=sr)
    return np.concatenate([np.concatenate([f(r, axis=1) for f in (np.mean, np.std, np.max, np.min)]) for r in rows] + [tempo])


def reference_run(paths: list[str], out: Path) -> tuple[float, np.ndarray]:
    """FMA's loop over the clips (load + compute_features), values saved at the end. Returns (seconds, values)."""
    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x, sr = librosa.load(paths[0], sr=None, mono=True)
        fma_compute_features(x, sr)  # warm-up: numba compilation is not counted
        t0 = time.perf_counter()
        values = []
        for p in paths:
            x, sr = librosa.load(p, sr=None, mono=True)
            values.append(fma_compute_features(x, sr))
        values = np.stack(values).astype(np.float32)
        np.save(out, values)
        return time.perf_counter() - t0, values


def agreement(ours: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Largest |difference| relative to the largest |value| of the same block and clip; lowest block correlation."""
    ref = np.nan_to_num(ref)  # scipy.stats gives NaN skew / kurtosis for a constant row; stats518 gives 0
    worst, worst_name, lowest_r = 0.0, "", 1.0
    start = 0
    for name in FMA_ORDER:
        width = FMA_SIZES[name] * len(STATS)
        a, b = ours[:, start : start + width].astype(np.float64), ref[:, start : start + width].astype(np.float64)
        scale = np.maximum(np.abs(b).max(axis=1), 1e-12)
        d = (np.abs(a - b).max(axis=1) / scale).max()
        if d > worst:
            worst, worst_name = float(d), name
        for i in range(len(a)):
            if np.ptp(b[i]) > 0:
                lowest_r = min(lowest_r, float(np.corrcoef(a[i], b[i])[0, 1]))
        start += width
    return {"max_rel_diff_per_block": worst, "max_rel_diff_block": worst_name, "min_block_correlation": lowest_r}


def per_clip_ms(paths: list[str], clip_s: float, repeats: int = 5) -> dict[str, float]:
    """One thread, in this process: ms per 30 s clip for both features and their plain librosa versions."""
    import torch

    from earmark.features.stats import artist_stats, stats518

    torch.set_num_threads(1)
    parts = [sf.read(p, dtype="float32")[0] for p in paths[: max(1, int(np.ceil(30.0 / clip_s)))]]
    y = np.concatenate(parts)[: 30 * 22050]
    out = {}
    for name, fn in (("stats518", lambda: stats518(y)), ("artist_stats", lambda: artist_stats(y)),
                     ("fma_librosa", lambda: fma_compute_features(y, 22050)),
                     ("artist_librosa", lambda: artist_plain(y, 22050))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        out[name] = round(1000 * min(times), 1)
    out["speedup_stats518"] = round(out["fma_librosa"] / out["stats518"], 2)
    out["speedup_artist_stats"] = round(out["artist_librosa"] / out["artist_stats"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=None, help="clips (default: all 600 styles clips, else 60 synthetic)")
    ap.add_argument("--data", type=Path, default=Path("/tmp/earmark-bench/stats"))
    ap.add_argument("--jobs", type=int, default=0, help="earmark workers (0 = all cores)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    load_at_start = os.getloadavg()[0]

    from earmark.data import Manifest
    from earmark.features.store import FeatureStore

    manifest, clip_s = make_manifest(args.data, args.n)
    m = Manifest.read(manifest)
    paths = m.paths()
    for p in paths:  # page cache warm for everyone
        Path(p).read_bytes()
    settle()
    audio_s = len(paths) * clip_s
    ref_s, ref_values = reference_run([str(p) for p in paths], args.data / "fma-librosa.npy")
    ours, inner = earmark_process(manifest, "stats518", args.data / "store", args.jobs)
    ours1, inner1 = earmark_process(manifest, "stats518", args.data / "store1", 1)
    with FeatureStore(args.data / "store", "stats518") as fs:
        values = fs.load(m).stack()
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_at_start": load_at_start,
        "clips": len(paths), "clip_s": clip_s, "audio_s": audio_s, "jobs": args.jobs or os.cpu_count(),
        "fma_librosa_s": round(ref_s, 2), "earmark_s": round(ours, 2), "earmark_extract_only_s": inner,
        "earmark_1job_s": round(ours1, 2), "earmark_1job_extract_only_s": inner1,
        "speedup": round(ref_s / ours, 2), "speedup_extract_only": round(ref_s / inner, 2),
        "speedup_1job": round(ref_s / ours1, 2), "speedup_1job_extract_only": round(ref_s / inner1, 2),
        "fma_librosa_xrt": round(audio_s / ref_s), "earmark_xrt": round(audio_s / ours),
        **agreement(values, ref_values),
        "per_clip_ms_30s_1thread": per_clip_ms([str(p) for p in paths], clip_s),
    }
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
