"""Embeddings of pretrained backbones as cached features (one vector per clip).

========================================  =========  ====  =======================================
feature                                   rate (Hz)  dim   backbone, cut
========================================  =========  ====  =======================================
``embedding:cnn14``                       32000      2048  PANNs CNN14, ``relu(fc1)``
``embedding:cnn14_16k``                   16000      2048  PANNs CNN14_16k, ``relu(fc1)``
``embedding:vgg16:fc2``                   22050      4096  ImageNet VGG16 on log-mel images, fc2
``embedding:vgg16:fc1``                   22050      4096  ... fc1
``embedding:vgg16:block5_pool``           22050      512   ... block5_pool, global-average-pooled
``embedding:resnet50:avg_pool``           22050      2048  ImageNet ResNet50 on log-mel images
``embedding:resnet50:layer3``             22050      1024  ... layer3, global-average-pooled
``embedding:ge2e``                        16000      256   Resemblyzer GE2E speaker encoder
========================================  =========  ====  =======================================

Every embedding takes ``weights``: the backbone's known name (default: its official weights, read from the
cache; ``earmark weights fetch NAME`` puts them there), the path of a weights file, or ``"random"``
for randomly initialised (seeded) weights — a baseline, recorded as such in the store's
``params.json``. Resolving the parameters adds ``weights_id``: ``"random (seed 0)"`` or the file's
path, size and modification time, so the store key changes whenever the weights file does and
embeddings of other weights are never reused.

``embedding:ge2e`` also takes ``partial`` (seconds per partial, default 1.6), ``rate`` (partials
per second, default 1.3) and ``weighting`` (``equal``: the partials' plain mean, or ``energy``: each
weighted by the power of its samples): Resemblyzer's defaults; ``recipes/singer_gender_ge2e_logreg.yaml``
uses 0.6 s five times a second, weighted by energy (:func:`earmark.models.pretrained.ge2e.partial_frames`
gives the ranges).

Each process builds a backbone once (cached per process, per weights file and device) and embeds
clips in batches of :data:`BATCH_SIZE`. Clips shorter than the backbone's receptive field are
zero-padded with a warning (see :class:`~earmark.models.pretrained.Backbone`).

The backbones are imported when first used, so importing :mod:`earmark.features` stays light.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import torch

from earmark.errors import ConfigError, DataError
from earmark.features.base import FEATURES, Feature, as_tensor, like_input

__all__ = ["BATCH_SIZE", "EMBEDDING_FEATURES", "EMBEDDING_OPTIONS", "EmbeddingFeature"]

BATCH_SIZE = 8
RANDOM_ID = "random (seed 0)"

# name -> (backbone, cut, sample rate, dimension); checked against the backbones in the tests.
EMBEDDING_FEATURES: dict[str, tuple[str, str, int, int]] = {
    "embedding:cnn14": ("cnn14", "fc1", 32000, 2048),
    "embedding:cnn14_16k": ("cnn14_16k", "fc1", 16000, 2048),
    "embedding:vgg16:fc2": ("vgg16", "fc2", 22050, 4096),
    "embedding:vgg16:fc1": ("vgg16", "fc1", 22050, 4096),
    "embedding:vgg16:block5_pool": ("vgg16", "block5_pool", 22050, 512),
    "embedding:resnet50:avg_pool": ("resnet50", "avg_pool", 22050, 2048),
    "embedding:resnet50:layer3": ("resnet50", "layer3", 22050, 1024),
    "embedding:ge2e": ("ge2e", "embedding", 16000, 256),
}

# name -> the backbone's embedding options (``Backbone.embed(x, **options)``) and their defaults, which
# are the backbone's own (checked in the tests); _OPTION_CHECKS raise ConfigError on bad values.
EMBEDDING_OPTIONS: dict[str, dict[str, Any]] = {
    "embedding:ge2e": {"partial": 1.6, "rate": 1.3, "weighting": "equal"},
}


def _check_ge2e(options: dict[str, Any]) -> None:
    from earmark.models.pretrained.ge2e import check_weighting, partial_frames

    partial_frames(options["partial"], options["rate"])
    check_weighting(options["weighting"])


_OPTION_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {"embedding:ge2e": _check_ge2e}


def _weights_path(feature: str, backbone: str, weights: Any):
    """The weights file (None for random), with the feature's own advice when it is missing."""
    from earmark.models.pretrained.weights import KNOWN_WEIGHTS, resolve_weights

    if not isinstance(weights, str) or not weights:
        raise ConfigError(f"feature {feature!r}: weights must be 'random', a known name or a path, got {weights!r}")
    try:
        return resolve_weights(weights, backbone=backbone)
    except ConfigError as exc:
        if weights in KNOWN_WEIGHTS and KNOWN_WEIGHTS[weights].backbone == backbone:
            from earmark.models.pretrained.weights import cached_path

            raise ConfigError(
                f"feature {feature!r}: weights {weights!r} are not in the cache ({cached_path(weights)}); run "
                f"`earmark weights fetch {weights}`, or set features.params.weights: random (-p weights=random) "
                f"for randomly initialised weights") from None
        raise ConfigError(f"feature {feature!r}: {exc}") from None


