"""`earmark tune` on unseen recordings: what Hyperband saves, and whether the tuned config generalises.

Task: instrument family, trained on gm-notes-fluidr3 and tested on gm-notes-musescore (the same 79
instruments recorded by someone else; see ``_common.TASKS``). Base config: ``benchmarks/deep.py``'s
(fbank with per-band mean normalisation, cnn_small, AdamW 1e-3, cosine, label smoothing 0.1,
SpecAugment, 10% validation hold-out). The search (TPE + Hyperband, ``--trials``, ``--epochs`` per
trial) chooses lr, weight decay, dropout, label smoothing and the SpecAugment strength on the
validation hold-out (other notes of the fluidr3 instruments, or with ``--val-groups`` whole
instruments never trained on, or with ``--val-recordings`` half of musescore's instruments, the test
set then being the other half); then ``earmark train`` fits the base
config and the best config on the whole train split and both are scored on musescore. Usage::

    .venv/bin/python benchmarks/tune.py --trials 20 --epochs 9 --out results.json   # ~15 min, 2 cores

Prints one JSON object: trials by state, epochs run against trials x epochs (what pruning saved),
seconds, best validation accuracy and parameters, and test accuracy of the base and the tuned config.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import TASKS  # noqa: E402
from earmark.config import load_config, validate_config  # noqa: E402
from earmark.train.experiment import train  # noqa: E402
from earmark.train.tune import tune  # noqa: E402

SPEC = {"name": "spec_augment", "freq_masks": 2, "freq_width": 6, "time_masks": 2, "time_width": 30}
STRONG = {"name": "spec_augment", "freq_masks": 2, "freq_width": 12, "time_masks": 2, "time_width": 60}


def with_val_recordings(manifest: Path) -> Path:
    """The family manifest with half of musescore's instruments (whole, stratified by family) moved
    from test to a ``val`` split: validation on other recordings, as the test set is."""
    from earmark.data import Manifest
    from earmark.data.splits import group_split

    m = Manifest.read(manifest)
    df = m.df.copy()
    df["path"] = m.paths()
    test = (df["split"] == "test").to_numpy()
    df.loc[test, "split"] = group_split(df.loc[test, "label"].to_numpy(), df.loc[test, "group"].to_numpy(),
                                        {"val": 0.5, "test": 0.5}, seed=0)
    path = manifest.with_name("family-val-recordings.csv")
    Manifest.from_frame(df, manifest.parent).write(path)
    return path


def base_config(manifest: Path, work: Path, epochs: int, val_groups: bool = False, val_split: bool = False) -> dict:
    return {"data": {"manifest": str(manifest), "test_split": "test", "val_split": "val" if val_split else None},
            "features": {"name": "fbank", "params": {"normalize": True}, "frames": 296, "store": str(work / "features")},
            "model": {"name": "cnn_small"},
            "train": {"seed": 0, "epochs": epochs, "batch_size": 32, "optimizer": "adamw", "lr": 1e-3,
                      "weight_decay": 1e-4, "schedule": "cosine", "label_smoothing": 0.1, "augment": [SPEC],
                      "val_fraction": 0.0 if val_split else 0.1, "val_groups": val_groups}}


SPACE = {
    "train.lr": {"low": 1e-4, "high": 3e-3, "log": True},
    "train.weight_decay": {"low": 1e-5, "high": 1e-2, "log": True},
    "model.params.dropout": {"low": 0.0, "high": 0.6},
    "train.label_smoothing": [0.0, 0.1, 0.2],
    "train.augment": [[], [SPEC], [STRONG]],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, default=Path("/work/bench-data"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/earmark-bench/tune"))
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=9)
    ap.add_argument("--fresh", action="store_true", help="start a new study (else an existing one is continued)")
    ap.add_argument("--val-groups", action="store_true",
                    help="validate on held-out instruments (train.val_groups) instead of held-out notes")
    ap.add_argument("--val-recordings", action="store_true",
                    help="validate on half of musescore's instruments (data.val_split), test on the other half")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    manifest = TASKS["family"][0](args.bench, args.work)
    if args.val_recordings:
        manifest = with_val_recordings(manifest)
    variant = "-val-groups" if args.val_groups else "-val-recordings" if args.val_recordings else ""

    def config() -> dict:
        return base_config(manifest, args.work, args.epochs, args.val_groups, args.val_recordings)

    raw = config()
    raw["tune"] = {"space": SPACE, "pruner": "hyperband", "min_epochs": 1, "reduction_factor": 3}
    study = args.work / f"study{variant}"
    if args.fresh:
        shutil.rmtree(study, ignore_errors=True)
    t0 = time.perf_counter()
    result = tune(raw, study, trials=args.trials)
    tune_s = time.perf_counter() - t0
    with open(study / "trials.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    epochs_run = sum(int(r["epochs"] or 0) for r in rows)
    out = {"task": TASKS["family"][2], "validation": variant.strip("-") or "notes", "n_test": None, "trials": result.counts, "epochs_run": epochs_run,
           "epochs_without_pruning": len(rows) * args.epochs, "tune_s": round(tune_s, 1),
           "best_val_acc": result.best_value, "best_params": result.best_params}
    for name, cfg in (("base", validate_config(config())),
                      ("tuned", load_config(study / "best.yaml"))):
        t0 = time.perf_counter()
        run = train(cfg, args.work / "runs" / (name + variant))
        m = json.loads((run / "metrics.json").read_text())
        out[f"{name}_test_accuracy"] = m["accuracy"]
        out["n_test"] = m["n"]
        out[f"{name}_macro_f1"] = m["macro_f1"]
        out[f"{name}_train_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out), flush=True)
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
