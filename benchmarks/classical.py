"""Accuracy of the classical models on data they have not heard, and stats518 extraction speed.

Tasks, on the development sets rendered by ``../shared/benchdata`` (see its README; default
location ``/work/bench-data``):

* ``family``: NSynth-format instrument family (11 classes), trained on gm-notes-fluidr3 and evaluated on
  gm-notes-musescore — the same General-MIDI instruments recorded by another sound font;
  cross-validation inside training is grouped by instrument;
* ``styles``: 6 music styles, trained on the train pieces, evaluated on the test pieces (piece-level split);
* ``vocal``: singer gender (4 classes), trained on the train voices, evaluated on the val voices.

Every model is a grid search with (group-aware) 5-fold cross-validation over the studies' default
grids. Usage::

    .venv/bin/python benchmarks/classical.py                       # all tasks, models, stats518
    .venv/bin/python benchmarks/classical.py --tasks vocal --models logreg svm_rbf
    .venv/bin/python benchmarks/classical.py --speed               # also the stats518 speed comparison

Results are printed as a markdown table and written as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(REPO / "benchmarks"))

from _common import TASKS  # noqa: E402
from earmark.config import validate_config  # noqa: E402
from earmark.run import Run  # noqa: E402
from earmark.train.experiment import train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, default=Path("/work/bench-data"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/earmark-bench/classical"))
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--models", nargs="+", default=["logreg", "svm_rbf", "rf", "knn"])
    ap.add_argument("--features", nargs="+", default=["stats518"])
    ap.add_argument("--speed", action="store_true", help="also run benchmarks/stats_speed.py")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    rows = []
    for task in args.tasks:
        make, test_split, what = TASKS[task]
        manifest = make(args.bench, args.work)
        for feature in args.features:
            for model in args.models:
                raw = {"data": {"manifest": str(manifest), "test_split": test_split},
                       "features": {"name": feature, "store": str(args.work / "features")},
                       "model": {"name": model, "scaler": "standard"},
                       "train": {"seed": 0, "search": {"folds": 5, "jobs": 1}}}
                cfg = validate_config(raw)
                t0 = time.perf_counter()
                run = train(cfg, args.work / "runs" / f"{task}-{feature}-{model}")
                seconds = time.perf_counter() - t0
                m = json.loads((run / "metrics.json").read_text())
                meta = Run.load(run).meta
                rows.append({"task": task, "what": what, "features": feature, "model": model,
                             "accuracy": m["accuracy"], "top3": m["top_k_accuracy"].get("3"),
                             "macro_f1": m["macro_f1"], "cv_accuracy": meta.get("cv_score"),
                             "best": meta.get("best_params"), "n_test": m["n"], "train_s": round(seconds, 1)})
                print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    print(table.drop(columns=["what", "best"]).to_string(index=False))
    results = {"accuracy": rows}
    if args.speed:
        speed_json = args.work / "stats518_speed.json"
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "stats_speed.py"), "--out", str(speed_json)], check=True)
        results["stats518_speed"] = json.loads(speed_json.read_text())
        print(json.dumps(results["stats518_speed"], indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
