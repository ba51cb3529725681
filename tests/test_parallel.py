"""Executors: the local pool and the Ray executor (a real local Ray instance, real jobs)."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from earmark.data.demo import make_demo_dataset
from earmark.errors import ConfigError
from earmark.parallel import InlineExecutor, as_finished, make_executor, n_workers


def test_make_executor_rejects_negative_jobs():
    with pytest.raises(ConfigError, match=r"jobs must be >= 0 \(0 = all cores\), got -2"):
        make_executor(-2)
    with pytest.raises(ConfigError, match="got -1"):
        make_executor(-1, ray="local")  # checked before Ray is touched


def test_inline_executor_runs_here_and_delivers_errors():
    ex = make_executor(1)
    assert isinstance(ex, InlineExecutor)
    assert ex.submit(os.getpid).result() == os.getpid()
    with pytest.raises(ConfigError, match="got -3"):
        ex.submit(make_executor, -3).result()


def test_process_pool_runs_jobs_in_other_processes():
    with make_executor(2) as ex:
        pids = {ex.submit(os.getpid).result() for _ in range(4)}
        assert os.getpid() not in pids
        assert ex.submit(math.fsum, [0.1] * 10).result() == 1.0


def test_n_workers_of_each_kind_of_executor():
    from concurrent.futures import ThreadPoolExecutor

    assert n_workers(make_executor(1)) == 1
    with make_executor(2) as pool, ThreadPoolExecutor(3) as threads:
        assert n_workers(pool) == 2 and n_workers(threads) == 3


def test_as_finished_keeps_few_jobs_in_flight_and_yields_every_result():
    pulled = []

    def jobs():
        for i in range(10):
            pulled.append(i)
            yield i, math.sqrt, (float(i),)

    finished = as_finished(InlineExecutor(), jobs(), in_flight=2)
    tag, future = next(finished)
    assert pulled == [0, 1] and tag == 0  # the inline executor ran two jobs, not ten, before the first result
    results = [(tag, future.result())] + [(t, f.result()) for t, f in finished]
    assert results == [(i, math.sqrt(i)) for i in range(10)]  # in order, as they finished in order


def test_as_finished_hands_over_a_jobs_error_and_stops_submitting_when_the_caller_stops():
    pulled = []

    def jobs():
        for i in range(100):
            pulled.append(i)
            yield i, make_executor, (-1 if i == 3 else 1,)

    with make_executor(2) as pool:
        for tag, future in as_finished(pool, jobs(), in_flight=4):
            if future.exception() is not None:
                assert tag == 3 and isinstance(future.exception(), ConfigError)
                break
    assert len(pulled) < 100  # the rest was never submitted


def _earmark(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "earmark", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def test_missing_ray_is_a_config_error_naming_the_extra(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
            "from earmark.parallel import make_executor\n"
            "make_executor(ray='local')\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert "ConfigError: --ray local: Ray is not installed (pip install 'earmark[ray]')" in run.stderr


# ---------------------------------------------------------------- Ray (a real local instance)

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_local():
    """One Ray instance on this machine for the module; RayExecutor reuses an open connection."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning")
    yield
    ray.shutdown()


def test_ray_executor_runs_jobs_as_tasks_and_raises_the_jobs_own_errors(ray_local):
    from earmark.parallel.ray_executor import RayExecutor

    ex = make_executor(ray="local")
    assert isinstance(ex, RayExecutor) and ex.n_workers == 2
    pids = [ex.submit(os.getpid) for _ in range(4)]
    assert os.getpid() not in {f.result(timeout=120) for f in pids}
    assert ex.submit(math.fsum, [0.1] * 10).result(timeout=120) == 1.0
    assert ex.submit(sorted, [3, 1, 2], reverse=True).result(timeout=120) == [3, 2, 1]  # keyword arguments
    assert not ex._refs  # finished tasks are forgotten: their results do not stay pinned in Ray's object store
    failed = ex.submit(make_executor, -4)
    error = failed.exception(timeout=120)
    assert type(error) is ConfigError  # not Ray's RayTaskError wrapper
    assert str(error) == "jobs must be >= 0 (0 = all cores), got -4"
    ex.shutdown()
    assert ray.is_initialized()  # a connection opened by the caller stays open
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(os.getpid)


def test_an_error_in_the_ray_executors_block_does_not_wait_for_unfinished_tasks(ray_local):
    import threading

    outcome = {}

    def block():  # in a thread, so that a shutdown that waited for the job fails the test instead of hanging it
        try:
            with make_executor(ray="local") as ex:
                outcome["future"] = ex.submit(time.sleep, 3600)  # a job that outlives the test
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            outcome["left"] = True

    thread = threading.Thread(target=block, daemon=True)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "leaving the block waited for the unfinished task"
    assert outcome.get("left")
    future = outcome["future"]  # still running, or cancelled (Ray's cancel is best effort), never a result
    assert not future.done() or future.cancelled() or isinstance(future.exception(), ray.exceptions.TaskCancelledError)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ray-data")
    manifest = make_demo_dataset(root / "data", n_per_class=4, duration=0.5, seed=3)
    bad = root / "data" / "organ" / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")  # a clip that cannot be decoded, listed in the manifest
    with open(manifest, "a", encoding="utf-8") as fh:
        fh.write(f"broken,{bad.relative_to(manifest.parent)},organ,train,organ-broken\n")
    return Path(manifest)


