"""The deep-learning trainer: options, schedules, checkpoints, exact resumption, NaN handling, kills."""

from __future__ import annotations

import csv
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from earmark.errors import ConfigError, DataError
from earmark.train.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from earmark.train.schedules import make_optimizer, make_scheduler, step_after_batch
from earmark.train.checkpoint import History
from earmark.train.inference import embed, predict_proba
from earmark.train.options import TrainerOptions
from earmark.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]

# Shared by the in-process runs and the subprocess of the kill test (same data, same initial weights).
BUILD = '''
import torch
from torch import nn
from torch.utils.data import TensorDataset


def build(n=240, d=8, n_classes=3, seed=0):
    g = torch.Generator().manual_seed(123)
    x = torch.randn(n, d, generator=g)
    w = torch.randn(d, n_classes, generator=g)
    y = (x @ w + 0.5 * torch.randn(n, n_classes, generator=g)).argmax(1)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, n_classes))
    n_val = n // 5
    return model, TensorDataset(x[n_val:], y[n_val:]), TensorDataset(x[:n_val], y[:n_val])
'''
_namespace: dict = {}
exec(BUILD, _namespace)  # noqa: S102 -- the same source also runs in the kill test's subprocess
build = _namespace["build"]


def noise(x, g):
    return x + 0.1 * torch.randn(x.shape, generator=g)


def mixup(x, y, g):
    lam = torch.rand((), generator=g)
    perm = torch.randperm(len(x), generator=g)
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]


def fit(tmp, *, resume=False, model_seed=0, augment=noise, mix=mixup, **opts):
    model, train, val = build(seed=model_seed)
    options = TrainerOptions(**{"epochs": 4, "batch_size": 32, "lr": 1e-2, **opts})
    trainer = Trainer(model, options, out_dir=tmp, augment=augment, mixup=mix, progress=False)
    return model, trainer.fit(train, val, resume=resume)


def metrics(history: History):
    return [{k: v for k, v in row.items() if k not in ("seconds", "load_seconds")} for row in history.rows]


