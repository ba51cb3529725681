"""ge2e partials, voice by voice: leave one voice out over all seven voices of ``vocal-gender``.

The fusion benchmark (``fusion.py``) tests on the two val voices only. Here every voice of the set (the
five train voices and the two val ones) is held out in turn: the ``embedding:ge2e`` + logistic
regression model of ``recipes/singer_gender_ge2e_logreg.yaml`` is trained on the clips of the six other
voices (C chosen as the recipe does: grouped 5-fold cross-validation by log loss on those voices) and
tested on every clip that holds the held-out voice (solo or in a duet) plus a seventh of the
instrumental clips. One row per ``--partials`` setting: mean and worst accuracy over the seven voices,
mean log loss, and each voice's accuracy. Features come from the same store as the runs (separated
vocals, ``audio.separate: repet``), so a ``--work`` shared with ``fusion.py`` computes nothing again.

Usage::

    .venv/bin/python benchmarks/ge2e_voices.py --work /tmp/earmark-bench/fusion-fresh \\
        --partials 1.6:1.3:equal 1.6:1.3:energy 0.6:5:equal 0.6:5:energy 0.4:5:energy 0.8:4:energy
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import TASKS, ge2e_partials  # noqa: E402
from earmark.config import validate_config  # noqa: E402
from earmark.data import Manifest  # noqa: E402
from earmark.train.experiment import clip_features  # noqa: E402
from earmark.train.search import grid_search  # noqa: E402

GRID = {"logreg": {"C": [0.01, 0.03, 0.1, 0.3, 1, 3]}}  # the recipe's


def leave_one_voice_out(X: np.ndarray, labels: np.ndarray, groups: np.ndarray, seed: int = 0) -> dict:
    """Accuracy and log loss per held-out voice (``groups``: the manifest's, ``"slt+kal"`` for a duet;
    an instrumental clip's is its own id)."""
    from sklearn.metrics import log_loss

    voices = np.where(labels == "instrumental", "", groups.astype(str))
    names = sorted({v for g in voices for v in g.split("+") if v})
    inst = np.flatnonzero(voices == "")
    fold_of_inst = np.random.default_rng(seed).permutation(len(inst)) % len(names)
    out = {}
    for k, voice in enumerate(names):
        has = np.array([voice in g.split("+") for g in voices])
        test = has.copy()
        test[inst[fold_of_inst == k]] = True
        train = ~test
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = grid_search("logreg", X[train], labels[train], groups=groups[train], folds=5, seed=seed,
                              scoring="neg_log_loss", grids=GRID)
        model = res.best_estimator
        proba = model.predict_proba(X[test])
        out[voice] = {"accuracy": float(np.mean(model.classes_[proba.argmax(1)] == labels[test])),
                      "log_loss": float(log_loss(labels[test], proba, labels=model.classes_)),
                      "n": int(test.sum()), "C": res.best_params["C"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, default=Path("/work/bench-data"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/earmark-bench/fusion-fresh"))
    ap.add_argument("--partials", nargs="+", type=ge2e_partials, default=[(1.6, 1.3, "equal"), (0.6, 5.0, "energy")],
                    metavar="SECONDS:RATE[:WEIGHTING]")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    make, _, _ = TASKS["vocal"]
    manifest_path = make(args.bench, args.work)
    manifest = Manifest.read(manifest_path)
    rows = []
    for partial, rate, weighting in args.partials:
        spec = f"{partial:g}:{rate:g}:{weighting}"
        cfg = validate_config({"data": {"manifest": str(manifest_path)},
                               "audio": {"separate": {"method": "repet"}},
                               "features": {"name": "embedding:ge2e", "store": str(args.work / "features"),
                                            "params": {"weights": "ge2e", "partial": partial, "rate": rate,
                                                       "weighting": weighting}},
                               "model": {"name": "logreg", "scaler": "standard"}})
        t0 = time.perf_counter()
        arrays, ok, failures = clip_features(cfg, manifest)
        if failures:
            print(f"{spec}: {len(failures)} clips without features, left out", file=sys.stderr)
        df = manifest.df[ok]
        per_voice = leave_one_voice_out(np.stack(arrays), df["label"].to_numpy(), manifest.groups[ok])
        acc = [v["accuracy"] for v in per_voice.values()]
        rows.append({"partials": spec, "mean_accuracy": round(float(np.mean(acc)), 4),
                     "worst_accuracy": round(float(np.min(acc)), 4),
                     "mean_log_loss": round(float(np.mean([v["log_loss"] for v in per_voice.values()])), 4),
                     "per_voice": per_voice, "seconds": round(time.perf_counter() - t0, 1)})
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
