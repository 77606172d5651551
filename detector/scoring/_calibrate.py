"""The decision threshold, from an alert budget a person chooses.

An alert budget says how many model findings a team can look at: findings per 1,000
principal-days (one principal active on one day is one principal-day). On the training period
the threshold is set so that exactly that many windows, or fewer, score above it. A budget of 5
over 80 principals and 14 days (1,120 principal-days) allows 5 windows above the threshold.

Imports: numpy and polars.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

import numpy as np
import polars as pl

from detector.scoring._model import Matrix

__all__ = [
    "DEFAULT_ALERT_BUDGET",
    "CalibrationBounds",
    "LiveThreshold",
    "calibrate_threshold",
    "principal_days",
]

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


# --- the live threshold ------------------------------------------------------------------------

DEFAULT_HALF_LIFE: Final = timedelta(days=7)
DEFAULT_THRESHOLD_HEADROOM: Final = 1.0  # score units above max(artifact threshold, 1.0)
DEFAULT_BINS: Final = 400
# The live distribution is trusted once, at the budget, it would hold this many findings
# (below, a single window would move the threshold): 1,000 principal-days at a budget of 5.
MIN_EXPECTED_FINDINGS: Final = 5.0
# The threshold moves only when the findings above it exceed the budget by more than this many
# Poisson standard deviations: an organisation like the training one leaves it where it is.
TOLERANCE_SD: Final = 1.0


@dataclass(frozen=True, slots=True)
class CalibrationBounds:
    """How far, and how fast, the threshold may follow the organisation's live scores; read
    from the artifact manifest's ``calibration`` object (every field optional)."""

    start: float  # the artifact's threshold: where a cold state starts
    low: float
    high: float
    half_life: timedelta = DEFAULT_HALF_LIFE
    bins: int = DEFAULT_BINS
    min_principal_days: float = MIN_EXPECTED_FINDINGS * 1000.0 / DEFAULT_ALERT_BUDGET
    budget: float = DEFAULT_ALERT_BUDGET
    enabled: bool = True

    @staticmethod
    def from_manifest(manifest: Mapping[str, Any]) -> CalibrationBounds:
        threshold = float(manifest["threshold"])
        doc: Mapping[str, Any] = manifest.get("calibration") or {}
        low = float(doc.get("threshold_min", threshold))
        high = float(doc.get("threshold_max", max(threshold, 1.0) + DEFAULT_THRESHOLD_HEADROOM))
        if not low <= threshold <= high:
            raise ValueError(
                f"calibration: threshold {threshold} outside [{low}, {high}] "
                "(threshold_min / threshold_max)"
            )
        budget = float(manifest.get("alert_budget_per_1000_principal_days", DEFAULT_ALERT_BUDGET))
        least = MIN_EXPECTED_FINDINGS * 1000.0 / max(budget, 1e-9)
        return CalibrationBounds(
            start=threshold,
            low=low,
            high=high,
            half_life=timedelta(days=float(doc.get("half_life_days", 7.0))),
            bins=int(doc.get("bins", DEFAULT_BINS)),
            min_principal_days=float(doc.get("min_principal_days", least)),
            budget=budget,
            enabled=bool(doc.get("live", True)),
        )

    def edges(self) -> Matrix:
        out: Matrix = np.linspace(self.low, self.high, self.bins + 1)
        return out


