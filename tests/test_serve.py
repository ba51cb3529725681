"""`earmark serve` as its users meet it: real uvicorn on 127.0.0.1, real HTTP uploads, the page in Chromium."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from earmark.cli import main
from earmark.data.demo import make_demo_dataset, synth_note
from earmark.errors import ConfigError, DataError
from earmark.predict import clip_proba
from earmark.run import Run
from earmark.serve import create_app
from earmark.serve.app import display_name

MAX_MB = 0.25  # small, so "too large" needs only a few hundred kB
LIMIT = int(MAX_MB * 1024 * 1024)


# --------------------------------------------------------------------------- helpers


def _train(root: Path, manifest: Path, name: str, **sections) -> Path:
    raw = {"data": {"manifest": str(manifest)},
           "features": {"name": "mfcc", "pool": ["mean", "std"], "jobs": 1, "store": str(root / f"store-{name}")},
           "model": {"name": "logreg"},
           "train": {"seed": 0, "search": {"enabled": False}}}
    for key, value in sections.items():
        raw.setdefault(key, {}).update(value)
    cfg = root / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    assert main(["train", str(cfg), "--out", str(root / name), "--no-progress"]) == 0
    return root / name


def _clip(path: Path, kind: str = "plucked", seconds: float = 3.0, sr: int = 22050, seed: int = 0) -> Path:
    sf.write(path, synth_note(kind, sr=sr, duration=seconds, rng=np.random.default_rng(seed)), sr)
    return path


def _multipart(filename: str, data: bytes, field: str = "file") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _request(url: str, method: str, path: str, body=None, headers=None) -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=body is not None and not isinstance(body, bytes))
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def _upload(url: str, filename: str, data: bytes, *, query: str = "", field: str = "file") -> tuple[int, dict]:
    body, ctype = _multipart(filename, data, field)
    return _request(url, "POST", "/api/predict" + query, body, {"Content-Type": ctype})


def _wait_healthy(url: str, deadline_s: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Poll /healthz until it answers (a short pause between attempts), failing at the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"earmark serve exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            if _request(url, "GET", "/healthz") == (200, {"status": "ok"}):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} not healthy after {deadline_s} s")
        time.sleep(0.05)


@contextmanager
def serving(app) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on a free 127.0.0.1 port; yields its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """30 half-second demo clips, all in the train split: training skips the test-set evaluation (fast)."""
    manifest = make_demo_dataset(tmp_path_factory.mktemp("demo"), n_per_class=6, duration=0.5, seed=3)
    df = pd.read_csv(manifest)
    df["split"] = "train"
    df.to_csv(manifest, index=False)
    return manifest


@pytest.fixture(scope="module")
def classical_run(demo, tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("runs"), demo, "logreg")


@pytest.fixture(scope="module")
def server(classical_run, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """``(url, tmp_root)``: the classical run served with a 0.25 MB limit; uploads land under tmp_root."""
    tmp_root = tmp_path_factory.mktemp("serve") / "a" / "b" / "uploads"
    tmp_root.mkdir(parents=True)
    with serving(create_app(classical_run, max_mb=MAX_MB, top_k=3, tmp_root=tmp_root)) as url:
        yield url, tmp_root


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return _clip(tmp_path_factory.mktemp("clips") / "note.wav")


# --------------------------------------------------------------------------- the JSON API over HTTP


def test_health_and_info(server, classical_run):
    url, _ = server
    assert _request(url, "GET", "/healthz") == (200, {"status": "ok"})
    status, info = _request(url, "GET", "/api/info")
    assert status == 200
    assert info["model"] == "logreg" and info["features"] == "mfcc" and info["max_mb"] == MAX_MB and info["top_k"] == 3
    assert info["labels"] == Run.load(classical_run).labels == ["blown", "bowed", "organ", "plucked", "struck"]


def test_predict_a_wav_equals_clip_proba(server, classical_run, clip):
    url, tmp_root = server
    status, r = _upload(url, "note.wav", clip.read_bytes())
    assert status == 200, r
    run = Run.load(classical_run)
    proba, n = clip_proba(run, clip)  # the same function the server calls: same numbers
    assert r["labels"] == run.labels and r["probabilities"] == pytest.approx(proba.tolist(), abs=1e-12)
    assert r["file"] == "note.wav" and r["n_windows"] == n == 1 and r["duration_s"] == pytest.approx(3.0)
    assert 0 < r["ms"] < 10_000 and "spectrogram" not in r
    order = np.argsort(-proba, kind="stable")[:3]
    assert r["top_k"] == [{"label": run.labels[i], "probability": pytest.approx(proba[i], abs=1e-12)} for i in order]
    assert sum(r["probabilities"]) == pytest.approx(1.0)
    assert not list(tmp_root.iterdir())  # the request's temporary directory is gone

    status, r2 = _upload(url, "note.wav", clip.read_bytes(), query="?top_k=1&spectrogram=true")
    assert status == 200 and len(r2["top_k"]) == 1 and r2["top_k"][0] == r["top_k"][0]
    png = base64.b64decode(r2["spectrogram"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (800, 320)


def test_a_fusion_is_served_with_each_runs_features(demo, classical_run, clip, tmp_path):
    from earmark.fuse import fuse_runs

    other = _train(tmp_path, demo, "knn", features={"name": "logmel", "params": {"n_mels": 32}}, model={"name": "knn"})
    fused = fuse_runs([classical_run, other], tmp_path / "fused", weights=[3, 1])
    with serving(create_app(tmp_path / "fused", top_k=2, warmup=False)) as url:
        status, info = _request(url, "GET", "/api/info")
        assert status == 200 and info["model"] == "fusion: logreg + knn" and info["features"] == "mfcc + logmel"
        assert [(r["run"], r["features"], r["weight"]) for r in info["runs"]] == [("logreg", "mfcc", 0.75), ("knn", "logmel", 0.25)]
        assert info["runs"][1]["feature_params"] == {"n_mels": 32} and info["feature_params"] is None
        status, r = _upload(url, "note.wav", clip.read_bytes())
    assert status == 200, r
    parts = [clip_proba(Run.load(run), clip)[0] for run in (classical_run, other)]
    assert r["probabilities"] == pytest.approx((0.75 * parts[0] + 0.25 * parts[1]).tolist(), abs=1e-6)  # float32 runs
    assert r["labels"] == fused.labels and len(r["top_k"]) == 2


def test_non_audio_is_415_naming_the_file(server):
    url, tmp_root = server
    status, r = _upload(url, "notes.wav", b"these are my notes, not audio\n" * 20)
    assert status == 415 and r["detail"].startswith("could not decode notes.wav: ")
    assert "earmark-serve" not in r["detail"] and "upload" not in r["detail"]  # no server path leaks out
    assert not list(tmp_root.iterdir())


def test_too_short_audio_is_422(server, tmp_path):
    url, _ = server
    sf.write(tmp_path / "blip.wav", np.zeros(100, np.float32), 22050)  # shorter than one MFCC frame
    status, r = _upload(url, "blip.wav", (tmp_path / "blip.wav").read_bytes())
    assert status == 422 and r["detail"].startswith("blip.wav: 100 samples")


def test_empty_upload_is_400(server):
    status, r = _upload(server[0], "empty.wav", b"")
    assert (status, r["detail"]) == (400, "empty upload: empty.wav has 0 bytes")


def test_missing_file_field_and_wrong_content_type(server):
    url, _ = server
    status, r = _upload(url, "note.wav", b"RIFF....", field="audio")
    assert (status, r["detail"]) == (400, "expected a file field named 'file' in the multipart upload")
    status, r = _request(url, "POST", "/api/predict", b"x=1", {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415 and "expected a multipart/form-data upload" in r["detail"]


def test_too_large_is_413_from_the_declared_length(server, tmp_path):
    url, tmp_root = server
    big = _clip(tmp_path / "long.wav", seconds=10.0)  # 441 kB > 0.25 MB
    status, r = _upload(url, "long.wav", big.read_bytes())
    assert status == 413 and r["detail"] == "upload too large: 0.4 MB sent, the limit of this server is 0.25 MB (--max-mb)"
    assert not list(tmp_root.iterdir())


def test_too_large_is_413_while_reading_a_chunked_upload(server):
    """No Content-Length to trust: the server counts the bytes as they arrive and stops at the limit."""
    url, tmp_root = server
    body, ctype = _multipart("stream.wav", b"\0" * (LIMIT + 1))
    chunks = (body[i : i + 16384] for i in range(0, len(body), 16384))
    status, r = _request(url, "POST", "/api/predict", chunks, {"Content-Type": ctype})
    assert status == 413 and r["detail"] == "upload too large: stream.wav is more than 0.25 MB, the limit of this server (--max-mb)"
    assert not list(tmp_root.iterdir())


@pytest.mark.parametrize("name", ["../../evil.wav", "..\\..\\evil.wav", "/tmp/evil-{id}.wav", "..", "a/../../b/evil.wav"])
def test_client_file_names_are_never_paths(server, clip, tmp_path_factory, name):
    url, tmp_root = server
    name = name.format(id=uuid.uuid4().hex)
    watched = tmp_root.parent.parent.parent  # three levels above the uploads folder
    before = _files_under(watched)
    status, r = _upload(url, name, clip.read_bytes())
    assert status == 200 and r["file"] == ("upload" if name == ".." else "evil.wav" if "evil.wav" in name else Path(name).name)
    assert _files_under(watched) == before and not list(tmp_root.iterdir())
    assert not Path(name).is_absolute() or not Path(name).exists()


def test_display_name():
    assert display_name("../../evil.wav") == "evil.wav"
    assert display_name("C:\\Users\\me\\song.mp3") == "song.mp3"
    assert display_name("bad\x00na\nme.wav") == "badname.wav"
    assert [display_name(x) for x in ("", None, ".", "..", "dir/")] == ["upload"] * 5
    assert len(display_name("x" * 1000)) == 200


def test_create_app_refuses_bad_arguments(classical_run, tmp_path):
    with pytest.raises(DataError, match="no such run folder"):
        create_app(tmp_path / "nope")
    with pytest.raises(ConfigError, match="max_mb must be > 0"):
        create_app(classical_run, max_mb=0)
    with pytest.raises(ConfigError, match="top_k must be an integer >= 1"):
        create_app(classical_run, top_k=0)


# --------------------------------------------------------------------------- the page in Chromium


@pytest.mark.browser
def test_page_upload_shows_top_label_bars_and_spectrogram(server, clip):
    from tests.browser import open_page

    url, _ = server
    _, expected = _upload(url, "note.wav", clip.read_bytes())
    with open_page(url + "/") as p:
        page = p.page
        page.wait_for_function("document.getElementById('info').textContent.includes('logreg')")
        assert "up to 0.25 MB" in page.inner_text("#limits")
        page.set_input_files("#file", str(clip))
        page.wait_for_selector("#result", state="visible")
        page.wait_for_function("document.getElementById('spectrogram').complete"
                               " && document.getElementById('spectrogram').naturalWidth > 0")
        assert page.inner_text("#top-label") == expected["top_k"][0]["label"]
        rows = page.query_selector_all(".bar-row")
        assert len(rows) == 3 and rows[0].query_selector(".bar-label").inner_text() == expected["top_k"][0]["label"]
        assert page.eval_on_selector("#spectrogram", "img => img.naturalWidth") == 800
        assert "note.wav" in page.inner_text("#meta") and page.is_hidden("#error")
        assert p.console_errors == [] and p.failed_requests == []
        p.screenshot("serve-page")


@pytest.mark.browser
def test_page_drop_of_a_non_audio_file_shows_the_servers_message(server):
    from tests.browser import open_page

    url, _ = server
    with open_page(url + "/") as p:
        page = p.page
        page.wait_for_function("document.getElementById('info').textContent.includes('logreg')")
        transfer = page.evaluate_handle("""() => {
            const dt = new DataTransfer();
            dt.items.add(new File(["just some text"], "notes.txt", {type: "text/plain"}));
            return dt;
        }""")
        page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
        page.wait_for_selector("#error", state="visible")
        assert page.inner_text("#error").startswith("could not decode notes.txt: ")
        assert page.is_hidden("#result")
        # the only console error is Chromium reporting the 415 itself
        assert p.console_errors and all("415" in e for e in p.console_errors)
        p.screenshot("serve-page-error")


# --------------------------------------------------------------------------- a network, through `earmark serve`


@pytest.mark.slow
def test_cli_serves_a_network_run_with_windows(demo, tmp_path):
    run = _train(tmp_path, demo, "net", features={"name": "fbank", "frames": 96, "pool": ["mean"]},
                 model={"name": "cnn_small"},
                 train={"epochs": 1, "batch_size": 16, "lr": 2e-3, "schedule": None, "val_fraction": 0.2},
                 eval={"window": 1.0, "hop": 0.5})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "earmark", "serve", str(run), "--port", str(port), "--top-k", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        _wait_healthy(url, proc=proc)
        status, info = _request(url, "GET", "/api/info")
        assert info["model"] == "cnn_small" and info["window_s"] == 1.0 and info["max_mb"] == 50
        clip = _clip(tmp_path / "long.wav", "organ", seconds=3.0, sr=16000)
        status, r = _upload(url, "long.wav", clip.read_bytes())
        assert status == 200, r
        proba, n = clip_proba(Run.load(run), clip)
        assert r["n_windows"] == n == 5 and len(r["top_k"]) == 2
        assert r["probabilities"] == pytest.approx(proba.tolist(), abs=1e-6)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert f"serving {run} on {url}/" in proc.stdout.read()


def test_cli_serve_on_a_missing_run_is_one_line(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err.strip()
    assert "no such run folder" in err and len(err.splitlines()) == 1
