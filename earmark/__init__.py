"""earmark: music-audio classification, from a folder of clips to an evaluated classifier."""

from earmark.errors import (
    AudioDecodeError,
    ConfigError,
    DataError,
    EarmarkError,
    NotFittedError,
)

__version__ = "0.1.0"

__all__ = [
    "AudioDecodeError",
    "ConfigError",
    "DataError",
    "EarmarkError",
    "NotFittedError",
    "__version__",
]
