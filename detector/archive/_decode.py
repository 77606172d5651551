"""One object's bytes -> its events, filtered: the pure step run in worker threads.

Trail files go through :func:`detector.events.archive_to_events` (the same parser as the
service), chunks of envelopes through :func:`detector.events.envelopes_to_events`. The result
is filtered exactly (:meth:`ArchiveFilter.event_predicate`), and its event times are sorted
(numpy, :func:`sorted_times`) so the merge can split it with a binary search. Everything here is a function of its arguments and is
picklable, so it can run in a thread or a process pool.

Imports: the standard library, polars, :mod:`detector.events` and this package's filter,
objects and JSONL chunk keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from detector.archive._filter import ArchiveFilter
from detector.archive._jsonl import JsonlChunk
from detector.archive._merge import SortedTimes, sorted_times
from detector.archive._object import ArchiveObject
from detector.events import ParseResult, RecordFailure, archive_to_events, envelopes_to_events

__all__ = ["DecodedObject", "decode_object"]


@dataclass(frozen=True, slots=True)
class DecodedObject:
    """The events of one object that the filter selects."""

    events: pl.DataFrame  # in the file's order
    order: SortedTimes  # the events' times, sorted, for the merger
    failures: tuple[RecordFailure, ...]
    progress: datetime | None  # how far the source has got: delivery stamp, or newest event
    duplicate_events: int = 0
    filtered_events: int = 0
    skipped: int = 0  # recognised as a digest by its content


def _parse(obj: ArchiveObject, data: bytes) -> ParseResult:
    if obj.kind == "envelopes":
        chunk = JsonlChunk.of_key(obj.key)
        numbered = [
            (chunk.first_line + i, line) for i, line in enumerate(data.splitlines()) if line.strip()
        ]
        return envelopes_to_events(
            [line for _, line in numbered],
            message_ids=[f"{chunk.path}:{n}" for n, _ in numbered],
        )
    return archive_to_events(data, obj.key, received_time=obj.delivered)


def decode_object(
    obj: ArchiveObject,
    data: bytes,
    filter: ArchiveFilter,
    drop_before: datetime | None = None,
) -> DecodedObject:
    """Parse, filter and sort one object. ``drop_before`` drops events a replay resumed from a
    cursor has emitted already (see :class:`ArchiveCursor`)."""
    result = _parse(obj, data)
    events = result.events
    progress = obj.delivered
    if progress is None and events.height:
        progress = events.get_column("event_time").max()  # type: ignore[assignment]
    predicate = filter.event_predicate(by_account_and_region=obj.trail is None)
    if predicate is not None:
        events = events.filter(predicate)
    filtered = result.events.height - events.height
    if drop_before is not None:
        events = events.filter(pl.col("event_time") >= drop_before)
    return DecodedObject(
        events,
        sorted_times(events),
        result.failures,
        progress,
        len(result.duplicate_event_ids),
        filtered,
        result.skipped,
    )
