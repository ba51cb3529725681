"""Latency of ``earmark serve``: a 3 s clip POSTed to /api/predict over real HTTP on 127.0.0.1.

For each run, ``earmark serve RUN`` is started as its own process (as a user starts it), the script
waits for /healthz, posts the clip ``--warmup`` times untimed and then ``-n`` times timed on one
keep-alive connection, and reports the median and 90th percentile of the round trip (upload,
multipart parsing, decode, features, model, JSON back) and of the server's own ``ms`` field
(decode + features + model); the very first request (after the app's own warm-up at start-up) is
shown too. The spectrogram is not requested (``?spectrogram=true`` adds a
matplotlib PNG, ~100 ms).

Without ``--run``, tiny runs are trained first on the built-in demo dataset (3 s clips), one per
study-like setup (their accuracy is irrelevant here; their per-request work is the real one)::

    mfcc-svm        MFCC20+deltas -> mean/std -> RBF SVM          (classical, artist20 style)
    stats518-svm    518-d FMA statistics (chroma STFT/CQT/CENS, tonnetz, ...) -> RBF SVM
    stft-cnn_small  NSynth STFT (499 x 129) -> 3-conv CNN          (network)
    fbank-resnet34  singer-gender fbank (299 x 40) -> ResNet34     (network)

Usage::

    .venv/bin/python benchmarks/serve.py                      # train the four runs, 200 requests each
    .venv/bin/python benchmarks/serve.py --setups mfcc-svm -n 500
    .venv/bin/python benchmarks/serve.py --run runs/my-run --run runs/other -n 100 --out serve.json

CPU only: the server is started with CUDA hidden unless ``--gpu``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SETUPS = {
    "mfcc-svm": {"features": {"name": "mfcc", "pool": ["mean", "std"]}, "model": {"name": "svm_rbf"},
                 "train": {"search": {"enabled": False}}},
    "stats518-svm": {"features": {"name": "stats518"}, "model": {"name": "svm_rbf"},
                     "train": {"search": {"enabled": False}}},
    "stft-cnn_small": {"features": {"name": "stft", "frames": 499}, "model": {"name": "cnn_small"},
                       "train": {"epochs": 1, "batch_size": 16, "schedule": None, "val_fraction": 0.2}},
    "fbank-resnet34": {"features": {"name": "fbank", "frames": 299}, "model": {"name": "resnet34"},
                       "train": {"epochs": 1, "batch_size": 16, "schedule": None, "val_fraction": 0.2}},
}


def train_run(name: str, manifest: Path, work: Path) -> Path:
    """Train the setup ``name`` on ``manifest`` into ``work/name`` (reused when it is already there)."""
    from earmark.config import validate_config
    from earmark.train.experiment import train

    out = work / name
    if (out / "config.yaml").exists() and ((out / "model.skops").exists() or (out / "net").exists()):
        return out
    raw = {"data": {"manifest": str(manifest)}, "train": {"seed": 0}}
    for section, values in SETUPS[name].items():
        raw.setdefault(section, {}).update(values)
    raw["features"].update({"jobs": 1, "store": str(work / "store")})
    print(f"training {name} ...", flush=True)
    train(validate_config(raw), out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multipart(path: Path) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode()
    return head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def wait_healthy(port: int, proc: subprocess.Popen, deadline_s: float = 120.0) -> float:
    """Poll /healthz until it answers; the seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline_s:
        if proc.poll() is not None:
            raise SystemExit(f"earmark serve exited with {proc.returncode}:\n{proc.stderr.read()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return time.monotonic() - t0
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    raise SystemExit(f"earmark serve not healthy after {deadline_s} s")


def bench_run(run: Path, clip: Path, n: int, warmup: int, gpu: bool) -> dict:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if not gpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    proc = subprocess.Popen([sys.executable, "-m", "earmark", "serve", str(run), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        startup = wait_healthy(port, proc)
        body, ctype = multipart(clip)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/api/info")
        info = json.loads(conn.getresponse().read())
        client, server = [], []
        for i in range(warmup + n):
            t0 = time.perf_counter()
            conn.request("POST", "/api/predict", body=body, headers={"Content-Type": ctype})
            response = conn.getresponse()
            r = json.loads(response.read())
            dt = (time.perf_counter() - t0) * 1e3
            if response.status != 200:
                raise SystemExit(f"{run}: HTTP {response.status}: {r}")
            if i == 0:
                first = dt
            if i >= warmup:
                client.append(dt)
                server.append(r["ms"])
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"run": run.name, "model": info["model"], "features": info["features"], "n": n,
            "windows": r["n_windows"], "startup_s": round(startup, 2), "first_ms": first,
            "median_ms": float(np.median(client)), "p90_ms": float(np.percentile(client, 90)),
            "server_median_ms": float(np.median(server)), "server_p90_ms": float(np.percentile(server, 90))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, action="append", help="benchmark this run folder (repeatable) instead of training")
    ap.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    ap.add_argument("-n", type=int, default=200, help="timed requests per run")
    ap.add_argument("--warmup", type=int, default=20, help="untimed requests first")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of the posted clip")
    ap.add_argument("--work", type=Path, default=Path("/tmp/earmark-bench/serve"))
    ap.add_argument("--gpu", action="store_true", help="let the server see the GPU (default: CPU only)")
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    import soundfile as sf

    from earmark.data.demo import make_demo_dataset, synth_note

    clip = args.work / "clip.wav"
    sf.write(clip, synth_note("bowed", sr=22050, duration=args.seconds, rng=np.random.default_rng(0)), 22050)
    runs = args.run
    if not runs:
        manifest = make_demo_dataset(args.work / "demo", n_per_class=8, duration=3.0, seed=0)  # reused when there
        runs = [train_run(name, manifest, args.work) for name in args.setups]

    import torch

    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); {args.seconds:g} s WAV at 22.05 kHz "
          f"({clip.stat().st_size // 1024} kB); {args.warmup} warm-up + {args.n} timed requests\n")
    rows = [bench_run(run, clip, args.n, args.warmup, args.gpu) for run in runs]
    print("| run | model | features | windows | first request ms | round trip median ms | p90 ms "
          "| server median ms | p90 ms |")
    print("|:---|:---|:---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['run']} | {r['model']} | {r['features']} | {r['windows']} | {r['first_ms']:.1f} | {r['median_ms']:.1f} | "
              f"{r['p90_ms']:.1f} | {r['server_median_ms']:.1f} | {r['server_p90_ms']:.1f} |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
