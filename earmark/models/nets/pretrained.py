"""``pretrained``: a pretrained backbone (PANNs CNN14, ImageNet VGG16 / ResNet50) fine-tuned with a new head.

The whole backbone of :mod:`earmark.models.pretrained` (its own front end included) becomes the body of
a classifier: waveform ``(batch, n_samples)`` at the backbone's sample rate -> embedding at the chosen
cut -> [dense(w)-ReLU-dropout] for each of ``widths`` -> dropout -> dense(n_classes). Train it on the
``waveform`` feature at the backbone's rate (``features: {name: waveform, params: {sr: 32000}}``), with
``model.scaler: null`` (the backbone expects raw waveforms) and, usually, a smaller learning rate for
the backbone than for the head (``train.backbone_lr``)::

    model: {name: pretrained, scaler: null, params: {backbone: cnn14, weights: cnn14, widths: [256]}}
    train: {lr: 1.0e-3, backbone_lr: 1.0e-5}

``freeze: true`` keeps the backbone's weights fixed (only the head learns; BatchNorm statistics too).
The parameters of the backbone live under ``backbone.``, the names
:class:`~earmark.train.trainer.Trainer` looks for when it gives them ``backbone_lr``.
"""

from __future__ import annotations

import itertools
import os
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from earmark.errors import ConfigError, DataError
from earmark.models.nets import NETWORKS, check_positive_ints, check_probability


@NETWORKS.register("pretrained")
class Pretrained(nn.Module):
    """A backbone from :func:`earmark.models.pretrained.create_backbone` with a classification head.

    Parameters
    ----------
    n_classes : int
    in_channels : int
        Must be 1 (a mono waveform).
    backbone : str
        ``"cnn14"``, ``"cnn14_16k"``, ``"ge2e"``, ``"vgg16"`` or ``"resnet50"``.
    weights : str or path, optional
        Initial backbone weights: a known name (read from the weights cache, see ``earmark weights
        fetch``), a file, or ``"random"``; default: the backbone's official weights. A saved run
        carries its own fine-tuned weights, so loading it does not need this file.
    cut : str, optional
        The layer the embedding is taken from (default: the backbone's first cut).
    widths : ints, default ()
        Hidden layers of the head between the embedding and the classifier (the artist20 study's
        MLP: ``[1024, 512, 256]``).
    dropout : float, default 0.2
        Before the classifier and after every hidden layer of the head.
    freeze : bool, default False
        Keep the backbone fixed: no gradients, and its BatchNorm / dropout layers stay in eval mode.

    Input ``(batch, n_samples)`` (shorter clips than the backbone's receptive field are zero-padded,
    with a warning); output ``(batch, n_classes)``.
    """

    arch = "pretrained"
    size_dims = 0  # any length works (short clips are padded)
    standardize_inputs = False  # raw waveforms in: the backbone has its own front end

    def __init__(self, n_classes: int, in_channels: int = 1, backbone: str = "cnn14",
                 weights: str | os.PathLike | None = None, cut: str | None = None, widths: tuple[int, ...] = (),
                 dropout: float = 0.2, freeze: bool = False):
        super().__init__()
        from earmark.models.pretrained import BACKBONES, create_backbone

        if in_channels != 1:
            raise ConfigError(f"network {self.arch!r}: in_channels must be 1 (a mono waveform), got {in_channels!r}")
        if not isinstance(freeze, bool):
            raise ConfigError(f"network {self.arch!r}: freeze must be true or false, got {freeze!r}")
        widths = () if widths in ((), [], None) else check_positive_ints(widths, self.arch, "widths")
        dropout = check_probability(dropout, self.arch)
        try:
            spec = BACKBONES.get(backbone)
        except ConfigError as exc:
            raise ConfigError(f"network {self.arch!r}: backbone: {exc}") from None
        self.backbone = create_backbone(backbone, weights=spec.weights if weights is None else weights, cut=cut,
                                        seed=int(torch.randint(0, 2**31 - 1, (1,)).item()))
        self.freeze = freeze
        if freeze:
            self.backbone.requires_grad_(False)
        self.sample_rate = self.backbone.sample_rate
        layers: list[nn.Module] = []
        for w_in, w_out in itertools.pairwise((self.backbone.embedding_dim, *widths)):
            layers += [nn.Linear(w_in, w_out), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        self.mlp = nn.Sequential(*layers[:-1]) if layers else nn.Identity()  # the last dropout is the head's
        self.embedding_dim = widths[-1] if widths else self.backbone.embedding_dim
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.embedding_dim, n_classes))

    def train(self, mode: bool = True) -> "Pretrained":
        super().train(mode)
        if self.freeze:
            self.backbone.eval()
        return self

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, n_samples)`` -> ``(batch, embedding_dim)``."""
        if x.dim() != 2:
            raise DataError(f"{self.arch}: expected a waveform batch (batch, n_samples) at "
                            f"{self.sample_rate} Hz; got shape {tuple(x.shape)}")
        need = self.backbone.min_samples
        if x.shape[-1] < need:
            warnings.warn(f"{self.arch}: clips of {x.shape[-1]} samples are shorter than {self.backbone.arch}'s "
                          f"receptive field of {need}; zero-padded", UserWarning, stacklevel=2)
            x = F.pad(x, (0, need - x.shape[-1]))
        return self.mlp(self.backbone._embed(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))
