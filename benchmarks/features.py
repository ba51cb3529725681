"""Extraction speed: the whole `earmark extract` process against the pipeline a user writes with librosa.

Measures, in one run and on the same files (page cache warm for both):

* fbank on N three-second 44.1 kHz stereo WAV clips (default 3,000): `earmark extract` as a separate
  process (start-up, decoding, resampling to 16 kHz, features, store) against a loop of
  ``librosa.load(sr=16000)`` + ``librosa.feature.melspectrogram`` with the same framing
  (n_fft 1024, win 400, hop 160, 40 mel bands 0-8 kHz, Hamming) + ``power_to_db`` + ``np.savez`` per clip,
  as the singer-gender study stored its features;
* logmel on M thirty-second 22.05 kHz clips (default 200): `earmark extract --features logmel`
  against ``librosa.load(sr=22050)`` + ``melspectrogram(n_fft=2048, hop=512, n_mels=128)`` +
  ``power_to_db(ref=np.max)`` + ``np.savez``; and the largest difference of the values (dB).

Speeds are seconds of audio per second of wall-clock time (x real time). Usage::

    .venv/bin/python benchmarks/features.py                 # full run (~3 min on 2 cores)
    .venv/bin/python benchmarks/features.py --n 300 --n-long 20   # quick look
    .venv/bin/python benchmarks/features.py --ray local     # also through a Ray instance started for the run

The clips are synthetic music-like signals written once under --data (outside the repo); decoding
and resampling cost does not depend on what the audio contains.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import earmark_process, settle  # noqa: E402


def synth(sr: int, duration: float, seed: int, channels: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * duration)) / sr
    f0 = rng.uniform(80, 800)
    y = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) for k in range(1, 10))
    y *= 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 3) * t) ** 2
    y += 0.02 * rng.standard_normal(t.size)
    y = (0.7 * y / np.abs(y).max()).astype(np.float32)
    return np.stack([y, np.roll(y, 7)], axis=1) if channels == 2 else y


def make_set(folder: Path, n: int, sr: int, duration: float, channels: int) -> Path:
    from earmark.data import Manifest

    manifest = folder / "manifest.csv"
    if manifest.exists() and len(pd.read_csv(manifest)) == n:
        return manifest
    rows = []
    for i in range(n):
        rel = f"audio/{i // 1000:03d}/{i:06d}.wav"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(folder / rel, synth(sr, duration, i, channels), sr, subtype="PCM_16")
        rows.append({"id": f"{i:06d}", "path": rel, "label": str(i % 4)})
    Manifest.from_frame(pd.DataFrame(rows), folder).write(manifest)
    return manifest


def warm_cache(folder: Path) -> None:
    for p in folder.rglob("*.wav"):
        p.read_bytes()


def librosa_pipeline(paths: list[str], out: Path, kind: str) -> float:
    """The loop a user writes: load, melspectrogram, dB, np.savez per clip. Returns seconds."""
    import librosa

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    for i, p in enumerate(paths):
        if kind == "fbank":
            y, sr = librosa.load(p, sr=16000)
            S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=1024, hop_length=160, win_length=400,
                                               window="hamming", center=False, n_mels=40, fmin=0, fmax=8000)
            S = librosa.power_to_db(S)
        else:
            y, sr = librosa.load(p, sr=22050)
            S = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512, n_mels=128),
                                    ref=np.max)
        np.savez(out / f"{i:06d}.npz", S=S)
    return time.perf_counter() - t0


def max_db_difference(manifest: Path, store: Path, n: int = 10) -> float:
    import librosa

    from earmark.data import Manifest
    from earmark.features.store import FeatureStore

    m = Manifest.read(manifest)
    with FeatureStore(store, "logmel") as fs:
        ours = fs.load(m).arrays[:n]
    diff = 0.0
    for p, x in zip(m.paths()[:n], ours):
        y, sr = librosa.load(p, sr=22050)
        ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512, n_mels=128),
                                  ref=np.max).T
        diff = max(diff, float(np.abs(ref - x).max()))
    return diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000, help="3 s 44.1 kHz clips for fbank")
    ap.add_argument("--n-long", type=int, default=200, help="30 s 22.05 kHz clips for logmel")
    ap.add_argument("--data", type=Path, default=Path("/tmp/earmark-bench/features"))
    ap.add_argument("--jobs", type=int, default=0, help="earmark workers (0 = all cores)")
    ap.add_argument("--ray", default=None, metavar="ADDRESS",
                    help="also time `earmark extract --ray ADDRESS` (e.g. local: Ray started for the run)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()

    short = make_set(args.data / "short", args.n, 44100, 3.0, channels=2)
    long = make_set(args.data / "long", args.n_long, 22050, 30.0, channels=1)
    from earmark.data import Manifest

    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                          f"Python {platform.python_version()}", "jobs": args.jobs or os.cpu_count()}
    for name, manifest, feature, clip_s in (("fbank", short, "fbank", 3.0), ("logmel", long, "logmel", 30.0)):
        paths = Manifest.read(manifest).paths()
        audio_s = len(paths) * clip_s
        warm_cache(manifest.parent)
        settle()
        ref = librosa_pipeline(paths, args.data / f"librosa-{name}", name)
        ours, inner = earmark_process(manifest, feature, args.data / f"store-{name}", args.jobs)
        ours1, inner1 = earmark_process(manifest, feature, args.data / f"store1-{name}", 1)
        results[name] = {
            "clips": len(paths), "audio_s": audio_s,
            "librosa_s": round(ref, 2), "earmark_s": round(ours, 2), "earmark_1job_s": round(ours1, 2),
            "librosa_xrt": round(audio_s / ref), "earmark_xrt": round(audio_s / ours),
            "earmark_1job_xrt": round(audio_s / ours1),
            "speedup": round(ref / ours, 2), "speedup_1job": round(ref / ours1, 2),
            # the same runs without interpreter start-up and imports (~1.5 s, mostly `import torch`)
            "earmark_extract_only_s": inner, "speedup_extract_only": round(ref / inner, 2),
            "earmark_1job_extract_only_s": inner1, "speedup_1job_extract_only": round(ref / inner1, 2),
        }
        if args.ray:
            ray_s, ray_inner = earmark_process(manifest, feature, args.data / f"store-ray-{name}", args.jobs, args.ray)
            results[name].update(ray_s=round(ray_s, 2), ray_extract_only_s=ray_inner,
                                 ray_speedup=round(ref / ray_s, 2), ray_speedup_extract_only=round(ref / ray_inner, 2))
        if name == "logmel":
            results[name]["max_abs_diff_db_vs_librosa"] = round(max_db_difference(manifest, args.data / "store-logmel"), 5)
        print(name, json.dumps(results[name]), flush=True)
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
