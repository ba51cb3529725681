"""Backbone embeddings as cached features (``embedding:*``): contract, weights identity, CLI and training."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import torch
import yaml

from conftest import music_like
from earmark.cli import main
from earmark.data.demo import make_demo_dataset
from earmark.errors import ConfigError
from earmark.features import FEATURES, get_feature
from earmark.features import embedding as emb
from earmark.features.store import FeatureStore
from earmark.models.pretrained import BACKBONES, create_backbone, ge2e

NAMES = ["embedding:cnn14", "embedding:cnn14_16k", "embedding:vgg16:fc2", "embedding:vgg16:fc1",
         "embedding:vgg16:block5_pool", "embedding:resnet50:avg_pool", "embedding:resnet50:layer3", "embedding:ge2e"]
RANDOM = {"weights": "random"}


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EARMARK_WEIGHTS_DIR", str(tmp_path / "weights"))
    return tmp_path / "weights"


def test_registered_with_the_backbones_rates_and_sizes():
    assert FEATURES.names("embedding:*") == sorted(NAMES)
    for name in NAMES:
        feat = get_feature(name)
        backbone, cut, sr, dim = emb.EMBEDDING_FEATURES[name]
        assert (feat.backbone, feat.cut, feat.sr, feat.dim) == (backbone, cut, sr, dim)
        assert feat.sr == BACKBONES.get(backbone).sample_rate and cut in BACKBONES.get(backbone).cuts
        assert feat.defaults == {"weights": backbone, **emb.EMBEDDING_OPTIONS.get(name, {})}


def test_missing_default_weights_say_how_to_get_them(empty_cache):
    feat = get_feature("embedding:cnn14")
    with pytest.raises(ConfigError, match=r"feature 'embedding:cnn14': weights 'cnn14' are not in the cache "
                                          r"\(.*Cnn14_mAP=0.431.pth\); run `earmark weights fetch cnn14`, or set "
                                          r"features.params.weights: random"):
        feat.resolve()
    with pytest.raises(ConfigError, match="for backbone 'vgg16', not 'cnn14'"):
        feat.resolve({"weights": "vgg16"})
    with pytest.raises(ConfigError, match="no such file"):
        feat.resolve({"weights": str(empty_cache / "nope.pth")})
    with pytest.raises(ConfigError, match="unknown parameter 'n_mels'"):
        feat.resolve({"n_mels": 64})
    with pytest.raises(ConfigError, match="takes 32000 Hz audio; sr cannot be changed"):
        feat.resolve({"sr": 16000, **RANDOM})
    params = feat.resolve(RANDOM)
    assert params == {"sr": 32000, "weights": "random", "weights_id": "random (seed 0)"}
    assert feat.resolve(params) == params  # resolving a resolved dict gives the same


@pytest.mark.parametrize("name", NAMES)
def test_every_embedding_feature_with_random_weights(name):
    feat = get_feature(name)
    y = np.stack([music_like(feat.sr, 0.4, seed=s) for s in range(2)])
    out = feat(y, **RANDOM)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (2, feat.dim)
    assert np.isfinite(out).all() and np.abs(out).sum() > 0


def test_ge2e_speaker_embedding_feature():
    feat = get_feature("embedding:ge2e")
    assert (feat.sr, feat.dim, feat.defaults) == (16000, 256, {"weights": "ge2e", "partial": ge2e.PARTIAL_S,
                                                               "rate": ge2e.RATE, "weighting": "equal"})
    y = np.stack([music_like(16000, 2.0, f0=f0, seed=s) for s, f0 in enumerate((110.0, 220.0, 440.0))])
    out = feat(y, **RANDOM)
    assert out.shape == (3, 256) and out.dtype == np.float32 and (out >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)  # Resemblyzer's unit-norm embeddings
    np.testing.assert_allclose(out[1], feat(y[1], **RANDOM), atol=1e-5)


def test_ge2e_partials_are_feature_parameters():
    feat = get_feature("embedding:ge2e")
    y = np.stack([music_like(16000, 3.0, f0=f0, seed=s) for s, f0 in enumerate((110.0, 330.0))])
    net = create_backbone("ge2e")  # random weights, seed 0: those of weights=random
    short = feat(y, **RANDOM, partial=0.6, rate=5)
    np.testing.assert_allclose(short, net.embed(y, partial=0.6, rate=5).numpy(), atol=1e-6)
    np.testing.assert_allclose(feat(y, **RANDOM, partial=0.6, rate=5, weighting="energy"),
                               net.embed(y, partial=0.6, rate=5, weighting="energy").numpy(), atol=1e-6)
    np.testing.assert_allclose(feat(y, **RANDOM), net.embed(y).numpy(), atol=1e-6)
    assert np.abs(short - feat(y, **RANDOM)).max() > 1e-3
    assert feat.resolve({**RANDOM, "partial": 0.6, "rate": 5}) != feat.resolve(RANDOM)  # another store key
    for params, message in (({"partial": 0.01}, "partial must be a length in seconds from 0.1 to 10"),
                            ({"partial": 0.6, "rate": 1}, "rate must be 1.667 to 100 partials per second for partials of 0.6 s"),
                            ({"weighting": "max"}, "weighting must be one of equal, energy")):
        with pytest.raises(ConfigError, match=f"feature 'embedding:ge2e': ge2e: {message}"):
            feat.resolve({**RANDOM, **params})
    with pytest.raises(ConfigError, match="unknown parameter 'partial'"):
        get_feature("embedding:cnn14_16k").resolve({**RANDOM, "partial": 0.6})


def test_feature_contract_on_one_backbone():
    """What tests/test_features.py checks of every feature, with random weights."""
    feat = get_feature("embedding:cnn14_16k")
    n = feat.sr // 2
    y = music_like(feat.sr, 0.5, seed=1)[:n]
    out = feat(y, **RANDOM)
    assert out.shape == (2048,) and out.dtype == np.float32
    np.testing.assert_array_equal(out, feat(y, **RANDOM))  # deterministic
    t = feat(torch.from_numpy(y), **RANDOM)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), out, rtol=1e-6, atol=1e-6)
    batch = np.stack([y, np.zeros(n, np.float32), 0.1 * np.random.default_rng(0).standard_normal(n).astype(np.float32)])
    many = feat(batch, **RANDOM)
    assert many.shape == (3, 2048)
    for i in range(3):
        np.testing.assert_allclose(many[i], feat(batch[i], **RANDOM), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(feat(torch.from_numpy(batch[None]), **RANDOM)[0].numpy(), many, rtol=1e-5, atol=1e-4)
    t64 = feat(torch.from_numpy(batch.astype(np.float64)), **RANDOM)
    assert t64.dtype == torch.float64
    np.testing.assert_allclose(t64.numpy(), many, rtol=1e-4, atol=1e-2)
    with pytest.warns(UserWarning, match="zero-padded"):  # min_samples 1: the backbone pads short clips
        assert np.isfinite(feat(y[: feat.min_samples(feat.resolve(RANDOM))], **RANDOM)).all()


def test_backbone_is_built_once_per_process_and_weights_file():
    emb._backbone.cache_clear()
    feat = get_feature("embedding:cnn14_16k")
    y = music_like(16000, 0.4)
    for _ in range(3):
        feat(y, **RANDOM)
    info = emb._backbone.cache_info()
    assert info.misses == 1 and info.hits == 2


def test_weights_file_is_used_and_its_identity_keys_the_store(tmp_path):
    src = create_backbone("resnet50", cut="layer3", seed=5)
    path = tmp_path / "mine.pth"
    torch.save(src.state_dict(), path)
    feat = get_feature("embedding:resnet50:layer3")
    y = music_like(22050, 0.5)
    np.testing.assert_allclose(feat(y, weights=str(path)), src.embed(y).numpy(), rtol=1e-5, atol=1e-5)

    def store_dir(weights):
        with FeatureStore(tmp_path / "store", "embedding:resnet50:layer3", {"weights": weights}) as store:
            return store.dir

    random_dir, file_dir = store_dir("random"), store_dir(str(path))
    assert random_dir != file_dir and store_dir(str(path)) == file_dir
    saved = json.loads((file_dir / "params.json").read_text())["params"]
    assert saved["weights_id"].startswith(f"{path.resolve()}|{path.stat().st_size}|")
    assert json.loads((random_dir / "params.json").read_text())["params"]["weights_id"] == "random (seed 0)"
    time.sleep(0.01)
    torch.save(create_backbone("resnet50", cut="layer3", seed=6).state_dict(), path)  # other weights, same path
    os.utime(path, ns=(time.time_ns(), time.time_ns()))
    assert store_dir(str(path)) not in (file_dir, random_dir)


def test_cli_extract_with_random_weights_then_train_svm_with_pca(tmp_path, capsys):
    manifest = make_demo_dataset(tmp_path / "demo", n_per_class=2, duration=0.4, seed=3)
    store = tmp_path / "store"
    assert main(["extract", str(manifest), "-f", "embedding:vgg16:fc2", "-s", str(store), "-p", "weights=random",
                 "--jobs", "1", "--no-progress"]) == 0
    assert "10 computed, 0 failed" in capsys.readouterr().out
    (folder,) = store.iterdir()
    assert json.loads((folder / "params.json").read_text())["params"]["weights"] == "random"
    with FeatureStore(store, "embedding:vgg16:fc2", RANDOM) as fs:
        assert len(fs) == 10 and {fs.get(k).shape for k in fs.keys()} == {(4096,)}

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"manifest": str(manifest)},
        "features": {"name": "embedding:vgg16:fc2", "params": RANDOM, "store": str(store), "jobs": 1},
        "model": {"name": "svm_rbf", "pca": 0.95},
        "train": {"seed": 0, "search": {"enabled": False}},
    }))
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["features"] == "embedding:vgg16:fc2" and metrics["n"] >= 1 and 0.0 <= metrics["accuracy"] <= 1.0
    with FeatureStore(store, "embedding:vgg16:fc2", RANDOM) as fs:
        assert len(fs) == 10  # training reused the stored embeddings


def test_cli_extract_without_cached_weights_is_a_config_error(tmp_path, empty_cache, capsys):
    manifest = make_demo_dataset(tmp_path / "demo", n_per_class=2, duration=0.2, seed=3)
    code = main(["extract", str(manifest), "-f", "embedding:cnn14", "-s", str(tmp_path / "store"), "--no-progress"])
    assert code == 2
    assert "earmark weights fetch cnn14" in capsys.readouterr().err.replace("\n", " ")


def test_embedding_workers_never_import_librosa_or_scipy_signal():
    import subprocess
    import sys

    code = ("import sys, numpy as np; from earmark.features import get_feature; "
            "[get_feature(n)(np.random.default_rng(0).standard_normal(8000).astype(np.float32), weights='random') "
            "for n in ('embedding:cnn14_16k', 'embedding:resnet50:layer3')]; "
            "print(sorted(m for m in ('scipy.signal', 'librosa') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
