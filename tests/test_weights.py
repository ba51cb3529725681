"""Weights: checked downloads from a real local HTTP server, the cache, weights-only loading, strict matching."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from earmark.cli import main
from earmark.errors import ConfigError, DataError
from earmark.fsutil import _TMP_NAME
from earmark.models.pretrained import (
    KNOWN_WEIGHTS,
    cached_path,
    create_backbone,
    fetch_weights,
    file_identity,
    load_checkpoint,
    load_strict,
    resolve_weights,
    weights_dir,
)


class _Handler(BaseHTTPRequestHandler):
    """``/<name>`` serves ``server.files[name]``; ``/truncated/<name>`` promises more bytes than it sends;
    ``/stall/<name>`` sends half of it, sets ``server.stalled`` and waits for ``server.release``."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.requests.append(self.path)
        if self.path.startswith("/stall/"):
            body = self.server.files[self.path.removeprefix("/stall")]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client is killed meanwhile
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
            self.server.stalled.set()
            self.server.release.wait(timeout=300)
            self.close_connection = True
            return
        truncated = self.path.startswith("/truncated/")
        body = self.server.files.get(self.path.removeprefix("/truncated"))
        if body is None:
            self.send_error(404, "no such file")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) + (4096 if truncated else 0)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if truncated else body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def checkpoint() -> tuple[bytes, dict]:
    """A generated checkpoint: a randomly initialised resnet50's state_dict in PANNs' ``{"model": ...}`` wrapper."""
    state = create_backbone("resnet50", seed=11).state_dict()
    buf = io.BytesIO()
    torch.save({"model": state, "iteration": 0}, buf)
    return buf.getvalue(), state


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def wheel() -> dict[str, bytes]:
    """A generated stand-in for the Resemblyzer wheel: ``resemblyzer/pretrained.pt`` holds a random ge2e's
    state_dict in Resemblyzer's ``{"model_state": ...}`` wrapper; and broken variants of it."""
    buf = io.BytesIO()
    torch.save({"model_state": create_backbone("ge2e", seed=13).state_dict(), "step": 5}, buf)
    member = buf.getvalue()
    other = io.BytesIO()
    torch.save({"model_state": create_backbone("ge2e", seed=14).state_dict(), "step": 6}, other)
    init = b"from resemblyzer.voice_encoder import VoiceEncoder\n"
    return {"member": member,
            "/Resemblyzer.whl": _zip({"resemblyzer/__init__.py": init, "resemblyzer/pretrained.pt": member}),
            "/no-member.whl": _zip({"resemblyzer/__init__.py": init}),
            "/other-member.whl": _zip({"resemblyzer/__init__.py": init, "resemblyzer/pretrained.pt": other.getvalue()}),
            "/not-a-zip.whl": b"<html>not a zip archive</html>" * 10}


@pytest.fixture(scope="module")
def server(checkpoint, wheel):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files = {"/resnet50.pth": checkpoint[0], "/garbage.pth": b"<html>not a checkpoint</html>",
                   **{k: v for k, v in wheel.items() if k.startswith("/")}}
    httpd.requests = []
    httpd.stalled, httpd.release = threading.Event(), threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------ downloads


def test_download_checksum_and_strict_load(tmp_path, server, checkpoint):
    httpd, base = server
    data, state = checkpoint
    cache = tmp_path / "cache"
    path = fetch_weights("resnet50", cache=cache, url=f"{base}/resnet50.pth", sha256=_sha256(data))
    assert path == cache / "resnet50-0676ba61.pth" == cached_path("resnet50", cache)
    assert sorted(os.listdir(cache)) == ["resnet50-0676ba61.pth"] and path.read_bytes() == data
    net = create_backbone("resnet50", weights="resnet50", cache=cache)
    assert net.pretrained and net.weights_source == str(path)
    loaded = net.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    # a second fetch finds the verified file and downloads nothing
    n = len(httpd.requests)
    assert fetch_weights("resnet50", cache=cache, url=f"{base}/resnet50.pth", sha256=_sha256(data)) == path
    assert len(httpd.requests) == n