@dataclass(frozen=True, slots=True)
class LiveThreshold:
    """The state of the live threshold: an event-time-decayed histogram of mature principals'
    window scores between the bounds (plus the mass above them), and the decayed count of
    their principal-days; ``threshold`` is the one the next window is judged by.

    ``reported`` remembers, per principal, the UTC day its last reported window was counted:
    a principal's reported windows count at most once per ``half_life``, so the threshold
    rises with how *many* principals are loud, never with how often one is (a slow attacker, a
    noisy scanner: those are the own baseline's and the aggregation's to quieten)."""

    threshold: float
    counts: Matrix  # per bin of CalibrationBounds.edges(); the last slot: above ``high``
    principal_days: float = 0.0
    clock_ms: int | None = None  # window start of the last update
    day: int = -1
    reported: Mapping[str, int] = field(default_factory=dict)

    @staticmethod
    def initial(bounds: CalibrationBounds) -> LiveThreshold:
        return LiveThreshold(bounds.start, np.zeros(bounds.bins + 1))

    def advance(self, bounds: CalibrationBounds, at_ms: int) -> LiveThreshold:
        """Decay to ``at_ms`` (a window start, never earlier than the last)."""
        if self.clock_ms is None or at_ms <= self.clock_ms:
            return LiveThreshold(
                self.threshold, self.counts, self.principal_days, at_ms, self.day, self.reported
            )
        factor = 0.5 ** ((at_ms - self.clock_ms) / (bounds.half_life.total_seconds() * 1000))
        return LiveThreshold(
            self.threshold,
            self.counts * factor,
            self.principal_days * factor,
            at_ms,
            self.day,
            self.reported,
        )

    def learn(
        self,
        bounds: CalibrationBounds,
        day: int,
        scores: Matrix,
        keys: Sequence[str],
        reported: np.ndarray[tuple[int], np.dtype[np.bool_]],
        new_days: int,
    ) -> LiveThreshold:
        """Add one window start's mature scores, then recompute the threshold."""
        cooldown = max(int(bounds.half_life / timedelta(days=1)), 1)
        seen = dict(self.reported)
        if day != self.day:  # forget what no longer holds a principal back
            seen = {k: d for k, d in seen.items() if day - d < cooldown}
        counted = ~reported
        for i in np.flatnonzero(reported).tolist():
            if day - seen.get(keys[i], day - cooldown) >= cooldown:
                counted[i] = True
                seen[keys[i]] = day
        edges = bounds.edges()
        kept = scores[counted & (scores > edges[0])]
        slots = np.minimum(np.searchsorted(edges, kept, side="left") - 1, bounds.bins)
        counts = self.counts + np.bincount(slots, minlength=bounds.bins + 1)
        days = self.principal_days + new_days
        return LiveThreshold(
            _threshold(bounds, counts, days),
            counts,
            days,
            self.clock_ms,
            day,
            seen,
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "counts": self.counts.tolist(),
            "principal_days": self.principal_days,
            "clock_ms": self.clock_ms,
            "day": self.day,
            "reported": dict(sorted(self.reported.items())),
        }

    @staticmethod
    def restore(doc: Mapping[str, Any], bounds: CalibrationBounds) -> LiveThreshold:
        """The saved state, or a fresh one when the bounds (the model) changed since."""
        counts = np.asarray(doc.get("counts", []), dtype=np.float64)
        if counts.shape != (bounds.bins + 1,):
            return LiveThreshold.initial(bounds)
        threshold = min(max(float(doc["threshold"]), bounds.low), bounds.high)
        clock = doc.get("clock_ms")
        return LiveThreshold(
            threshold,
            counts,
            float(doc["principal_days"]),
            None if clock is None else int(clock),
            int(doc["day"]),
            {str(k): int(v) for k, v in doc.get("reported", {}).items()},
        )


def _threshold(bounds: CalibrationBounds, counts: Matrix, principal_days: float) -> float:
    """The lowest bin edge with no more mass above it than the budget allows (with a Poisson
    tolerance), within the bounds; the artifact's threshold until enough principal-days."""
    if not bounds.enabled or principal_days < bounds.min_principal_days:
        return bounds.start
    expected = bounds.budget * principal_days / 1000.0
    allowed = expected + TOLERANCE_SD * math.sqrt(expected)
    above = np.cumsum(counts[::-1])[::-1]  # above[j]: mass in bin j and higher
    edges = bounds.edges()
    # Mass strictly above edge j is above[j] (bin j spans (edges[j], edges[j + 1]]).
    fits = np.flatnonzero(above[: bounds.bins + 1] <= allowed)
    if fits.size == 0:
        return float(bounds.high)
    return float(edges[int(fits[0])])