@pytest.mark.slow
def test_extract_with_ray_stores_what_local_workers_store(clips, tmp_path):
    from earmark.data import Manifest
    from earmark.features.store import FeatureStore

    ran = _earmark("extract", str(clips), "-f", "fbank", "-s", str(tmp_path / "ray"), "--ray", "local", "-j", "2",
                   "--no-progress")
    assert ran.returncode == 1, ran.stderr  # the broken clip fails; every other clip is stored
    assert "broken.wav" in ran.stdout and "21 clips, 0 already stored, 20 computed, 1 failed" in ran.stdout
    local = _earmark("extract", str(clips), "-f", "fbank", "-s", str(tmp_path / "local"), "-j", "1", "--no-progress")
    assert local.returncode == 1
    again = _earmark("extract", str(clips), "-f", "fbank", "-s", str(tmp_path / "ray"), "--ray", "local", "--no-progress")
    assert "20 already stored, 0 computed, 1 failed" in again.stdout  # the store is resumable as ever

    m = Manifest.read(clips)
    with FeatureStore(tmp_path / "ray", "fbank") as a, FeatureStore(tmp_path / "local", "fbank") as b:
        ta, tb = a.load(m), b.load(m)
    assert list(ta.present()) == list(tb.present()) and ta.present().sum() == 20
    for x, y in zip(ta.arrays, tb.arrays):
        if x is not None:
            np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_train_ensemble_members_on_ray_match_local_members(clips, tmp_path):
    config = tmp_path / "ens.yaml"
    config.write_text(f"""
data: {{manifest: {clips}, test_split: train}}
features: {{name: fbank, frames: 32, store: {tmp_path / 'store'}}}
model: {{name: cnn_small}}
train: {{epochs: 2, batch_size: 8, ensemble: {{members: 2}}}}
""")
    ray_run = _earmark("train", str(config), "--out", str(tmp_path / "ray-run"), "--ray", "local", "--no-progress")
    assert ray_run.returncode == 0, ray_run.stderr
    assert sorted(p.name for p in (tmp_path / "ray-run" / "members").iterdir()) == ["0", "1"]
    local_run = _earmark("train", str(config), "--out", str(tmp_path / "local-run"), "--no-progress")
    assert local_run.returncode == 0, local_run.stderr
    preds = "predictions-train.csv"
    assert (tmp_path / "ray-run" / preds).read_text() == (tmp_path / "local-run" / preds).read_text()


def test_unknown_ray_address_is_one_line_error(clips, tmp_path):
    ran = _earmark("extract", str(clips), "-f", "fbank", "-s", str(tmp_path / "s"), "--ray", "not an address")
    assert ran.returncode == 2
    assert "error: --ray not an address: cannot start or reach a Ray cluster" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").rglob("*.npy"))


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_a_cluster_address_nothing_listens_at_is_refused_at_once(clips, tmp_path, scheme):
    """ray.init alone retries such an address for minutes; earmark tries one TCP connection first."""
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"{scheme}127.0.0.1:{port}"
    ran = _earmark("extract", str(clips), "-f", "fbank", "-s", str(tmp_path / "s"), "--ray", address)
    assert ran.returncode == 2
    assert (f"error: --ray {address}: cannot reach a Ray cluster at 127.0.0.1:{port} (connection refused); "
            "start its head there with `ray start --head`") in ran.stderr
    assert "Traceback" not in ran.stderr


@pytest.mark.slow
def test_separate_with_ray_writes_what_local_workers_write(clips, tmp_path):
    import soundfile as sf

    folder = str(clips.parent / "plucked")
    ray_run = _earmark("separate", folder, "--out", str(tmp_path / "ray"), "--ray", "local", "--no-progress")
    assert ray_run.returncode == 0, ray_run.stderr
    assert "4 files, 4 separated, 0 already separated, 0 failed" in ray_run.stdout
    local = _earmark("separate", folder, "--out", str(tmp_path / "local"), "-j", "1", "--no-progress")
    assert local.returncode == 0, local.stderr
    names = sorted(p.name for p in (tmp_path / "local").glob("*.wav"))
    assert len(names) == 8 and names == sorted(p.name for p in (tmp_path / "ray").glob("*.wav"))
    for name in names:
        a, _ = sf.read(tmp_path / "ray" / name, dtype="int16")
        b, _ = sf.read(tmp_path / "local" / name, dtype="int16")
        assert np.abs(a.astype(int) - b).max() <= 1  # other processes, other thread counts: at most 1 PCM step


@pytest.mark.parametrize("command", ["extract", "train", "separate"])
def test_help_documents_ray(command):
    shown = _earmark(command, "--help").stdout
    assert "--ray" in shown and "pip install 'earmark[ray]'" in shown and "ray://HOST:10001" in shown
