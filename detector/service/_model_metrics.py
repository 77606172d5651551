"""Metrics of the model at work: which version scores, reloads, drift and the alert budget.

- ``detector_model_info{version}`` is 1 for the version scoring now;
  ``detector_model_reloads_total`` counts swaps, ``detector_model_reload_failures_total{reason}``
  models refused (``verification``: hash, schema, trusted types, signature or window) or
  pointers that could not be read (``unreachable``);
- drift: ``detector_model_score_quantile{quantile, scores}`` gives the same quantiles of the
  window scores for ``scores="training"`` (the manifest's ``score_quantiles``) and
  ``scores="live"`` (the last :data:`LIVE_SCORES` windows scored), and
  ``detector_model_score_psi`` the population stability index of the live scores over the
  bins the training quantiles cut (0 = same shape; above 0.25 is commonly read as a shift);
- budget: ``detector_principal_days_total`` counts distinct (principal, UTC day) pairs with a
  closed window, ``detector_findings_new_total{kind}`` findings by kind the first time their id
  is sent (updates of an aggregate are not new findings), and
  ``detector_findings_per_1000_principal_days{kind}`` their ratio since the service started,
  to read against the model's alert budget (``detector_model_alert_budget``);
- ``detector_principals_known`` and ``detector_principals_learning_share`` beside the existing
  ``detector_principals_learning``.

The accumulators restart with the process (they describe this run, not the state). The
drift arithmetic is :func:`psi` and :func:`training_bins`, pure functions.

Imports: the standard library, numpy, prometheus_client, and the scoring artifact and the
pipeline's step report (types only).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Final

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from detector.scoring._calibrate import DEFAULT_ALERT_BUDGET

if TYPE_CHECKING:
    from detector.findings import Finding
    from detector.pipeline import StepReport
    from detector.scoring import ModelArtifact

__all__ = ["LIVE_SCORES", "ModelMetrics", "psi", "training_bins"]

LIVE_SCORES: Final = 10_000  # the live distribution: this many most recent windows
_SEEN_IDS: Final = 200_000  # finding ids remembered to tell a new finding from an update
_DAYS_KEPT: Final = 2  # principal-days of the last two UTC days are remembered (late windows)
_EPSILON: Final = 1e-4  # an empty bin's share, so the index stays finite


def training_bins(quantiles: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Edges and expected shares of the bins the training quantiles cut: below q0.5, q0.5 to
    q0.9, ..., and above the training maximum (expected share ~0)."""
    pairs = sorted((float(q), float(v)) for q, v in quantiles.items())
    edges = np.asarray([v for _, v in pairs], dtype=np.float64)
    levels = [q for q, _ in pairs]
    shares = np.diff(np.asarray([0.0, *levels, 1.0], dtype=np.float64))
    return edges, shares


def psi(live: np.ndarray, edges: np.ndarray, expected: np.ndarray) -> float:
    """Population stability index of ``live`` scores against ``expected`` bin shares."""
    if live.size == 0 or edges.size == 0:
        return 0.0
    counts = np.bincount(np.searchsorted(edges, live, side="right"), minlength=edges.size + 1)
    actual = np.maximum(counts / live.size, _EPSILON)
    want = np.maximum(expected, _EPSILON)
    return float(np.sum((actual - want) * np.log(actual / want)))