def test_cli_fetch_and_list(tmp_path, server, checkpoint, capsys, monkeypatch):
    _, base = server
    cache = tmp_path / "cache"
    monkeypatch.setenv("EARMARK_WEIGHTS_DIR", str(cache))
    assert weights_dir() == cache
    code = main(["weights", "fetch", "resnet50", "--url", f"{base}/resnet50.pth", "--sha256", _sha256(checkpoint[0]),
                 "--no-progress"])
    assert code == 0
    assert "resnet50-0676ba61.pth" in capsys.readouterr().out
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for name in KNOWN_WEIGHTS:
        assert name in out
    assert "yes" in out and "no" in out  # resnet50 cached, the others not


def test_wrong_checksum_is_refused_and_leaves_nothing(tmp_path, server, checkpoint):
    _, base = server
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"sha256 [0-9a-f]{64} does not match the expected 0{64}; refused"):
        fetch_weights("resnet50", cache=cache, url=f"{base}/resnet50.pth", sha256="0" * 64)
    assert os.listdir(cache) == []
    # without an override the official checks apply: this generated file is not the official one
    with pytest.raises(DataError, match=r"resnet50-0676ba61.pth from http://127.0.0.1:\d+/resnet50.pth: .* refused"):
        fetch_weights("resnet50", cache=cache, url=f"{base}/resnet50.pth")
    assert os.listdir(cache) == []
    assert main(["weights", "fetch", "resnet50", "--cache", str(cache), "--url", f"{base}/resnet50.pth",
                 "--no-progress"]) == 1
    assert os.listdir(cache) == []


def test_truncated_download_is_refused_and_leaves_nothing(tmp_path, server, checkpoint):
    _, base = server
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"(truncated download \([\d,]+ of [\d,]+ bytes\)|download interrupted)"):
        fetch_weights("resnet50", cache=cache, url=f"{base}/truncated/resnet50.pth", sha256=_sha256(checkpoint[0]))
    assert os.listdir(cache) == []


