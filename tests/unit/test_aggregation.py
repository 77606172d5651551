"""Repeats become one finding: aggregation of occurrences per kind, principal and period.

Timeline of the tests (6 h periods, close 30 min after the period's end)::

    00:00        06:00  06:30
    |--period A--|      close A
      o  o  O           (o = occurrence, O = a more severe one)
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from functools import cache

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.events import records_to_events
from detector.findings import (
    AggregationConfig,
    AggregationState,
    Finding,
    aggregate_findings,
    finding_id_of,
    flush_aggregates,
)
from detector.pipeline import Pipeline
from detector.scoring import DEFAULT_MODEL_DIR, load_artifact
from detector.synthetic import SyntheticConfig, generate

T0 = datetime(2024, 5, 1, tzinfo=UTC)
CONFIG = AggregationConfig()
PRINCIPAL = "arn:aws:iam::111122223333:user/alice"


def occurrence(minute: int, severity: float = 5.0, kind: str = "model_anomaly") -> Finding:
    start = T0 + timedelta(minutes=minute)
    return Finding(
        finding_id=finding_id_of(kind, PRINCIPAL, start),
        kind=kind,
        title="t",
        severity=severity,
        principal=PRINCIPAL,
        principal_arn=PRINCIPAL,
        principal_type="IAMUser",
        account_id="111122223333",
        region="eu-west-1",
        window_start=start,
        window_end=start + timedelta(minutes=5),
        first_seen=start,
        last_seen=start + timedelta(minutes=4),
        created_at=start + timedelta(minutes=5),
        score=severity / 10,
        event_ids=(f"e{minute:04d}",),
        event_count=2,
    )


def feed(
    state: AggregationState, found: list[Finding], minute: int
) -> tuple[AggregationState, list[Finding]]:
    mark = T0 + timedelta(minutes=minute)
    return aggregate_findings(state, found, mark, CONFIG, mark)


def test_repeats_within_a_period_update_one_finding_sent_once() -> None:
    state, first = feed(AggregationState(), [occurrence(10)], 15)
    state, second = feed(state, [occurrence(60)], 65)
    state, third = feed(state, [occurrence(120)], 125)
    assert [f.count for f in first] == [1]
    assert second == []
    assert third == []
    assert first[0].finding_id == finding_id_of("model_anomaly", PRINCIPAL, T0)
    assert (first[0].window_start, first[0].window_end) == (T0, T0 + timedelta(hours=6))


def test_a_severity_rise_sends_the_finding_again_under_the_same_id() -> None:
    state, first = feed(AggregationState(), [occurrence(10, 4.0)], 15)
    state, same = feed(state, [occurrence(20, 4.0)], 25)
    state, rise = feed(state, [occurrence(30, 7.5)], 35)
    assert same == []
    assert [(f.finding_id, f.count, f.severity) for f in rise] == [(first[0].finding_id, 3, 7.5)]
    assert rise[0].first_seen == T0 + timedelta(minutes=10)
    assert rise[0].last_seen == T0 + timedelta(minutes=34)
    assert rise[0].event_count == 6


def test_the_period_end_sends_a_summary_when_the_count_grew_and_forgets_it() -> None:
    state, _ = feed(AggregationState(), [occurrence(10)], 15)
    state, _ = feed(state, [occurrence(70)], 75)
    state, before = feed(state, [], 6 * 60 + 29)
    state, closed = feed(state, [], 6 * 60 + 30)
    assert before == []
    assert [(f.count, f.last_seen) for f in closed] == [(2, T0 + timedelta(minutes=74))]
    state, later = feed(state, [occurrence(6 * 60 + 40)], 6 * 60 + 45)
    # The next period is another finding.
    assert later[0].finding_id == finding_id_of("model_anomaly", PRINCIPAL, T0 + timedelta(hours=6))
    assert later[0].count == 1


def test_a_period_with_one_occurrence_closes_without_a_second_send() -> None:
    state, _ = feed(AggregationState(), [occurrence(10)], 15)
    state, closed = feed(state, [], 7 * 60)
    assert closed == []
    assert flush_aggregates(state, T0)[1] == []


def test_a_duplicate_delivery_of_an_occurrence_is_not_counted_twice() -> None:
    state, _ = feed(AggregationState(), [occurrence(10), occurrence(10)], 15)
    state, _ = feed(state, [occurrence(10)], 20)
    _, pending = flush_aggregates(state, T0)
    assert pending == []  # count is still the 1 already sent


def test_kinds_and_principals_are_separate_findings() -> None:
    _, sent = feed(
        AggregationState(),
        [occurrence(10), occurrence(10, kind="root_console_sign_in")],
        15,
    )
    assert len({f.finding_id for f in sent}) == 2


def test_flush_sends_what_grew_and_keeps_counting_after() -> None:
    state, _ = feed(AggregationState(), [occurrence(10)], 15)
    state, _ = feed(state, [occurrence(20)], 25)
    state, pending = flush_aggregates(state, T0)
    assert [f.count for f in pending] == [2]
    state, _ = feed(state, [occurrence(30)], 35)
    _, closed = feed(state, [], 7 * 60)
    assert [f.count for f in closed] == [3]


def test_a_snapshot_restores_to_an_equal_state() -> None:
    state, _ = feed(AggregationState(), [occurrence(10), occurrence(20, 7.0)], 25)
    assert AggregationState.restore(state.snapshot()) == state


def test_a_bad_snapshot_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="version"):
        AggregationState.restore({"version": 99})


def test_a_bad_period_is_refused() -> None:
    with pytest.raises(ValueError, match="aggregation period"):
        AggregationConfig(period=timedelta(0))


def _final(sent: list[Finding]) -> dict[str, tuple[int, float, datetime, datetime, int]]:
    latest: dict[str, Finding] = {}
    for f in sent:
        latest[f.finding_id] = f
    return {
        i: (f.count, f.severity, f.first_seen, f.last_seen, f.event_count)
        for i, f in latest.items()
    }


@settings(max_examples=40, deadline=None)
@given(
    severities=st.lists(st.sampled_from([2.0, 5.0, 7.5]), min_size=1, max_size=30),
    cuts=st.sets(st.integers(min_value=1, max_value=29)),
    restart_at=st.integers(min_value=0, max_value=30),
)
def test_any_batch_split_and_restart_give_the_same_ids_and_counts(
    severities: list[float], cuts: set[int], restart_at: int
) -> None:
    """30 occurrences 40 minutes apart span three periods; fed whole or in any batches, with a
    snapshot/restore anywhere, the last sent record of every id is the same."""
    found = [occurrence(40 * i, s) for i, s in enumerate(severities)]
    whole, sent_whole = feed(AggregationState(), found, 40 * len(found))
    sent_whole += flush_aggregates(whole, T0)[1]
    bounds = [0, *sorted(c for c in cuts if c < len(found)), len(found)]
    state, sent = AggregationState(), []
    for lo, hi in itertools.pairwise(bounds):
        if lo <= restart_at < hi:
            state = AggregationState.restore(state.snapshot())
        state, out = feed(state, found[lo:hi], 40 * hi)
        sent += out
    sent += flush_aggregates(state, T0)[1]
    assert _final(sent) == _final(sent_whole)


@cache
def _trail_events() -> pl.DataFrame:
    trail = generate(
        SyntheticConfig(baseline_days=1, attack_days=1, people=3, apps=2, pipelines=1, iam_users=2),
        seed=3,
    )
    return records_to_events(trail.records, origin="synthetic").events.sort("event_time")


def _run(
    pipeline: Pipeline, events: pl.DataFrame, batch: int, restart: int | None
) -> list[Finding]:
    state = pipeline.initial_state()
    sent: list[Finding] = []
    for i, start in enumerate(range(0, events.height, batch)):
        if restart == i:
            state = pipeline.restore(pipeline.snapshot(state))
        chunk = events.slice(start, batch)
        state, out, _ = pipeline.step(state, chunk, T0)
        sent += out
    state, out, _ = pipeline.flush(state, T0)
    return sent + out


def test_the_pipeline_gives_the_same_ids_and_counts_in_replay_and_in_a_restarted_stream() -> None:
    """A replay in large batches and a stream in small batches restarted from a snapshot
    mid-period send, per id, the same last record (ids, counts, times, severity)."""
    pipeline = Pipeline(load_artifact(DEFAULT_MODEL_DIR))
    events = _trail_events()
    replayed = _run(pipeline, events, 20_000, None)
    streamed = _run(pipeline, events, 1_500, 7)
    assert replayed, "the trail has attacks: something must be found"
    assert _final(streamed) == _final(replayed)
    assert any(f.count > 1 for f in replayed), "some kind repeats within a period in two days"