class ModelMetrics:
    """Registered in the service's registry; fed by the consumer after each step."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.info = Gauge(
            "detector_model_info", "1 for the model version scoring now", ["version"], registry=r
        )
        self.reloads = Counter(
            "detector_model_reloads", "model versions swapped in without a restart", registry=r
        )
        self.reload_failures = Counter(
            "detector_model_reload_failures",
            "pointed models refused (verification) or pointers unreadable (unreachable); "
            "the running model keeps scoring",
            ["reason"],
            registry=r,
        )
        self.score_quantile = Gauge(
            "detector_model_score_quantile",
            "window score quantiles: training (from the manifest) and live (recent windows)",
            ["quantile", "scores"],
            registry=r,
        )
        self.score_psi = Gauge(
            "detector_model_score_psi",
            "population stability index of live window scores over the training quantile bins",
            registry=r,
        )
        self.alert_budget = Gauge(
            "detector_model_alert_budget",
            "the model's alert budget: model findings per 1,000 principal-days",
            registry=r,
        )
        self.principal_days = Counter(
            "detector_principal_days", "distinct (principal, UTC day) pairs seen", registry=r
        )
        self.findings_new = Counter(
            "detector_findings_new",
            "findings sent for the first time, by kind",
            ["kind"],
            registry=r,
        )
        self.findings_rate = Gauge(
            "detector_findings_per_1000_principal_days",
            "new findings per 1,000 principal-days since start, by kind",
            ["kind"],
            registry=r,
        )
        self.principals_known = Gauge(
            "detector_principals_known", "principals the state holds a baseline for", registry=r
        )
        self.learning_share = Gauge(
            "detector_principals_learning_share",
            "share of known principals still in their learning period",
            registry=r,
        )
        self._version: str | None = None
        self._quantile_levels: tuple[str, ...] = ()
        self._edges = np.empty(0)
        self._expected = np.empty(0)
        self._live: deque[np.ndarray] = deque()
        self._live_size = 0
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._days: set[tuple[str, int]] = set()
        self._newest_day = -1
        self._by_kind: dict[str, int] = {}
        self._principal_days = 0

    def loaded(self, artifact: ModelArtifact) -> None:
        """``artifact`` scores from now on: its version and training quantiles."""
        if self._version is not None:
            self.info.labels(version=self._version).set(0)
            self.info.remove(self._version)
        self._version = artifact.version
        self.info.labels(version=artifact.version).set(1)
        quantiles = {
            str(k): float(v) for k, v in artifact.manifest.get("score_quantiles", {}).items()
        }
        self._quantile_levels = tuple(quantiles)
        for level, value in quantiles.items():
            self.score_quantile.labels(quantile=level, scores="training").set(value)
        self._edges, self._expected = training_bins(quantiles)
        budget = artifact.manifest.get("alert_budget_per_1000_principal_days", DEFAULT_ALERT_BUDGET)
        self.alert_budget.set(float(budget))
        # Scores of another model are on another scale: the live window starts again.
        self._live.clear()
        self._live_size = 0

    def observe(self, report: StepReport, findings: Sequence[Finding]) -> None:
        """One step's scores, principal-days and findings."""
        self._observe_scores(report.window_scores)
        self._observe_days(report.principal_days)
        self.findings_sent(findings)
        if report.principals_known is not None:
            self.principals_known.set(report.principals_known)
            if report.principals_learning is not None and report.principals_known:
                self.learning_share.set(report.principals_learning / report.principals_known)

    def _observe_scores(self, scores: np.ndarray) -> None:
        if scores.size == 0:
            return
        self._live.append(np.asarray(scores, dtype=np.float64))
        self._live_size += scores.size
        while self._live_size - self._live[0].size >= LIVE_SCORES:
            self._live_size -= self._live.popleft().size
        live = np.concatenate(list(self._live))[-LIVE_SCORES:]
        for level in self._quantile_levels:
            value = float(np.quantile(live, float(level)))
            self.score_quantile.labels(quantile=level, scores="live").set(value)
        self.score_psi.set(psi(live, self._edges, self._expected))

    def _observe_days(self, pairs: Iterable[tuple[str, int]]) -> None:
        new = 0
        for pair in pairs:
            if pair[1] <= self._newest_day - _DAYS_KEPT or pair in self._days:
                continue
            self._days.add(pair)
            new += 1
            if pair[1] > self._newest_day:
                self._newest_day = pair[1]
                self._days = {p for p in self._days if p[1] > self._newest_day - _DAYS_KEPT}
        if new:
            self._principal_days += new
            self.principal_days.inc(new)
            self._update_rates()

    def findings_sent(self, findings: Sequence[Finding]) -> None:
        """Count the findings whose id is sent for the first time, by kind."""
        changed = False
        for finding in findings:
            if finding.finding_id in self._seen:
                continue
            self._seen[finding.finding_id] = None
            if len(self._seen) > _SEEN_IDS:
                self._seen.popitem(last=False)
            self._by_kind[finding.kind] = self._by_kind.get(finding.kind, 0) + 1
            self.findings_new.labels(kind=finding.kind).inc()
            changed = True
        if changed:
            self._update_rates()

    def _update_rates(self) -> None:
        if not self._principal_days:
            return
        for kind, count in self._by_kind.items():
            self.findings_rate.labels(kind=kind).set(1000 * count / self._principal_days)