def assert_same_weights(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


class Interrupt(Exception):
    pass


# ---------------------------------------------------------------- options and schedules


@pytest.mark.parametrize("kw, message", [
    ({"lr": -1}, "train.lr: must be > 0, got -1"),
    ({"epochs": 0}, "train.epochs: must be an integer >= 1, got 0"),
    ({"batch_size": True}, "train.batch_size"),
    ({"optimizer": "adamww"}, "train.optimizer: unknown optimizer 'adamww'; did you mean 'adamw'"),
    ({"schedule": "cosin"}, "train.schedule: unknown schedule 'cosin'; did you mean"),
    ({"schedule_params": {"T_O": 3}}, "train.schedule_params.T_O: unknown parameter"),
    ({"label_smoothing": 1.0}, "train.label_smoothing: must be in [0, 1)"),
    ({"early_stopping_patience": 0}, "train.early_stopping_patience"),
    ({"grad_clip": float("nan")}, "train.grad_clip"),
    ({"amp": "yes"}, "train.amp: must be true or false"),
    ({"device": "gpu7"}, "train.device"),
    ({"seed": -1}, "train.seed"),
])
def test_options_are_validated_eagerly(kw, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        TrainerOptions(**kw)


def test_options_defaults_and_from_dict():
    o = TrainerOptions()
    assert (o.epochs, o.batch_size, o.optimizer, o.lr, o.weight_decay, o.schedule) == (20, 32, "adamw", 3e-4, 1e-5, "cosine_restarts")
    assert TrainerOptions.from_dict({"lr": 1e-3, "optimizer": "sgd"}).to_dict()["lr"] == 1e-3
    assert type(TrainerOptions(seed=np.int64(3)).seed) is int  # plain values, storable in a weights-only checkpoint
    with pytest.raises(ConfigError, match="train.learning_rate: unknown key"):
        TrainerOptions.from_dict({"learning_rate": 1e-3})
    o.lr = 0  # mutated after construction: fit validates again
    with pytest.raises(ConfigError, match="train.lr"):
        Trainer(nn.Linear(2, 2), o, out_dir="unused").fit(TensorDataset(torch.zeros(2, 2), torch.zeros(2).long()))


def test_schedules_build_step_and_suggest_names():
    for name in ("cosine_restarts", "cosine", "onecycle", "plateau", None):
        opt = make_optimizer("sgd", nn.Linear(2, 2).parameters(), lr=0.1)
        sched = make_scheduler(name, opt, epochs=3, steps_per_epoch=5)
        for epoch in range(3):
            for b in range(5):
                opt.step()
                step_after_batch(sched, epoch=epoch, batch=b, steps_per_epoch=5)
    with pytest.raises(ConfigError, match="did you mean 'onecycle'"):
        make_scheduler("onecycl", opt, epochs=3, steps_per_epoch=5)
    with pytest.raises(ConfigError, match="train.schedule_params.T_0: must be >= 1"):
        make_scheduler("cosine_restarts", opt, epochs=3, steps_per_epoch=5, T_0=0)
    # warm restarts: stepped per batch with fractional epochs, restarting on the epoch boundary
    opt = make_optimizer("adamw", nn.Linear(2, 2).parameters(), lr=1.0)
    sched = make_scheduler("cosine_restarts", opt, epochs=4, steps_per_epoch=4, T_0=2)
    lrs = []
    for epoch in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        for b in range(4):
            opt.step()
            step_after_batch(sched, epoch=epoch, batch=b, steps_per_epoch=4)
    assert lrs == pytest.approx([1.0, 0.5, 1.0, 0.5])


# ---------------------------------------------------------------- determinism and resumption


def test_same_seed_same_metrics_and_files(tmp_path):
    m1, h1 = fit(tmp_path / "a", balanced_sampling=True, epochs=3)
    m2, h2 = fit(tmp_path / "b", balanced_sampling=True, epochs=3)
    assert metrics(h1) == metrics(h2)
    assert_same_weights(m1, m2)
    _, h3 = fit(tmp_path / "c", balanced_sampling=True, epochs=3, seed=1)
    assert metrics(h3) != metrics(h1)
    with open(tmp_path / "a" / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "load_seconds"]
    assert all(0 <= float(r["load_seconds"]) <= float(r["seconds"]) for r in rows)
    assert [float(r["val_loss"]) for r in rows] == h1["val_loss"]
    assert {p.name for p in (tmp_path / "a").iterdir()} == {"history.csv", "checkpoint.pt", "best.pt", "epoch1.pt", ".trainer.lock"}


def test_resume_extends_a_finished_run_exactly(tmp_path):
    full_model, full = fit(tmp_path / "full", epochs=4, balanced_sampling=True)
    fit(tmp_path / "part", epochs=2, balanced_sampling=True)
    model, resumed = fit(tmp_path / "part", epochs=4, balanced_sampling=True, resume=True, model_seed=99)
    assert metrics(resumed) == metrics(full)
    assert_same_weights(model, full_model)
    assert load_checkpoint(tmp_path / "part" / "best.pt").keys() == full_model.state_dict().keys()


@pytest.mark.parametrize("schedule", ["cosine_restarts", "cosine", "onecycle", "plateau", None])
def test_resume_after_a_crash_mid_epoch_is_exact(tmp_path, schedule):
    opts = dict(schedule=schedule, optimizer="sgd" if schedule == "onecycle" else "adamw", grad_clip=1.0,
                label_smoothing=0.1)
    full_model, full = fit(tmp_path / "full", **opts)
    calls = []

    def crashing(x, g):  # dies in the middle of epoch 3 (6 batches per epoch)
        calls.append(1)
        if len(calls) == 2 * 6 + 3:
            raise Interrupt
        return noise(x, g)

    with pytest.raises(Interrupt):
        fit(tmp_path / "part", augment=crashing, **opts)
    assert load_checkpoint(tmp_path / "part" / "checkpoint.pt")["epoch"] == 2
    model, resumed = fit(tmp_path / "part", resume=True, model_seed=5, **opts)
    assert metrics(resumed) == metrics(full)
    assert_same_weights(model, full_model)


def test_resume_refuses_other_options_and_missing_checkpoint(tmp_path):
    fit(tmp_path, epochs=1)
    with pytest.raises(ConfigError, match="train.lr: .*checkpoint.pt was written with 0.01, the options say 0.02"):
        fit(tmp_path, epochs=2, lr=0.02, resume=True)
    with pytest.raises(ConfigError, match="train.epochs: schedule 'cosine'"):
        fit(tmp_path / "c", epochs=1, schedule="cosine")
        fit(tmp_path / "c", epochs=2, schedule="cosine", resume=True)
    with pytest.raises(ConfigError, match="train.epochs: .*already holds 2 epochs, more than 1"):
        fit(tmp_path / "two", epochs=2)
        fit(tmp_path / "two", epochs=1, resume=True)
    with pytest.raises(DataError, match="no checkpoint to resume from"):
        fit(tmp_path / "empty", resume=True)


def test_early_stopping_restores_best_weights(tmp_path):
    # a learning rate this high makes the validation loss rise soon after the first epochs
    model, h = fit(tmp_path, epochs=30, lr=0.5, optimizer="sgd", early_stopping_patience=2, schedule=None)
    assert h.stopped_early and len(h) < 30
    assert h.best_epoch == 1 + int(np.argmin(h["val_loss"])) and len(h) == h.best_epoch + 2
    best = load_checkpoint(tmp_path / "best.pt")
    assert all(torch.equal(best[k], v) for k, v in model.state_dict().items())
    model2, h2 = fit(tmp_path, epochs=30, lr=0.5, optimizer="sgd", early_stopping_patience=2, schedule=None, resume=True)
    assert metrics(h2) == metrics(h)  # a finished run resumes to itself
    assert_same_weights(model2, model)


# ---------------------------------------------------------------- failures


class NaNAfter(nn.Module):
    """Produces NaN logits from the ``n``-th training forward call on."""

    def __init__(self, n):
        super().__init__()
        self.lin, self.n, self.calls = nn.Linear(8, 3), n, 0

    def forward(self, x):
        self.calls += self.training
        out = self.lin(x)
        return out * float("nan") if self.training and self.calls >= self.n else out


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    _, train, val = build()
    seen = {}

    def spy(x, g):  # first batch of epoch 3 (12 batches per epoch): remember the checkpoint as it is then
        seen["calls"] = seen.get("calls", 0) + 1
        if seen["calls"] == 2 * 12 + 1:
            seen["bytes"] = (tmp_path / "checkpoint.pt").read_bytes()
        return x

    options = TrainerOptions(epochs=5, batch_size=16)
    trainer = Trainer(NaNAfter(2 * 12 + 7), options, out_dir=tmp_path, augment=spy, progress=False)
    with pytest.raises(DataError, match=r"loss became NaN at epoch 3, batch 7; the last good checkpoint is kept at .*checkpoint.pt \(after epoch 2\)"):
        trainer.fit(train, val)
    assert (tmp_path / "checkpoint.pt").read_bytes() == seen["bytes"]
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ck["epoch"] == 2 and all(torch.isfinite(t).all() for t in ck["model"].values())
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 1 + 2


def test_one_trainer_at_a_time_per_folder(tmp_path):
    """A second Trainer fitting into a folder while the first is still fitting there is refused before it
    writes anything; once the first is done the folder is free again."""
    seen = {}

    def second(history):  # runs inside the first fit, after its epoch 1 checkpoint
        if len(history.rows) == 1:
            before = (tmp_path / "checkpoint.pt").read_bytes()
            model, train, val = build(seed=1)
            with pytest.raises(DataError, match=r"another Trainer is writing checkpoints here") as err:
                Trainer(model, TrainerOptions(epochs=1), out_dir=tmp_path, progress=False).fit(train, val)
            seen["message"] = str(err.value)
            seen["unchanged"] = (tmp_path / "checkpoint.pt").read_bytes() == before

    model, train, val = build()
    Trainer(model, TrainerOptions(epochs=2, batch_size=32), out_dir=tmp_path, progress=False, on_epoch=second).fit(train, val)
    assert seen == {"message": seen["message"], "unchanged": True} and str(tmp_path) in seen["message"]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 2  # the first fit went on undisturbed
    model, train, val = build(seed=1)
    assert len(Trainer(model, TrainerOptions(epochs=1), out_dir=tmp_path, progress=False).fit(train, val).rows) == 1


def test_exploding_learning_rate_is_reported(tmp_path):
    with pytest.raises(DataError, match="(loss became (NaN|Inf)|weights became NaN/Inf).*no checkpoint was written yet"):
        fit(tmp_path, lr=1e30, optimizer="sgd", schedule=None, mix=None)
    assert not (tmp_path / "checkpoint.pt").exists()


class Foreign:
    pass


def test_corrupt_or_foreign_checkpoints_are_data_errors(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DataError, match="junk.pt"):
        load_checkpoint(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"obj": Foreign(), "epoch": 1}, foreign)
    with pytest.raises(DataError, match="foreign.pt: not a readable weights-only checkpoint"):
        load_checkpoint(foreign)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(Foreign()))
    with pytest.raises(DataError, match="plain.pkl"):
        load_checkpoint(plain)
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(junk.read_bytes())
    with pytest.raises(DataError, match="checkpoint.pt"):
        fit(run, resume=True)
    torch.save({"weight": torch.zeros(2)}, run / "checkpoint.pt")
    with pytest.raises(DataError, match="not an earmark trainer checkpoint"):
        fit(run, resume=True)