def test_a_killed_download_leaves_a_named_temporary_that_the_next_fetch_removes(tmp_path, server, checkpoint):
    httpd, base = server
    cache, sha = tmp_path / "cache", _sha256(checkpoint[0])
    proc = subprocess.Popen([sys.executable, "-m", "earmark", "weights", "fetch", "resnet50", "--cache", str(cache),
                             "--url", f"{base}/stall/resnet50.pth", "--sha256", sha, "--no-progress"],
                            cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        while not httpd.stalled.wait(0.1):  # half the file sent: the download is under way
            assert proc.poll() is None, proc.stdout.read().decode()
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        httpd.release.set()
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    (left,) = os.listdir(cache)  # the killed process's temporary, named after it; never the target
    named = _TMP_NAME.match(left)
    assert left.startswith(".resnet50-0676ba61.pth.") and named and named["pid"] == str(proc.pid)
    path = fetch_weights("resnet50", cache=cache, url=f"{base}/resnet50.pth", sha256=sha)
    assert os.listdir(cache) == [path.name] and path.read_bytes() == checkpoint[0]


def test_offline_error_names_the_url_and_the_target(tmp_path):
    cache = tmp_path / "cache"
    url = f"http://127.0.0.1:{_closed_port()}/Cnn14_mAP%3D0.431.pth"
    with pytest.raises(DataError) as info:
        fetch_weights("cnn14", cache=cache, url=url, timeout=5)
    msg = str(info.value)
    assert "no connection" in msg and url in msg and str(cache / "Cnn14_mAP=0.431.pth") in msg
    assert not cache.exists() or os.listdir(cache) == []


def test_http_error_and_bad_options(tmp_path, server):
    _, base = server
    with pytest.raises(DataError, match="HTTP 404"):
        fetch_weights("vgg16", cache=tmp_path, url=f"{base}/missing.pth")
    with pytest.raises(ConfigError, match="unknown weights 'vgg19'; known: cnn14, cnn14_16k, vgg16, resnet50, ge2e"):
        fetch_weights("vgg19", cache=tmp_path)
    with pytest.raises(ConfigError, match="--sha256: expected 64 hex digits"):
        fetch_weights("vgg16", cache=tmp_path, sha256="abc")
    assert os.listdir(tmp_path) == []


def test_known_weights_table():
    for name, spec in KNOWN_WEIGHTS.items():
        assert spec.name == name and len(spec.sha256) == 64 and spec.size > 0
        assert spec.url.startswith("https://")
        if "download.pytorch.org" in spec.url:  # torchvision names carry the sha256's first 8 hex digits
            assert spec.filename.split("-")[1].removesuffix(".pth") == spec.sha256[:8]
        elif spec.member is not None:  # weights inside an archive: the archive's and the member's checks
            assert len(spec.member_sha256) == 64 and spec.member_size > 0
        else:
            assert spec.md5 and len(spec.md5) == 32 and "zenodo.org/record/3987831" in spec.url
    ge2e = KNOWN_WEIGHTS["ge2e"]
    assert (ge2e.backbone, ge2e.filename, ge2e.member) == ("ge2e", "resemblyzer-0.1.4-pretrained.pt",
                                                          "resemblyzer/pretrained.pt")
    assert ge2e.url.startswith("https://files.pythonhosted.org/packages/") and ge2e.url.endswith(
        "/Resemblyzer-0.1.4-py3-none-any.whl")
    assert (ge2e.size, ge2e.member_size) == (15_747_704, 17_090_379)
    assert ge2e.checks == ("archive size 15,747,704 B, sha256 8f12eb2f1a99...; member resemblyzer/pretrained.pt: "
                           "size 17,090,379 B, sha256 39373b86598f...")
    assert all(spec.member is None for name, spec in KNOWN_WEIGHTS.items() if name != "ge2e")


# ------------------------------------------------------------------------ weights inside an archive


def _archive_entry(monkeypatch, base: str, wheel: dict[str, bytes], path: str = "/Resemblyzer.whl"):
    """Make ``ge2e`` name the generated archive at ``path`` (its sha256 and size), holding the generated member."""
    spec = dataclasses.replace(KNOWN_WEIGHTS["ge2e"], url=f"{base}{path}", sha256=_sha256(wheel[path]),
                               size=len(wheel[path]), member_sha256=_sha256(wheel["member"]),
                               member_size=len(wheel["member"]))
    monkeypatch.setitem(KNOWN_WEIGHTS, "ge2e", spec)
    return spec


def test_weights_inside_an_archive_are_extracted_checked_and_kept_alone(tmp_path, server, wheel, monkeypatch, capsys):
    httpd, base = server
    _archive_entry(monkeypatch, base, wheel)
    cache = tmp_path / "cache"
    path = fetch_weights("ge2e", cache=cache)
    assert path == cache / "resemblyzer-0.1.4-pretrained.pt" == cached_path("ge2e", cache)
    assert os.listdir(cache) == ["resemblyzer-0.1.4-pretrained.pt"]  # the archive is gone
    assert path.read_bytes() == wheel["member"]
    net = create_backbone("ge2e", weights="ge2e", cache=cache)
    src = create_backbone("ge2e", seed=13)
    assert net.pretrained and all(torch.equal(net.state_dict()[k], v) for k, v in src.state_dict().items())
    # a second fetch (also from the CLI) finds the verified file and downloads nothing
    n = len(httpd.requests)
    assert fetch_weights("ge2e", cache=cache) == path
    assert main(["weights", "fetch", "ge2e", "--cache", str(cache), "--no-progress"]) == 0
    assert "member resemblyzer/pretrained.pt" in capsys.readouterr().out
    assert len(httpd.requests) == n
    # a cached file that fails the member's checks is fetched again
    path.write_bytes(b"damaged")
    assert fetch_weights("ge2e", cache=cache).read_bytes() == wheel["member"]
    assert len(httpd.requests) == n + 1 and os.listdir(cache) == ["resemblyzer-0.1.4-pretrained.pt"]


def test_archive_with_a_sha256_override_skips_the_member_checks(tmp_path, server, wheel):
    httpd, base = server
    cache = tmp_path / "cache"
    url = f"{base}/other-member.whl"  # another build: its member is not the known one
    path = fetch_weights("ge2e", cache=cache, url=url, sha256=_sha256(wheel["/other-member.whl"]))
    assert os.listdir(cache) == [path.name]
    assert torch.load(path, weights_only=True)["step"] == 6
    n = len(httpd.requests)  # the cached member cannot be checked without its digest: fetched again
    fetch_weights("ge2e", cache=cache, url=url, sha256=_sha256(wheel["/other-member.whl"]))
    assert len(httpd.requests) == n + 1 and os.listdir(cache) == [path.name]


@pytest.mark.parametrize("archive,message", [
    ("/no-member.whl", r"archive http://127.0.0.1:\d+/no-member.whl: no member 'resemblyzer/pretrained.pt' in it"),
    ("/other-member.whl", r"resemblyzer/pretrained.pt in http://127.0.0.1:\d+/other-member.whl: "
                          r"(sha256 [0-9a-f]{64} does not match|[\d,]+ bytes, expected)"),
    ("/not-a-zip.whl", r"archive http://127.0.0.1:\d+/not-a-zip.whl: not a readable zip archive"),
])
def test_bad_archives_are_refused_and_leave_nothing(tmp_path, server, wheel, monkeypatch, archive, message):
    _, base = server
    spec = _archive_entry(monkeypatch, base, wheel, archive)  # the archive's own sha256: only its content is wrong
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=message):
        fetch_weights("ge2e", cache=cache)
    assert os.listdir(cache) == []
    # and a wrong archive is refused before anything is extracted
    monkeypatch.setitem(KNOWN_WEIGHTS, "ge2e", dataclasses.replace(spec, sha256="0" * 64))
    with pytest.raises(DataError, match=rf"archive {base}{archive}: sha256 [0-9a-f]{{64}} does not match"):
        fetch_weights("ge2e", cache=cache)
    assert os.listdir(cache) == []


