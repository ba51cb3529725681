"""Models and their registry.

Importing this package registers the classical models in :data:`MODELS`:
``logreg``, ``svm_linear``, ``svm_rbf``, ``svm_poly``, ``rf``, ``knn``, ``mlp``.
Each is a factory ``MODELS.create(name, seed=0, **params) -> estimator``.
"""

from earmark.models.classical import (
    MODELS,
    CalibratedSVC,
    ClippedSelectKBest,
    ModelSpec,
    build_pipeline,
    count_params,
    default_grid,
    make_model,
    make_step,
)
from earmark.models.persist import load_model, save_model

__all__ = [
    "MODELS",
    "CalibratedSVC",
    "ClippedSelectKBest",
    "ModelSpec",
    "build_pipeline",
    "count_params",
    "default_grid",
    "load_model",
    "make_model",
    "make_step",
    "save_model",
]
