"""``resnet50``: the project's torchvision-named ResNet50 (:mod:`earmark.models.nets.resnet`) as a backbone.

Three input channels and the 1000-class ``fc``, so its parameter names and shapes are torchvision's
and ``resnet50-0676ba61.pth`` (``IMAGENET1K_V1``) loads with strict key matching. The input is a
waveform at 22.05 kHz rendered by :class:`~earmark.models.pretrained.image_input.SpectrogramImage`
(224 x 224, ImageNet normalisation). Cut layers (Keras' names where the FMA study used them):

- ``avg_pool`` (default): the global average pooling after ``layer4``, 2048-d;
- ``layer3``: the output of the third stage (1024 x 14 x 14), global-average-pooled, 1024-d.
"""

from __future__ import annotations

import torch

from earmark.models.nets.resnet import Bottleneck, ResNet
from earmark.models.pretrained.base import BACKBONES, Backbone, BackboneSpec
from earmark.models.pretrained.image_input import IMAGE_SR, SpectrogramImage

__all__ = ["ResNet50", "RESNET50_CUTS"]

RESNET50_CUTS = ("avg_pool", "layer3")


class ResNet50(ResNet, Backbone):
    """torchvision's ResNet50 (v1.5, 3 channels, 1000 classes) embedding a waveform through its spectrogram image.

    Parameters
    ----------
    cut : {"avg_pool", "layer3"}
        Layer the embedding is taken from.
    """

    def __init__(self, cut: str = "avg_pool"):
        super().__init__(Bottleneck, (3, 4, 6, 3), n_classes=1000, in_channels=3, dropout=0.0, arch="resnet50")
        self.cut = cut
        self.sample_rate = IMAGE_SR
        self.embedding_dim = 1024 if cut == "layer3" else 2048
        self.min_samples = 2048  # one analysis frame of the spectrogram
        self.image = SpectrogramImage()

    def forward_image(self, img: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, H, W)`` normalised images -> ``(batch, embedding_dim)`` at :attr:`cut`."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(img))))
        x = self.layer3(self.layer2(self.layer1(x)))
        if self.cut == "layer3":
            return x.mean(dim=(2, 3))
        return torch.flatten(self.avgpool(self.layer4(x)), 1)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_image(self.image(x))


BACKBONES.register("resnet50", BackboneSpec(
    "resnet50", ResNet50, RESNET50_CUTS, IMAGE_SR, "resnet50",
    "ImageNet ResNet50 (torchvision V1) on 224x224 log-mel images; avg_pool 2048, layer3 1024 (GAP)"))
