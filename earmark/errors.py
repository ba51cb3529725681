"""One error hierarchy for everything earmark raises on purpose.

Every message names the input, what was expected and what came, e.g.
``clip.mp3: cannot decode (truncated MPEG frame at 12.3 s)``.
"""

from __future__ import annotations

import os


class EarmarkError(Exception):
    """Base class of every error earmark raises deliberately."""


class ConfigError(EarmarkError, ValueError):
    """A configuration value, option or name is invalid (message names the key path)."""


class DataError(EarmarkError, ValueError):
    """A dataset, manifest or file does not hold what was expected."""


class AudioDecodeError(DataError):
    """An audio file is missing, undecodable, empty or truncated.

    Attributes
    ----------
    path : str
        The file that failed.
    reason : str
        Why it failed, in words.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # keep (path, reason) across process boundaries
        return (type(self), (self.path, self.reason))


class NotFittedError(EarmarkError, ValueError, AttributeError):
    """An estimator was used before ``fit`` (same bases as scikit-learn's)."""
