"""Vocal separation on the vocal-gender set rendered with stems (``make_vocal_gender.py --stems``).

(a) **SDR** of the separated vocals against each mixture's clean voice (``stems/NNNNN.vocals.wav``), and
of the accompaniment against the music stem, with the mixture itself as the baseline estimate: plain
SDR ``10 log10(|s|^2 / |s - s_hat|^2)`` and scale-invariant SDR (``si_sdr``), mean and median over the
sung clips (female, male, duet); for the instrumental clips, how loud the "vocals" are relative to the
mixture (lower is better). Time per 3 s clip: one clip at a time on one thread, and in batches.
``--variants`` also measures the alternatives the default was chosen from (HPSS before / after the
similarity search, librosa's example settings for whole songs, other widths, margins, neighbours).

(b) **Singer-gender accuracy on unseen voices** (train voices -> val voices, ``_common.TASKS["vocal"]``)
with and without ``audio.separate``: fbank features pooled to mean/std and classical models (grid search,
5-fold cross-validation grouped by voice), and optionally a network (``--network cnn_small``, shortened).

Usage::

    .venv/bin/python benchmarks/separation.py                                 # (a) + (b) classical
    .venv/bin/python benchmarks/separation.py --variants --no-accuracy        # (a) with the alternatives
    .venv/bin/python benchmarks/separation.py --network cnn_small --epochs 8  # (b) with a network too

Prints JSON lines and markdown tables; ``--out`` writes everything as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import TASKS  # noqa: E402
from earmark.audio import load, separate  # noqa: E402
from earmark.audio.separate import sdr, si_sdr  # noqa: E402
from earmark.config import validate_config  # noqa: E402
from earmark.train.experiment import train  # noqa: E402

SR = 16000
VARIANTS = {  # name -> repet parameters; "default" is the shipped default
    "default": {},
    "hpss before": {"hpss": "before"},
    "hpss after": {"hpss": "after"},
    "librosa example (width 2 s, k auto, margin 10)": {"width": 2.0, "k": None, "margin_v": 10.0},
    "margin_v 2": {"margin_v": 2.0},
    "margin_v 10": {"margin_v": 10.0},
    "width 0.25 s": {"width": 0.25},
    "k auto": {"k": None},
    "k 30": {"k": 30},
    "power 1": {"power": 1.0},
    "fmin 100 Hz": {"fmin": 100.0},
    "n_fft 1024": {"n_fft": 1024},
}


def load_stems(bench: Path, n: int | None, seed: int) -> dict:
    """Mixtures and stems: sung clips (a seeded sample of ``n``, or all) and every instrumental clip."""
    root = bench / "vocal-gender"
    labels = pd.read_csv(root / "labels.csv")
    sung = labels[labels["label"] != "instrumental"]
    if n is not None and n < len(sung):
        sung = sung.sample(n, random_state=seed)
    inst = labels[labels["label"] == "instrumental"]

    def read(rows: pd.DataFrame, what: str) -> np.ndarray:
        out = []
        for f in rows["file"]:
            stem = Path(f).stem
            path = root / f if what == "mix" else root / "stems" / f"{stem}.{what}.wav"
            out.append(load(path, sr=SR))
        return np.stack(out)

    return {"sung": sung, "mix": read(sung, "mix"), "vocals": read(sung, "vocals"), "music": read(sung, "music"),
            "inst_mix": read(inst, "mix")}


def markdown(df: pd.DataFrame) -> str:
    """A markdown table (without the optional ``tabulate`` package that ``DataFrame.to_markdown`` needs)."""
    cells = [[str(c) for c in df.columns]] + [["" if v is None else str(v) for v in row] for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join([lines[0], "|" + "---|" * len(df.columns), *lines[1:]])


def _stats(x: np.ndarray) -> dict:
    return {"mean": round(float(np.mean(x)), 2), "median": round(float(np.median(x)), 2)}


def measure(data: dict, params: dict, batch: int = 50) -> dict:
    """SDR / SI-SDR of one parameter set, and its speed."""
    import torch

    mix, vocals, music = data["mix"], data["vocals"], data["music"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        separate(mix[:1], SR, **params)  # warm-up
        t0 = time.perf_counter()
        for i in range(min(50, len(mix))):
            separate(mix[i], SR, **params)
        one = (time.perf_counter() - t0) / min(50, len(mix)) * 1e3
        t0 = time.perf_counter()
        est = [separate(mix[i : i + batch], SR, **params) for i in range(0, len(mix), batch)]
        batched = (time.perf_counter() - t0) / len(mix) * 1e3
        v_hat = np.concatenate([e[0] for e in est])
        a_hat = np.concatenate([e[1] for e in est])
        inst_v, _ = separate(data["inst_mix"], SR, **params)
    finally:
        torch.set_num_threads(threads)
    by_split = {split: _stats(sdr(vocals[mask], v_hat[mask])) for split in sorted(set(data["sung"]["split"]))
                for mask in [data["sung"]["split"].to_numpy() == split]}
    leak = 10 * np.log10(np.sum(inst_v.astype(np.float64) ** 2, -1) / np.sum(data["inst_mix"].astype(np.float64) ** 2, -1))
    return {"vocals_sdr": _stats(sdr(vocals, v_hat)), "vocals_si_sdr": _stats(si_sdr(vocals, v_hat)),
            "accompaniment_sdr": _stats(sdr(music, a_hat)), "instrumental_vocals_db": _stats(leak),
            "vocals_sdr_by_split": by_split,
            "ms_per_clip_1_thread": round(one, 2), "ms_per_clip_batched_1_thread": round(batched, 2)}


def sdr_part(args) -> list[dict]:
    data = load_stems(args.bench, args.clips, args.seed)
    mix, vocals, music = data["mix"], data["vocals"], data["music"]
    base = {"variant": "mixture (no separation)", "vocals_sdr": _stats(sdr(vocals, mix)),
            "vocals_si_sdr": _stats(si_sdr(vocals, mix)), "accompaniment_sdr": _stats(sdr(music, mix)),
            "instrumental_vocals_db": {"mean": 0.0, "median": 0.0}}
    rows = [base]
    print(json.dumps({"n_sung_clips": len(mix), "n_instrumental_clips": len(data["inst_mix"])}), flush=True)
    print(json.dumps(base), flush=True)
    for name, params in (VARIANTS.items() if args.variants else [("default", {})]):
        rows.append({"variant": name, "params": params, **measure(data, params)})
        print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame([{"variant": r["variant"], "SDR mean": r["vocals_sdr"]["mean"], "SDR median": r["vocals_sdr"]["median"],
                           "SI-SDR mean": r["vocals_si_sdr"]["mean"], "SI-SDR median": r["vocals_si_sdr"]["median"],
                           "accomp. SDR mean": r["accompaniment_sdr"]["mean"],
                           "instr. vocals dB": r["instrumental_vocals_db"]["median"],
                           "ms/clip": r.get("ms_per_clip_1_thread", "")} for r in rows])
    print(markdown(table))
    return rows


def accuracy_part(args) -> list[dict]:
    make, test_split, what = TASKS["vocal"]
    manifest = make(args.bench, args.work)
    settings = {"method": "repet", "params": {}, "stem": "vocals"}
    runs = [(m, "classical", 0) for m in args.models] + [(n, "network", s) for n in args.network for s in args.seeds]
    rows = []
    for model, kind, seed in runs:
        for sep in (None, settings):
            raw = {"data": {"manifest": str(manifest), "test_split": test_split},
                   "audio": {"separate": sep},
                   "features": {"name": "fbank", "store": str(args.work / "features"), "jobs": args.jobs},
                   "model": {"name": model},
                   "train": {"seed": seed, "search": {"folds": 5, "jobs": 1}}}
            if kind == "classical":
                raw["model"]["scaler"] = "standard"
                raw["features"]["pool"] = ["mean", "std"]
            else:  # benchmarks/deep.py's recipe, shortened
                raw["features"].update(params={"normalize": True}, frames=296)
                raw["train"].update(epochs=args.epochs, batch_size=32, optimizer="adamw", lr=1e-3, weight_decay=1e-4,
                                    schedule="cosine", label_smoothing=0.1, val_fraction=0.1,
                                    augment=[{"name": "spec_augment", "freq_masks": 2, "freq_width": 6,
                                              "time_masks": 2, "time_width": 30}])
            cfg = validate_config(raw)
            t0 = time.perf_counter()
            run = train(cfg, args.work / "runs" / f"vocal-{model}-{'separated' if sep else 'mixture'}-seed{seed}")
            seconds = time.perf_counter() - t0
            m = json.loads((run / "metrics.json").read_text())
            rows.append({"task": "vocal", "what": what, "features": "fbank", "model": model, "seed": seed,
                         "separation": "repet (default)" if sep else "none", "accuracy": m["accuracy"],
                         "macro_f1": m["macro_f1"], "per_class_recall": {k: v["recall"] for k, v in m["per_class"].items()},
                         "n_test": m["n"], "train_s": round(seconds, 1), "ms_per_clip": m["inference_ms_per_clip"]})
            print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows).drop(columns=["what", "per_class_recall"])
    print(markdown(table))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, default=Path("/work/bench-data"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/earmark-bench/separation"))
    ap.add_argument("--clips", type=int, default=None, help="Seeded sample of sung clips for SDR (default: all).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", action="store_true", help="Also measure the alternative settings.")
    ap.add_argument("--no-accuracy", dest="accuracy", action="store_false", help="Skip the accuracy part (b).")
    ap.add_argument("--no-sdr", dest="sdr", action="store_false", help="Skip the SDR part (a).")
    ap.add_argument("--models", nargs="*", default=["logreg", "svm_rbf"])
    ap.add_argument("--network", nargs="*", default=[], help="Networks to train too, e.g. cnn_small.")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="Network training seeds (one run each).")
    ap.add_argument("--jobs", type=int, default=0, help="Feature extraction (and separation) workers; 0 = all cores.")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = {}
    if args.sdr:
        results["sdr"] = sdr_part(args)
    if args.accuracy:
        results["accuracy"] = accuracy_part(args)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
