"""Properties of ``read_events``' merge, on random archives (hypothesis).

Each example is one trail stream: files delivered at whole minutes, in order, each holding
events that happened some seconds before its delivery (a few, much earlier: late). For any
such archive, chunk size and lateness:

- every event comes out exactly once;
- an event comes out after a newer one only if it was delivered more than ``lateness`` after
  it happened (the ordering guarantee of :func:`read_events`);
- resuming from any chunk's cursor emits exactly the events after that chunk.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.archive import (
    ArchiveFilter,
    ArchiveObject,
    EventMerger,
    InMemorySource,
    decode_object,
    trail_key,
)
from tests.unit.test_archive_source import ACCOUNTS, ids_of, record, replay, trail_file

T0 = datetime(2024, 5, 1, 23, 30, tzinfo=UTC)
REGION = "eu-west-1"

files_strategy = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=12),  # minutes since the previous delivery
        st.lists(  # seconds from each event to the delivery
            st.one_of(
                st.integers(min_value=0, max_value=600), st.integers(min_value=0, max_value=5400)
            ),
            max_size=8,
        ),
    ),
    min_size=1,
    max_size=25,
)


def build(
    files: list[tuple[int, list[int]]],
) -> tuple[dict[str, bytes], dict[str, int]]:
    """Archive files, and each event's delivery delay in seconds."""
    archive: dict[str, bytes] = {}
    delays: dict[str, int] = {}
    delivered = T0
    for n, (gap, event_delays) in enumerate(files):
        delivered += timedelta(minutes=gap)
        batch = []
        for k, delay in enumerate(event_delays):
            event_id = f"e{n:03d}-{k}"
            batch.append(
                record(delivered - timedelta(seconds=delay), event_id, ACCOUNTS[0], REGION)
            )
            delays[event_id] = delay
        key = trail_key(ACCOUNTS[0], REGION, delivered, unique=f"U{n:05d}")
        archive[key] = trail_file(batch)
    return archive, delays


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    files=files_strategy,
    chunk_events=st.integers(min_value=1, max_value=30),
    lateness_minutes=st.integers(min_value=0, max_value=30),
    resume_at=st.integers(min_value=0, max_value=1000),
)
def test_merge_order_completeness_and_resumption(
    files: list[tuple[int, list[int]]], chunk_events: int, lateness_minutes: int, resume_at: int
) -> None:
    archive, delays = build(files)
    lateness = timedelta(minutes=lateness_minutes)
    options: dict[str, Any] = {"chunk_events": chunk_events, "lateness": lateness, "read_ahead": 3}
    chunks = run(replay(InMemorySource(archive), **options))
    ids = ids_of(chunks)
    assert sorted(ids) == sorted(delays)

    newest = datetime.min.replace(tzinfo=UTC)
    for chunk in chunks:
        for event_id, when in chunk.events.select("event_id", "event_time").iter_rows():
            if when < newest:
                assert delays[event_id] > lateness.total_seconds(), event_id
            newest = max(newest, when)
    assert sum(c.counts.late_events for c in chunks) <= sum(
        1 for d in delays.values() if d > lateness.total_seconds()
    )

    k = resume_at % len(chunks)
    emitted = sum(c.events.height for c in chunks[: k + 1])
    rest = run(replay(InMemorySource(archive), start_after=chunks[k].cursor, **options))
    assert sorted(ids_of(rest)) == sorted(ids[emitted:])


def test_the_merger_releases_only_what_is_older_than_the_watermark() -> None:
    """Three files, five-minute lateness (times are minutes past 23:30)::

    file delivered:   35         40         50
    its events:       31 33      36 38 25*  44 49      (* late: 15 minutes old)
    watermark after:  30         35         45
    released:         -          25* 31 33  36 38 44    (49 at the end)
    """
    archive, _ = build([(5, [240, 120]), (5, [240, 120, 900]), (10, [360, 60])])
    merger = EventMerger(timedelta(minutes=5))
    released: list[list[str]] = []
    late = []
    for key in sorted(archive):
        obj = ArchiveObject.of_key(key, 0)
        decoded = decode_object(obj, archive[key], ArchiveFilter())
        late.append(merger.add(obj.position, decoded.events, decoded.progress))
        events, cursor = merger.take()
        released.append(events.get_column("event_id").to_list())
        assert cursor.watermark == decoded.progress - timedelta(minutes=5)  # type: ignore[operator]
    assert released == [[], ["e001-2", "e000-0", "e000-1"], ["e001-0", "e001-1", "e002-0"]]
    assert late == [0, 1, 0]
    merger.finish()
    events, cursor = merger.take()
    assert events.get_column("event_id").to_list() == ["e002-1"]
    assert cursor.is_complete
