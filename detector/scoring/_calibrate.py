"""The decision threshold, from an alert budget a person chooses.

An alert budget says how many model findings a team can look at: findings per 1,000
principal-days (one principal active on one day is one principal-day). On the training period
the threshold is set so that exactly that many windows, or fewer, score above it. A budget of 5
over 80 principals and 14 days (1,120 principal-days) allows 5 windows above the threshold.

Imports: numpy and polars.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import polars as pl

from detector.scoring._model import Matrix

__all__ = ["DEFAULT_ALERT_BUDGET", "calibrate_threshold", "principal_days"]

DEFAULT_ALERT_BUDGET: Final = 5.0  # model findings per 1,000 principal-days


def principal_days(windows: pl.DataFrame) -> int:
    """Distinct (principal, UTC day) pairs with at least one window."""
    return (
        windows.select(pl.col("principal_key"), pl.col("window_start").dt.date().alias("day"))
        .unique()
        .height
    )


def calibrate_threshold(scores: Matrix, days: int, budget_per_1000: float) -> float:
    """The lowest threshold such that at most ``budget * days / 1000`` scores exceed it
    (findings are raised for ``score > threshold``)."""
    if budget_per_1000 < 0:
        raise ValueError("the alert budget cannot be negative")
    if scores.size == 0:
        raise ValueError("no training scores to calibrate on")
    allowed = math.floor(budget_per_1000 * days / 1000.0)
    ranked = np.sort(scores)[::-1]
    if allowed >= ranked.size:
        return float(np.nextafter(ranked[-1], -np.inf))
    return float(ranked[allowed])
