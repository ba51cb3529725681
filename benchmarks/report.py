"""How long ``write_report`` takes for a run with 10,000 evaluated clips (target: under 30 s on 2 cores).

Builds (once; later runs reuse it) the synthetic demo dataset with ``--per-class`` clips per family,
keeps ``--train`` clips of each family for training and the rest (10,000 by default) as the test split,
trains a classical run on it (MFCC mean/std -> logistic regression, which also evaluates the 10,000
clips and writes ``predictions-test.csv``), then times ``write_report`` in a fresh process pinned to
``--cores`` cores: once from the start of the process (imports included, what ``earmark report`` costs)
and once for the call alone. Usage::

    .venv/bin/python benchmarks/report.py                  # 5 families x 2,000 test clips, 2 cores
    .venv/bin/python benchmarks/report.py --per-class 440 --train 40    # a quick 2,000-clip variant
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

_TIMER = """
import json, sys, time
t0 = time.perf_counter()
from earmark.evaluate.report import write_report
t1 = time.perf_counter()
out = write_report(sys.argv[1])
t2 = time.perf_counter()
print(json.dumps({"process_s": t2 - t0, "write_report_s": t2 - t1, "bytes": out.stat().st_size}))
"""


def build_run(work: Path, per_class: int, n_train: int, duration: float) -> Path:
    """The demo dataset re-split (``n_train`` per family for training, the rest test), trained and evaluated."""
    import yaml

    from earmark.config import load_config
    from earmark.data import Manifest
    from earmark.data.demo import make_demo_dataset
    from earmark.train.experiment import train

    run = work / "run"
    if (run / "metrics.json").is_file() and (run / "predictions-test.csv").is_file():
        return run
    t0 = time.perf_counter()
    demo = make_demo_dataset(work / "demo", n_per_class=per_class, duration=duration, seed=0)
    m = Manifest.read(demo)
    df = m.df.copy()
    rank = df.groupby("label").cumcount()
    df["split"] = ["train" if r < n_train else "test" for r in rank]
    manifest = Manifest.from_frame(df, m.root).write(work / "manifest.csv")
    print(f"dataset: {len(manifest)} clips ({(df['split'] == 'test').sum()} test) in {time.perf_counter() - t0:.0f} s")
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"manifest": str(work / "manifest.csv")},
        "features": {"name": "mfcc", "pool": ["mean", "std"], "store": str(work / "features")},
        "model": {"name": "logreg"},
        "train": {"search": {"enabled": False}},
    }))
    t0 = time.perf_counter()
    train(load_config(config), run)
    print(f"trained and evaluated (features extracted) in {time.perf_counter() - t0:.0f} s")
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/earmark-bench/report"))
    ap.add_argument("--per-class", type=int, default=2040, help="clips per family (5 families)")
    ap.add_argument("--train", type=int, default=40, help="clips per family kept for training")
    ap.add_argument("--duration", type=float, default=1.0, help="seconds per clip")
    ap.add_argument("--cores", type=int, default=2, help="CPU cores the timed process may use")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    run = build_run(args.work, args.per_class, args.train, args.duration)
    n_eval = json.loads((run / "metrics.json").read_text())["n"]

    cores = sorted(os.sched_getaffinity(0))[: args.cores]
    env = {**os.environ, "OMP_NUM_THREADS": str(len(cores)), "OPENBLAS_NUM_THREADS": str(len(cores)),
           "MKL_NUM_THREADS": str(len(cores))}
    results = []
    for _ in range(args.repeat):
        proc = subprocess.run(["taskset", "-c", ",".join(map(str, cores)), sys.executable, "-c", _TIMER, str(run)],
                              capture_output=True, text=True, cwd=REPO, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"write_report failed:\n{proc.stdout}\n{proc.stderr}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    best = min(results, key=lambda r: r["process_s"])
    every = ", ".join(f"{r['process_s']:.1f}" for r in results)
    print(f"report of a run with {n_eval:,} evaluated clips on {len(cores)} core(s), best of {args.repeat}: "
          f"{best['write_report_s']:.1f} s in write_report, {best['process_s']:.1f} s with imports "
          f"(all runs: {every} s); "
          f"report.html {best['bytes'] / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
