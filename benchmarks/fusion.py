"""Unseen voices: a network ensemble, a pretrained speaker embedding, and their fusion (``earmark fuse``).

Vocal gender (4 classes) trained on the train voices of ``vocal-gender`` and tested on its unseen val
voices, every run on vocals separated first (``audio.separate: repet``):

1. the network: ``resnet_compact`` on fbank, ``--members`` seeds (the settings of ``deep.py``);
2. the speaker embedding: ``embedding:ge2e`` (Resemblyzer's GE2E voice encoder, pretrained on
   thousands of speakers) -> standard scaling -> logistic regression, C chosen by 5-fold
   cross-validation grouped by voice, scored by ``--scoring`` (log loss by default, as the recipe),
   one run for each of ``--partials`` (partial length, rate and weighting; the recipe's 0.6 s, 5 per
   second, weighted by energy by default; ``1.6:1.3:equal`` is Resemblyzer's own);
3. the fusion of the network with each, equal weights, and the weights of ``--weights``.

``--copies N --background LOW HIGH`` trains the network on N offline copies of every training clip,
each with one of the training split's instrumental clips mixed in at an SNR in [LOW, HIGH] dB
(``background``, as ``deep.py --background``); ``--ge2e-copies`` gives the ge2e runs the same copies.

The ge2e weights must be in the cache first: ``earmark weights fetch ge2e``. Usage::

    .venv/bin/python benchmarks/fusion.py --members 5 --epochs 15 --out fusion.json    # ~15 min on 2 cores

A run already trained in ``--work`` (its ``metrics.json`` is there) is reused, not trained again.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import TASKS, ge2e_partials  # noqa: E402
from deep import network_config  # noqa: E402
from earmark.config import validate_config  # noqa: E402
from earmark.evaluate.evaluate import evaluate  # noqa: E402
from earmark.fuse import fuse_runs  # noqa: E402
from earmark.train.experiment import train  # noqa: E402


def _trained(raw: dict, out: Path) -> tuple[Path, float | None]:
    if (out / "metrics.json").is_file():
        return out, None
    t0 = time.perf_counter()
    train(validate_config(raw), out)
    return out, round(time.perf_counter() - t0, 1)


def _row(what: str, metrics: dict, seconds: float | None = None) -> dict:
    diag = [metrics["confusion_matrix"][i][i] for i in range(len(metrics["labels"]))]
    return {"what": what, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "n": metrics["n"],
            "correct_per_class": dict(zip(metrics["labels"], diag)), "members": metrics.get("members"),
            "train_s": seconds, "ms_per_clip": metrics["inference_ms_per_clip"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, default=Path("/work/bench-data"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/earmark-bench/deep"))
    ap.add_argument("--model", default="resnet_compact")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--weights", type=float, nargs=2, default=None, metavar=("NET", "GE2E"),
                    help="also report the fusion with these weights")
    ap.add_argument("--scoring", default="neg_log_loss",
                    help="what picks the logistic regression's C in the grouped cross-validation (as the recipe)")
    ap.add_argument("--partials", nargs="+", type=ge2e_partials, default=[(0.6, 5.0, "energy")],
                    metavar="SECONDS:RATE[:WEIGHTING]",
                    help="ge2e partials, each a run: length in seconds, partials per second and how they are averaged "
                         "(equal or energy; the recipe: 0.6:5:energy; Resemblyzer: 1.6:1.3:equal)")
    ap.add_argument("--copies", type=int, default=0,
                    help="with --background: offline copies per training clip, for the network (and with --ge2e-copies for ge2e)")
    ap.add_argument("--background", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                    help="copies get a training instrumental clip mixed in at an SNR in [LOW, HIGH] dB (deep.py's --background)")
    ap.add_argument("--ge2e-copies", action="store_true", help="the ge2e runs get the same copies")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    make, test_split, _ = TASKS["vocal"]
    manifest = make(args.bench, args.work)
    store = args.work / "features"
    rows = []
    if args.copies and not args.background:
        ap.error("--copies needs --background")
    copies = {"n": args.copies, "augment": [{"name": "background", "files": {"label": "instrumental"},
                                             "snr_db": args.background}]} if args.copies else {"n": 0, "augment": []}
    tag = f"-copies{args.copies}bg{args.background[0]:g}-{args.background[1]:g}" if args.copies else ""

    net, seconds = _trained(network_config("vocal", manifest, test_split, args.model, epochs=args.epochs,
                                           members=args.members, separate=True, copies=args.copies,
                                           background_snr=tuple(args.background) if args.background else None,
                                           store=store),
                            args.work / "runs" / f"vocal-{args.model}-x{args.members}-sep{tag}")
    rows.append(_row(f"{args.model} x{args.members}, fbank, separated vocals",
                     json.loads((net / "metrics.json").read_text()), seconds))
    print(json.dumps(rows[-1]), flush=True)

    for partial, rate, weighting in args.partials:
        spec = f"{partial:g}:{rate:g}:{weighting}"
        ge2e, seconds = _trained({"data": {"manifest": str(manifest), "test_split": test_split},
                                  "audio": {"separate": {"method": "repet"}},
                                  "features": {"name": "embedding:ge2e", "store": str(store),
                                               "params": {"weights": "ge2e", "partial": partial, "rate": rate,
                                                          "weighting": weighting}},
                                  "model": {"name": "logreg", "scaler": "standard"},
                                  "train": {"seed": 0, "copies": copies if args.ge2e_copies else {"n": 0, "augment": []},
                                            "search": {"folds": 5, "scoring": args.scoring,
                                                       "grid": {"logreg": {"C": [0.01, 0.03, 0.1, 0.3, 1, 3]}}}}},
                                 args.work / "runs" / f"vocal-ge2e-{partial:g}s-{rate:g}-{weighting}-logreg-sep-{args.scoring}"
                                 f"{tag if args.ge2e_copies else ''}")
        best = next(csv.DictReader((ge2e / "cv_results.csv").open()))  # ranked: the chosen C first
        rows.append(_row(f"embedding:ge2e ({partial:g} s partials, {rate:g}/s, {weighting} weights) + logreg ({best['params']}, by "
                         f"{args.scoring}: {float(best['mean_test_score']):.3f} in grouped CV), separated vocals",
                         json.loads((ge2e / "metrics.json").read_text()), seconds))
        print(json.dumps(rows[-1]), flush=True)

        for weights in [None] + ([args.weights] if args.weights else []):
            name = "fused" if weights is None else f"fused-{weights[0]:g}-{weights[1]:g}"
            out = args.work / "runs" / (f"vocal-{args.model}-x{args.members}-sep{tag}+ge2e-{partial:g}s-{rate:g}-{weighting}-"
                                        f"{args.scoring}{tag if args.ge2e_copies else ''}-{name}")
            fuse_runs([net, ge2e], out, weights)
            metrics = evaluate(out, manifest, split=test_split)
            rows.append(_row(f"fusion with the {spec} ge2e run ({'equal weights' if weights is None else f'weights {weights}'})",
                             metrics))
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