def _weights_id(path: Any) -> str:
    from earmark.models.pretrained.weights import file_identity

    return RANDOM_ID if path is None else file_identity(path)


@dataclass(frozen=True)
class EmbeddingFeature(Feature):
    """A backbone's embedding as a feature; :meth:`resolve` adds the weights file's identity.

    Attributes
    ----------
    backbone, cut : str
        The backbone (:data:`earmark.models.pretrained.BACKBONES`) and its cut layer.
    dim : int
        Size of the vector per clip.
    """

    backbone: str = ""
    cut: str = ""
    dim: int = 0

    def resolve(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated with ``params``, plus ``weights_id`` (recomputed if present).

        Raises
        ------
        ConfigError
            Unknown parameter, another sample rate than the backbone's, or weights that are not there
            (the message says to run ``earmark weights fetch NAME`` or to use ``weights: random``).
        """
        params = dict(params or {})
        params.pop("weights_id", None)
        out = super().resolve(params)
        if out["sr"] != self.sr:
            raise ConfigError(f"feature {self.name!r}: the backbone takes {self.sr} Hz audio; sr cannot be "
                              f"changed (got {out['sr']})")
        if self.name in _OPTION_CHECKS:
            try:
                _OPTION_CHECKS[self.name](out)
            except ConfigError as exc:
                raise ConfigError(f"feature {self.name!r}: {exc}") from None
        out["weights_id"] = _weights_id(_weights_path(self.name, self.backbone, out["weights"]))
        return out


@functools.lru_cache(maxsize=2)
def _backbone(name: str, cut: str, path: str | None, weights_id: str, device: str):
    """One backbone per (weights file identity, device) and process."""
    from earmark.models.pretrained import create_backbone

    return create_backbone(name, weights=path, cut=cut).to(device)


def _make_feature(name: str, backbone: str, cut: str, sr: int, dim: int) -> Callable[..., Any]:
    def embedding(y: Any, sr: int = sr, *, weights: str = backbone, weights_id: str | None = None,
                  **options: Any) -> Any:
        path = _weights_path(name, backbone, weights)
        ident = _weights_id(path)
        if weights_id is not None and weights_id != ident:
            raise DataError(f"{name}: weights file {path} changed after the extraction started "
                            f"(was {weights_id}, now {ident}); run the extraction again")
        x, was_numpy = as_tensor(y)
        if x.dim() == 0 or x.shape[-1] == 0:
            raise DataError(f"{name}: expected a waveform of shape (..., n_samples), got shape {tuple(x.shape)}")
        lead = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1])
        net = _backbone(backbone, cut, None if path is None else str(path), ident, str(x.device))
        parts = [net.embed(flat[i:i + BATCH_SIZE], **options) for i in range(0, flat.shape[0], BATCH_SIZE)]
        out = (torch.cat(parts) if parts else flat.new_zeros((0, dim))).reshape(*lead, dim)
        return like_input(out if was_numpy or x.dtype != torch.float64 else out.double(), was_numpy)

    embedding.__name__ = embedding.__qualname__ = name.replace(":", "_")
    embedding.__doc__ = f"""{dim}-d embedding of {backbone} at {cut} ({sr} Hz); weights: known name, path or 'random'.

    Parameters
    ----------
    y : np.ndarray or torch.Tensor, shape (..., n_samples)
        Waveform(s) at {sr} Hz.
    sr : int
        Must be {sr}.
    weights : str
        ``"{backbone}"`` (the official weights, from the cache), a weights file, or ``"random"``.
    weights_id : str, optional
        Identity of the weights file the parameters were resolved with; a different file is an error.
    **options
        The backbone's embedding options ({", ".join(EMBEDDING_OPTIONS.get(name, {})) or "none"}).

    Returns
    -------
    shape (..., {dim}), float32
        NumPy in -> NumPy out; a tensor in -> a tensor on its device out (float64 for float64; the
        backbone itself runs in float32).
    """
    return embedding


for _name, (_backbone_name, _cut, _sr, _dim) in EMBEDDING_FEATURES.items():
    FEATURES.register(_name, EmbeddingFeature(
        name=_name, fn=_make_feature(_name, _backbone_name, _cut, _sr, _dim), sr=_sr,
        defaults={"weights": _backbone_name, **EMBEDDING_OPTIONS.get(_name, {})}, min_samples=lambda params: 1,
        backbone=_backbone_name, cut=_cut, dim=_dim))
