"""Pretrained backbones as feature extractors: embedding speed on CPU, and PCA + SVM accuracy.

1. **Speed**: milliseconds per clip to embed one 4 s note (batch 1, after a warm-up; decoding and
   resampling excluded) with ``cnn14``, ``vgg16`` (fc2) and ``resnet50`` (avg_pool), on this process's
   CPU threads (``--threads``, default all cores).
2. **Accuracy** on the ``family`` task of ``_common.TASKS`` (instrument family, 11 classes: trained on
   gm-notes-fluidr3, tested on gm-notes-musescore, recordings never heard in training): ``earmark
   extract`` of each embedding into a feature store, then standard scaling + PCA (95 % of the variance)
   + RBF SVM with the studies' grid (C x gamma), 3-fold cross-validation grouped by instrument. An
   ``mfcc`` (mean + std) run on the same clips is the hand-crafted baseline. ``extract_ms_per_clip`` is
   the wall-clock extraction time per clip with ``--jobs`` workers (one torch thread each), decoding
   and resampling included; ``end_to_end_ms_per_clip`` is earmark's evaluation timing (one whole note
   decoded, embedded and classified in the main process).

Weights: the official files when they are in the weights cache (``earmark weights fetch NAME``),
otherwise **randomly initialised** backbones (seed 0) — every row says which (``weights`` column).
A randomly initialised network is a baseline for what its architecture and front end alone give, not
a pretrained result.

To stay within ~10 minutes on 2 CPU cores, the default run **subsamples** the clips: ``--per-class``
notes per family from each split (seeded; all notes of a family if it has fewer) and ``--seconds``
of each note (its first 2 s: attack and sustain). The stores are kept in ``--work``, so a rerun only
computes what is missing. Usage::

    .venv/bin/python benchmarks/transfer.py                                  # default, ~10 min on 2 cores
    .venv/bin/python benchmarks/transfer.py --per-class 0 --seconds 0       # every clip, whole notes
    .venv/bin/python benchmarks/transfer.py --features embedding:cnn14 --out transfer.json

Results are printed as markdown tables and written as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import TASKS  # noqa: E402

SPEED = (("cnn14", "fc1"), ("vgg16", "fc2"), ("resnet50", "avg_pool"))
FEATURES = ("embedding:cnn14", "embedding:vgg16:fc2", "embedding:resnet50:avg_pool")


def weights_for(backbone: str) -> str:
    """The backbone's known weights name when its file is cached, else ``"random"``."""
    from earmark.models.pretrained import KNOWN_WEIGHTS, cached_path

    return backbone if cached_path(backbone).is_file() and backbone in KNOWN_WEIGHTS else "random"


def speed(manifest: Path, n_clips: int, threads: int) -> list[dict]:
    """Median / p90 ms per clip to embed ``n_clips`` test notes with each backbone, batch 1."""
    import torch

    from earmark.audio import load
    from earmark.data import Manifest
    from earmark.models.pretrained import create_backbone

    torch.set_num_threads(threads)
    paths = Manifest.read(manifest).select(split="test").paths()[:: 97][:n_clips]
    rows = []
    for name, cut in SPEED:
        weights = weights_for(name)
        t0 = time.perf_counter()
        net = create_backbone(name, cut=cut, weights=weights)
        build = time.perf_counter() - t0
        clips = [torch.from_numpy(load(p, sr=net.sample_rate))[None] for p in paths]
        net.embed(clips[0])  # warm-up
        times = []
        for clip in clips:
            t0 = time.perf_counter()
            net.embed(clip)
            times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        rows.append({"backbone": name, "cut": cut, "weights": weights, "dim": net.embedding_dim,
                     "clip_s": round(clips[0].shape[-1] / net.sample_rate, 2), "threads": threads,
                     "ms_per_clip_median": round(statistics.median(times), 1),
                     "ms_per_clip_p90": round(times[int(0.9 * (len(times) - 1))], 1),
                     "build_s": round(build, 2), "n_clips": len(clips)})
        print(json.dumps(rows[-1]), flush=True)
        del net
    return rows


def subsample(manifest: Path, out: Path, per_class: int, seconds: float, seed: int) -> Path:
    """``per_class`` clips per label and split (all if fewer; 0 = all), cropped to ``seconds`` (0 = whole)."""
    import pandas as pd

    from earmark.data import Manifest

    m = Manifest.read(manifest)
    df = m.df.copy()
    df["path"] = m.paths()
    if per_class > 0:
        df = pd.concat([g.sample(n=min(per_class, len(g)), random_state=seed)
                        for _, g in df.groupby(["split", "label"], sort=True)])
    if seconds > 0:
        df["offset"] = 0.0
        df["duration"] = float(seconds)
    df = df.sort_values(["split", "label", "id"]).reset_index(drop=True)
    path = out / f"family-{per_class or 'all'}-{seconds or 'whole'}s.csv"
    Manifest.from_frame(pd.DataFrame(df), out).write(path)
    return path


