"""``resnet18``, ``resnet34``, ``resnet50``: torchvision's ResNet (v1.5), written out here.

Module and parameter names are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer1.0.downsample.0``, ``fc``, ...), so its ImageNet ``state_dict`` loads with ``strict=True``
into a 3-channel, 1000-class network, and :func:`load_imagenet_weights` loads it into any other.
Differences from torchvision, none of which adds a ``state_dict`` entry:

- ``in_channels`` (default 1: the singer-gender study fed a one-channel fbank to ResNet34);
- ``dropout`` (default 0.2) before ``fc``, a separate parameter-free module applied in ``forward``;
- ``forward_features`` (the pooled ``512 * expansion`` embedding) and ``head`` (dropout + ``fc``).

Inputs ``(batch, time, bins)`` or ``(batch, in_channels, time, bins)`` of any size >= 1 x 1 (every
convolution and pooling is padded).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from earmark.errors import DataError
from earmark.models.nets import NETWORKS, as_image, check_probability


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1-projection ``downsample``) shortcut."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, as torchvision's v1.5), 1x1 expand by 4."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def make_stage(block: type[BasicBlock | Bottleneck], inplanes: int, planes: int, blocks: int,
               stride: int = 1) -> tuple[nn.Sequential, int]:
    """``blocks`` residual blocks, the first with ``stride``; returns (stage, output channels)."""
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(conv1x1(inplanes, planes * block.expansion, stride),
                                   nn.BatchNorm2d(planes * block.expansion))
    layers = [block(inplanes, planes, stride, downsample)]
    inplanes = planes * block.expansion
    layers += [block(inplanes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers), inplanes


def init_resnet_weights(net: nn.Module) -> None:
    """torchvision's initialisation: Kaiming-normal (fan_out) convolutions, BN weight 1 and bias 0."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


class ResNet(nn.Module):
    """torchvision's ResNet with a configurable input-channel count and dropout before ``fc``.

    Parameters
    ----------
    block : BasicBlock or Bottleneck
    layers : 4 ints
        Blocks per stage ((2, 2, 2, 2) for ResNet18, (3, 4, 6, 3) for ResNet34 and ResNet50).
    n_classes : int
    in_channels : int
    dropout : float
        Applied to the pooled embedding before ``fc``.
    arch : str
        Name used in messages.

    Input ``(batch, time, bins)`` or ``(batch, in_channels, time, bins)``; output ``(batch, n_classes)``.
    """

    size_dims = 2
    size_names = ("time", "bins")

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: tuple[int, int, int, int],
                 n_classes: int, in_channels: int = 1, dropout: float = 0.2, arch: str = "resnet"):
        super().__init__()
        self.arch = arch
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        self.layer1, inplanes = make_stage(block, inplanes, 64, layers[0])
        self.layer2, inplanes = make_stage(block, inplanes, 128, layers[1], stride=2)
        self.layer3, inplanes = make_stage(block, inplanes, 256, layers[2], stride=2)
        self.layer4, inplanes = make_stage(block, inplanes, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(check_probability(dropout, arch))
        self.fc = nn.Linear(inplanes, n_classes)
        self.embedding_dim = inplanes
        init_resnet_weights(self)

    @property
    def head(self) -> nn.Module:
        """Dropout + ``fc`` (built on access from the registered modules, so names stay torchvision's)."""
        return nn.Sequential(self.dropout, self.fc)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, [in_channels,] time, bins)`` -> ``(batch, 512 * expansion)``."""
        x = as_image(x, self.in_channels, self.arch)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.forward_features(x)))


@NETWORKS.register("resnet18")
def resnet18(n_classes: int, in_channels: int = 1, dropout: float = 0.2) -> ResNet:
    """ResNet18 (11,689,512 parameters with 3 channels and 1000 classes)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), n_classes, in_channels, dropout, arch="resnet18")


