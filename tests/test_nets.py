"""Contract tests over every registered network (earmark.models.nets), plus torchvision compatibility."""

from __future__ import annotations

import pytest
import torch

from earmark.errors import ConfigError, DataError
from earmark.models.nets import (
    NETWORKS,
    check_input,
    count_parameters,
    create_network,
    load_imagenet_weights,
)

N_CLASSES = 5
# Two example shapes (no batch dim) per network, small to keep the tests fast.
SIZES = {
    "cnn_small": [(40, 24), (27, 16)],
    "cnn4": [(40, 24), (33, 17)],
    "cnn1d": [(2048,), (3001,)],
    "linear": [(20, 8), (13, 6)],
    "ffnn": [(518,), (20,)],
    "resnet18": [(40, 24), (17, 9)],
    "resnet34": [(40, 24), (17, 9)],
    "resnet50": [(40, 24), (17, 9)],
    "resnet_compact": [(40, 24), (17, 9)],
}
LAZY = {"linear", "ffnn"}  # sized by their first forward: one network per input size
IMAGE_NETS = [n for n in SIZES if n not in ("cnn1d", "linear", "ffnn")]


def test_every_registered_network_is_covered():
    # `pretrained` needs a backbone's weights file by default: tests/test_finetune.py covers it
    assert set(NETWORKS.names()) - {"pretrained"} == set(SIZES)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_forward_shapes_on_two_sizes(name):
    net = create_network(name, n_classes=N_CLASSES, seed=0).eval()
    for shape in SIZES[name]:
        if name in LAZY:
            net = create_network(name, n_classes=N_CLASSES, seed=0).eval()
        x = torch.randn(2, *shape)
        with torch.no_grad():
            out, emb = net(x), net.forward_features(x)
        assert out.shape == (2, N_CLASSES)
        assert emb.shape == (2, net.embedding_dim)
        assert torch.isfinite(out).all()
        with torch.no_grad():
            torch.testing.assert_close(net.head(emb), out)
            if name in IMAGE_NETS or name == "cnn1d":  # explicit channel dim gives the same
                torch.testing.assert_close(net(x.unsqueeze(1)), out)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_gradients_reach_every_parameter(name):
    net = create_network(name, n_classes=N_CLASSES, seed=0).train()
    x = torch.randn(2, *SIZES[name][-1])
    loss = torch.nn.functional.cross_entropy(net(x), torch.tensor([0, 3]))
    loss.backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", sorted(SIZES))
def test_seeded_construction_is_deterministic_and_leaves_global_rng(name):
    x = torch.randn(2, *SIZES[name][0])
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    a = create_network(name, n_classes=N_CLASSES, seed=7).eval()
    torch.testing.assert_close(torch.rand(3), expected_draw)
    b = create_network(name, n_classes=N_CLASSES, seed=7).eval()
    c = create_network(name, n_classes=N_CLASSES, seed=8).eval()
    with torch.no_grad():
        out_a, out_b, out_c = a(x), b(x), c(x)
        torch.testing.assert_close(a(x), out_a)  # eval mode: no dropout, no BN update
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=0)
    assert not torch.allclose(out_a, out_c)


# ---------------------------------------------------------------- parameter counts


def test_parameter_counts_of_the_small_nets():
    conv = lambda i, o, k: i * o * k * k + o
    dense = lambda i, o: i * o + o
    assert count_parameters(create_network("cnn_small", n_classes=11)) == (
        conv(1, 16, 3) + conv(16, 32, 3) + conv(32, 64, 3) + dense(64 * 8 * 8, 128) + dense(128, 11))
    bn = lambda c: 2 * c
    assert count_parameters(create_network("cnn4", n_classes=8)) == (
        9 * (32 + 32 * 64 + 64 * 128 + 128 * 256) + bn(32 + 64 + 128 + 256) + dense(256, 8))
    assert count_parameters(create_network("cnn4", n_classes=8, filters=16, kernel_size=5)) == (
        25 * (16 + 16 * 32 + 32 * 64 + 64 * 128) + bn(16 + 32 + 64 + 128) + dense(128, 8))
    assert count_parameters(create_network("cnn1d", n_classes=11)) == (
        64 * 16 + 9 * (16 * 32 + 32 * 64 + 64 * 128) + bn(16 + 32 + 64 + 128) + dense(128, 11))
    assert count_parameters(create_network("ffnn", n_classes=8, in_features=518)) == 399_112  # 518-512-256-8
    assert count_parameters(create_network("linear", n_classes=4, in_features=100)) == 404


