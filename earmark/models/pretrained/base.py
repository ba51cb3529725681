"""The backbone registry and the base class every pretrained backbone derives from.

A backbone turns waveforms into one embedding vector per clip. The architecture modules of this
package (:mod:`~earmark.models.pretrained.cnn14`, :mod:`~earmark.models.pretrained.vgg16`,
:mod:`~earmark.models.pretrained.resnet50`, :mod:`~earmark.models.pretrained.ge2e`) register a :class:`BackboneSpec` in :data:`BACKBONES`;
:func:`earmark.models.pretrained.create_backbone` builds one and loads its weights.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from earmark.errors import DataError
from earmark.registry import Registry

__all__ = ["BACKBONES", "Backbone", "BackboneSpec"]


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: how to build it and what it offers.

    Attributes
    ----------
    name : str
        Registry name (``"cnn14"``).
    build : callable
        ``build(cut) -> Backbone`` with randomly initialised weights.
    cuts : tuple of str
        Layers the embedding can be taken from; ``cuts[0]`` is the default.
    sample_rate : int
        Rate the backbone's waveform input must have.
    weights : str
        The name in :data:`~earmark.models.pretrained.weights.KNOWN_WEIGHTS` of its official weights.
    description : str
        One line for listings.
    """

    name: str
    build: Callable[[str], "Backbone"]
    cuts: tuple[str, ...]
    sample_rate: int
    weights: str
    description: str = ""

    @property
    def default_cut(self) -> str:
        return self.cuts[0]


BACKBONES: Registry[BackboneSpec] = Registry("backbone")


class Backbone(nn.Module):
    """Base of every backbone: waveforms ``(batch, n_samples)`` -> embeddings ``(batch, embedding_dim)``.

    Subclasses set :attr:`sample_rate`, :attr:`embedding_dim`, :attr:`min_samples`, :attr:`arch` and
    :attr:`cut`, and implement :meth:`_embed` (a forward from a valid, long-enough batch);
    :meth:`embed` validates, pads and runs it without gradients.

    Attributes
    ----------
    arch : str
        The registered name.
    cut : str
        The layer the embedding is taken from.
    sample_rate : int
        Rate the input waveform must have (Hz).
    embedding_dim : int
        Size of one embedding.
    min_samples : int
        Shortest input the network can take (its receptive field); shorter clips are zero-padded at
        the end to this length, with a warning.
    weights_source : str
        ``"random"`` (randomly initialised, seeded) or the path of the loaded weights file.
    """

    arch: str = "backbone"
    cut: str = ""
    sample_rate: int = 0
    embedding_dim: int = 0
    min_samples: int = 1
    weights_source: str = "random"

    @property
    def pretrained(self) -> bool:
        """Whether weights were loaded from a file (False: random initialisation)."""
        return self.weights_source != "random"

    def _embed(self, x: torch.Tensor, **options: Any) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def embed(self, waveform: Any, **options: Any) -> torch.Tensor:
        """Embeddings of a batch of waveforms, in eval mode and without gradients.

        Parameters
        ----------
        waveform : torch.Tensor or np.ndarray, shape (batch, n_samples) or (n_samples,)
            Mono float audio at :attr:`sample_rate`. Clips shorter than :attr:`min_samples` are
            zero-padded at the end (with a ``UserWarning`` naming both lengths).
        **options
            The backbone's own embedding options, passed to :meth:`_embed` (``ge2e``: ``partial``,
            ``rate``, ``weighting``); the others take none.

        Returns
        -------
        torch.Tensor, shape (batch, embedding_dim) or (embedding_dim,)
            float32, on the backbone's device; 1-D in -> 1-D out.

        Raises
        ------
        DataError
            Not 1-D/2-D, empty, or holding NaN/Inf.
        """
        x = waveform if isinstance(waveform, torch.Tensor) else torch.from_numpy(np.array(waveform, dtype=np.float32))
        shape = tuple(x.shape)
        single = x.dim() == 1
        if single:
            x = x.unsqueeze(0)
        if x.dim() != 2 or x.shape[-1] == 0:
            raise DataError(f"{self.arch}: expected a waveform of shape (batch, n_samples) with n_samples >= 1, "
                            f"got shape {shape}")
        if not torch.isfinite(x).all():
            raise DataError(f"{self.arch}: the waveform holds NaN or Inf")
        device = next(iter(self.parameters())).device
        x = x.to(device, torch.float32)
        n = x.shape[-1]
        if n < self.min_samples:
            warnings.warn(f"{self.arch}: clip of {n} samples ({n / self.sample_rate:.3f} s at {self.sample_rate} Hz) is "
                          f"shorter than the network's receptive field of {self.min_samples} samples; zero-padded to "
                          f"{self.min_samples}", UserWarning, stacklevel=2)
            x = torch.nn.functional.pad(x, (0, self.min_samples - n))
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                out = self._embed(x, **options).float()
        finally:
            self.train(was_training)
        return out[0] if single else out

    def extra_repr(self) -> str:
        return f"cut={self.cut!r}, sample_rate={self.sample_rate}, embedding_dim={self.embedding_dim}, weights={self.weights_source!r}"
