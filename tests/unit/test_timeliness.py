"""Time to detect: receipt stamps, early reports then corrections, first-report latency, and
the live pipeline ending with a replay's findings (docs/latency.md)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import polars as pl
import pytest

from detector import timeliness
from detector.features import FeatureConfig
from detector.findings import (
    AggregationConfig,
    AggregationState,
    Finding,
    aggregate_findings,
    finding_from_json,
    finding_id_of,
    finding_to_dict,
)
from detector.pipeline import Pipeline, PipelineConfig, PipelineState, StepReport
from detector.scoring import DEFAULT_MODEL_DIR, MODEL_KIND, load_artifact
from detector.timeliness import (
    EarlyConfig,
    EarlyState,
    Receipts,
    detect_seconds,
    early_reports,
    first_reports,
    stamp_windows,
)

T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)
NOW = datetime(2030, 1, 1, tzinfo=UTC)
CONFIG = AggregationConfig()
PERIOD_ID = finding_id_of(MODEL_KIND, "role/app", T0)  # the 12:00-18:00 aggregate


def window(minute: int, severity: float, *, events: int = 5) -> Finding:
    """The model's occurrence for the 5-minute window starting ``minute`` after 12:00."""
    start = T0 + timedelta(minutes=minute)
    return Finding(
        finding_id=finding_id_of(MODEL_KIND, "role/app", start),
        kind=MODEL_KIND,
        title="role/app: activity unlike its history",
        severity=severity,
        principal="role/app",
        principal_arn=None,
        principal_type="AssumedRole",
        account_id="111122223333",
        region="eu-west-1",
        window_start=start,
        window_end=start + timedelta(minutes=5),
        first_seen=start + timedelta(seconds=10),
        last_seen=start + timedelta(seconds=10 + events),
        created_at=NOW,
        score=severity / 10,
        event_ids=tuple(f"e{minute}-{i}" for i in range(events)),
        event_count=events,
        received_at=start + timedelta(seconds=13),
    )


def test_the_public_names_are_the_intended_ones() -> None:
    assert sorted(timeliness.__all__) == sorted(
        [
            "DEFAULT_EARLY_EVERY",
            "FAMILIES",
            "RECEIPTS_SCHEMA",
            "EarlyConfig",
            "EarlyState",
            "Family",
            "Receipts",
            "detect_seconds",
            "early_reports",
            "family_of",
            "first_reports",
            "stamp_batch",
            "stamp_windows",
        ]
    )


def test_an_open_window_is_reported_early_then_updated_under_the_same_id() -> None:
    """One window, scored at three ticks while open, then closed::

    12:00 [window ─────────────────────)12:05        watermark passes 12:05
    tick     :30 sev 5   :01 sev 5   :02 sev 7.5     final occurrence, sev 7.5
    sent     provisional  -           provisional     final (same id)
    """
    aggregation = AggregationState()
    state, first = early_reports(
        EarlyState(), [window(0, 5.0)], aggregation, CONFIG, T0 + timedelta(seconds=30), NOW
    )
    state, same = early_reports(
        state, [window(0, 5.0)], aggregation, CONFIG, T0 + timedelta(minutes=1), NOW
    )
    state, rose = early_reports(
        state, [window(0, 7.5, events=9)], aggregation, CONFIG, T0 + timedelta(minutes=2), NOW
    )
    _, final = aggregate_findings(aggregation, [window(0, 7.5, events=12)], None, CONFIG, NOW)

    assert [f.finding_id for f in first] == [PERIOD_ID]
    assert first[0].provisional
    assert first[0].count == 1
    assert first[0].severity == 5.0
    assert same == []
    assert [(f.finding_id, f.severity, f.event_count) for f in rose] == [(PERIOD_ID, 7.5, 9)]
    assert rose[0].provisional
    assert [(f.finding_id, f.provisional, f.event_count) for f in final] == [(PERIOD_ID, False, 12)]
    # The final send updates the early report: it is not a first report again.
    assert first_reports(first, aggregation, EarlyState(), CONFIG) == first
    assert first_reports(final, aggregation, state, CONFIG) == []


