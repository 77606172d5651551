"""The detection pipeline: normalized events in, findings out, state carried as a value.

One step does, for a micro-batch of events (from the SQS consumer, a replay, a test):

1. signature detections on the batch, with the principal profiles as they stood before it
   (:mod:`detector.detections`);
2. the feature step: dedup, windows, profiles (:mod:`detector.features`);
3. scoring of the windows that closed, against the model and each principal's own baseline
   (:mod:`detector.scoring`); principals still in their learning period are not reported by
   the model, and the threshold follows this organisation's live scores within the artifact's
   bounds (see docs/quality.md).

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

import orjson
import polars as pl

from detector.detections import (
    Detection,
    DetectionConfig,
    DetectionContext,
    DetectionState,
    default_detections,
    run_detections,
)
from detector.errors import StateError
from detector.features import FeatureConfig, FeatureState, empty_state, flush, update
from detector.findings import Finding
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
    learning: LearningConfig = field(default_factory=LearningConfig)


@dataclass(frozen=True, slots=True)
class PipelineState:
    features: FeatureState
    detections: DetectionState
    baseline: OwnBaseline
    calibration: LiveThreshold

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
    # Principals known to the state whose learning period has not ended at the watermark: the
    # model does not report them yet (signature detections do). None when no window closed
    # (nothing changed; counting walks every principal).
    principals_learning: int | None = None
    model_threshold: float | None = None  # the live threshold after the step


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
        detections, signature_findings = self._detect(state, events, now)
        features, windows, report = update(state.features, events, self.config.features)
        scoring, scored = score_windows(
            self.artifact, state.scoring, windows, created_at=now, learning=self.config.learning
        )
        findings = [*signature_findings, *scored.findings]
        step = _report(
            report.events_in,
            report.duplicates,
            report.late_events,
            windows,
            report.principals,
            report.watermark,
            findings,
            self._learning(scoring, report.watermark, windows.height),
        )
        state = PipelineState(features, detections, scoring.baseline, scoring.live)
        return state, findings, step

    def _learning(
        self, scoring: ScoringState, watermark: datetime | None, closed: int
    ) -> tuple[int | None, float]:
        if not closed or watermark is None:
            return None, scoring.live.threshold
        at = int(watermark.timestamp() * 1000)
        return scoring.principals_learning(at, self.config.learning), scoring.live.threshold

    def _detect(
        self, state: PipelineState, events: pl.DataFrame, now: datetime
    ) -> tuple[DetectionState, list[Finding]]:
        """Detections age their dedup memory on event time (the newest event of the batch), so
        a replay of old trails and the live stream keep the same findings; ``now`` (the wall
        clock) only stamps ``created_at``."""
        if events.height == 0:
            return state.detections, []
        newest = events.get_column("event_time").max()
        assert isinstance(newest, datetime)
        context = DetectionContext.from_profile_items(state.features.profiles.items)
        detections, found = run_detections(
            events, self.detections, state.detections, self.config.detections, newest, context
        )
        return detections, [dataclasses.replace(f, created_at=now) for f in found]

    def flush(
        self, state: PipelineState, now: datetime
    ) -> tuple[PipelineState, list[Finding], StepReport]:
        """Close every open window (end of a replay, or shutdown) and score them."""
        features, windows, report = flush(state.features, self.config.features)
        scoring, scored = score_windows(
            self.artifact, state.scoring, windows, created_at=now, learning=self.config.learning
        )
        step = _report(
            0,
            0,
            0,
            windows,
            report.principals,
            report.watermark,
            scored.findings,
            self._learning(scoring, report.watermark, windows.height),
        )
        state = PipelineState(features, state.detections, scoring.baseline, scoring.live)
        return state, scored.findings, step

    def snapshot(self, state: PipelineState) -> Snapshot:
        features = state.features.snapshot(self.config.features)
        frames = {f"{_FEATURES_PREFIX}{k}": v for k, v in features.frames.items()}
        frames[_BASELINE_FRAME] = state.baseline.snapshot()
        frames[_GROUPS_FRAME] = state.baseline.groups_snapshot()
        meta = {f"{_FEATURES_PREFIX}{k}": v for k, v in features.meta.items()}
        meta["format"] = PIPELINE_FORMAT
        meta[_CALIBRATION_META] = orjson.dumps(state.calibration.snapshot()).decode()
        meta["detections"] = orjson.dumps(state.detections.snapshot()).decode()
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
            calibration = LiveThreshold.restore(
                orjson.loads(snapshot.meta.get(_CALIBRATION_META, "{}")), bounds
            )
        except (KeyError, ValueError) as err:
            raise StateError(f"state snapshot is incomplete or corrupt: {err}") from None
        return PipelineState(
            FeatureState.restore(features, self.config.features), detections, baseline, calibration
        )


def _report(
    events_in: int,
    duplicates: int,
    late: int,
    windows: pl.DataFrame,
    principals: int,
    watermark: datetime | None,
    findings: Sequence[Finding],
    learning: tuple[int | None, float],
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
        principals_learning=learning[0],
        model_threshold=learning[1],
    )
