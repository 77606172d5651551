"""Property: feeding events whole or split anywhere into batches reports the same findings.

Holds for every detection that looks at one event at a time (and at the profile, which does
not change within a run here): the dedup key is (detection, principal, epoch-aligned period),
so the batch boundary cannot move it. The detections that count within a batch by design
(repeated sign-in failures, bulk reads and suppressions, probing refusals, many launches) are
left out: a split can move a count under its threshold, as their README entries say.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from detector.detections import DetectionConfig, DetectionState, default_detections, run_detections
from detector.events import records_to_events

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
PER_EVENT = tuple(d for d in default_detections() if d.id not in COUNTING_WITHIN_A_BATCH)
POOL = [
    {**record, "eventTime": None}  # time set by the strategy
    for d in PER_EVENT
    for example in d.positives + d.negatives
    for record in example
]


@st.composite
def stream(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Example records at drawn times over three hours, in time order, unique ids."""
    picks = draw(st.lists(st.sampled_from(range(len(POOL))), min_size=1, max_size=25))
    minutes = sorted(draw(st.lists(st.integers(0, 179), min_size=len(picks), max_size=len(picks))))
    records = []
    for n, (i, minute) in enumerate(zip(picks, minutes, strict=True)):
        record = dict(POOL[i])
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
