"""Fine-tuning a pretrained backbone with a new head: the ``pretrained`` network and ``train.backbone_lr``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from earmark.errors import ConfigError
from earmark.models.nets import create_network
from earmark.models.net_estimator import NetClassifier, load_net, save_net
from earmark.models.pretrained import create_backbone
from earmark.train.options import TrainerOptions
from earmark.train.trainer import _parameter_groups
from tests.conftest import music_like

SR = 22050  # resnet50's rate: it looks at a 224 x 224 picture of the log-mel spectrogram


def waveforms(n: int = 8, seconds: float = 0.5):
    """Two classes of real-sounding tones, low and high."""
    y = np.array(["low", "high"])[np.arange(n) % 2]
    X = np.stack([music_like(SR, seconds, f0=110.0 if label == "low" else 880.0, seed=i) for i, label in enumerate(y)])
    return X, y


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory):
    """A (randomly initialised) resnet50 checkpoint on disk, standing in for torchvision's file."""
    path = tmp_path_factory.mktemp("weights") / "resnet50-test.pth"
    torch.save(create_backbone("resnet50", weights="random", seed=5).state_dict(), path)
    return path


def test_network_loads_the_backbone_weights_and_has_the_contract(resnet50_file):
    net = create_network("pretrained", n_classes=3, seed=0, backbone="resnet50", weights=str(resnet50_file),
                         widths=[64])
    reference = create_backbone("resnet50", weights=str(resnet50_file))
    for name, tensor in reference.state_dict().items():
        torch.testing.assert_close(net.backbone.state_dict()[name], tensor)
    net.eval()
    x = torch.from_numpy(waveforms(2)[0])
    with torch.no_grad():
        emb = net.forward_features(x)
        assert emb.shape == (2, 64) and net.embedding_dim == 64
        torch.testing.assert_close(net(x), net.head(emb))
        again = create_network("pretrained", n_classes=3, seed=0, backbone="resnet50", weights=str(resnet50_file),
                               widths=[64]).eval()
        torch.testing.assert_close(again(x), net(x), rtol=0, atol=0)  # seeded head
        with pytest.warns(UserWarning, match="receptive field"):
            assert net(x[:, :100]).shape == (2, 3)  # a too-short clip is padded, not a crash


def test_bad_parameters_name_the_key():
    with pytest.raises(ConfigError, match="backbone"):
        create_network("pretrained", n_classes=2, backbone="alexnet", weights="random")
    with pytest.raises(ConfigError, match="widths"):
        create_network("pretrained", n_classes=2, backbone="resnet50", weights="random", widths=[0])
    with pytest.raises(ConfigError, match="earmark weights fetch"):  # official weights not in this cache
        create_network("pretrained", n_classes=2, backbone="resnet50", weights="resnet50")


def test_backbone_lr_makes_a_second_parameter_group():
    net = create_network("pretrained", n_classes=2, seed=0, backbone="resnet50", weights="random")
    one = _parameter_groups(net, TrainerOptions(lr=1e-3))
    assert len(one) == 1 and len(one[0]["params"]) == len(list(net.parameters()))
    head, body = _parameter_groups(net, TrainerOptions(lr=1e-3, backbone_lr=1e-5))
    assert (head["lr"], body["lr"]) == (1e-3, 1e-5)
    assert len(body["params"]) == len(list(net.backbone.parameters()))
    assert len(head["params"]) == len(list(net.head.parameters())) + len(list(net.mlp.parameters()))
    other = create_network("cnn_small", n_classes=2, seed=0)  # no backbone: backbone_lr changes nothing
    assert len(_parameter_groups(other, TrainerOptions(backbone_lr=1e-5))) == 1
    with pytest.raises(ConfigError, match="train.backbone_lr"):
        TrainerOptions(backbone_lr=0)


@pytest.mark.slow
def test_fine_tuning_moves_the_backbone_at_its_own_rate_and_the_run_reloads_without_the_file(tmp_path, resnet50_file):
    X, y = waveforms(8)
    start = create_backbone("resnet50", weights=str(resnet50_file)).state_dict()
    trainer = {"epochs": 1, "batch_size": 4, "lr": 1e-3, "backbone_lr": 1e-9, "schedule": None, "device": "cpu"}
    est = NetClassifier("pretrained", {"backbone": "resnet50", "weights": str(resnet50_file)}, trainer=trainer,
                        seed=0).fit(X, y)
    tuned = est.model_.backbone.state_dict()
    conv = "conv1.weight"
    step = (tuned[conv] - start[conv]).abs().max().item()
    assert 0 < step < 1e-6  # Adam moves each weight by about lr per step: 2 steps at 1e-9
    head_step = (est.model_.head[1].weight - create_network(
        "pretrained", n_classes=2, seed=0, backbone="resnet50", weights=str(resnet50_file)).head[1].weight).abs().max()
    assert head_step > 1e-4  # the head learnt at lr
    assert not hasattr(est.model_, "mean")  # raw waveforms in: no input standardisation wrapper

    save_net(tmp_path / "net", est)
    resnet50_file.rename(tmp_path / "moved.pth")  # the run carries its own weights
    try:
        loaded = load_net(tmp_path / "net")
    finally:
        (tmp_path / "moved.pth").rename(resnet50_file)
    np.testing.assert_allclose(loaded.predict_proba(X), est.predict_proba(X), atol=1e-5)


@pytest.mark.slow
def test_frozen_backbone_stays_fixed():
    X, y = waveforms(8)
    trainer = {"epochs": 1, "batch_size": 4, "lr": 1e-2, "schedule": None, "device": "cpu"}
    est = NetClassifier("pretrained", {"backbone": "resnet50", "weights": "random", "freeze": True}, trainer=trainer,
                        seed=0).fit(X, y)
    fresh = create_network("pretrained", n_classes=2, seed=0, backbone="resnet50", weights="random", freeze=True)
    for name, tensor in fresh.backbone.state_dict().items():  # BatchNorm running statistics included
        torch.testing.assert_close(est.model_.backbone.state_dict()[name], tensor)
