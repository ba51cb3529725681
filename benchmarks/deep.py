"""Networks on data they have not heard: accuracy, training speed, and one-clip latency.

Tasks (see ``_common.TASKS``): instrument family trained on gm-notes-fluidr3 and tested on
gm-notes-musescore (unseen recordings of the instruments), and vocal gender trained on the train voices
and tested on the unseen val voices. Features: the singer-gender study's ``fbank`` (16 kHz, 40 bands,
per-band mean normalisation so level and recording colour matter less), random crops of ``--frames``
frames with SpecAugment in training. Usage::

    .venv/bin/python benchmarks/deep.py --models cnn_small --epochs 15        # ~15 min on 2 CPU cores
    .venv/bin/python benchmarks/deep.py --models cnn_small resnet_compact resnet34 --members 5   # GPU
    .venv/bin/python benchmarks/deep.py --tasks vocal --models resnet_compact --separate --copies 4 --epochs 8

``--mels N`` sets the fbank's number of bands (the study's 40 by default); ``--no-normalize`` leaves
out its per-band mean normalisation.

``--copies N`` adds N offline copies of every training clip (``train.copies``), each pitch-shifted by a
uniform draw in [-``--pitch``, ``--pitch``] semitones with the formants kept; with ``--background LOW
HIGH`` (vocal gender) each copy instead has one of the training split's instrumental clips mixed in
(``background: {files: {label: instrumental}}``, as the singer-gender recipes) at an SNR drawn in [LOW,
HIGH] dB, so that the networks hear more accompaniments, and more of what separation leaves behind,
than the training pieces alone.

``--filter-augment DB`` adds a random frequency response (``filter_augment``) to every training batch.

Prints one JSON line per run and writes them all with ``--out``. ``--latency`` also times one 3 s clip
end to end (decode -> fbank -> resnet_compact) on one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import TASKS  # noqa: E402
from earmark.config import validate_config  # noqa: E402
from earmark.train.experiment import train  # noqa: E402

FRAMES = {"family": 296, "vocal": 296}  # random crops of ~3 s from 4 s notes / 3 s snippets


def latency(n: int = 50) -> dict:
    """Median ms of decode -> fbank -> resnet_compact for one 3 s 16 kHz WAV on one thread."""
    import numpy as np
    import soundfile as sf
    import torch

    from earmark.audio import load
    from earmark.features import fbank
    from earmark.models.nets import create_network

    torch.set_num_threads(1)
    path = Path("/tmp/earmark-latency.wav")
    sf.write(path, (0.1 * np.random.default_rng(0).standard_normal(48000)).astype(np.float32), 16000)
    net = create_network("resnet_compact", n_classes=4, seed=0).eval()

    def once() -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            net(torch.from_numpy(fbank(load(path, sr=16000)))[None])
        return (time.perf_counter() - t0) * 1e3

    for _ in range(10):
        once()
    times = sorted(once() for _ in range(n))
    return {"latency_ms_median": round(times[n // 2], 2), "latency_ms_p90": round(times[int(n * 0.9)], 2)}


def training_speed(run: Path, manifest: Path, cfg) -> dict:
    """From ``history.csv`` (the first member's, for ensembles): training examples per second, and the
    share of each epoch spent in the input pipeline (waiting for the loader + augmenting) against the
    steps themselves -- the loader must not be the bottleneck."""
    import pandas as pd

    from earmark.data import Manifest

    history = run / "history.csv"
    if not history.exists():
        history = run / "members" / "0" / "history.csv"
    if not history.exists():
        return {}
    h = pd.read_csv(history)
    net = history.parent / "net" / "net.json"
    n = json.loads(net.read_text()).get("n_train") if net.exists() else None  # copies included
    if n is None:
        n = len(Manifest.read(manifest).select(split=cfg.data.train_split)) * (1 - cfg.train.val_fraction)
    out = {"train_clips_per_s": round(len(h) * n / h["seconds"].sum(), 1)}
    if "load_seconds" in h:
        out["loader_s_per_epoch"] = round(float(h["load_seconds"].mean()), 2)
        out["epoch_s"] = round(float(h["seconds"].mean()), 2)
        out["loader_share"] = round(float(h["load_seconds"].sum() / h["seconds"].sum()), 3)
    return out


def network_config(task: str, manifest: Path, test_split: str, model: str, *, epochs: int, members: int = 1,
                   separate: bool = False, copies: int = 0, pitch: float = 7.0, mels: int = 40,
                   normalize: bool = True, filter_db: float = 0.0,
                   background_snr: tuple[float, float] | None = None, store: Path) -> dict:
    """The experiment config of one benchmark network (also used by ``fusion.py``)."""
    fbank = {"normalize": normalize} | ({"n_mels": mels} if mels != 40 else {})
    colour = [{"name": "filter_augment", "db": filter_db}] if filter_db else []
    if not copies:
        copy_steps = []
    elif background_snr is not None:  # the training split's instrumental clips (the recipes' setting)
        copy_steps = [{"name": "background", "files": {"label": "instrumental"}, "snr_db": list(background_snr)}]
    else:
        copy_steps = [{"name": "pitch_shift", "semitones": [-pitch, pitch], "formants": "keep"}]
    return {"data": {"manifest": str(manifest), "test_split": test_split},
            "audio": {"separate": {"method": "repet"} if separate else None},
            "features": {"name": "fbank", "params": fbank, "frames": FRAMES[task], "store": str(store)},
            "model": {"name": model},
            "train": {"seed": 0, "epochs": epochs, "batch_size": 32, "optimizer": "adamw", "lr": 1e-3,
                      "weight_decay": 1e-4, "schedule": "cosine", "label_smoothing": 0.1,
                      "augment": colour + [{"name": "spec_augment", "freq_masks": 2, "freq_width": 6,
                                            "time_masks": 2, "time_width": 30}],
                      "val_fraction": 0.1, "ensemble": {"members": members},
                      "copies": {"n": copies, "augment": copy_steps}}}



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, default=Path("/work/bench-data"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/earmark-bench/deep"))
    ap.add_argument("--tasks", nargs="+", default=["family", "vocal"])
    ap.add_argument("--models", nargs="+", default=["cnn_small"])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--members", type=int, default=1)
    ap.add_argument("--latency", action="store_true")
    ap.add_argument("--separate", action="store_true", help="separate vocals first (audio.separate: repet)")
    ap.add_argument("--copies", type=int, default=0, help="offline copies per training clip (train.copies.n)")
    ap.add_argument("--pitch", type=float, default=7.0,
                    help="copies: formant-keeping pitch shift drawn in [-PITCH, PITCH] semitones")
    ap.add_argument("--mels", type=int, default=40, help="fbank bands (the study's 40)")
    ap.add_argument("--no-normalize", dest="normalize", action="store_false",
                    help="fbank without per-band mean normalisation (keeps each clip's spectral envelope)")
    ap.add_argument("--filter-augment", type=float, default=0.0, metavar="DB",
                    help="add filter_augment (random frequency response, gains in [-DB, DB] fbank units) before SpecAugment")
    ap.add_argument("--background", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                    help="vocal: copies get a training instrumental clip mixed in at an SNR in [LOW, HIGH] dB")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.background and not args.copies:
        ap.error("--background makes copies: give --copies N too")
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    if args.latency:
        rows.append({"what": "latency, one 3 s clip, decode+fbank+resnet_compact, 1 CPU thread", **latency()})
        print(json.dumps(rows[-1]), flush=True)
    for task in args.tasks:
        make, test_split, what = TASKS[task]
        manifest = make(args.bench, args.work)
        for model in args.models:
            raw = network_config(task, manifest, test_split, model, epochs=args.epochs, members=args.members,
                                 separate=args.separate, copies=args.copies, pitch=args.pitch, mels=args.mels,
                                 normalize=args.normalize, filter_db=args.filter_augment,
                                 background_snr=tuple(args.background) if args.background else None,
                                 store=args.work / "features")
            cfg = validate_config(raw)
            t0 = time.perf_counter()
            suffix = ("-sep" if args.separate else "") + (f"-copies{args.copies}" + (f"bg{args.background[0]:g}-{args.background[1]:g}" if args.background
                                             else f"p{args.pitch:g}") if args.copies else "") \
                + (f"-mels{args.mels}" if args.mels != 40 else "") + ("" if args.normalize else "-nonorm") \
                + (f"-filter{args.filter_augment:g}" if args.filter_augment else "")
            run = train(cfg, args.work / "runs" / f"{task}-{model}-x{args.members}{suffix}")
            seconds = time.perf_counter() - t0
            m = json.loads((run / "metrics.json").read_text())
            rows.append({"task": task, "what": what, "model": model, "members": args.members, "separate": args.separate,
                         "mels": args.mels, "normalize": args.normalize, "filter_augment_db": args.filter_augment,
                         "copies": args.copies, "pitch": args.pitch if args.copies and not args.background else None,
                         "background_snr": args.background if args.copies else None,
                         "accuracy": m["accuracy"], "top3": m["top_k_accuracy"].get("3"), "macro_f1": m["macro_f1"],
                         "member_accuracy": [x["accuracy"] for x in m.get("members", [])],
                         "epochs": args.epochs, "train_s": round(seconds, 1), "n_test": m["n"],
                         **training_speed(run, manifest, cfg), "ms_per_clip": m["inference_ms_per_clip"],
                         "params": m["params"]})
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
