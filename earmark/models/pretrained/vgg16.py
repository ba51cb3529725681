"""``vgg16``: torchvision's VGG16 (configuration "D", no batch norm) on spectrogram images.

Module and parameter names are torchvision's, so ``vgg16-397923af.pth`` (ImageNet) loads with strict
key matching::

    features.{0,2,5,7,10,12,14,17,19,21,24,26,28}.{weight,bias}   3x3 convolutions (ReLU after each;
                                                                  max pooling at 4, 9, 16, 23, 30)
    classifier.0.*   Linear(25088, 4096)   ("fc1" in Keras)
    classifier.3.*   Linear(4096, 4096)    ("fc2")
    classifier.6.*   Linear(4096, 1000)    ("predictions")

The input is a waveform at 22.05 kHz rendered by :class:`~earmark.models.pretrained.image_input.SpectrogramImage`
(224 x 224, 3 channels, ImageNet normalisation). Cut layers, with the Keras names the FMA study used:

- ``fc2`` (default): ReLU output of ``classifier.3``, 4096-d;
- ``fc1``: ReLU output of ``classifier.0``, 4096-d;
- ``block5_pool``: the last max pooling (``features.30``, 512 x 7 x 7), global-average-pooled to
  512-d (flattening would give 25,088 values per clip; averaging keeps what each of the 512 channels
  found, at 1/49 of the storage and PCA cost).
"""

from __future__ import annotations

import torch
from torch import nn

from earmark.models.pretrained.base import BACKBONES, Backbone, BackboneSpec
from earmark.models.pretrained.image_input import IMAGE_SR, SpectrogramImage

__all__ = ["VGG16", "VGG16_CUTS"]

# torchvision's cfgs["D"]: channels of each 3x3 convolution, "M" a 2x2 max pooling.
_CFG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
VGG16_CUTS = ("fc2", "fc1", "block5_pool")


def _make_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for v in _CFG_D:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_channels, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = int(v)
    return nn.Sequential(*layers)


class VGG16(Backbone):
    """VGG16 with torchvision's names, embedding a waveform through its spectrogram image.

    Parameters
    ----------
    cut : {"fc2", "fc1", "block5_pool"}
        Layer the embedding is taken from (see the module docstring).
    """

    def __init__(self, cut: str = "fc2"):
        super().__init__()
        self.arch, self.cut = "vgg16", cut
        self.sample_rate = IMAGE_SR
        self.embedding_dim = 512 if cut == "block5_pool" else 4096
        self.min_samples = 2048  # one analysis frame of the spectrogram
        self.image = SpectrogramImage()
        self.features = _make_features()
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(0.5),
            nn.Linear(4096, 1000),
        )
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_image(self, img: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, H, W)`` normalised images -> ``(batch, embedding_dim)`` at :attr:`cut`."""
        x = self.features(img)
        if self.cut == "block5_pool":
            return x.mean(dim=(2, 3))
        x = torch.flatten(self.avgpool(x), 1)
        return self.classifier[:2](x) if self.cut == "fc1" else self.classifier[:5](x)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """ImageNet logits ``(batch, 1000)`` of ``(batch, 3, H, W)`` images (as torchvision's VGG16)."""
        x = torch.flatten(self.avgpool(self.features(img)), 1)
        return self.classifier(x)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_image(self.image(x))


BACKBONES.register("vgg16", BackboneSpec(
    "vgg16", VGG16, VGG16_CUTS, IMAGE_SR, "vgg16",
    "ImageNet VGG16 (torchvision) on 224x224 log-mel images; fc2/fc1 4096, block5_pool 512 (GAP)"))
