"""earmark export: TorchScript (front end inside) and ONNX (network) agree with PyTorch / earmark."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from earmark.cli import main
from earmark.data.demo import make_demo_dataset, synth_note
from earmark.export import onnx_features
from earmark.features import fbank
from earmark.run import Run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export")
    manifest = make_demo_dataset(root / "demo", n_per_class=6, duration=1.0, seed=3)
    out = {}
    for name, ensemble, model in (("net", 1, "cnn_small"), ("ens", 2, "cnn_small"), ("clf", 1, "logreg"),
                                  ("sep", 1, "cnn_small")):
        raw = {"data": {"manifest": str(manifest)}, "features": {"name": "fbank", "frames": 96, "jobs": 1,
                                                                  "store": str(root / "store")},
               "audio": {"separate": {"method": "repet"} if name == "sep" else None},
               "model": {"name": model}, "train": {"epochs": 1, "batch_size": 8, "schedule": None,
                                                   "ensemble": {"members": ensemble}, "search": {"enabled": False}}}
        cfg = root / f"{name}.yaml"
        cfg.write_text(yaml.safe_dump(raw))
        assert main(["train", str(cfg), "--out", str(root / name), "--no-progress"]) == 0
        out[name] = root / name
    return out


def _waveform(n: int) -> np.ndarray:
    y = synth_note("bowed", sr=16000, duration=1.0, rng=np.random.default_rng(1))
    return y[:n]


@pytest.mark.parametrize("which", ["net", "ens"])
def test_torchscript_includes_the_front_end_and_matches(runs, which):
    run = runs[which]
    assert main(["export", str(run), "--format", "torchscript"]) == 0
    info = json.loads((run / "export.json").read_text())
    assert info["feature"] == "fbank" and info["frames"] == 96
    n = info["n_samples"]  # the shortest waveform with 96 frames
    assert fbank(np.zeros(n, np.float32)).shape[0] == 96 and fbank(np.zeros(n - 1, np.float32)).shape[0] == 95
    model = torch.jit.load(str(run / "model.pt"))
    y = _waveform(info["n_samples"])
    with torch.no_grad():
        got = model(torch.from_numpy(y)[None]).numpy()
    want = Run.load(run).predict_proba([fbank(y)])
    np.testing.assert_allclose(got, want, atol=1e-5)
    with torch.no_grad():  # a batch goes through the same graph
        batch = model(torch.from_numpy(np.stack([y, 0.5 * y]))).numpy()
    np.testing.assert_allclose(batch, Run.load(run).predict_proba([fbank(y), fbank(0.5 * y)]), atol=1e-5)
    assert info["labels"] == [str(c) for c in Run.load(run).model.classes_]


@pytest.mark.parametrize("which", ["net", "ens"])
def test_onnx_runtime_agrees_with_pytorch(runs, which, tmp_path):
    import onnxruntime as ort

    run = runs[which]
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    info = json.loads((tmp_path / "export.json").read_text())
    waves = np.stack([_waveform(16000), 0.5 * _waveform(16000)])
    features = onnx_features(waves, info)
    assert features.shape == (2, 96, 40)
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"features": features})[0]
    want = Run.load(run).predict_proba([fbank(w) for w in waves])  # centre-cropped to 96 frames inside
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_classical_runs_and_bad_formats_are_refused(runs, capsys):
    assert main(["export", str(runs["clf"]), "--format", "onnx"]) == 2
    assert "export needs a network run" in capsys.readouterr().err
    assert main(["export", str(runs["net"]), "--format", "tflite"]) == 2
    assert "expected one of onnx, torchscript" in capsys.readouterr().err


def test_a_run_on_separated_vocals_exports_its_separation_in_the_onnx_recipe(runs, tmp_path, capsys):
    import onnxruntime as ort

    from earmark.audio import separate

    run = runs["sep"]
    assert main(["export", str(run), "--format", "torchscript"]) == 2
    assert "separates vocals before its feature" in capsys.readouterr().err
    assert not (run / "model.pt").exists()
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    info = json.loads((tmp_path / "export.json").read_text())
    assert info["separate"]["method"] == "repet" and info["separate"]["stem"] == "vocals"
    wave = _waveform(16000)
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"features": onnx_features(wave, info)})[0]
    vocals = separate(wave, 16000, method="repet", **info["separate"]["params"])[0]
    want = Run.load(run).predict_proba([fbank(vocals)])
    np.testing.assert_allclose(got, want, atol=1e-5)
    plain = Run.load(run).predict_proba([fbank(wave)])
    assert not np.allclose(want, plain, atol=1e-4)  # the separation matters, so the test can fail