def test_an_early_report_follows_the_aggregation_rules_of_its_finding() -> None:
    """The 12:00 window was sent at severity 7.5; an open 12:30 window at 5.0 would not be sent
    by the aggregation (no severity rise), so it is not reported early either; at 8.0 it is,
    with the count the aggregate would have."""
    aggregation, sent = aggregate_findings(AggregationState(), [window(0, 7.5)], None, CONFIG, NOW)
    assert [f.count for f in sent] == [1]
    tick = T0 + timedelta(minutes=31)
    _, quiet = early_reports(EarlyState(), [window(30, 5.0)], aggregation, CONFIG, tick, NOW)
    _, louder = early_reports(EarlyState(), [window(30, 8.0)], aggregation, CONFIG, tick, NOW)
    assert quiet == []
    assert [(f.finding_id, f.count, f.severity, f.provisional) for f in louder] == [
        (PERIOD_ID, 2, 8.0, True)
    ]


def test_early_state_forgets_closed_windows_and_survives_a_snapshot() -> None:
    tick = T0 + timedelta(seconds=30)
    state, _ = early_reports(
        EarlyState(), [window(0, 5.0), window(5, 5.0)], AggregationState(), CONFIG, tick, NOW
    )
    restored = EarlyState.restore(orjson.loads(orjson.dumps(state.snapshot())))
    assert restored == state
    assert EarlyState.restore(None) == EarlyState()
    closed = state.forget_closed(T0 + timedelta(minutes=5), None)
    assert sorted(closed.sent) == [window(5, 5.0).finding_id]
    assert closed.reported == state.reported
    assert state.forget_closed(None, T0 + timedelta(hours=7)).reported == {}


def test_ticks_follow_event_time() -> None:
    config = EarlyConfig(timedelta(seconds=30))
    state = EarlyState(tick=T0)
    assert state.due(T0 + timedelta(seconds=29), config) is None
    assert state.due(T0 + timedelta(seconds=31), config) == T0 + timedelta(seconds=30)
    assert EarlyState().due(None, config) is None
    with pytest.raises(ValueError, match="every"):
        EarlyConfig(timedelta(0))


