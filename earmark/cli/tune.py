"""``earmark tune``: hyperparameter search (Optuna, Hyperband pruning) over the config's ``tune.space``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from earmark.cli.app import app


@app.command("tune")
def tune_command(
    config: Path = typer.Argument(..., help="Experiment config (YAML) with a tune section; see recipes/fma_logmel_cnn4.yaml."),
    trials: int = typer.Option(..., "--trials", "-n", help="Finished trials the study should hold (a rerun runs the rest)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for study.db, trials.csv, best.yaml (default: CONFIG's name + '-tune' beside it)."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Optuna storage URL shared by several processes or machines (default: sqlite OUT/study.db)."),
    study_name: str = typer.Option("earmark", "--study-name", help="The study's name in the storage."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Start no new trial after this many seconds."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a config key: --set train.epochs=10."),
    progress: bool = typer.Option(False, "--progress/--no-progress", help="Show each trial's training progress bars."),
) -> None:
    """Search hyperparameters: Optuna trials over the config's tune.space.

    Each trial is the experiment of CONFIG with some keys changed, scored
    without touching the test split. A network validates on data.val_split
    or else on a hold-out of the train split (train.val_fraction; 0.2 when
    0) and reports its validation score after every epoch, so Hyperband
    stops unpromising trials early; a classical model is cross-validated
    (train.search.folds, train.search.scoring). The best trial's config
    goes to OUT/best.yaml: `earmark train OUT/best.yaml --out RUN` trains
    it on the train split.
    Rerun the same command to continue a study; a trial cut off by a kill
    goes on from its last checkpoint.

    \b
    Config keys (section tune):
      tune.space     config key path -> {low, high[, log: true][, step]}
                     (an int when both ends are ints) or a list of choices
                     (any YAML values), e.g.
                       train.lr: {low: 1.0e-5, high: 1.0e-2, log: true}
                       model.params.kernel_size: [3, 5, 7]
      tune.metric    networks: val_acc (maximised, default) | val_loss
      tune.sampler   tpe (default) | random; seeded by train.seed
      tune.pruner    hyperband (default) | median | none
      tune.min_epochs        epochs (folds) before pruning may stop a trial (1)
      tune.reduction_factor  Hyperband keeps 1/factor at each rung (3)
      tune.startup_trials    TPE's random trials first; median: trials
                             before it prunes (5)
    Writes OUT/tune.json, OUT/study.db, OUT/trials.csv (one row per trial),
    OUT/best.yaml and OUT/trials/<n>/history.csv.
    """
    from rich.console import Console
    from rich.markup import escape

    from earmark.config import read_config
    from earmark.errors import ConfigError
    from earmark.train.tune import BEST_FILE, TRIALS_FILE, parse_space, trial_values, tune

    console = Console()
    raw = read_config(config, set_)
    out = out if out is not None else config.with_name(config.stem + "-tune")

    def show(study, t) -> None:  # called once tune() has checked the space
        dims = parse_space(raw["tune"]["space"])
        if t.state.name == "COMPLETE":
            best = " (best so far)" if study.best_trial.number == t.number else ""
            what = f"{t.value:.4f}{best}"
        else:
            what = t.state.name.lower() + (": " + t.user_attrs.get("pruned", "") if "pruned" in t.user_attrs else "")
            if "error" in t.user_attrs:
                what += f": {t.user_attrs['error']}"
        params = ", ".join(f"{k}={v!r}" for k, v in trial_values(t, dims).items())
        console.print(f"trial {t.number}: {escape(what)} [dim]{escape(params)}[/]", highlight=False, soft_wrap=True)

    try:
        result = tune(raw, out, trials=trials, storage=storage, study_name=study_name, timeout=timeout,
                      base=config.parent, progress=progress, on_trial=show)
    except ConfigError as exc:
        raise ConfigError(f"{config}: {exc}") from None
    counts = ", ".join(f"{n} {state}" for state, n in result.counts.items())
    console.print(f"study {study_name!r} in {result.storage}: {counts} (this run: {result.ran})", highlight=False, soft_wrap=True)
    if result.best_config is None:
        console.print("[yellow]no trial completed yet[/]")
        raise typer.Exit(1)
    console.print(f"best ({result.direction}): {result.best_value:.4f} with {result.best_params}", highlight=False, soft_wrap=True)
    console.print(f"trials: {out / TRIALS_FILE}; best config: {out / BEST_FILE} -> "
                  f"`earmark train {out / BEST_FILE} --out RUN`", highlight=False, soft_wrap=True)
