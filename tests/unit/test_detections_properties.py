"""Property: feeding events whole or split anywhere into batches reports the same findings.

Holds for every detection that looks at one event at a time (and at the profile, which does
not change within a run here): the dedup key is (detection, principal, epoch-aligned period),
so the batch boundary cannot move it. The detections that count within a batch by design
(repeated sign-in failures, bulk reads and suppressions, probing refusals, many launches) are
left out: a split can move a count under its threshold, as their README entries say.

The detections that also count as known what the batch itself showed ``profile_lag`` earlier
(``learned_in_batch``) are checked through the pipeline instead: across a split, what the
first batch showed reaches them through the pipeline's profile and aggregation, which runs of
the detections alone do not have. There a split reports no finding that the whole batch does
not; the whole batch may report more (see the test).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from detector.detections import (
    Detection,
    DetectionConfig,
    DetectionState,
    default_detections,
    run_detections,
)
from detector.detections._examples import api_call, instance_role_session
from detector.events import records_to_events
from detector.pipeline import Pipeline
from detector.scoring import DEFAULT_MODEL_DIR, load_artifact

NOW = datetime(2024, 5, 2, tzinfo=UTC)
COUNTING_WITHIN_A_BATCH = {
    "console_login_failures_repeated",
    "console_login_failures_from_one_address",
    "defense_evasion_attempt_failed",
    "defense_evasion_attempt_failed_suspicious",
    "secrets_read_in_bulk",
    "security_hub_findings_suppressed_in_bulk",
    "ec2_instances_launched_unusually",
}
LEARNING_WITHIN_A_BATCH = {"instance_credentials_used_outside", "console_login_without_mfa"}
PER_EVENT = tuple(
    d for d in default_detections() if d.id not in COUNTING_WITHIN_A_BATCH | LEARNING_WITHIN_A_BATCH
)
LEARNING = tuple(d for d in default_detections() if d.id in LEARNING_WITHIN_A_BATCH)


def examples_of(detections: tuple[Detection, ...]) -> list[dict[str, Any]]:
    return [
        {**record, "eventTime": None}  # time set by the strategy
        for d in detections
        for example in d.positives + d.negatives
        for record in example
    ]


POOL = examples_of(PER_EVENT)
LEARNING_POOL = examples_of(LEARNING)


@st.composite
def stream(draw: st.DrawFn, pool: list[dict[str, Any]] = POOL) -> list[dict[str, Any]]:
    """Example records at drawn times over three hours, in time order, unique ids."""
    picks = draw(st.lists(st.sampled_from(range(len(pool))), min_size=1, max_size=25))
    minutes = sorted(draw(st.lists(st.integers(0, 179), min_size=len(picks), max_size=len(picks))))
    records = []
    for n, (i, minute) in enumerate(zip(picks, minutes, strict=True)):
        record = dict(pool[i])
        record["eventTime"] = f"2024-05-01T{12 + minute // 60:02d}:{minute % 60:02d}:00Z"
        record["eventID"] = f"{record['eventID']}-{n}"
        records.append(record)
    return records


def finding_ids(batches: list[list[dict[str, Any]]]) -> list[str]:
    state = DetectionState()
    ids: list[str] = []
    for i, batch in enumerate(batches):
        events = records_to_events(batch, origin=f"batch-{i}").events
        state, found = run_detections(events, PER_EVENT, state, DetectionConfig(), NOW)
        ids.extend(f.finding_id for f in found)
    return ids


@settings(max_examples=40, deadline=None)
@given(records=stream(), data=st.data())
def test_split_batches_report_the_same_findings_as_one_batch(
    records: list[dict[str, Any]], data: st.DataObject
) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(records) - 1)), max_size=4)))
    batches = [records[a:b] for a, b in zip([0, *cuts], [*cuts, len(records)], strict=True)]
    whole = finding_ids([records])
    split = finding_ids([b for b in batches if b])
    assert sorted(whole) == sorted(split)
    assert len(set(whole)) == len(whole)


@cache
def learning_pipeline() -> Pipeline:
    return Pipeline(load_artifact(DEFAULT_MODEL_DIR), detections=LEARNING)


def pipeline_ids(batches: list[list[dict[str, Any]]]) -> set[str]:
    """The ids of the learning detections' findings, sent by the pipeline or at its flush."""
    pipeline = learning_pipeline()
    state = pipeline.initial_state()
    sent = []
    for i, batch in enumerate(batches):
        events = records_to_events(batch, origin=f"batch-{i}").events
        state, found, _ = pipeline.step(state, events, NOW)
        sent += found
    sent += pipeline.flush(state, NOW)[1]
    return {f.finding_id for f in sent if f.kind in LEARNING_WITHIN_A_BATCH}


def test_the_learning_detections_are_the_ones_named() -> None:
    assert {d.id for d in LEARNING} == LEARNING_WITHIN_A_BATCH


@settings(max_examples=30, deadline=None)
@given(records=stream(LEARNING_POOL), data=st.data())
def test_split_batches_report_no_finding_that_one_batch_does_not_in_the_pipeline(
    records: list[dict[str, Any]], data: st.DataObject
) -> None:
    """Split (a stream) reports no id that whole (a replay) does not. Whole may report more:
    ``learned_in_batch`` sees only the detection's own candidate rows, while a stream's
    profile learns from every row (``detector/detections/_expressions.py``)."""
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(records) - 1)), max_size=3)))
    batches = [records[a:b] for a, b in zip([0, *cuts], [*cuts, len(records)], strict=True)]
    assert pipeline_ids([b for b in batches if b]) <= pipeline_ids([records])


def test_an_address_the_first_batch_showed_an_hour_before_is_the_same_finding() -> None:
    # Found by the property above: alone, the detection reports the 13:00 call again after a
    # split (nothing carries the 12:00 call across); the pipeline folds it into the same id.
    calls = [
        api_call(
            "ec2.amazonaws.com",
            "DescribeInstances",
            identity=instance_role_session("orders-app", "i-0abc1234def567890"),
            source_ip="203.0.113.10",
            read_only=True,
            event_time=at,
        )
        for at in ("2024-05-01T12:00:00Z", "2024-05-01T13:00:00Z")
    ]
    calls[1]["eventID"] = calls[1]["eventID"] + "-later"
    whole = pipeline_ids([calls])
    assert len(whole) == 1
    assert pipeline_ids([calls[:1], calls[1:]]) == whole