# ------------------------------------------------------------------------ resolving


def test_resolve_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("EARMARK_WEIGHTS_DIR", str(tmp_path))
    assert resolve_weights(None) is None and resolve_weights("random") is None
    with pytest.raises(ConfigError, match=r"weights 'cnn14' are not in the cache \(.*Cnn14_mAP=0.431.pth\); "
                                          r"run `earmark weights fetch cnn14`.*weights: random"):
        resolve_weights("cnn14", backbone="cnn14")
    with pytest.raises(ConfigError, match="no such file"):
        resolve_weights(str(tmp_path / "nope.pth"))
    (tmp_path / "Cnn14_mAP=0.431.pth").write_bytes(b"x")
    assert resolve_weights("cnn14") == tmp_path / "Cnn14_mAP=0.431.pth"
    ident = file_identity(tmp_path / "Cnn14_mAP=0.431.pth")
    assert str(tmp_path) in ident and ident.split("|")[1] == "1"


# ------------------------------------------------------------------------ loading


def test_key_and_shape_mismatch_message(tmp_path, checkpoint):
    state = dict(checkpoint[1])
    for key in ("layer4.2.bn3.weight", "layer4.2.bn3.bias", "layer4.2.bn3.running_mean"):
        del state[key]
    state["head.weight"] = torch.zeros(3)
    state["fc.weight"] = torch.zeros(10, 2048)
    path = tmp_path / "resnet50-custom.pth"
    torch.save(state, path)
    with pytest.raises(DataError) as info:
        create_backbone("resnet50", weights=path)
    assert str(info.value) == (
        "resnet50-custom.pth: does not match resnet50: 3 keys missing (layer4.2.bn3.weight, layer4.2.bn3.bias, "
        "layer4.2.bn3.running_mean), 1 unexpected (head.weight), shapes differ: fc.weight expected (1000, 2048) "
        "got (10, 2048)")


