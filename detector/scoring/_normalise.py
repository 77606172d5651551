"""Two raw scores on one scale: each detector's score mapped through its training quantiles.

The forest's score and the own-baseline deviation score have different units. Each is mapped
to the share of training windows it exceeds (its empirical distribution function, kept as a
few quantile knots), and beyond the largest training score it keeps rising, by one unit per
"top-1% spread" above the maximum, so that ten times beyond anything seen ranks above just
beyond. The combined score is the larger of the two: a window is as anomalous as its most
anomalous view.

Imports: numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from detector.scoring._model import Matrix

__all__ = ["KNOT_QUANTILES", "fit_knots", "normalise"]

KNOT_QUANTILES: Final = (0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1.0)


def fit_knots(scores: Matrix) -> list[float]:
    knots = np.quantile(scores, KNOT_QUANTILES)
    return [float(k) for k in np.maximum.accumulate(knots)]


def normalise(scores: Matrix, knots: Sequence[float]) -> Matrix:
    k = np.asarray(knots, dtype=np.float64)
    q = np.asarray(KNOT_QUANTILES, dtype=np.float64)
    # Strictly increasing knots for interpolation (ties from many equal training scores).
    k = k + np.arange(k.size) * 1e-12
    inside: Matrix = np.interp(scores, k, q)
    top_spread = max(k[-1] - k[-4], 1e-9)  # max minus the 0.99 knot
    beyond = 1.0 + (scores - k[-1]) / top_spread
    out: Matrix = np.where(scores > k[-1], beyond, inside)
    return out
