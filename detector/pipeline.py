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
   when its severity rises and when its period closes (:mod:`detector.findings`);
5. timeliness (:mod:`detector.timeliness`): every finding is stamped with the time its first
   event reached the detector (``received_at``); with ``PipelineConfig.early`` set (the
   service), the open windows are scored every 30 s of event time and those already anomalous
   are reported early, as provisional updates that the aggregation state never sees.

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
from detector.features import (
    FeatureConfig,
    FeatureState,
    UpdateReport,
    advance,
    empty_state,
    flush,
    preview,
    update,
)
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
from detector.timeliness import (
    EarlyConfig,
    EarlyState,
    Receipts,
    detect_seconds,
    early_reports,
    first_reports,
    stamp_batch,
    stamp_windows,
)

__all__ = ["Pipeline", "PipelineConfig", "PipelineState", "StepReport"]

PIPELINE_FORMAT: Final = "pipeline/1"
_FEATURES_PREFIX: Final = "features_"
_BASELINE_FRAME: Final = "baseline"
_GROUPS_FRAME: Final = "baseline_groups"
_CALIBRATION_META: Final = "calibration"
_RECEIPTS_FRAME: Final = "receipts"
_EARLY_META: Final = "early"


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    detections: DetectionConfig = field(default_factory=DetectionConfig)
    aggregation: AggregationConfig = field(default_factory=AggregationConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)
    # None: no early reports (replay, training); the service sets it (docs/latency.md).
    early: EarlyConfig | None = None


