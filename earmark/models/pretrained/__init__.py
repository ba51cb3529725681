"""Pretrained backbones: waveforms in, one embedding vector per clip out.

>>> net = create_backbone("cnn14", weights="cnn14")          # PANNs CNN14, AudioSet weights from the cache
>>> net.embed(torch.zeros(2, 32000)).shape                    # 1 s at 32 kHz
torch.Size([2, 2048])
>>> create_backbone("vgg16", cut="fc1", weights="random").embedding_dim
4096
>>> BACKBONES.names()
['cnn14', 'cnn14_16k', 'ge2e', 'resnet50', 'vgg16']

Backbones (:data:`BACKBONES`, each a :class:`~earmark.models.pretrained.base.BackboneSpec`)
-------------------------------------------------------------------------------------------
========== ======= ======================================== ====================================
name       rate    front end                                cuts (first = default) -> dim
========== ======= ======================================== ====================================
cnn14      32 kHz  its own log-mel 64 (1024 / 320, 50-14k)  ``fc1`` -> 2048
cnn14_16k  16 kHz  its own log-mel 64 (512 / 160, 50-8k)    ``fc1`` -> 2048
vgg16      22.05k  224x224 log-mel image (FMA study)        ``fc2`` 4096, ``fc1`` 4096, ``block5_pool`` 512
resnet50   22.05k  224x224 log-mel image (FMA study)        ``avg_pool`` 2048, ``layer3`` 1024
ge2e       16 kHz  its own mel 40 (400 / 160), 1.6 s parts  ``embedding`` -> 256 (speaker encoder)
========== ======= ======================================== ====================================

Parameter names are those of the official checkpoints (PANNs' ``Cnn14``, torchvision's ``vgg16`` and
``resnet50``, Resemblyzer's ``VoiceEncoder``), so the official files load with strict key matching.

Contract of a backbone (an ``nn.Module``, returned in eval mode)
----------------------------------------------------------------
- ``sample_rate`` (int): the rate its input must have;
- ``embedding_dim`` (int): the size of one embedding;
- ``min_samples`` (int): its receptive field; a shorter clip is zero-padded at the end to this
  length with a ``UserWarning`` naming both lengths, never an error;
- ``embed(waveform) -> Tensor``: ``(batch, n_samples)`` float32 at ``sample_rate`` ->
  ``(batch, embedding_dim)`` float32, without gradients (any ``n_samples`` >= 1);
- ``arch``, ``cut``, ``weights_source`` (``"random"`` or the loaded file) and ``pretrained``.

Weights (:mod:`~earmark.models.pretrained.weights`): ``weights=None`` / ``"random"`` (random
initialisation, seeded), a known name (``"cnn14"``, ``"cnn14_16k"``, ``"vgg16"``, ``"resnet50"``,
``"ge2e"``: looked up in the cache, see ``earmark weights fetch``) or the path of a ``.pth`` / ``.safetensors``
file, loaded weights-only.
"""

from __future__ import annotations

import os

import torch

from earmark.errors import ConfigError
from earmark.models.pretrained.base import BACKBONES, Backbone, BackboneSpec
from earmark.models.pretrained.weights import (
    KNOWN_WEIGHTS,
    RANDOM,
    WeightsFile,
    cached_path,
    fetch_weights,
    file_identity,
    load_checkpoint,
    load_strict,
    resolve_weights,
    weights_dir,
)

__all__ = [
    "BACKBONES",
    "KNOWN_WEIGHTS",
    "RANDOM",
    "Backbone",
    "BackboneSpec",
    "WeightsFile",
    "cached_path",
    "create_backbone",
    "fetch_weights",
    "file_identity",
    "load_checkpoint",
    "load_strict",
    "resolve_weights",
    "weights_dir",
]


def create_backbone(name: str, *, weights: str | os.PathLike | None = None, cut: str | None = None,
                    cache: str | os.PathLike | None = None, seed: int = 0) -> Backbone:
    """Build the backbone ``name``, load its weights and return it in eval mode.

    Parameters
    ----------
    name : str
        A name in :data:`BACKBONES` (``"cnn14"``, ``"cnn14_16k"``, ``"vgg16"``, ``"resnet50"``, ``"ge2e"``).
    weights : None, "random", a known name or a path
        None / ``"random"``: random initialisation (seeded by ``seed``); a known name: that file
        from the cache (never downloaded here: ``earmark weights fetch NAME``); a path: that file.
    cut : str, optional
        Layer the embedding is taken from (default: the backbone's first cut).
    cache : path, optional
        Weights cache folder (default ``$EARMARK_WEIGHTS_DIR`` or ``~/.cache/earmark/weights``).
    seed : int
        Seeds the random initialisation (a forked RNG: the global one is left as it was).

    Returns
    -------
    Backbone
        ``embed((batch, n_samples)) -> (batch, embedding_dim)``.

    Raises
    ------
    ConfigError
        Unknown backbone or cut (with the valid ones), weights not cached, another backbone's weights.
    DataError
        A weights file that cannot be read, is not weights-only, or whose keys / shapes differ.
    """
    spec = BACKBONES.get(name)
    cut = spec.default_cut if cut is None else str(cut)
    if cut not in spec.cuts:
        raise ConfigError(f"backbone {name!r}: unknown cut {cut!r}; valid: {', '.join(spec.cuts)}")
    path = resolve_weights(weights, backbone=name, cache=cache)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = spec.build(cut)
    if path is not None:
        load_strict(net, load_checkpoint(path), source=path.name)
        net.weights_source = str(path)
    else:
        net.weights_source = RANDOM
    return net.eval()


# Importing the architecture modules registers them.
from earmark.models.pretrained import cnn14, ge2e, resnet50, vgg16  # noqa: E402,F401
