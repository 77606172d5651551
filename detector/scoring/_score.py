"""Closed windows -> model findings, a micro-batch at a time.

Two views of each window, on one scale (:mod:`detector.scoring._normalise`):

- the isolation forest's anomaly score: unusual *combinations* of features, learned offline;
- the own-baseline deviation: the largest rise of one feature above this principal's running
  mean (:mod:`detector.scoring._baseline`), which the forest cannot express for values beyond
  its training range (a Decrypt burst ten times anything seen).

The window's score is the larger of the two; above the threshold it becomes one finding of kind
``model_anomaly``, unless its principal is still in its learning period
(:mod:`detector.scoring._learning`). The threshold starts at the artifact's and then follows
this organisation's mature windows within the artifact's bounds (:class:`LiveThreshold`); both
are decided one window start at a time, in event-time order, so batching changes nothing. One
``anomaly_score`` call per batch of windows (a single-row call costs ~16 ms here, a row in a
batch ~5 us). The finding id depends only on
(kind, principal, window start): re-scoring a window, or a late-event correction of it, yields
the same id, so downstream it is an update, never a second finding.

Severity, on GuardDuty's scale: 3.0 at the threshold, up to +3.0 as the score reaches the top
of the training range, plus the weights of the explicit signals present; clipped to 1.0-8.9.
A window that is odd but matches no signal stays low or medium; one that matches "credentials
used from a new public IP outside the VPC endpoint" is high.

Imports: numpy, polars, the features' column names, the findings record and this package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
import polars as pl

from detector.features import NEW_ITEM_COLUMNS
from detector.findings import MAX_SEVERITY, MIN_SEVERITY, ExplanationItem, Finding, finding_id_of
from detector.scoring._artifact import ModelArtifact
from detector.scoring._baseline import (
    OwnBaseline,
    RowContext,
    deviation_score,
    score_and_learn,
)
from detector.scoring._calibrate import CalibrationBounds, LiveThreshold
from detector.scoring._explain import PeerBaseline, explain_row, measured_features
from detector.scoring._learning import LearningConfig
from detector.scoring._model import Matrix, WindowAnomalyModel, feature_matrix
from detector.scoring._normalise import normalise
from detector.scoring._signals import SIGNALS, signal_frame

__all__ = [
    "MODEL_KIND",
    "RawScores",
    "ScoredBatch",
    "ScoringState",
    "combine",
    "combined_score",
    "raw_scores",
    "score_windows",
    "severity_of",
    "signal_weights",
]

MODEL_KIND: Final = "model_anomaly"
SIGNAL_BOOST: Final = 0.001  # score units per severity point of the signals present
BASE_SEVERITY: Final = 3.0
SCORE_SEVERITY_RANGE: Final = 3.0
_SIGNAL_BY_NAME: Final = {s.name: s for s in SIGNALS}


def severity_of(score: float, threshold: float, signals: Sequence[str]) -> float:
    """3.0 at the threshold, +3.0 at the top of the training range (score 1.0), + signals."""
    excess = min(max((score - threshold) / max(1.0 - threshold, 1e-3), 0.0), 1.0)
    raw = BASE_SEVERITY + SCORE_SEVERITY_RANGE * excess
    raw += sum(_SIGNAL_BY_NAME[s].weight for s in signals)
    return round(min(max(raw, MIN_SEVERITY), MAX_SEVERITY), 1)


@dataclass(frozen=True, slots=True)
class RawScores:
    """Per window: the forest's score, the deviation score, and per-feature deviations."""

    x: Matrix
    forest: Matrix
    deviation: Matrix
    z: Matrix
    usual: Matrix


def raw_scores(
    model: WindowAnomalyModel,
    peers: PeerBaseline,
    baseline: OwnBaseline,
    windows: pl.DataFrame,
    names: Sequence[str],
    learning: LearningConfig | None = None,
) -> tuple[OwnBaseline, RawScores]:
    """Both detectors' scores for a batch, and the baseline that has learned it."""
    baseline, raw, _ = raw_scores_in_context(model, peers, baseline, windows, names, learning)
    return baseline, raw


