"""Waveforms as the images the ImageNet backbones see (the FMA study's spectrogram pictures).

The FMA study exported each clip's log-mel spectrogram (128 bands, 22.05 kHz, ``n_fft`` 2048, hop
512, dB relative to the clip's peak, 80 dB shown) as an 8-bit grey PNG and fed it to ImageNet
VGG16 / ResNet50. :class:`SpectrogramImage` does the same in memory:

1. :func:`earmark.features.logmel` (``ref="max"``, ``top_db=80``);
2. :func:`earmark.features.image.to_image`: clipped to the top 80 dB, mapped to 0-255 and rounded
   (the PNG), low frequencies at the bottom; divided by 255 -> ``[0, 1]``;
3. resized to 224 x 224, bilinear with antialiasing (as PIL's bilinear resize, which averages when
   it shrinks; without it, a 29.7 s clip's 1280 frames would be sampled, not summarised);
4. replicated to 3 channels and normalised with the ImageNet mean (0.485, 0.456, 0.406) and
   standard deviation (0.229, 0.224, 0.225).

The module has no parameters and no persistent buffers: it adds nothing to a ``state_dict``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from earmark.features.image import to_image
from earmark.features.spectral import logmel

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_SR", "SpectrogramImage"]

IMAGE_SR = 22050
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SpectrogramImage(nn.Module):
    """``(batch, n_samples)`` waveforms at 22.05 kHz -> ``(batch, 3, size, size)`` ImageNet-normalised images.

    Parameters
    ----------
    size : int
        Side of the square image (224 for VGG16 / ResNet50).
    n_fft, hop_length, n_mels : int
        The log-mel spectrogram (the FMA study's 2048 / 512 / 128).
    top_db : float
        Dynamic range mapped to ``[0, 1]`` (80 dB).
    """

    def __init__(self, size: int = 224, n_fft: int = 2048, hop_length: int = 512, n_mels: int = 128,
                 top_db: float = 80.0):
        super().__init__()
        self.size, self.n_fft, self.hop_length, self.n_mels, self.top_db = size, n_fft, hop_length, n_mels, top_db
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def grey(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, n_samples)`` -> ``(batch, n_mels, n_frames)`` in ``[0, 1]``: the 8-bit images / 255.

        Row 0 is the highest band (as the PNG files), column 0 the first frame.
        """
        S = logmel(x.float().cpu(), sr=IMAGE_SR, n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels,
                   top_db=self.top_db)
        images = [torch.from_numpy(to_image(s, top_db=self.top_db)) for s in S]
        return torch.stack(images).to(x.device, torch.float32) / 255.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        img = self.grey(x)[:, None]
        img = F.interpolate(img, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return (img.expand(-1, 3, -1, -1) - self.mean) / self.std
