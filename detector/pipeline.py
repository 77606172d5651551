"""The detection pipeline: normalized events in, findings out, state carried as a value.

One step does, for a micro-batch of events (from the SQS consumer, a replay, a test):

1. signature detections on the batch, with the principal profiles as they stood before it
   (:mod:`detector.detections`);
2. the feature step: dedup, windows, profiles (:mod:`detector.features`);
3. scoring of the windows that closed, against the model and each principal's own baseline
   (:mod:`detector.scoring`); principals still in their learning period are not reported by
   the model, and the threshold follows this organisation's live scores within the artifact's
   bounds (see docs/quality.md);
4. aggregation: the occurrences of steps 1 and 3 of one kind for one principal within an
   aggregation period (6 h by default) update one finding, which is sent when it first appears,
   when its severity rises and when its period closes (:mod:`detector.findings`).

The service, replay, training evaluation and the demo all run this same code, so the same
events give the same findings (same ids) however they arrive. :class:`PipelineState` snapshots
to one :class:`~detector.state.Snapshot` for a :class:`~detector.state.StateStore`.

Imports: polars, orjson, and the detector's events, features, detections, scoring, findings
and state packages. No I/O.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import numpy as np
import orjson
import polars as pl

from detector.detections import (
    Detection,
    DetectionConfig,
    DetectionContext,
    DetectionFailure,
    DetectionRun,
    DetectionState,
    default_detections,
    run_detections_isolated,
)
from detector.errors import StateError
from detector.features import FeatureConfig, FeatureState, empty_state, flush, update
from detector.findings import (
    AggregationConfig,
    AggregationState,
    Finding,
    aggregate_findings,
    flush_aggregates,
)
from detector.scoring import (
    CalibrationBounds,
    LearningConfig,
    LiveThreshold,
    ModelArtifact,
    OwnBaseline,
    ScoringState,
    score_windows,
)
from detector.state import Snapshot

__all__ = ["Pipeline", "PipelineConfig", "PipelineState", "StepReport"]

PIPELINE_FORMAT: Final = "pipeline/1"
_FEATURES_PREFIX: Final = "features_"
_BASELINE_FRAME: Final = "baseline"
_GROUPS_FRAME: Final = "baseline_groups"
_CALIBRATION_META: Final = "calibration"


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    detections: DetectionConfig = field(default_factory=DetectionConfig)
    aggregation: AggregationConfig = field(default_factory=AggregationConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)


@dataclass(frozen=True, slots=True)
class PipelineState:
    features: FeatureState
    detections: DetectionState
    baseline: OwnBaseline
    calibration: LiveThreshold
    aggregation: AggregationState = field(default_factory=AggregationState)

    @property
    def scoring(self) -> ScoringState:
        return ScoringState(self.baseline, self.calibration)


@dataclass(frozen=True, slots=True)
class StepReport:
    """What one step did, for metrics, logs and replay summaries."""

    events_in: int
    duplicates: int
    late_events: int
    windows_closed: int
    principals: int
    watermark: datetime | None
    findings_by_kind: dict[str, int]
    findings_by_severity: dict[str, int]
    # Detections that raised on this batch (bugs): the rest of the step went on without them.
    detection_failures: tuple[DetectionFailure, ...] = ()
    # Principals known to the state whose learning period has not ended at the watermark: the
    # model does not report them yet (signature detections do). None when no window closed
    # (nothing changed; counting walks every principal).
    principals_learning: int | None = None
    model_threshold: float | None = None  # the live threshold after the step
    # For drift and budget metrics: the scores of the windows that closed, the distinct
    # (principal key, UTC day number) pairs they cover, and the principals the state knows.
    window_scores: np.ndarray = field(default_factory=lambda: np.empty(0))
    principal_days: frozenset[tuple[str, int]] = frozenset()
    principals_known: int | None = None


class Pipeline:
    """The model, the active detections and the configuration; steps are pure functions of
    (state, events, now)."""

    def __init__(
        self,
        artifact: ModelArtifact,
        *,
        detections: Sequence[Detection] | None = None,
        config: PipelineConfig | None = None,
    ) -> None:
        self.artifact = artifact
        self.detections = tuple(default_detections() if detections is None else detections)
        self.config = config or PipelineConfig(FeatureConfig(window=artifact.window))
        if self.config.features.window != artifact.window:
            raise ValueError(
                f"features use {self.config.features.window} windows, the model {artifact.window}"
            )

    def initial_state(self) -> PipelineState:
        scoring = ScoringState.initial(self.artifact)
        return PipelineState(empty_state(), DetectionState(), scoring.baseline, scoring.live)

    def step(
        self, state: PipelineState, events: pl.DataFrame, now: datetime
    ) -> tuple[PipelineState, list[Finding], StepReport]:
        """Process one batch of normalized events (any order, duplicates allowed)."""
        events = events.rechunk()
        detected = self._detect(state, events, now)
        features, windows, report = update(state.features, events, self.config.features)
        scoring, scored = score_windows(
            self.artifact, state.scoring, windows, created_at=now, learning=self.config.learning
        )
        signature_findings = [dataclasses.replace(f, created_at=now) for f in detected.findings]
        newest = events.get_column("event_time").max() if events.height else None
        aggregation, findings = aggregate_findings(
            state.aggregation,
            [*signature_findings, *scored.findings],
            newest if isinstance(newest, datetime) else None,
            self.config.aggregation,
            now,
        )
        step = _report(
            report.events_in,
            report.duplicates,
            report.late_events,
            windows,
            report.principals,
            report.watermark,
            findings,
            self._learning(scoring, report.watermark, windows.height),
            detected.failures,
            scored.scores,
        )
        state = PipelineState(features, detected.state, scoring.baseline, scoring.live, aggregation)
        return state, findings, step

    def _learning(
        self, scoring: ScoringState, watermark: datetime | None, closed: int
    ) -> tuple[int | None, float, int | None]:
        if not closed or watermark is None:
            return None, scoring.live.threshold, None
        at = int(watermark.timestamp() * 1000)
        learning = scoring.principals_learning(at, self.config.learning)
        return learning, scoring.live.threshold, len(scoring.baseline.stats)

    def _detect(self, state: PipelineState, events: pl.DataFrame, now: datetime) -> DetectionRun:
        """Detections age their dedup memory on event time (the newest event of the batch), so
        a replay of old trails and the live stream keep the same findings; ``now`` (the wall
        clock) only stamps ``created_at``. A detection that raises fails alone."""
        if events.height == 0:
            return DetectionRun(state.detections, ())
        newest = events.get_column("event_time").max()
        assert isinstance(newest, datetime)
        profiles = state.features.profiles
        context = DetectionContext.from_profile_items(profiles.items, profiles.principals)
        return run_detections_isolated(
            events, self.detections, state.detections, self.config.detections, newest, context
        )

    def flush(
        self, state: PipelineState, now: datetime
    ) -> tuple[PipelineState, list[Finding], StepReport]:
        """Close every open window (end of a replay, or shutdown), score them, and send every
        aggregate that grew since it was last sent (aggregates stay open: a resumed replay
        keeps counting them)."""
        features, windows, report = flush(state.features, self.config.features)
        scoring, scored = score_windows(
            self.artifact, state.scoring, windows, created_at=now, learning=self.config.learning
        )
        aggregation, found = aggregate_findings(
            state.aggregation, scored.findings, None, self.config.aggregation, now
        )
        aggregation, pending = flush_aggregates(aggregation, now)
        findings = _latest_per_id([*found, *pending])
        step = _report(
            0,
            0,
            0,
            windows,
            report.principals,
            report.watermark,
            findings,
            self._learning(scoring, report.watermark, windows.height),
            scores=scored.scores,
        )
        state = PipelineState(
            features, state.detections, scoring.baseline, scoring.live, aggregation
        )
        return state, findings, step

    def snapshot(self, state: PipelineState) -> Snapshot:
        features = state.features.snapshot(self.config.features)
        frames = {f"{_FEATURES_PREFIX}{k}": v for k, v in features.frames.items()}
        frames[_BASELINE_FRAME] = state.baseline.snapshot()
        frames[_GROUPS_FRAME] = state.baseline.groups_snapshot()
        meta = {f"{_FEATURES_PREFIX}{k}": v for k, v in features.meta.items()}
        meta["format"] = PIPELINE_FORMAT
        meta["detections"] = orjson.dumps(state.detections.snapshot()).decode()
        meta["aggregation"] = orjson.dumps(state.aggregation.snapshot()).decode()
        meta[_CALIBRATION_META] = orjson.dumps(state.calibration.snapshot()).decode()
        return Snapshot(frames, meta)

    def restore(self, snapshot: Snapshot) -> PipelineState:
        if snapshot.meta.get("format") != PIPELINE_FORMAT:
            raise StateError(
                f"state snapshot format {snapshot.meta.get('format')!r}, expected {PIPELINE_FORMAT!r}"
            )
        n = len(_FEATURES_PREFIX)
        features = Snapshot(
            {k[n:]: v for k, v in snapshot.frames.items() if k.startswith(_FEATURES_PREFIX)},
            {k[n:]: v for k, v in snapshot.meta.items() if k.startswith(_FEATURES_PREFIX)},
        )
        bounds = CalibrationBounds.from_manifest(self.artifact.manifest)
        try:
            # Snapshots written before learning periods have no groups and no live threshold:
            # they start from none and from the artifact's.
            baseline = OwnBaseline.restore(
                snapshot.frames[_BASELINE_FRAME],
                self.artifact.feature_names,
                snapshot.frames.get(_GROUPS_FRAME),
            )
            detections = DetectionState.restore(orjson.loads(snapshot.meta["detections"]))
            # Snapshots from before aggregation have no open aggregates.
            aggregation = (
                AggregationState.restore(orjson.loads(snapshot.meta["aggregation"]))
                if "aggregation" in snapshot.meta
                else AggregationState()
            )
            calibration = LiveThreshold.restore(
                orjson.loads(snapshot.meta.get(_CALIBRATION_META, "{}")), bounds
            )
        except (KeyError, ValueError) as err:
            raise StateError(f"state snapshot is incomplete or corrupt: {err}") from None
        return PipelineState(
            FeatureState.restore(features, self.config.features),
            detections,
            baseline,
            calibration,
            aggregation,
        )


def _latest_per_id(findings: Sequence[Finding]) -> list[Finding]:
    by_id: dict[str, Finding] = {}
    for finding in findings:
        by_id[finding.finding_id] = finding
    return list(by_id.values())


def _report(
    events_in: int,
    duplicates: int,
    late: int,
    windows: pl.DataFrame,
    principals: int,
    watermark: datetime | None,
    findings: Sequence[Finding],
    learning: tuple[int | None, float, int | None],
    detection_failures: tuple[DetectionFailure, ...] = (),
    scores: np.ndarray | None = None,
) -> StepReport:
    return StepReport(
        events_in=events_in,
        duplicates=duplicates,
        late_events=late,
        windows_closed=windows.height,
        principals=principals,
        watermark=watermark,
        findings_by_kind=dict(Counter(f.kind for f in findings)),
        findings_by_severity=dict(Counter(f.severity_label for f in findings)),
        detection_failures=detection_failures,
        principals_learning=learning[0],
        model_threshold=learning[1],
        window_scores=np.empty(0) if scores is None else scores,
        principal_days=_principal_days(windows),
        principals_known=learning[2],
    )


def _principal_days(windows: pl.DataFrame) -> frozenset[tuple[str, int]]:
    if windows.height == 0:
        return frozenset()
    pairs = windows.select(
        pl.col("principal_key"), pl.col("window_start").dt.epoch("d").alias("day")
    ).unique()
    return frozenset(zip(pairs["principal_key"].to_list(), pairs["day"].to_list(), strict=True))
