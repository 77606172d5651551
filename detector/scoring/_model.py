"""The window anomaly model: an isolation forest over per-principal window features.

A scikit-learn estimator (``__init__`` only stores parameters, learned attributes end in ``_``,
``check_is_fitted`` first, ``feature_names_in_`` catches a train/serve mismatch). Features are
counts, shares and ratios with long right tails; ``log1p`` puts a burst of 400 calls and one of
40 on a scale where the forest can tell them apart without the busiest principals dominating.

One score direction everywhere: :meth:`anomaly_score` is higher for more anomalous windows
(the isolation forest's own anomaly score of the original paper, in (0, 1]; scikit-learn's
``score_samples`` is its negation, flipped here and nowhere else).

Imports: numpy, polars and scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.utils.validation import check_is_fitted

__all__ = ["WindowAnomalyModel", "feature_matrix"]

Matrix = npt.NDArray[np.float64]


def feature_matrix(windows: pl.DataFrame, columns: Sequence[str]) -> Matrix:
    """The model's input: the named feature columns, in order, as float64 (nulls as 0)."""
    missing = [c for c in columns if c not in windows.columns]
    if missing:
        raise ValueError(f"windows lack feature columns {missing[:5]}")
    frame = windows.select(pl.col(list(columns)).cast(pl.Float64).fill_null(0.0))
    return frame.to_numpy().astype(np.float64, copy=False).reshape(windows.height, len(columns))


def transform(x: Matrix) -> Matrix:
    """``log1p`` of the non-negative features (every feature is a count, share or ratio)."""
    return np.log1p(np.clip(x, 0.0, None))


class WindowAnomalyModel(BaseEstimator):  # type: ignore[misc]
    """Isolation forest on ``log1p`` features; ``anomaly_score`` is higher = more anomalous."""

    def __init__(
        self,
        *,
        n_estimators: int = 200,
        max_samples: int | str = 512,
        max_features: float = 1.0,
        random_state: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.random_state = random_state

    def fit(self, x: Matrix, y: Any = None, *, feature_names: Sequence[str]) -> WindowAnomalyModel:
        if x.ndim != 2 or x.shape[1] != len(feature_names):
            raise ValueError(f"x has shape {x.shape}, expected (n, {len(feature_names)})")
        # A small training set caps the sub-sample size (scikit-learn would warn and do so).
        samples = (
            min(self.max_samples, len(x)) if isinstance(self.max_samples, int) else self.max_samples
        )
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=samples,
            max_features=self.max_features,
            random_state=self.random_state,
        ).fit(transform(x))
        self.feature_names_in_ = np.asarray(list(feature_names), dtype=object)
        self.n_features_in_ = len(feature_names)
        return self

    def anomaly_score(self, x: Matrix, *, feature_names: Sequence[str] | None = None) -> Matrix:
        """One score per row, in (0, 1]; higher is more anomalous. Batch rows: each call has a
        fixed cost (scikit-learn dispatches every tree)."""
        check_is_fitted(self, "forest_")
        if feature_names is not None and list(feature_names) != list(self.feature_names_in_):
            raise ValueError("feature names differ from those the model was fitted with")
        if x.shape[1] != self.n_features_in_:
            raise ValueError(
                f"x has {x.shape[1]} features, the model expects {self.n_features_in_}"
            )
        if x.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        scores: Matrix = -self.forest_.score_samples(transform(x))
        return scores