def _events(rows: list[tuple[str, str, datetime, datetime | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "event_id": [r[0] for r in rows],
            "principal_key": [r[1] for r in rows],
            "event_time": [r[2] for r in rows],
            "received_time": [r[3] for r in rows],
        },
        schema={
            "event_id": pl.String(),
            "principal_key": pl.String(),
            "event_time": pl.Datetime("ms", "UTC"),
            "received_time": pl.Datetime("ms", "UTC"),
        },
    )


def test_a_window_is_stamped_with_its_earliest_receipt_however_its_events_are_batched() -> None:
    minute = timedelta(minutes=1)
    rows = [
        ("a", "role/app", T0 + minute, T0 + 3 * minute),
        ("b", "role/app", T0 + 2 * minute, T0 + 2 * minute),  # received before a: out of order
        ("c", "role/app", T0 + 3 * minute, None),  # a source without a receipt time
        ("d", "role/app", T0 + 6 * minute, T0 + 6 * minute),  # the next window
    ]
    five = timedelta(minutes=5)
    whole = Receipts().note(_events(rows), five)
    split = Receipts()
    for row in reversed(rows):
        split = split.note(_events([row]), five)
    assert whole.snapshot().equals(split.snapshot())
    (stamped,) = stamp_windows([dataclasses.replace(window(0, 5.0), received_at=None)], whole)
    assert stamped.received_at == T0 + 2 * minute
    assert whole.forget_closed(T0 + five, five).snapshot().height == 1
    assert Receipts.restore(whole.snapshot()).snapshot().equals(whole.snapshot())


def test_time_to_detect_is_created_minus_received_per_family() -> None:
    model = window(0, 5.0)
    detection = dataclasses.replace(model, kind="cloudtrail_logging_stopped", finding_id="d" * 32)
    unstamped = dataclasses.replace(model, finding_id="e" * 32, received_at=None)
    assert model.received_at is not None
    expected = (NOW - model.received_at).total_seconds()
    assert detect_seconds([model, detection, unstamped]) == (
        ("model", expected),
        ("detection", expected),
    )


def test_a_version_2_finding_still_reads_as_final_and_unstamped() -> None:
    doc = finding_to_dict(window(0, 5.0))
    del doc["received_at"], doc["provisional"]
    doc["schema_version"] = 2
    finding = finding_from_json(orjson.dumps(doc))
    assert finding.received_at is None
    assert not finding.provisional
    assert finding.schema_version == 3
    doc["schema_version"] = 3
    with pytest.raises(ValueError, match="missing fields: received_at, provisional"):
        finding_from_json(orjson.dumps(doc))


# --- the pipeline: a live stream with early reports, and a replay ------------------------------


def _day_split(small: Any, events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    # As SQS would stamp them: a few seconds after the event.
    events = events.with_columns(received_time=pl.col("event_time") + timedelta(seconds=4))
    cut = small.config.start + timedelta(days=small.config.baseline_days)
    return events.filter(pl.col("event_time") < cut), events.filter(pl.col("event_time") >= cut)


def _feed(
    pipeline: Pipeline, state: PipelineState, events: pl.DataFrame, batch: int
) -> tuple[list[tuple[int, Finding]], list[StepReport]]:
    sent: list[tuple[int, Finding]] = []
    reports = []
    for i, lo in enumerate(range(0, events.height, batch)):
        state, found, report = pipeline.step(state, events.slice(lo, batch), NOW)
        sent += [(i, f) for f in found]
        reports.append(report)
    state, found, report = pipeline.flush(state, NOW)
    return [*sent, *((len(reports), f) for f in found)], [*reports, report]


def _final(sent: list[Finding]) -> dict[str, tuple[Any, ...]]:
    latest: dict[str, Finding] = {}
    for f in sent:
        latest[f.finding_id] = f
    return {
        i: (f.count, f.severity, f.first_seen, f.last_seen, f.event_count, f.received_at)
        for i, f in latest.items()
    }


def test_the_live_pipeline_reports_early_then_updates_and_ends_like_a_replay(
    small_trail: Any, small_events: pl.DataFrame
) -> None:
    """Four clean days warm the state (principals past their learning period); the attack
    day is then streamed in small batches with early reports, and replayed in large ones
    without: the stream's non-provisional sends end, per id, where the replay's do."""
    history, day = _day_split(small_trail, small_events)
    artifact = load_artifact(DEFAULT_MODEL_DIR)
    replaying = Pipeline(artifact)
    live = Pipeline(
        artifact, config=PipelineConfig(FeatureConfig(window=artifact.window), early=EarlyConfig())
    )
    warm = replaying.initial_state()
    for lo in range(0, history.height, 50_000):
        warm, _, _ = replaying.step(warm, history.slice(lo, 50_000), NOW)

    streamed, reports = _feed(live, warm, day, 400)
    replayed, _ = _feed(replaying, warm, day, 50_000)

    final = [f for _, f in streamed if not f.provisional]
    assert _final(final) == _final([f for _, f in replayed])
    early = [(i, f) for i, f in streamed if f.provisional]
    assert early, "an attack window is anomalous before it closes"
    assert all(f.kind == MODEL_KIND for _, f in early)
    for i, f in early:
        # Updated, not duplicated: the early report's id is the id the window's final
        # occurrence is sent under, in a later step.
        assert any(j > i and g.finding_id == f.finding_id for j, g in streamed), f
    assert all(f.received_at is not None for _, f in streamed)
    families = {family for r in reports for family, _ in r.detect_seconds}
    assert families == {"model", "detection"}
    firsts = sum(len(r.detect_seconds) for r in reports)
    assert firsts == len({f.finding_id for _, f in streamed})  # each finding's first report once
    assert sum(r.early_reports for r in reports) == len(early)
