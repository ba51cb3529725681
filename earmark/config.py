"""The experiment config: YAML in, validated, resolved YAML saved beside every run.

Sections ``data``, ``audio``, ``features``, ``model``, ``train``, ``eval`` (and ``tune``, read by
``earmark tune``); every key has a default except
``data.manifest``. Unknown keys and bad values are refused with the key path::

    model.params.C: must be > 0, got -1
    train.search.folds: Input should be greater than or equal to 2, got 1

``--set key.path=value`` overrides any key from the command line (the value is read as YAML).

Example (``recipes/artist20_task1.yaml``)::

    data:
      manifest: artist20.csv
    features:
      name: artist_stats
    model:
      name: [svm_rbf, rf, knn]
      scaler: robust
      select_k: 100
    train:
      search: {folds: 5}
    eval:
      top_k: [1, 3]
"""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from earmark.errors import ConfigError
from earmark.fsutil import atomic_write_text

POOL_STATS = ("mean", "std", "min", "max", "median")
PATH_KEYS = ("data.manifest", "features.store")  # relative to the config file, or to the cwd when given by --set
AUGMENT_KEYS = ("train.augment", "train.copies.augment")  # lists whose path parameters resolve the same way


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Which clips: a manifest (``earmark prepare``) and the names of its splits."""

    manifest: Path = Field(description="Manifest CSV/JSONL; relative paths are relative to the config file.")
    train_split: str = Field("train", description="Split the model is fitted on (cross-validated by the search).")
    test_split: Optional[str] = Field("test", description="Split evaluated after training, if the manifest has it.")
    val_split: Optional[str] = Field(None, description="Networks: split to validate on (val_loss, early stopping, tune) "
                                                       "instead of train.val_fraction, e.g. a dataset's official 'val'.")


class SeparateConfig(_Section):
    """Vocal separation (:func:`earmark.audio.separate.separate`, as ``earmark separate`` does to files)."""

    method: str = Field("repet", description="repet (built in, no weights), demucs or spleeter (`pip install demucs` / `spleeter`).")
    params: dict[str, Any] = Field(default_factory=dict, description="The method's parameters, e.g. {margin_v: 2, hpss: before}.")
    stem: Literal["vocals", "accompaniment"] = Field("vocals", description="The part the features are computed on.")


class AudioConfig(_Section):
    """What is done to each decoded clip (at the feature's rate) before the feature. Cached with the
    features: the settings are part of the feature store's key, and prediction applies them too."""

    separate: Optional[SeparateConfig] = Field(None, description="Vocal separation; null = none; a method name is short for {method: NAME}.")

    @field_validator("separate", mode="before")
    @classmethod
    def _method_name(cls, v: Any) -> Any:
        return {"method": v} if isinstance(v, str) else v


class FeaturesConfig(_Section):
    """Which feature, its parameters, and how frame-level features become one vector per clip
    (classical models) or a fixed-size input (networks)."""

    name: str = Field("stats518", description="Registered feature (`earmark features` lists them).")
    params: dict[str, Any] = Field(default_factory=dict, description="Feature parameters, e.g. {n_mels: 64}.")
    pool: list[Literal["mean", "std", "min", "max", "median"]] = Field(
        default_factory=lambda: ["mean", "std"],
        description="Statistics over time for (frames, bins) features; ignored for one-vector features.",
    )
    frames: Optional[int] = Field(None, ge=1, description="Networks: crop (random in training, centred otherwise) or zero-pad every clip to this many frames.")
    store: Optional[Path] = Field(None, description="Feature store folder; default: 'features' beside the manifest.")
    jobs: int = Field(0, ge=0, description="Extraction workers; 0 = all cores.")


class ModelConfig(_Section):
    """The classifier: one registered model, or several candidates that the grid search compares."""

    name: Union[str, list[str]] = Field("svm_rbf", description="Model name or list of candidate names.")
    params: dict[str, Any] = Field(default_factory=dict, description="Fixed model parameters, e.g. {C: 10}.")
    scaler: Optional[Literal["standard", "robust"]] = Field("standard", description="Feature scaling step.")
    select_k: Optional[int] = Field(None, ge=1, description="SelectKBest(f_classif, k) step; None = keep all.")
    pca: Optional[Union[int, float]] = Field(None, gt=0, description="PCA step: explained variance in (0, 1) or a number of components.")

    @field_validator("name")
    @classmethod
    def _non_empty(cls, v: Union[str, list[str]]) -> Union[str, list[str]]:
        if isinstance(v, list) and not v:
            raise ValueError("must name at least one model")
        return v

    @property
    def candidates(self) -> list[str]:
        return [self.name] if isinstance(self.name, str) else list(self.name)


class SearchConfig(_Section):
    """Grid search with (group-aware) stratified k-fold cross-validation."""

    enabled: bool = Field(True, description="False fits model.params as given, without cross-validation.")
    grid: Optional[dict[str, dict[str, list[Any]]]] = Field(
        None, description="Per model name, {parameter: [values]}; a model not listed uses the studies' default grid."
    )
    folds: int = Field(5, ge=2, description="Cross-validation folds (grouped by the manifest's group column).")
    scoring: str = Field("accuracy", description="scikit-learn scoring name: accuracy, f1_macro, top_k_accuracy, neg_log_loss (the quality of the probabilities: for a model to be fused), ...")
    jobs: int = Field(1, ge=-1, description="Parallel fits (-1 = all cores).")


class EnsembleConfig(_Section):
    """Networks: several members differing in seed and shuffling, their probabilities averaged."""

    members: int = Field(1, ge=1, description="How many networks to train (1 = no ensemble).")
    jobs: int = Field(1, ge=0, description="Members trained at once through the executor (0 = all cores).")


class CopiesConfig(_Section):
    """Offline augmentation: ``n`` extra copies of every training clip, each augmented once when the
    features are extracted and cached in the feature store (the settings are part of the store key).
    Waveform steps (``pitch_shift``, ``time_stretch``, ``gain``, ``noise``, ``crop``) are applied to the
    decoded audio before separation, spectrogram steps (``spec_augment``: the FMA study's k masked
    copies) to the feature. Copies join the training data only: never validation, test or prediction."""

    n: int = Field(0, ge=0, description="Extra augmented copies per training clip (0 = none).")
    augment: list[Any] = Field(default_factory=list, description="Steps making each copy, e.g. [{name: pitch_shift, semitones: 7, formants: keep}].")


def _trainer_default(name: str) -> Any:
    from earmark.train.options import TrainerOptions

    f = next(f for f in dataclasses.fields(TrainerOptions) if f.name == name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


class TrainConfig(_Section):
    """How models are fitted: the grid search (classical models) or the trainer (networks).

    The trainer keys take their defaults from :class:`earmark.train.options.TrainerOptions` and are
    validated by it (``train.lr: must be > 0, got -1``).
    """

    seed: int = Field(0, description="Seed of every random choice (folds, models, training).")
    search: SearchConfig = Field(default_factory=SearchConfig)
    ensemble: EnsembleConfig = Field(default_factory=EnsembleConfig)
    copies: CopiesConfig = Field(default_factory=CopiesConfig)
    epochs: int = Field(default_factory=lambda: _trainer_default("epochs"))
    batch_size: int = Field(default_factory=lambda: _trainer_default("batch_size"))
    optimizer: str = Field(default_factory=lambda: _trainer_default("optimizer"))
    lr: float = Field(default_factory=lambda: _trainer_default("lr"))
    backbone_lr: Optional[float] = Field(default_factory=lambda: _trainer_default("backbone_lr"))
    weight_decay: float = Field(default_factory=lambda: _trainer_default("weight_decay"))
    schedule: Optional[str] = Field(default_factory=lambda: _trainer_default("schedule"))
    schedule_params: dict[str, Any] = Field(default_factory=lambda: _trainer_default("schedule_params"))
    label_smoothing: float = Field(default_factory=lambda: _trainer_default("label_smoothing"))
    early_stopping_patience: Optional[int] = Field(default_factory=lambda: _trainer_default("early_stopping_patience"))
    grad_clip: Optional[float] = Field(default_factory=lambda: _trainer_default("grad_clip"))
    amp: bool = Field(default_factory=lambda: _trainer_default("amp"))
    balanced_sampling: bool = Field(default_factory=lambda: _trainer_default("balanced_sampling"))
    num_workers: int = Field(default_factory=lambda: _trainer_default("num_workers"))
    device: str = Field(default_factory=lambda: _trainer_default("device"))
    augment: Optional[list[Any]] = Field(None, description="Augmentation steps, e.g. [{name: spec_augment}, {name: mixup, alpha: 0.2}].")
    mixup_alpha: Optional[float] = Field(None, gt=0, description="Mixup with Beta(alpha, alpha) weights (or a mixup step in augment).")
    val_fraction: float = Field(0.0, ge=0, lt=1, description="Networks: stratified share of the train split held out for validation / early stopping.")
    val_groups: bool = Field(False, description="Networks: the validation share takes whole groups of the manifest's group column "
                                                "(instrument, voice, piece), so it measures groups never trained on.")

    def trainer_options(self) -> dict[str, Any]:
        """The keys :class:`~earmark.train.options.TrainerOptions` takes, with this config's values."""
        from earmark.train.options import TrainerOptions

        return {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainerOptions)}


class EvalConfig(_Section):
    """Evaluation and prediction."""

    top_k: list[int] = Field(default_factory=lambda: [1, 3], description="Top-k accuracies to report.")
    window: Optional[float] = Field(None, gt=0, description="Predict: split audio into windows of this many seconds.")
    hop: Optional[float] = Field(None, gt=0, description="Predict: window hop in seconds (default: window).")
    aggregate: Literal["mean", "vote"] = Field("mean", description="Predict: combine windows by mean probability or majority vote.")

    @field_validator("top_k")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or any(k < 1 for k in v):
            raise ValueError(f"must be a non-empty list of integers >= 1, got {v}")
        return sorted(set(v))


class TuneConfig(_Section):
    """Hyperparameter search (``earmark tune``): Optuna trials over ``space``, pruned by Hyperband.

    ``space`` maps config key paths to what a trial may choose (see :mod:`earmark.train.tune`)::

        tune:
          space:
            train.lr: {low: 1.0e-5, high: 1.0e-2, log: true}
            model.params.kernel_size: [3, 5, 7]
            model.params.dropout: {low: 0.0, high: 0.5}
    """

    space: dict[str, Any] = Field(default_factory=dict, description="Config key path -> {low, high[, log][, step]} or a list of choices.")
    metric: Optional[Literal["val_acc", "val_loss"]] = Field(
        None, description="Networks: validation accuracy (maximised, default) or loss (minimised); classical models: "
                          "the cross-validated train.search.scoring.")
    sampler: Literal["tpe", "random"] = Field("tpe", description="How trials choose values (seeded by train.seed).")
    pruner: Literal["hyperband", "median", "none"] = Field("hyperband", description="Stops unpromising trials early.")
    min_epochs: int = Field(1, ge=1, description="Epochs (networks) or folds (classical) before a trial can be pruned.")
    reduction_factor: int = Field(3, ge=2, description="Hyperband: 1/reduction_factor of the trials go on at each rung.")
    startup_trials: int = Field(5, ge=0, description="TPE: random trials before the model-based choice; median: trials before pruning.")


class ExperimentConfig(_Section):
    """A whole experiment (see the module docstring)."""

    data: DataConfig
    audio: AudioConfig = Field(default_factory=AudioConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def save(self, path: str | os.PathLike) -> None:
        """Write the resolved config (every default filled in, paths absolute) atomically."""
        atomic_write_text(path, self.to_yaml())


def _key_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if not (isinstance(p, str) and p.startswith(("function-", "union["))))


def validate_config(raw: dict[str, Any], *, base: str | os.PathLike | None = None) -> ExperimentConfig:
    """Validate a config dict; relative paths resolve against ``base`` (the config file's folder).

    Raises
    ------
    ConfigError
        Naming the key path of the first problem(s), what was expected and what came.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping with sections data, audio, features, model, train, eval; got {type(raw).__name__}")
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors()[:5]:
            where = _key_path(err["loc"]) or "config"
            if err["type"] == "extra_forbidden":
                lines.append(f"{where}: unknown key")
            elif err["type"] == "missing":
                lines.append(f"{where}: required")
            else:
                lines.append(f"{where}: {err['msg']}, got {err.get('input')!r}")
        raise ConfigError("; ".join(lines)) from None
    if cfg.audio.separate is not None:
        from earmark.audio.separate import check_separation

        check_separation(cfg.audio.separate, key="audio.separate")  # method, parameters, backend installed
    if base is not None:  # before the checks below: they look for the files
        from earmark.augment import resolve_paths

        cfg.train.augment = resolve_paths(cfg.train.augment, base)  # AUGMENT_KEYS
        cfg.train.copies.augment = resolve_paths(cfg.train.copies.augment, base)
    for i, step in enumerate(cfg.train.augment or []):
        if isinstance(step, dict) and isinstance(step.get("files"), dict):
            raise ConfigError(f"train.augment[{i}].files: {step['files']!r} (training clips of a class) is for "
                              "train.copies.augment, where the training clips are known; give a folder or a list of files")
    if cfg.train.copies.n or cfg.train.copies.augment:
        from earmark.augment import offline_copies

        offline_copies(cfg.train.copies.augment, cfg.train.copies.n, seed=cfg.train.seed)  # train.copies.augment[0]...
    if cfg.tune.space:
        from earmark.train.tune import parse_space

        parse_space(cfg.tune.space)  # tune.space.train.lr: ...
    if base is not None:
        base = Path(base)
        cfg.data.manifest = _absolute(cfg.data.manifest, base)
        if cfg.features.store is not None:
            cfg.features.store = _absolute(cfg.features.store, base)
    if cfg.features.store is None:
        cfg.features.store = Path(os.path.abspath(cfg.data.manifest)).parent / "features"
    return cfg


def _absolute(p: Path, base: Path) -> Path:
    return Path(os.path.abspath(p if p.is_absolute() else base / p))


def apply_overrides(raw: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Return a copy of ``raw`` with ``["train.seed=3", "model.params.C=10"]`` applied (values read as YAML).

    Paths given this way (``data.manifest``, ``features.store``, an augmentation's ``files``) are relative
    to the current directory.
    """
    out = copy.deepcopy(raw)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set: expected KEY.PATH=VALUE, got {item!r}")
        value = yaml.safe_load(value)
        if key.strip() in PATH_KEYS and isinstance(value, str):
            value = os.path.abspath(value)  # as typed on the command line: from the cwd
        elif key.strip() in AUGMENT_KEYS:
            from earmark.augment import resolve_paths

            value = resolve_paths(value, os.getcwd())  # background.files, likewise
        set_key(out, key.strip(), value, what=f"--set {key}")
    return out


def set_key(raw: dict[str, Any], key: str, value: Any, *, what: str | None = None) -> None:
    """Set the dotted ``key`` (``"model.params.C"``) of the config dict ``raw`` in place, creating sections.

    Raises
    ------
    ConfigError
        A part of the path is a value, not a section (the message starts with ``what``, default ``key``).
    """
    parts = key.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        nxt = node.setdefault(part, {})
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"{what or key}: {'.'.join(parts[: i + 1])} is not a section")
        node = nxt
    node[parts[-1]] = value


def read_config(path: str | os.PathLike, overrides: list[str] | None = None) -> dict[str, Any]:
    """The config file's YAML as a dict with ``--set`` overrides applied, not yet validated
    (its relative paths are relative to ``path``'s folder)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with sections data, audio, features, model, train, eval; "
                          f"got {type(raw).__name__}")
    return apply_overrides(raw, overrides)


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML config, apply ``--set`` overrides and validate it."""
    raw = read_config(path, overrides)
    try:
        return validate_config(raw, base=Path(path).parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
