"""An ensemble of fitted classifiers that averages their class probabilities."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from earmark.errors import DataError, NotFittedError


class EnsembleClassifier(ClassifierMixin, BaseEstimator):
    """Average of the ``predict_proba`` of already fitted members that share their classes.

    Parameters
    ----------
    members : sequence of fitted classifiers
        E.g. networks trained with different seeds (``train.ensemble.members``).
    """

    def __init__(self, members: Sequence[Any] = ()):
        self.members = members

    def fit(self, X: Any = None, y: Any = None) -> "EnsembleClassifier":
        """Check the members (they are fitted already) and take their classes."""
        members = list(self.members)
        if not members:
            raise DataError("ensemble: no members")
        for i, m in enumerate(members):
            if not hasattr(m, "classes_"):
                raise NotFittedError(f"ensemble member {i} is not fitted")
        classes = np.asarray(members[0].classes_)
        for i, m in enumerate(members[1:], 1):
            if not np.array_equal(np.asarray(m.classes_), classes):
                raise DataError(f"ensemble member {i} has classes {list(m.classes_)}, member 0 {list(classes)}")
        self.classes_ = classes
        return self

    def _check(self) -> None:
        if not hasattr(self, "classes_"):
            raise NotFittedError("EnsembleClassifier: call fit first")

    def member_proba(self, X: Any) -> list[np.ndarray]:
        """Each member's ``(n_clips, n_classes)`` probabilities."""
        self._check()
        return [np.asarray(m.predict_proba(X)) for m in self.members]

    @staticmethod
    def average(probas: Sequence[np.ndarray]) -> np.ndarray:
        """The ensemble's probabilities from its members' (:meth:`member_proba`): their mean."""
        return np.mean(probas, axis=0)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.average(self.member_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def count_params(self) -> int:
        from earmark.models.classical import count_params

        self._check()
        return int(sum(count_params(m) for m in self.members))