@NETWORKS.register("resnet34")
def resnet34(n_classes: int, in_channels: int = 1, dropout: float = 0.2) -> ResNet:
    """ResNet34 (21,797,672 parameters with 3 channels and 1000 classes); the singer-gender study's net."""
    return ResNet(BasicBlock, (3, 4, 6, 3), n_classes, in_channels, dropout, arch="resnet34")


@NETWORKS.register("resnet50")
def resnet50(n_classes: int, in_channels: int = 1, dropout: float = 0.2) -> ResNet:
    """ResNet50 (25,557,032 parameters with 3 channels and 1000 classes)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), n_classes, in_channels, dropout, arch="resnet50")


def _adapt_input_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """RGB kernels ``(out, 3, k, k)`` -> ``(out, in_channels, k, k)``.

    One channel: the sum over RGB, so a grey input gives what the RGB net gives on that grey image
    copied to three channels. Other counts: RGB repeated cyclically, scaled by ``3 / in_channels``
    (timm's ``adapt_input_conv``).
    """
    if in_channels == weight.shape[1]:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = -(-in_channels // weight.shape[1])
    return weight.repeat(1, reps, 1, 1)[:, :in_channels] * (weight.shape[1] / in_channels)


def load_imagenet_weights(net: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Load a torchvision ImageNet ResNet ``state_dict`` into ``net`` (any ``in_channels``/``n_classes``).

    - ``conv1.weight`` ``(64, 3, 7, 7)`` is adapted to ``net``'s input channels: summed over RGB for
      one channel (see :func:`_adapt_input_conv`);
    - ``fc.weight`` / ``fc.bias`` are skipped (``net`` keeps its own initialisation) when their shapes
      differ (another ``n_classes``) or when the state_dict has none (a headless backbone);
    - missing ``*.num_batches_tracked`` entries (old torchvision files) keep ``net``'s values;
    - everything else must match exactly.

    Parameters
    ----------
    net : ResNet
        The destination (``create_network("resnet50", n_classes=8)``).
    state_dict : mapping of str to tensor
        E.g. ``torch.load("resnet50-11ad3fa6.pth", weights_only=True)``.

    Returns
    -------
    list of str
        The keys of ``net`` that were not loaded (kept as initialised).

    Raises
    ------
    DataError
        Missing or unexpected keys, or shapes that differ; the message names the first ones.
    """
    arch = getattr(net, "arch", type(net).__name__)
    own = net.state_dict()
    src = {k: torch.as_tensor(v) for k, v in state_dict.items()}
    if "conv1.weight" in src and "conv1.weight" in own:
        w, want = src["conv1.weight"], own["conv1.weight"]
        if w.dim() == 4 and w.shape[0] == want.shape[0] and w.shape[2:] == want.shape[2:]:
            src["conv1.weight"] = _adapt_input_conv(w.to(want.dtype), want.shape[1])

    kept: list[str] = []
    missing, bad_shapes = [], []
    for key, value in own.items():
        optional = key.startswith("fc.") or key.endswith("num_batches_tracked")
        if key not in src:
            (kept if optional else missing).append(key)
        elif src[key].shape != value.shape:
            if key.startswith("fc."):
                kept.append(key)
            else:
                bad_shapes.append(f"{key}: expected {tuple(value.shape)}, got {tuple(src[key].shape)}")
    unexpected = [k for k in src if k not in own]
    if missing or unexpected or bad_shapes:
        def first(items: list[str]) -> str:
            more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
            return ", ".join(items[:5]) + more

        parts = [f"{label} {first(items)}" for label, items in
                 (("missing keys:", missing), ("unexpected keys:", unexpected), ("shape mismatches:", bad_shapes))
                 if items]
        raise DataError(f"{arch}: ImageNet state_dict does not match; " + "; ".join(parts))
    merged = {k: (own[k] if k in kept else src[k]) for k in own}
    net.load_state_dict(merged, strict=True)
    return kept