def test_load_strict_tolerates_only_missing_batch_counters():
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    state = {k: v.clone() + 1 if v.is_floating_point() else v for k, v in net.state_dict().items()}
    del state["1.num_batches_tracked"]
    load_strict(net, state, "old.pth")
    assert torch.equal(net[0].weight, state["0.weight"])
    del state["1.running_var"]
    with pytest.raises(DataError, match=r"old.pth: does not match Sequential: 1 key missing \(1.running_var\)"):
        load_strict(net, state, "old.pth")


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_arbitrary_objects_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    for i, save in enumerate((torch.save, lambda obj, p: p.write_bytes(pickle.dumps(obj, protocol=2)))):
        path = tmp_path / f"evil{i}.pth"
        save({"model": {"w": torch.ones(1)}, "payload": _Evil(marker)}, path)
        with pytest.raises(DataError, match="refused — not a weights-only checkpoint"):
            load_checkpoint(path)
        assert not marker.exists()
    (tmp_path / "junk.pth").write_bytes(b"\x00\x01 not a checkpoint")
    with pytest.raises(DataError, match="junk.pth: (not a readable PyTorch checkpoint|refused)"):
        load_checkpoint(tmp_path / "junk.pth")
    torch.save({"model": {"w": torch.ones(1), "note": "text"}}, tmp_path / "mixed.pth")
    with pytest.raises(DataError, match="1 entries are not tensors \\(e.g. 'note': str\\)"):
        load_checkpoint(tmp_path / "mixed.pth")


def test_panns_style_checkpoint_with_numpy_arrays_loads(tmp_path):
    """PANNs' files hold their sampler's NumPy arrays, pickled by NumPy 1 (``numpy.core.multiarray``)."""
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1
        from numpy.core import multiarray
    original = multiarray._reconstruct.__module__
    path = tmp_path / "Cnn14_like.pth"
    obj = {"iteration": 600000, "model": {"fc1.weight": torch.ones(2, 2)},
           "sampler": {"indexes_per_class": [np.arange(5), np.arange(3)], "queue": [], "pointers_of_classes": [0, 2],
                       "scalar": np.float32(0.5)}}
    multiarray._reconstruct.__module__ = "numpy.core.multiarray"  # the name NumPy 1 pickles under
    try:
        torch.save(obj, path)
    finally:
        multiarray._reconstruct.__module__ = original
    state = load_checkpoint(path)
    assert list(state) == ["fc1.weight"] and torch.equal(state["fc1.weight"], torch.ones(2, 2))


def test_resemblyzer_style_checkpoint_loads(tmp_path):
    """Resemblyzer's ``pretrained.pt``: ``{"model_state": state_dict, "step": ..., "optimizer_state": ...}``."""
    src = create_backbone("ge2e", seed=21)
    path = tmp_path / "pretrained.pt"
    torch.save({"model_state": src.state_dict(), "step": 5,
                "optimizer_state": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]}}, path)
    state = load_checkpoint(path)
    assert set(state) == set(src.state_dict())
    net = create_backbone("ge2e", seed=0)
    load_strict(net, state, path.name)
    y = np.random.default_rng(0).standard_normal(24000).astype(np.float32) * 0.1
    torch.testing.assert_close(net.embed(y), src.embed(y))


def test_safetensors_files_load(tmp_path):
    st = pytest.importorskip("safetensors.torch")
    st.save_file({"w": torch.arange(3.0)}, str(tmp_path / "w.safetensors"))
    assert torch.equal(load_checkpoint(tmp_path / "w.safetensors")["w"], torch.arange(3.0))
