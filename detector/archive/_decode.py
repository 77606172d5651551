"""Objects' bytes -> their events, filtered: the pure step run in a worker thread or process.

Trail files go through :func:`detector.events.archive_to_events` (the same parser as the
service; :func:`~detector.events.archives_to_events` types a batch of them in one
polars call), chunks of envelopes through :func:`detector.events.envelopes_to_events`. The
result is filtered exactly (:meth:`ArchiveFilter.event_predicate`), and each object's event
times are sorted (numpy, :func:`sorted_times`) so the merge can split it with a binary search.
Everything here is a function of its arguments and is picklable, so it can run in a thread or a
process pool: :func:`decode_objects` returns one frame for a whole batch of objects, which
crosses a process boundary in one piece, and :meth:`DecodedBatch.objects` cuts it per object.

Imports: the standard library, numpy, polars, :mod:`detector.events` and this package's filter,
objects, merge order and JSONL chunk keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from detector.archive._filter import ArchiveFilter
from detector.archive._jsonl import JsonlChunk
from detector.archive._merge import SortedTimes, sorted_times
from detector.archive._object import ArchiveObject
from detector.events import (
    DEFAULT_MAX_FILE_BYTES,
    ArchiveFile,
    ParseResult,
    RecordFailure,
    archive_to_events,
    archives_to_events,
    envelopes_to_events,
)

__all__ = ["DecodeLimits", "DecodedBatch", "DecodedObject", "decode_object", "decode_objects"]


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


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """What a replay refuses to read: files beyond ``max_file_bytes`` decompressed, and event
    times beyond ``not_after`` (plus the parser's tolerance) where a file has no delivery stamp
    (see :func:`detector.events.records_to_events`)."""

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    not_after: datetime | None = None


_NO_LIMITS = DecodeLimits()


def _parse(obj: ArchiveObject, data: bytes, limits: DecodeLimits = _NO_LIMITS) -> ParseResult:
    if obj.kind == "envelopes":
        chunk = JsonlChunk.of_key(obj.key)
        numbered = [
            (chunk.first_line + i, line) for i, line in enumerate(data.splitlines()) if line.strip()
        ]
        return envelopes_to_events(
            [line for _, line in numbered],
            message_ids=[f"{chunk.path}:{n}" for n, _ in numbered],
            not_after=limits.not_after,
        )
    return archive_to_events(
        data,
        obj.key,
        received_time=obj.delivered,
        max_bytes=limits.max_file_bytes,
        not_after=limits.not_after,
    )


def decode_object(
    obj: ArchiveObject,
    data: bytes,
    filter: ArchiveFilter,
    drop_before: datetime | None = None,
    limits: DecodeLimits = _NO_LIMITS,
) -> DecodedObject:
    """Parse, filter and sort one object. ``drop_before`` drops events a replay resumed from a
    cursor has emitted already (see :class:`ArchiveCursor`)."""
    result = _parse(obj, data, limits)
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


@dataclass(frozen=True, slots=True)
class _Part:
    """One object of a batch, without its events (they are rows of the batch's frame)."""

    obj: ArchiveObject
    height: int
    order: SortedTimes
    failures: tuple[RecordFailure, ...]
    progress: datetime | None
    duplicate_events: int
    filtered_events: int
    skipped: int


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """The selected events of several objects in one frame, object after object."""

    events: pl.DataFrame
    parts: tuple[_Part, ...]

    def objects(self) -> list[tuple[ArchiveObject, DecodedObject]]:
        """Each object with its :class:`DecodedObject` (its events a slice of the frame)."""
        out = []
        offset = 0
        for p in self.parts:
            events = self.events.slice(offset, p.height)
            offset += p.height
            decoded = DecodedObject(
                events,
                p.order,
                p.failures,
                p.progress,
                p.duplicate_events,
                p.filtered_events,
                p.skipped,
            )
            out.append((p.obj, decoded))
        return out


def decode_objects(
    objects: Sequence[tuple[ArchiveObject, bytes, datetime | None]],
    filter: ArchiveFilter,
    limits: DecodeLimits = _NO_LIMITS,
) -> DecodedBatch:
    """:func:`decode_object` of each ``(object, bytes, drop_before)``, with the trail files'
    records typed together and the filtering done once over the batch."""
    trail = [i for i, (obj, _, _) in enumerate(objects) if obj.kind != "envelopes"]
    files = [
        ArchiveFile(data, obj.key, obj.delivered, limits.max_file_bytes)
        for obj, data, _ in (objects[i] for i in trail)
    ]
    parsed = archives_to_events(files, not_after=limits.not_after)
    results: list[ParseResult | None] = [None] * len(objects)
    for i, result in zip(trail, parsed, strict=True):
        results[i] = result
    for i, (obj, data, _) in enumerate(objects):
        if results[i] is None:
            results[i] = _parse(obj, data, limits)
    done = [r for r in results if r is not None]
    frames = [r.events for r in done]
    events = pl.concat(frames, how="vertical", rechunk=True) if len(frames) > 1 else frames[0]
    parsed_heights = np.array([f.height for f in frames], dtype=np.int64)
    events, heights, filtered = _select(events, parsed_heights, objects, filter)
    times = events.get_column("event_time").to_physical().to_numpy()
    parts = []
    offset = 0
    for (obj, _, _), result, parsed_height, height, filtered_events in zip(
        objects, done, parsed_heights.tolist(), heights.tolist(), filtered.tolist(), strict=True
    ):
        own = times[offset : offset + height]
        offset += height
        rows = np.argsort(own, kind="stable")
        progress = obj.delivered
        if progress is None and parsed_height:
            progress = result.events.get_column("event_time").max()  # type: ignore[assignment]
        parts.append(
            _Part(
                obj,
                height,
                SortedTimes(own[rows], rows),
                result.failures,
                progress,
                len(result.duplicate_event_ids),
                filtered_events,
                result.skipped,
            )
        )
    return DecodedBatch(events, tuple(parts))


Counts = np.ndarray[tuple[int], np.dtype[np.int64]]


def _select(
    events: pl.DataFrame,
    heights: Counts,
    objects: Sequence[tuple[ArchiveObject, bytes, datetime | None]],
    filter: ArchiveFilter,
) -> tuple[pl.DataFrame, Counts, Counts]:
    """The rows each object's filter predicate and ``drop_before`` keep, in one pass over the
    batch; returns them, each object's rows kept and each one's rows the predicate left out."""
    none = np.zeros(len(objects), dtype=np.int64)
    layout = [obj.trail is None for obj, _, _ in objects]
    predicates = {flag: filter.event_predicate(by_account_and_region=flag) for flag in set(layout)}
    drops = [drop for _, _, drop in objects]
    if all(p is None for p in predicates.values()) and all(d is None for d in drops):
        return events, heights, none
    index = np.repeat(np.arange(len(objects)), heights)
    outside = predicates.get(True)  # objects outside the layout: accounts and regions too
    inside = predicates.get(False)
    by_object = pl.Series(layout, dtype=pl.Boolean).gather(index)
    drop_at = pl.Series(drops, dtype=pl.Datetime("ms", "UTC")).gather(index)
    marks = events.select(
        pl.when(by_object)
        .then(pl.lit(True) if outside is None else outside)
        .otherwise(pl.lit(True) if inside is None else inside)
        .fill_null(False)
        .alias("admitted"),
        (drop_at.is_null() | (pl.col("event_time") >= drop_at)).alias("new"),
    )
    admitted = marks.get_column("admitted").to_numpy()
    keep = admitted & marks.get_column("new").to_numpy()
    n = len(objects)
    filtered = np.bincount(index[~admitted], minlength=n).astype(np.int64)
    return events.filter(pl.Series(keep)), np.bincount(index[keep], minlength=n), filtered