@dataclass(frozen=True, slots=True)
class PipelineState:
    features: FeatureState
    detections: DetectionState
    baseline: OwnBaseline
    calibration: LiveThreshold
    aggregation: AggregationState = field(default_factory=AggregationState)
    receipts: Receipts = field(default_factory=Receipts)
    early: EarlyState = field(default_factory=EarlyState)

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
    # Per finding reported for the first time: (family, created_at - received_at in seconds).
    detect_seconds: tuple[tuple[str, float], ...] = ()
    early_reports: int = 0  # provisional findings among those sent


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
        receipts = state.receipts.note(events, self.config.features.window)
        signature_findings = stamp_batch(
            [dataclasses.replace(f, created_at=now) for f in detected.findings], events
        )
        newest = events.get_column("event_time").max() if events.height else None
        newest = newest if isinstance(newest, datetime) else None
        aggregation, findings = aggregate_findings(
            state.aggregation,
            [*signature_findings, *stamp_windows(scored.findings, receipts)],
            newest,
            self.config.aggregation,
            now,
        )
        early, provisional = self._early(
            state.early, features, scoring, receipts, aggregation, newest, now
        )
        new_state = PipelineState(
            features, detected.state, scoring.baseline, scoring.live, aggregation, receipts, early
        )
        return self._finish(
            state,
            new_state,
            [*findings, *provisional],
            windows,
            report,
            now,
            detected.failures,
            scored.scores,
        )

    def open_window_ends(self, state: PipelineState) -> tuple[datetime, datetime] | None:
        """The earliest and the latest end of the open windows (None: none is open)."""
        windows = state.features.windows
        if windows.height == 0:
            return None
        first, last = windows.select(
            pl.col("window_start").min().alias("first"), pl.col("window_start").max().alias("last")
        ).row(0)
        window = self.config.features.window
        return first + window, last + window

    def _early(
        self,
        early: EarlyState,
        features: FeatureState,
        scoring: ScoringState,
        receipts: Receipts,
        aggregation: AggregationState,
        newest: datetime | None,
        now: datetime,
    ) -> tuple[EarlyState, list[Finding]]:
        """At each tick of event time, the open windows scored as they stand; those above the
        threshold reported early (:mod:`detector.timeliness._early`). Nothing is learned."""
        config = self.config.early
        tick = None if config is None else early.due(newest, config)
        if tick is None:
            return early, []
        if features.open_windows == 0:
            return EarlyState(tick, early.sent, early.reported), []
        rows = preview(features, self.config.features)
        if early.tick is not None:
            # A window with no event since the last tick scores as it did then.
            rows = rows.filter(pl.col("last_seen") >= early.tick)
        _, scored = score_windows(
            self.artifact, scoring, rows, created_at=now, learning=self.config.learning
        )
        occurrences = stamp_windows(scored.findings, receipts)
        return early_reports(early, occurrences, aggregation, self.config.aggregation, tick, now)

    def _finish(
        self,
        before: PipelineState,
        after: PipelineState,
        findings: list[Finding],
        windows: pl.DataFrame,
        report: UpdateReport,
        now: datetime,
        failures: tuple[DetectionFailure, ...] = (),
        scores: np.ndarray | None = None,
    ) -> tuple[PipelineState, list[Finding], StepReport]:
        """Forget the closed windows' receipts and early reports; the step's report."""
        watermark = after.features.watermark
        state = dataclasses.replace(
            after,
            receipts=after.receipts.forget_closed(watermark, self.config.features.window),
            early=after.early.forget_closed(watermark, after.aggregation.watermark),
        )
        firsts = first_reports(findings, before.aggregation, before.early, self.config.aggregation)
        step = _report(
            report.events_in,
            report.duplicates,
            report.late_events,
            windows,
            report.principals,
            report.watermark,
            findings,
            self._learning(after.scoring, report.watermark, windows.height),
            failures,
            scores,
            detect_seconds(firsts),
        )
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
        return self._close(state, features, windows, report, now, send_pending=True)

    def advance(
        self, state: PipelineState, watermark: datetime, now: datetime
    ) -> tuple[PipelineState, list[Finding], StepReport]:
        """Move the watermark to ``watermark`` (never back) and close, score and report the
        windows it passes: the service's idle queue at night (:func:`idle_watermark
        <detector.service._policy.idle_watermark>`); never called in a replay."""
        features, windows, report = advance(state.features, watermark, self.config.features)
        return self._close(state, features, windows, report, now, send_pending=False)

    def _close(
        self,
        state: PipelineState,
        features: FeatureState,
        windows: pl.DataFrame,
        report: UpdateReport,
        now: datetime,
        *,
        send_pending: bool,
    ) -> tuple[PipelineState, list[Finding], StepReport]:
        scoring, scored = score_windows(
            self.artifact, state.scoring, windows, created_at=now, learning=self.config.learning
        )
        aggregation, findings = aggregate_findings(
            state.aggregation,
            stamp_windows(scored.findings, state.receipts),
            None,
            self.config.aggregation,
            now,
        )
        if send_pending:
            aggregation, pending = flush_aggregates(aggregation, now)
            findings = _latest_per_id([*findings, *pending])
        after = PipelineState(
            features,
            state.detections,
            scoring.baseline,
            scoring.live,
            aggregation,
            state.receipts,
            state.early,
        )
        return self._finish(state, after, findings, windows, report, now, scores=scored.scores)

    def snapshot(self, state: PipelineState) -> Snapshot:
        features = state.features.snapshot(self.config.features)
        frames = {f"{_FEATURES_PREFIX}{k}": v for k, v in features.frames.items()}
        frames[_BASELINE_FRAME] = state.baseline.snapshot()
        frames[_GROUPS_FRAME] = state.baseline.groups_snapshot()
        frames[_RECEIPTS_FRAME] = state.receipts.snapshot()
        meta = {f"{_FEATURES_PREFIX}{k}": v for k, v in features.meta.items()}
        meta["format"] = PIPELINE_FORMAT
        meta["detections"] = orjson.dumps(state.detections.snapshot()).decode()
        meta["aggregation"] = orjson.dumps(state.aggregation.snapshot()).decode()
        meta[_CALIBRATION_META] = orjson.dumps(state.calibration.snapshot()).decode()
        meta[_EARLY_META] = orjson.dumps(state.early.snapshot()).decode()
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
            # Snapshots from before receipts and early reports have none.
            receipts = Receipts.restore(snapshot.frames.get(_RECEIPTS_FRAME))
            early_text = snapshot.meta.get(_EARLY_META)
            early = EarlyState.restore(None if early_text is None else orjson.loads(early_text))
        except (KeyError, ValueError) as err:
            raise StateError(f"state snapshot is incomplete or corrupt: {err}") from None
        return PipelineState(
            FeatureState.restore(features, self.config.features),
            detections,
            baseline,
            calibration,
            aggregation,
            receipts,
            early,
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
    latencies: tuple[tuple[str, float], ...] = (),
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
        detect_seconds=latencies,
        early_reports=sum(f.provisional for f in findings),
    )


def _principal_days(windows: pl.DataFrame) -> frozenset[tuple[str, int]]:
    if windows.height == 0:
        return frozenset()
    pairs = windows.select(
        pl.col("principal_key"), pl.col("window_start").dt.epoch("d").alias("day")
    ).unique()
    return frozenset(zip(pairs["principal_key"].to_list(), pairs["day"].to_list(), strict=True))
