"""Feature functions (time-first ``(..., n_frames, n_bins)``) and their registry.

Importing this package registers every built-in feature in :data:`FEATURES`:
``fbank``, ``stft``, ``logmel``, ``mfcc``, ``waveform``, ``stats518``, ``artist_stats`` and the
pretrained-backbone embeddings ``embedding:*`` (:mod:`earmark.features.embedding`).
"""

from earmark.features.base import FEATURES, Feature, as_tensor, get_feature, like_input, register_feature
from earmark.features.fbank import fbank, fbank_filters
from earmark.features.image import save_image, to_image
from earmark.features.spectral import delta, logmel, mfcc, stft, waveform
from earmark.features.stats import artist_stats, stats518  # noqa: F401  (registers the statistics features)
from earmark.features import embedding  # noqa: F401  (registers the embedding:* features)

__all__ = [
    "FEATURES",
    "Feature",
    "as_tensor",
    "delta",
    "fbank",
    "fbank_filters",
    "get_feature",
    "like_input",
    "logmel",
    "mfcc",
    "register_feature",
    "save_image",
    "stft",
    "to_image",
    "waveform",
]
