"""The deep-learning trainer: any ``nn.Module`` classifier on a Dataset of ``(x, y_int)`` pairs.

Every epoch it writes ``history.csv`` and ``checkpoint.pt`` (model, optimizer, scheduler, grad
scaler, early-stopping state, history and every RNG state) atomically into ``out_dir``, plus
``best.pt`` (the model's ``state_dict``) when the validation loss improves and ``epoch1.pt`` (the
``state_dict`` after the first epoch, for the report's epoch-1 embeddings). ``fit(resume=True)``
continues from ``checkpoint.pt`` and, on CPU, ends with exactly the weights and history of an
unbroken run; a kill loses at most the epoch in progress.

>>> trainer = Trainer(model, TrainerOptions(epochs=20, lr=3e-4), out_dir="run")
>>> history = trainer.fit(train_set, val_set)
>>> history["val_acc"][-1]
0.91
>>> proba = predict_proba(model, test_set)          # (n_clips, n_classes), earmark.train.inference
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, Subset, WeightedRandomSampler

from earmark.errors import ConfigError, DataError
from earmark.fsutil import exclusive_lock, remove_stale_temporaries
from earmark.train.inference import check_targets, dataset_labels, resolve_device, split_batch
from earmark.train.options import KEY, TrainerOptions
from earmark.train.checkpoint import History, capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from earmark.train.schedules import (LENGTH_DEPENDENT, current_lr, make_optimizer,
                                     make_scheduler, step_after_batch, step_after_epoch)

CHECKPOINT_FORMAT = "earmark.trainer.checkpoint/1"
#: Options a resumed run may change; any other difference from the checkpoint is refused.
LOCK_FILE = ".trainer.lock"  # held in out_dir by the fitting Trainer: one writer of its checkpoints
RESUMABLE_CHANGES = frozenset({"epochs", "early_stopping_patience", "num_workers", "device", "amp"})



def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _parameter_groups(model: nn.Module, opts: TrainerOptions) -> list[dict[str, Any]]:
    """The trainable parameters; with ``backbone_lr``, those under a ``backbone`` module form a second
    group with that learning rate (the head's group, at ``lr``, stays first: it is the one logged)."""
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    in_backbone = ["backbone" in name.split(".")[:-1] for name, _ in named]
    if opts.backbone_lr is None or not any(in_backbone):
        return [{"params": [p for _, p in named]}]
    head = [p for (_, p), b in zip(named, in_backbone) if not b]
    body = [p for (_, p), b in zip(named, in_backbone) if b]
    return [g for g in ({"params": head, "lr": opts.lr}, {"params": body, "lr": opts.backbone_lr}) if g["params"]]


def _all_finite(model: nn.Module) -> bool:
    tensors = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    return not tensors or bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


class Trainer:
    """Train a classifier (logits out) with checkpoints, resumption and early stopping.

    Parameters
    ----------
    model : nn.Module
        Maps a batch ``x`` of shape ``(batch, ...)`` to logits ``(batch, n_classes)``.
    options : TrainerOptions, optional
        Defaults to ``TrainerOptions()``.
    out_dir : path-like
        Receives ``history.csv``, ``checkpoint.pt``, ``best.pt`` and ``epoch1.pt``. One Trainer at a
        time fits into a folder (it holds ``out_dir/.trainer.lock``); another fails at once.
    mixup : callable, optional
        ``(x, y_onehot, generator) -> (x, y_soft)`` applied to each training batch (on the CPU,
        before the transfer to the device); the loss then takes the soft targets and the training
        accuracy compares against their argmax.
    augment : callable, optional
        ``(x, generator) -> x`` applied to each training batch before ``mixup``.
    progress : bool, default True
        Show a rich progress bar per epoch with loss and accuracy.
    n_classes : int, optional
        Needed only with ``mixup``; by default read from the model's output on one example.
    on_epoch : callable, optional
        ``on_epoch(history)`` after every epoch, once its checkpoint and ``history.csv`` are written
        (``history.rows[-1]`` is the epoch just finished). An exception it raises stops training and
        propagates out of ``fit`` (e.g. a tuning trial being pruned); the checkpoint stays.

    Attributes
    ----------
    history_ : History
        Set by ``fit``.
    device_ : torch.device
        Where the model was trained.
    """

    def __init__(self, model: nn.Module, options: TrainerOptions | None = None, *, out_dir: str | os.PathLike,
                 mixup: Callable | None = None, augment: Callable | None = None, progress: bool = True,
                 n_classes: int | None = None, on_epoch: Callable[[History], None] | None = None):
        self.model = model
        self.options = options if options is not None else TrainerOptions()
        self.out_dir = Path(out_dir)
        self.mixup = mixup
        self.augment = augment
        self.progress = progress
        self.n_classes = n_classes
        self.on_epoch = on_epoch
        self._saved_epoch: int | None = None

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    @property
    def epoch1_path(self) -> Path:
        return self.out_dir / "epoch1.pt"

    @property
    def history_path(self) -> Path:
        return self.out_dir / "history.csv"

    def fit(self, train_set: Dataset, val_set: Dataset | None = None, *, resume: bool = False) -> History:
        """Train for ``options.epochs`` epochs (fewer if early stopping triggers).

        Parameters
        ----------
        train_set, val_set : Dataset
            Items ``(x, y)`` with ``x`` a tensor and ``y`` an integer class index.
        resume : bool, default False
            Continue from ``out_dir/checkpoint.pt``. The options must match those of the
            checkpoint except ``epochs`` (not for length-dependent schedules),
            ``early_stopping_patience``, ``num_workers``, ``device`` and ``amp``.

        Returns
        -------
        History

        Raises
        ------
        ConfigError
            Invalid options, or options that contradict the checkpoint.
        DataError
            Empty or malformed data; the loss or the weights became NaN/Inf (the last good
            checkpoint is left in place); an unreadable or foreign checkpoint; another Trainer
            (in this or another process) is fitting into the same ``out_dir``.
        """
        opts = self.options
        opts.validate()
        if opts.early_stopping_patience is not None and val_set is None:
            raise ConfigError(f"{KEY}.early_stopping_patience: needs a validation set, got val_set=None")
        if len(train_set) == 0:
            raise DataError("train_set: is empty")
        if val_set is not None and len(val_set) == 0:
            raise DataError("val_set: is empty")
        device = self.device_ = resolve_device(opts.device, key=f"{KEY}.device")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.out_dir / LOCK_FILE, f"{self.out_dir}: another Trainer is writing checkpoints "
                            "here; wait for it to finish, or give this one another out_dir"):
            return self._fit(train_set, val_set, resume, device)

    def _fit(self, train_set: Dataset, val_set: Dataset | None, resume: bool, device: torch.device) -> History:
        """``fit`` once the inputs are checked and this process alone writes ``out_dir``."""
        opts, model = self.options, self.model
        remove_stale_temporaries(self.out_dir)  # a checkpoint a killed run was writing
        model.to(device)
        torch.manual_seed(opts.seed)
        np.random.seed(opts.seed)
        random.seed(opts.seed)
        seeds = np.random.SeedSequence(opts.seed).generate_state(3, dtype=np.uint64)
        gens = {name: torch.Generator().manual_seed(int(s)) for name, s in zip(("loader", "sampler", "augment"), seeds)}
        if opts.balanced_sampling:
            labels = dataset_labels(train_set, what="train_set")
            weights = 1.0 / np.bincount(labels)[labels]
            sampler = WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), len(labels),
                                            replacement=True, generator=gens["sampler"])
        else:
            sampler = RandomSampler(train_set, generator=gens["sampler"])
        loader_kw = dict(batch_size=opts.batch_size, num_workers=opts.num_workers, pin_memory=device.type == "cuda",
                         worker_init_fn=_seed_worker if opts.num_workers else None)
        loader = DataLoader(train_set, sampler=sampler, generator=gens["loader"], **loader_kw)
        val_loader = None if val_set is None else DataLoader(val_set, generator=torch.Generator(), **loader_kw)
        steps = len(loader)
        optimizer = self.optimizer_ = make_optimizer(opts.optimizer, _parameter_groups(model, opts), lr=opts.lr,
                                                     weight_decay=opts.weight_decay)
        scheduler = self.scheduler_ = make_scheduler(opts.schedule, optimizer, epochs=opts.epochs,
                                                     steps_per_epoch=steps, **opts.schedule_params)
        use_amp = opts.amp and device.type == "cuda"
        amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
        scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp_dtype == torch.float16)
        autocast = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if use_amp else contextlib.nullcontext
        n_classes = self.n_classes if self.mixup is None or self.n_classes else self._probe_n_classes(train_set, device)

        history, start, bad_epochs = History(), 0, 0
        self._saved_epoch = None
        if resume:
            history, start, bad_epochs = self._resume(optimizer, scheduler, scaler, gens, steps)
        else:
            self.best_path.unlink(missing_ok=True)
            self.epoch1_path.unlink(missing_ok=True)
        for epoch in range(start, opts.epochs):
            if history.stopped_early:
                break
            t0 = time.perf_counter()
            with self._progress_bar(epoch, steps) as bar:
                train_loss, train_acc, load_seconds = self._train_epoch(loader, epoch, optimizer, scheduler, scaler, autocast,
                                                          gens["augment"], n_classes, device, bar)
                val_loss = val_acc = None
                if val_loader is not None:
                    val_loss, val_acc = _evaluate(model, val_loader, device, autocast)
                    if not math.isfinite(val_loss):
                        raise DataError(f"val_set: validation loss is {val_loss} at epoch {epoch + 1}; {self._kept()}; "
                                        "check the validation inputs for NaN/Inf")
                    bar(f"loss {train_loss:.4f} acc {train_acc:.3f} | val_loss {val_loss:.4f} val_acc {val_acc:.3f}")
            step_after_epoch(scheduler, metric=train_loss if val_loss is None else val_loss)
            if not _all_finite(model):
                raise DataError(f"the weights became NaN/Inf during epoch {epoch + 1}; {self._kept()}; lower "
                                "train.lr or set train.grad_clip")
            history.rows.append({"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc,
                                 "val_loss": val_loss, "val_acc": val_acc, "lr": current_lr(optimizer),
                                 "seconds": time.perf_counter() - t0, "load_seconds": load_seconds})
            if val_loss is not None:
                if history.best_val_loss is None or val_loss < history.best_val_loss:
                    history.best_epoch, history.best_val_loss, bad_epochs = epoch + 1, val_loss, 0
                    save_checkpoint(self.best_path, model.state_dict())
                else:
                    bad_epochs += 1
                    history.stopped_early = (opts.early_stopping_patience is not None
                                             and bad_epochs >= opts.early_stopping_patience)
            if epoch == 0:  # before checkpoint.pt: a run resumed after epoch 1 always has it
                save_checkpoint(self.epoch1_path, model.state_dict())
            save_checkpoint(self.checkpoint_path, {
                "format": CHECKPOINT_FORMAT, "epoch": epoch + 1, "steps_per_epoch": steps,
                "options": opts.to_dict(), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": None if scheduler is None else scheduler.state_dict(), "scaler": scaler.state_dict(),
                "bad_epochs": bad_epochs, "history": history.to_state(), "rng": capture_rng_state(gens)})
            self._saved_epoch = epoch + 1
            history.to_csv(self.history_path)
            if self.on_epoch is not None:
                self.on_epoch(history)
        if opts.early_stopping_patience is not None and history.best_epoch is not None:
            model.load_state_dict(load_checkpoint(self.best_path))
        self.history_ = history
        return history

    def _train_epoch(self, loader, epoch, optimizer, scheduler, scaler, autocast, gen, n_classes, device, bar):
        ds = loader.dataset
        while isinstance(ds, Subset):
            ds = ds.dataset
        if callable(getattr(ds, "set_epoch", None)):
            ds.set_epoch(epoch)  # datasets with per-epoch randomness (random crops); before the loader iterates
        model, opts = self.model, self.options
        model.train()
        total_loss, correct, seen, steps = 0.0, 0.0, 0, len(loader)
        load_seconds, t_wait = 0.0, time.perf_counter()
        for i, batch in enumerate(loader):
            x, y = split_batch(batch, what="train_set")
            if self.augment is not None:
                x = self.augment(x, gen)
            target = y
            if self.mixup is not None:
                check_targets(y, n_classes, what="train_set")
                x, target = self.mixup(x, F.one_hot(y, n_classes).float(), gen)
            # input pipeline time: waiting for the loader plus augmentation, before the step proper
            load_seconds += time.perf_counter() - t_wait
            x, target = x.to(device, non_blocking=True), target.to(device, non_blocking=True)
            with autocast():
                logits = model(x)
            if self.mixup is None:
                check_targets(y, logits.shape[-1], what="train_set")
            loss = F.cross_entropy(logits.float(), target, label_smoothing=opts.label_smoothing)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                kind = "NaN" if math.isnan(loss_value) else "Inf"
                raise DataError(f"loss became {kind} at epoch {epoch + 1}, batch {i + 1}; {self._kept()}; lower "
                                "train.lr, set train.grad_clip, or check the inputs for NaN/Inf")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if opts.grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), opts.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            step_after_batch(scheduler, epoch=epoch, batch=i, steps_per_epoch=steps)
            hard = target if target.ndim == 1 else target.argmax(-1)
            n = len(hard)
            total_loss += loss_value * n
            correct += (logits.detach().argmax(-1) == hard).sum().item()
            seen += n
            bar(f"loss {total_loss / seen:.4f} acc {correct / seen:.3f}", advance=1)
            t_wait = time.perf_counter()
        return total_loss / seen, correct / seen, load_seconds

    def _kept(self) -> str:
        if self._saved_epoch is None:
            return f"no checkpoint was written yet in {self.out_dir}"
        return f"the last good checkpoint is kept at {self.checkpoint_path} (after epoch {self._saved_epoch})"

    def _probe_n_classes(self, train_set: Dataset, device: torch.device) -> int:
        x, _ = split_batch(train_set[0], what="train_set")
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            n = int(self.model(torch.as_tensor(x)[None].to(device)).shape[-1])
        self.model.train(was_training)
        return n

    def _resume(self, optimizer, scheduler, scaler, gens, steps) -> tuple[History, int, int]:
        path, opts = self.checkpoint_path, self.options
        if not path.is_file():
            raise DataError(f"{path}: no checkpoint to resume from")
        ck = load_checkpoint(path)
        if ck.get("format") != CHECKPOINT_FORMAT:
            raise DataError(f"{path}: not an earmark trainer checkpoint (format {ck.get('format')!r})")
        old = ck["options"]
        for key, value in opts.to_dict().items():
            if key not in RESUMABLE_CHANGES and old.get(key) != value:
                raise ConfigError(f"{KEY}.{key}: {path} was written with {old.get(key)!r}, the options say {value!r}")
        if old["epochs"] != opts.epochs and opts.schedule in LENGTH_DEPENDENT:
            raise ConfigError(f"{KEY}.epochs: schedule {opts.schedule!r} spans the whole run; {path} was written "
                              f"for {old['epochs']} epochs, the options say {opts.epochs}")
        if ck["epoch"] > opts.epochs:
            raise ConfigError(f"{KEY}.epochs: {path} already holds {ck['epoch']} epochs, more than {opts.epochs}")
        if ck["steps_per_epoch"] != steps:
            raise DataError(f"train_set: {steps} batches per epoch, but {path} was written with {ck['steps_per_epoch']}")
        try:
            self.model.load_state_dict(ck["model"])
            optimizer.load_state_dict(ck["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(ck["scheduler"])
            if scaler.is_enabled() and ck["scaler"]:
                scaler.load_state_dict(ck["scaler"])
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise DataError(f"{path}: does not fit this model / optimizer ({str(exc).splitlines()[0]})") from exc
        restore_rng_state(ck["rng"], gens)
        history = History.from_state(ck["history"])
        history.to_csv(self.history_path)
        self._saved_epoch = int(ck["epoch"])
        return history, self._saved_epoch, int(ck["bad_epochs"])

    def _progress_bar(self, epoch: int, steps: int):
        if not self.progress:
            return contextlib.nullcontext(lambda *a, **k: None)
        return _EpochBar(f"epoch {epoch + 1}/{self.options.epochs}", steps)


class _EpochBar(contextlib.AbstractContextManager):
    """A rich progress bar for one epoch; calling it updates the metrics text (and advances)."""

    def __init__(self, title: str, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn(title), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[metrics]}"), TimeElapsedColumn())
        self._task = self._progress.add_task(title, total=total, metrics="")

    def __enter__(self):
        self._progress.start()
        return self

    def __call__(self, metrics: str, advance: int = 0) -> None:
        self._progress.update(self._task, metrics=metrics, advance=advance)

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


def _evaluate(model: nn.Module, loader: DataLoader, device: torch.device, autocast) -> tuple[float, float]:
    model.eval()
    total, correct, seen = 0.0, 0.0, 0
    with torch.no_grad():
        for batch in loader:
            x, y = split_batch(batch, what="val_set")
            with autocast():
                logits = model(x.to(device))
            check_targets(y, logits.shape[-1], what="val_set")
            y = y.to(device)
            total += F.cross_entropy(logits.float(), y, reduction="sum").item()
            correct += (logits.argmax(-1) == y).sum().item()
            seen += len(y)
    model.train()
    return total / seen, correct / seen