def raw_scores_in_context(
    model: WindowAnomalyModel,
    peers: PeerBaseline,
    baseline: OwnBaseline,
    windows: pl.DataFrame,
    names: Sequence[str],
    learning: LearningConfig | None = None,
) -> tuple[OwnBaseline, RawScores, RowContext]:
    """:func:`raw_scores`, and each row's learning-period context and peer group."""
    x = feature_matrix(windows, names)
    forest = model.anomaly_score(x, feature_names=names)
    baseline, z, usual, context = score_and_learn(
        baseline, windows, x, peers, learning or LearningConfig()
    )
    raw = RawScores(x, forest, deviation_score(z, measured_features(names)), z, usual)
    return baseline, raw, context


@dataclass(frozen=True, slots=True)
class ScoredBatch:
    """Combined scores of one batch of windows, and the findings among them; how many windows
    belonged to principals still learning, and the threshold after the batch."""

    scores: Matrix
    findings: list[Finding]
    learning_windows: int = 0
    threshold: float | None = None


@dataclass(frozen=True, slots=True)
class ScoringState:
    """What scoring carries between batches: own baselines (with learning periods and peer
    groups) and the live threshold."""

    baseline: OwnBaseline
    live: LiveThreshold

    @staticmethod
    def initial(artifact: ModelArtifact) -> ScoringState:
        bounds = CalibrationBounds.from_manifest(artifact.manifest)
        return ScoringState(OwnBaseline(artifact.feature_names), LiveThreshold.initial(bounds))

    def principals_learning(self, at_ms: int | None, learning: LearningConfig) -> int:
        """Principals known to the state whose learning period has not ended at ``at_ms``."""
        if at_ms is None:
            return 0
        return sum(
            not learning.mature(first_ms=s.first_ms, days=s.days, windows=s.n, at_ms=at_ms)
            for s in self.baseline.stats.values()
        )


def combine(
    forest: Matrix,
    deviation: Matrix,
    signal_weights: Matrix,
    knots: dict[str, list[float]],
) -> Matrix:
    """The window's score: the larger normalised view, nudged up by its signals' weights
    (:data:`SIGNAL_BOOST` per severity point). Training calibrates the threshold on exactly
    this, so the nudge moves no more windows over it than the alert budget allows; it lets a
    window that is both extreme and *named* (a Decrypt spike, credentials off their endpoint)
    rank above one that is merely extreme."""
    out: Matrix = (
        np.maximum(normalise(forest, knots["forest"]), normalise(deviation, knots["deviation"]))
        + SIGNAL_BOOST * signal_weights
    )
    return out


def signal_weights(windows: pl.DataFrame, window: timedelta) -> Matrix:
    """Per window, the summed weights of the signals present."""
    weights = np.array([s.weight for s in SIGNALS])
    present = signal_frame(windows, window).to_numpy().astype(np.float64)
    out: Matrix = present @ weights if present.size else np.zeros(windows.height)
    return out


def combined_score(artifact: ModelArtifact, raw: RawScores, windows: pl.DataFrame) -> Matrix:
    return combine(
        raw.forest,
        raw.deviation,
        signal_weights(windows, artifact.window),
        artifact.manifest["score_knots"],
    )


def _calls_column(names: Sequence[str]) -> str:
    return next(n for n in names if n.startswith("calls_count_by_principal_"))


def _short(principal: str) -> str:
    return principal.rsplit("/", 1)[-1] if principal.startswith("arn:") else principal