def test_bad_labels_and_items(tmp_path):
    model, _, _ = build()
    x = torch.randn(10, 8)
    with pytest.raises(DataError, match=r"train_set: label 5 is outside \[0, 3\)"):
        Trainer(model, TrainerOptions(epochs=1), out_dir=tmp_path, progress=False).fit(TensorDataset(x, torch.full((10,), 5)))
    with pytest.raises(DataError, match="integer class indices"):
        Trainer(model, TrainerOptions(epochs=1), out_dir=tmp_path, progress=False).fit(TensorDataset(x, torch.rand(10)))
    with pytest.raises(ConfigError, match="early_stopping_patience: needs a validation set"):
        Trainer(model, TrainerOptions(early_stopping_patience=2), out_dir=tmp_path).fit(TensorDataset(x, torch.zeros(10).long()))


# ---------------------------------------------------------------- helpers


def test_checkpoint_roundtrip_and_rng_states(tmp_path):
    gen = torch.Generator().manual_seed(3)
    state = capture_rng_state({"loader": gen})
    path = save_checkpoint(tmp_path / "sub" / "ck.pt", {"rng": state, "n": 1, "none": None})
    draws = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=gen))
    restore_rng_state(load_checkpoint(path)["rng"], {"loader": gen})
    again = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=gen))
    assert torch.equal(draws[0], again[0]) and np.array_equal(draws[1], again[1])
    assert draws[2] == again[2] and torch.equal(draws[3], again[3])
    assert os.listdir(path.parent) == ["ck.pt"]  # no temporary left behind
    with pytest.raises(DataError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


class WithFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.drop, self.head = nn.Linear(8, 5), nn.Dropout(0.5), nn.Linear(5, 3)

    def forward_features(self, x):
        return torch.relu(self.body(x))

    def forward(self, x):
        return self.head(self.drop(self.forward_features(x)))


class XOnly(Dataset):
    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def test_predict_proba_and_embed():
    torch.manual_seed(0)
    model, x = WithFeatures().train(), torch.randn(70, 8)
    p = predict_proba(model, x, batch_size=16, device="cpu")
    assert p.shape == (70, 3) and p.dtype == np.float32 and np.allclose(p.sum(1), 1, atol=1e-6)
    assert np.array_equal(p, predict_proba(model, TensorDataset(x, torch.zeros(70).long()), device="cpu"))
    assert np.allclose(p, predict_proba(model, XOnly(x.double().numpy()), device="cpu"))
    assert model.training  # mode restored
    assert embed(model, x.numpy(), device="cpu").shape == (70, 5)
    with pytest.raises(ConfigError, match="has no forward_features"):
        embed(nn.Linear(8, 3), x)


def test_progress_bar_runs(tmp_path, capsys):
    model, train, val = build()
    Trainer(model, TrainerOptions(epochs=1), out_dir=tmp_path, progress=True).fit(train, val)
    assert "epoch 1/1" in capsys.readouterr().out


# ---------------------------------------------------------------- a real kill

KILL_SCRIPT = BUILD + '''
import sys
torch.set_num_threads(int(sys.argv[2]))
from earmark.train.trainer import Trainer, TrainerOptions
model, train, val = build(n=9000)
Trainer(model, TrainerOptions(epochs=6, batch_size=8, lr=1e-3), out_dir=sys.argv[1], progress=False).fit(train, val)
'''


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_matches_unbroken_run(tmp_path):
    script, run = tmp_path / "train_script.py", tmp_path / "killed"
    script.write_text(KILL_SCRIPT)
    # niced, so that on a busy machine the polling test still gets the CPU in time to kill it mid-run
    proc = subprocess.Popen([sys.executable, str(script), str(run), str(torch.get_num_threads())], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=lambda: os.nice(10))
    deadline = time.monotonic() + 180
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            history = run / "history.csv"
            if history.exists() and len(history.read_text().splitlines()) >= 1 + 2:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)  # polling interval, not synchronisation
    finally:
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
        output = proc.communicate()[0].decode(errors="replace")
    assert proc.returncode == -signal.SIGKILL, f"the training process was not killed mid-run:\n{output}"
    done = load_checkpoint(run / "checkpoint.pt")["epoch"]
    assert 2 <= done < 6

    opts = TrainerOptions(epochs=6, batch_size=8, lr=1e-3)
    model, train, val = build(n=9000, seed=7)
    resumed = Trainer(model, opts, out_dir=run, progress=False).fit(train, val, resume=True)
    ref_model, train, val = build(n=9000)
    unbroken = Trainer(ref_model, opts, out_dir=tmp_path / "unbroken", progress=False).fit(train, val)
    assert metrics(resumed) == metrics(unbroken)
    assert_same_weights(model, ref_model)


def test_worker_processes_do_not_change_the_result(tmp_path):
    m0, h0 = fit(tmp_path / "w0", epochs=2)
    m2, h2 = fit(tmp_path / "w2", epochs=2, num_workers=2)
    assert metrics(h0) == metrics(h2)
    assert_same_weights(m0, m2)


def test_datasets_with_per_epoch_randomness_are_told_the_epoch(tmp_path):
    class EpochAware(torch.utils.data.Dataset):
        def __init__(self, base):
            self.base, self.epochs = base, []

        def set_epoch(self, epoch):
            self.epochs.append(epoch)

        def __len__(self):
            return len(self.base)

        def __getitem__(self, i):
            return self.base[i]

    model, train, val = build()
    ds = EpochAware(train)
    Trainer(model, TrainerOptions(epochs=3, batch_size=32), out_dir=tmp_path, progress=False).fit(ds, val)
    assert ds.epochs == [0, 1, 2]
