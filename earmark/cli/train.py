"""``earmark train``: fit the model an experiment config describes and save the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from earmark.cli.app import RAY_HELP, app


@app.command("train")
def train_command(
    config: Path = typer.Argument(..., help="Experiment config (YAML); see recipes/ for the studies' setups."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to write (config.yaml, model, metrics.json, ...)."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a config key: --set train.seed=3 --set model.params.C=10."),
    resume: bool = typer.Option(False, "--resume", help="Networks: continue an interrupted run in OUT from its last checkpoint (same config)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help=RAY_HELP + " Feature extraction and ensemble members run there."),
) -> None:
    """Train a model from CONFIG into the run folder OUT.

    Features are extracted into the config's store first (cached, resumable). For classical
    models, with train.search.enabled (default) a grid search with stratified, group-aware k-fold
    cross-validation picks the model and parameters and the best is refitted on the whole train
    split. A network name in model.name (cnn_small, cnn4, cnn1d, linear, ffnn, resnet18/34/50,
    resnet_compact, pretrained) trains that network on the frame features instead (history.csv and a
    checkpoint every epoch). The model is saved and evaluated on the test split when the
    manifest has one, and report.html is written (see `earmark report`). One process at a time
    trains into OUT: a second one stops at once (exit 1).

    \b
    Config keys (every one has a default except data.manifest):
      data.manifest, data.train_split (train), data.test_split (test),
        data.val_split (null; networks: validate on this split, e.g. FMA's official val)
      audio.separate (null | {method: repet|demucs|spleeter, params, stem: vocals|accompaniment})
      features.name (stats518), features.params ({}), features.pool (mean, std), features.store, features.jobs (0)
      model.name (svm_rbf, or a list of candidates), model.params, model.scaler (standard|robust|null),
        model.select_k (null|k), model.pca (null|0.90|0.95|0.99|n)
      train.seed (0), train.search.enabled (true), train.search.grid (model: param: list of values),
        train.search.folds (5), train.search.scoring (accuracy), train.search.jobs (1)
      eval.top_k (1, 3), eval.window / eval.hop (seconds, for predict), eval.aggregate (mean|vote)
    Networks only: features.frames (crop/pad length), train.epochs (20), train.batch_size (32),
      train.optimizer (adamw|adam|sgd), train.lr (3e-4), train.backbone_lr (fine-tuning `pretrained`:
      the backbone's own rate; default lr), train.weight_decay (1e-5),
      train.schedule (cosine_restarts|cosine|plateau|onecycle|null), train.schedule_params,
      train.label_smoothing (0), train.early_stopping_patience, train.grad_clip, train.amp (true),
      train.balanced_sampling (false), train.augment (list of steps), train.mixup_alpha,
      train.val_fraction (0), train.val_groups (false: whole groups of the manifest held out),
      train.device (auto),
      train.ensemble.members (1; N trains N networks with seeds seed..seed+N-1, probabilities averaged),
      train.ensemble.jobs (1; members trained at once through the executor, 0 = all cores)
    Models: logreg, svm_linear, svm_rbf, svm_poly, rf, knn, mlp, and the networks above.
    The tune section (tune.space, tune.pruner, ...) is read by `earmark tune` only (see its --help).

    With --ray ADDRESS, feature extraction and the ensemble members run as Ray tasks (one CPU each)
    instead of features.jobs / train.ensemble.jobs local workers. Members read the feature store and
    write OUT themselves, so on a multi-machine cluster both must be on a shared filesystem.
    """
    from rich.console import Console

    from earmark.config import load_config
    from earmark.train.experiment import train

    cfg = load_config(config, set_)
    if ray is None:
        run = train(cfg, out, resume=resume, progress=progress)
    else:
        from earmark.parallel import make_executor

        with make_executor(ray=ray) as executor:
            run = train(cfg, out, resume=resume, progress=progress, executor=executor)
    _print_run(Console(), run)


def _print_run(console, run: Path) -> None:
    import json

    from earmark.run import MODEL_FILE, NET_DIR, Run

    meta = Run.load(run).meta
    if meta.get("cv_score") is not None:
        console.print(f"best by cross-validation on {meta.get('n_train')} clips: {meta.get('best_params')} "
                      f"(score {meta['cv_score']:.3f})", highlight=False)
    if meta.get("failed_fits"):
        console.print(f"[yellow]{meta['failed_fits']} grid-search fit(s) failed and were skipped[/] "
                      f"(NaN scores in cv_results.csv; e.g. more k-NN neighbours than a fold holds)")
    metrics = run / "metrics.json"
    if metrics.exists():
        m = json.loads(metrics.read_text())
        top = ", ".join(f"top-{k} {v:.3f}" for k, v in m["top_k_accuracy"].items())
        console.print(f"{m['split']}: accuracy {m['accuracy']:.3f} ({top}), macro F1 {m['macro_f1']:.3f} on {m['n']} clips",
                      highlight=False)
    report = " -- open report.html" if (run / "report.html").exists() else ""
    model = MODEL_FILE if (run / MODEL_FILE).exists() else f"{NET_DIR}/"
    outputs = ", ".join([model] + [f for f in ("metrics.json", "confusion.png") if (run / f).exists()])
    console.print(f"run: {run} ({outputs}){report}", highlight=False)