def _finding(
    row: dict[str, Any],
    i: int,
    raw: RawScores,
    score: float,
    signals: list[str],
    artifact: ModelArtifact,
    created_at: datetime,
    threshold: float,
    group: str,
) -> Finding:
    new_items = {c: list(row.get(c) or []) for c in NEW_ITEM_COLUMNS.values()}
    reasons = tuple(
        ExplanationItem(what=name, detail=_SIGNAL_BY_NAME[name].title) for name in signals
    )
    explanation = reasons + explain_row(
        raw.x[i],
        raw.z[i],
        raw.usual[i],
        row["principal_type"],
        artifact.peers,
        new_items,
        group=group,
    )
    headline = (
        _SIGNAL_BY_NAME[signals[0]].title if signals else "activity unlike its history and peers"
    )
    event_ids = tuple(row["event_ids"] or ())
    return Finding(
        finding_id=finding_id_of(MODEL_KIND, row["principal_key"], row["window_start"]),
        kind=MODEL_KIND,
        title=f"{_short(row['principal_key'])}: {headline}",
        severity=severity_of(score, threshold, signals),
        principal=row["principal_key"],
        principal_arn=row["principal_arn"],
        principal_type=row["principal_type"],
        account_id=row["account_id"],
        region=row["region"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        created_at=created_at,
        score=round(score, 6),
        signals=tuple(signals),
        explanation=explanation,
        event_ids=event_ids,
        event_count=max(int(row[_calls_column(artifact.feature_names)]), len(event_ids)),
        source_ips=tuple(row["source_ips"] or ()),
        model_version=artifact.version,
        evidence={
            "threshold": round(threshold, 6),
            "artifact_threshold": round(artifact.threshold, 6),
            "peer_group": group,
            "forest_score": round(float(raw.forest[i]), 6),
            "deviation_sd": round(float(raw.deviation[i]), 3),
            "late_correction": bool(row["late_correction"]),
            **{k: v for k, v in new_items.items() if v},
        },
    )


def _judge(
    bounds: CalibrationBounds,
    live: LiveThreshold,
    windows: pl.DataFrame,
    scores: Matrix,
    context: RowContext,
) -> tuple[LiveThreshold, Matrix, np.ndarray[tuple[int], np.dtype[np.intp]]]:
    """Per window start in order: the threshold it is judged by, which rows are reported, and
    the live threshold having learned the mature rows. Returns (live, per-row threshold,
    flagged row indices)."""
    starts = windows.get_column("window_start").dt.epoch("ms").to_numpy()
    late = windows.get_column("late_correction").to_numpy().astype(bool)
    keys: list[str] = windows.get_column("principal_key").to_list()
    thresholds = np.empty(windows.height)
    flagged = np.zeros(windows.height, dtype=bool)
    for start in np.unique(starts):
        rows = np.flatnonzero(starts == start)
        live = live.advance(bounds, int(start))
        thresholds[rows] = live.threshold
        flagged[rows] = context.mature[rows] & (scores[rows] > live.threshold)
        learned = rows[context.mature[rows] & ~late[rows]]
        if learned.size == 0:
            continue
        live = live.learn(
            bounds,
            int(start) // 86_400_000,
            scores[learned],
            [keys[i] for i in learned],
            flagged[learned],
            int(context.new_day[learned].sum()),
        )
    return live, thresholds, np.flatnonzero(flagged)


def score_windows(
    artifact: ModelArtifact,
    state: ScoringState,
    windows: pl.DataFrame,
    *,
    created_at: datetime,
    learning: LearningConfig | None = None,
) -> tuple[ScoringState, ScoredBatch]:
    """Score every closed window of a batch at once; findings for those of principals past
    their learning period above the (live) threshold."""
    if windows.height == 0:
        return state, ScoredBatch(np.empty(0), [], 0, state.live.threshold)
    names = artifact.feature_names
    learning = learning or LearningConfig()
    baseline, raw, context = raw_scores_in_context(
        artifact.model, artifact.peers, state.baseline, windows, names, learning
    )
    scores = combined_score(artifact, raw, windows)
    bounds = CalibrationBounds.from_manifest(artifact.manifest)
    live, thresholds, flagged = _judge(bounds, state.live, windows, scores, context)
    state = ScoringState(baseline, live)
    learning_windows = int((~context.mature).sum())
    if flagged.size == 0:
        return state, ScoredBatch(scores, [], learning_windows, live.threshold)
    rows = windows[flagged.tolist()]
    present = signal_frame(rows, artifact.window)
    findings = []
    for j, (row, signal_row) in enumerate(
        zip(rows.iter_rows(named=True), present.iter_rows(), strict=True)
    ):
        i = int(flagged[j])
        signals = [s.name for s, on in zip(SIGNALS, signal_row, strict=True) if on]
        findings.append(
            _finding(
                row,
                i,
                raw,
                float(scores[i]),
                signals,
                artifact,
                created_at,
                float(thresholds[i]),
                context.group[i],
            )
        )
    return state, ScoredBatch(scores, findings, learning_windows, live.threshold)