def test_parameter_count_of_resnet_compact():
    n = count_parameters(create_network("resnet_compact", n_classes=20))
    # stem 3,264 + stages 147,968 + 525,568 + 2,099,712 + dense 131,328 + classifier 5,140
    assert n == 2_912_980
    assert 2_500_000 < n < 3_000_000


@pytest.mark.parametrize("name,expected", [("resnet18", 11_689_512), ("resnet34", 21_797_672),
                                           ("resnet50", 25_557_032)])
def test_resnet_parameter_counts_match_torchvision(name, expected):
    with torch.device("meta"):
        net = create_network(name, n_classes=1000, in_channels=3)
    assert count_parameters(net) == expected


# ---------------------------------------------------------------- torchvision state_dict compatibility


def torchvision_resnet_shapes(bottleneck: bool, layers: tuple[int, ...], n_classes: int = 1000,
                              in_channels: int = 3) -> dict[str, tuple[int, ...]]:
    """Key -> shape of torchvision's ``resnetNN().state_dict()``, written from its definition."""
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, in_channels, 7, 7)}

    def bn(prefix: str, c: int) -> None:
        for leaf in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{leaf}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    bn("bn1", 64)
    expansion = 4 if bottleneck else 1
    inplanes = 64
    for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        for j in range(n):
            p = f"layer{i}.{j}"
            if bottleneck:
                shapes[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
                bn(f"{p}.bn1", planes)
                shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                bn(f"{p}.bn2", planes)
                shapes[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
                bn(f"{p}.bn3", planes * 4)
            else:
                shapes[f"{p}.conv1.weight"] = (planes, inplanes, 3, 3)
                bn(f"{p}.bn1", planes)
                shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                bn(f"{p}.bn2", planes)
            if j == 0 and (i > 1 or inplanes != planes * expansion):
                shapes[f"{p}.downsample.0.weight"] = (planes * expansion, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes * expansion)
            inplanes = planes * expansion
    shapes["fc.weight"] = (n_classes, inplanes)
    shapes["fc.bias"] = (n_classes,)
    return shapes


def random_state_dict(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        else:
            out[key] = torch.randn(shape, generator=g) * 0.05
    return out


@pytest.mark.parametrize("name,bottleneck,layers,n_entries,n_params", [
    ("resnet18", False, (2, 2, 2, 2), 122, 11_689_512),
    ("resnet50", True, (3, 4, 6, 3), 320, 25_557_032),
])
def test_state_dict_keys_and_shapes_are_torchvision(name, bottleneck, layers, n_entries, n_params):
    expected = torchvision_resnet_shapes(bottleneck, layers)
    assert len(expected) == n_entries
    assert sum(torch.Size(s).numel() for k, s in expected.items()
               if not k.split(".")[-1].startswith(("running", "num_batches"))) == n_params
    with torch.device("meta"):
        net = create_network(name, n_classes=1000, in_channels=3)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == expected
    # and a 1-channel 4-class net differs only in conv1 and fc
    with torch.device("meta"):
        net1 = create_network(name, n_classes=4)
    assert {k: tuple(v.shape) for k, v in net1.state_dict().items()} == torchvision_resnet_shapes(
        bottleneck, layers, n_classes=4, in_channels=1)


def test_torchvision_state_dict_loads_strictly_into_a_3_channel_1000_class_net():
    sd = random_state_dict(torchvision_resnet_shapes(False, (2, 2, 2, 2)))
    net = create_network("resnet18", n_classes=1000, in_channels=3)
    net.load_state_dict(sd, strict=True)
    assert load_imagenet_weights(net, sd) == []


def test_load_imagenet_weights_into_one_channel_net():
    sd = random_state_dict(torchvision_resnet_shapes(False, (2, 2, 2, 2)))
    net = create_network("resnet18", n_classes=4, seed=0).eval()
    fc_before = net.fc.weight.detach().clone()
    skipped = load_imagenet_weights(net, sd)
    assert skipped == ["fc.weight", "fc.bias"]
    torch.testing.assert_close(net.conv1.weight, sd["conv1.weight"].sum(dim=1, keepdim=True))
    torch.testing.assert_close(net.layer4[1].bn2.running_var,
                               sd["layer4.1.bn2.running_var"])
    torch.testing.assert_close(net.fc.weight, fc_before)
    # summing over RGB = the RGB network on the grey image copied to three channels
    rgb = create_network("resnet18", n_classes=1000, in_channels=3).eval()
    rgb.load_state_dict(sd)
    x = torch.randn(2, 33, 20)
    with torch.no_grad():
        torch.testing.assert_close(net.forward_features(x),
                                   rgb.forward_features(x.unsqueeze(1).expand(-1, 3, -1, -1)),
                                   rtol=1e-4, atol=1e-4)


def test_load_imagenet_weights_tolerates_old_files_without_num_batches_tracked():
    sd = random_state_dict(torchvision_resnet_shapes(True, (3, 4, 6, 3)))
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    net = create_network("resnet50", n_classes=1000)
    assert [k for k in load_imagenet_weights(net, sd) if not k.endswith("num_batches_tracked")] == []
    torch.testing.assert_close(net.fc.weight, sd["fc.weight"])


def test_load_imagenet_weights_names_mismatches():
    sd = random_state_dict(torchvision_resnet_shapes(False, (2, 2, 2, 2)))
    net = create_network("resnet18", n_classes=4)
    renamed = dict(sd)
    renamed["layer1.0.convX.weight"] = renamed.pop("layer1.0.conv1.weight")
    with pytest.raises(DataError, match=r"layer1\.0\.conv1\.weight.*layer1\.0\.convX\.weight"):
        load_imagenet_weights(net, renamed)
    reshaped = dict(sd)
    reshaped["layer2.0.conv1.weight"] = torch.zeros(128, 64, 5, 5)
    with pytest.raises(DataError, match=r"layer2\.0\.conv1\.weight: expected \(128, 64, 3, 3\)"):
        load_imagenet_weights(net, reshaped)
    with pytest.raises(DataError, match="resnet18"):  # a resnet50 file into a resnet18
        load_imagenet_weights(net, random_state_dict(torchvision_resnet_shapes(True, (3, 4, 6, 3))))


# ---------------------------------------------------------------- check_input and errors


def test_check_input_too_small_names_shape_and_minimum():
    net = create_network("cnn_small", n_classes=3).train()
    with pytest.raises(ConfigError, match=r"cnn_small.*\(5, 40\).*time >= 8"):
        check_input(net, (5, 40))
    assert net.training  # mode restored
    with pytest.raises(ConfigError, match=r"cnn1d.*\(500,\).*n_samples >= 1024"):
        check_input(create_network("cnn1d", n_classes=3), (500,))
    with pytest.raises(ConfigError, match=r"ffnn.*\(20,\)"):
        check_input(create_network("ffnn", n_classes=3, in_features=518), (20,))
    with pytest.raises(ConfigError, match=r"cnn4.*\(64000,\)"):
        check_input(create_network("cnn4", n_classes=3), (64000,))


@pytest.mark.parametrize("name", IMAGE_NETS)
def test_check_input_three_second_fbank_passes(name):
    assert check_input(create_network(name, n_classes=N_CLASSES), (299, 40)) == (N_CLASSES,)


def test_check_input_other_nets():
    assert check_input(create_network("cnn1d", n_classes=11), (64000,)) == (11,)
    net = create_network("linear", n_classes=3)
    assert check_input(net, (499, 129)) == (3,)  # sizes the lazy layer
    assert net.embedding_dim == 499 * 129
    assert check_input(create_network("ffnn", n_classes=8), (518,)) == (8,)


def test_unknown_names_parameters_and_bad_values():
    with pytest.raises(ConfigError, match="resnet34"):
        create_network("resnet35", n_classes=3)
    with pytest.raises(ConfigError, match="did you mean 'filters'"):
        create_network("cnn4", n_classes=3, filtrs=16)
    with pytest.raises(ConfigError, match="dropout"):
        create_network("resnet18", n_classes=3, dropout=1.5)
    with pytest.raises(ConfigError, match="n_classes"):
        create_network("cnn_small", n_classes=0)
    with pytest.raises(ConfigError, match="filters"):
        create_network("cnn4", n_classes=3, filters=(8, 16))
    with pytest.raises(DataError, match=r"resnet18.*\(2, 64000\)"):
        create_network("resnet18", n_classes=3)(torch.zeros(2, 64000))


def test_resnet_head_is_dropout_then_fc_and_keeps_names():
    net = create_network("resnet18", n_classes=3, dropout=0.5)
    assert net.head[1] is net.fc and net.head[0].p == 0.5
    assert not any(k.startswith(("head", "dropout")) for k in net.state_dict())


def test_pooling_options_for_any_size_or_exact_flatten():
    net = create_network("linear", n_classes=3, pool=(4, 4)).eval()
    for shape in [(2, 30, 8), (2, 13, 40)]:
        assert net(torch.randn(shape)).shape == (2, 3)
    exact = create_network("cnn_small", n_classes=3, pool=None, seed=0)
    assert check_input(exact, (40, 24)) == (3,)
    assert exact.dense[1].in_features == 64 * 5 * 3