def accuracy(manifest: Path, work: Path, features: list[str], jobs: int, baseline: bool) -> list[dict]:
    """Extract each feature (timed), then scaler + PCA 0.95 + RBF SVM with a grouped 3-fold grid search."""
    from earmark.config import validate_config
    from earmark.data import Manifest
    from earmark.features import get_feature
    from earmark.features.extract import extract
    from earmark.run import Run
    from earmark.train.experiment import train

    m = Manifest.read(manifest)
    runs = [(f, {"weights": weights_for(get_feature(f).backbone)}) for f in features]
    if baseline:
        runs.append(("mfcc", {}))
    rows = []
    for feature, params in runs:
        store = work / "features"
        t0 = time.perf_counter()
        report = extract(m, feature, store, params=params, jobs=jobs)
        extract_s = time.perf_counter() - t0
        if report.failures:
            print(f"{feature}: {len(report.failures)} clips failed, e.g. {report.failures[0]}", flush=True)
        raw = {"data": {"manifest": str(manifest), "test_split": "test"},
               "features": {"name": feature, "params": params, "store": str(store), "jobs": jobs},
               "model": {"name": "svm_rbf", "scaler": "standard", "pca": 0.95},
               "train": {"seed": 0, "search": {"folds": 3, "jobs": 1}}}
        t0 = time.perf_counter()
        run = train(validate_config(raw), work / "runs" / f"{feature.replace(':', '_')}-{params.get('weights', '')}")
        train_s = time.perf_counter() - t0
        metrics = json.loads((run / "metrics.json").read_text())
        meta = Run.load(run).meta
        rows.append({"features": feature, "weights": params.get("weights", "(none)"),
                     "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
                     "top3": metrics["top_k_accuracy"].get("3"),
                     "cv_accuracy": None if meta.get("cv_score") is None else round(meta["cv_score"], 4),
                     "best": meta.get("best_params"), "n_train": meta.get("n_train"), "n_test": metrics["n"],
                     "extract_s": round(extract_s, 1), "n_extracted": report.n_computed,
                     "extract_ms_per_clip": round(1e3 * extract_s / report.n_computed, 1) if report.n_computed else None,
                     "train_s": round(train_s, 1),
                     # whole 4 s note: decode + feature + PCA/SVM in this process (earmark's evaluate timing)
                     "end_to_end_ms_per_clip": None if metrics.get("inference_ms_per_clip") is None
                     else round(metrics["inference_ms_per_clip"], 1)})
        print(json.dumps(rows[-1], default=str), flush=True)
    return rows


def _table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, default=Path("/work/bench-data"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/earmark-bench/transfer"))
    ap.add_argument("--features", nargs="+", default=list(FEATURES))
    ap.add_argument("--per-class", type=int, default=16, help="clips per family and split (0 = all)")
    ap.add_argument("--seconds", type=float, default=2.0, help="seconds of each note (0 = whole)")
    ap.add_argument("--speed-clips", type=int, default=8, help="clips timed per backbone (0 = skip the timing)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads for the timing (0 = all cores)")
    ap.add_argument("--jobs", type=int, default=0, help="extraction workers (0 = all cores)")
    ap.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the mfcc baseline")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    from earmark.parallel import default_jobs

    t_start = time.perf_counter()
    full = TASKS["family"][0](args.bench, args.work)
    results: dict = {"task": TASKS["family"][2], "per_class": args.per_class, "seconds": args.seconds}
    if args.speed_clips > 0:
        results["speed"] = speed(full, args.speed_clips, args.threads or default_jobs())
    manifest = subsample(full, args.work, args.per_class, args.seconds, args.seed)
    results["accuracy"] = accuracy(manifest, args.work, args.features, args.jobs, args.baseline)
    results["total_s"] = round(time.perf_counter() - t_start, 1)

    if "speed" in results:
        print("\n" + _table(results["speed"], ["backbone", "cut", "weights", "dim", "clip_s", "threads",
                                               "ms_per_clip_median", "ms_per_clip_p90", "build_s"]))
    print("\n" + _table(results["accuracy"], ["features", "weights", "accuracy", "macro_f1", "top3", "cv_accuracy",
                                              "n_train", "n_test", "extract_ms_per_clip", "end_to_end_ms_per_clip"]))
    print(f"\ntotal {results['total_s']} s")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
