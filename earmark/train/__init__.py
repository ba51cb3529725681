"""Training: hyperparameter search over classical pipelines (trainer, ensembles and tuning to come)."""

from earmark.train.search import SearchResult, build_param_grid, grid_search, make_cv

__all__ = ["SearchResult", "build_param_grid", "grid_search", "make_cv"]
