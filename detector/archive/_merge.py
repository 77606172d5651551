"""Merge the events of many files into event-time order, holding back only ``lateness``.

Files arrive in delivery order. A file holds events from before its delivery, rarely more than
a few minutes before it. So once files delivered up to time ``T`` have been read, an event
older than ``T - lateness`` can only still arrive if it was delivered more than ``lateness``
after it happened. The merger keeps that time as its *watermark*::

    watermark = max(progress of the objects read) - lateness

where an object's progress is its delivery stamp (or, for an object without one such as a
chunk of envelopes, its newest event time), and releases every buffered event older than the
watermark. Hence the guarantee, precisely:

- each chunk (one :meth:`EventMerger.take`) is sorted by ``(event_time, event_id)``;
- an event that is not *late* is at least as new as every event released before it;
- an event e is late when the watermark had already passed ``e.event_time`` when e's file was
  added. Files come in delivery order, so that happens only if e was delivered more than
  ``lateness`` after it happened (by the file's stamp; without a stamp: if an earlier object
  held an event more than ``lateness`` newer). Late events are not dropped: they are released
  at once, in the next chunk (sorted into it, so at its front), and counted by :meth:`add`.

Memory holds the events of the last ``lateness`` plus the delivery delay (and late files until
their next release), independent of the archive's length.

The merger also knows which files are done, for the :class:`ArchiveCursor`. This module is
pure: no I/O, no clock. Imports: the standard library, polars and this package's cursor and
objects.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from detector.archive._cursor import ArchiveCursor
from detector.archive._object import FilePosition
from detector.events import empty_events

__all__ = ["NO_EVENTS", "EventMerger", "Piece", "SortedTimes", "sorted_events", "sorted_times"]

_ORDER: Final = ["event_time", "event_id"]
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
NO_EVENTS: Final = empty_events()

Millis = npt.NDArray[np.int64]
Rows = npt.NDArray[np.intp]
# A released part of one file's frame: the frame and which rows (None: all of them).
Piece = tuple[pl.DataFrame, Rows | None]


@dataclass(frozen=True, slots=True)
class SortedTimes:
    """A frame's ``event_time`` as sorted epoch milliseconds, and the rows in that order.

    The merger works on these numpy arrays only, so that the event loop never waits on a polars
    call while decode threads hold the interpreter; frames are left unsorted and their rows are
    gathered once, when a chunk is built (:func:`sorted_events`, in a worker thread).
    """

    times: Millis
    rows: Rows


def sorted_times(events: pl.DataFrame) -> SortedTimes:
    times = events.get_column("event_time").to_physical().to_numpy()
    rows = np.argsort(times, kind="stable")
    return SortedTimes(times[rows], rows)


def _ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


def _datetime(ms: int) -> datetime:
    return _EPOCH + ms * _MS


def sorted_events(pieces: list[Piece]) -> pl.DataFrame:
    """Released pieces as one frame sorted by ``(event_time, event_id)``.

    The pieces' frames are joined once and the sort order is found on the two key columns
    alone, so the wide frame is gathered once, not once per piece and again to sort it.
    """
    if not pieces:
        return NO_EVENTS
    whole = pl.concat([frame for frame, _ in pieces], how="vertical", rechunk=True)
    selected = []
    offset = 0
    for frame, rows in pieces:
        selected.append(offset + (np.arange(frame.height) if rows is None else rows))
        offset += frame.height
    index = pl.Series(np.concatenate(selected), dtype=pl.Int64)
    order = (
        whole.select(_ORDER)[index].select(pl.arg_sort_by(_ORDER, maintain_order=True)).to_series()
    )
    return whole[index.gather(order)]


@dataclass(slots=True)
class _Buffered:
    """The rows of one frame not yet released: ``order.rows[start:]``."""

    frame: pl.DataFrame
    order: SortedTimes
    start: int = 0


class EventMerger:
    """Buffer frames and release what the watermark allows (see the module docstring).

    ``resume`` restores the watermark and file positions of an interrupted replay; the frames
    added after it must then leave out the events the cursor says were emitted.
    """

    def __init__(self, lateness: timedelta, *, resume: ArchiveCursor | None = None) -> None:
        if lateness < timedelta(0):
            raise ValueError(f"lateness must not be negative, got {lateness}")
        self._lateness = _ms(_EPOCH + lateness)
        floor = resume.watermark if resume is not None else None
        self._floor = None if floor is None else _ms(floor)
        self._done_through = resume.done_through if resume is not None else None
        self._read_through = resume.read_through if resume is not None else None
        self._last_added: FilePosition | None = None
        self._max_progress: int | None = None
        # buffered frames by their oldest unreleased event: (time, arrival number, rows)
        self._heap: list[tuple[int, int, _Buffered]] = []
        self._arrivals = 0
        # files read but not done, in position order, with their newest event time
        self._open: deque[tuple[FilePosition, int | None]] = deque()
        self._ready: list[Piece] = []
        self.ready_events = 0
        self.buffered_events = 0

    def _mark(self) -> int | None:
        if self._max_progress is None:
            return self._floor
        mark = self._max_progress - self._lateness
        return mark if self._floor is None or mark > self._floor else self._floor

    @property
    def watermark(self) -> datetime | None:
        """Events older than this have been released (late ones aside: they come next)."""
        mark = self._mark()
        return None if mark is None else _datetime(mark)

    def add(
        self,
        position: FilePosition,
        events: pl.DataFrame,
        progress: datetime | None,
        *,
        order: SortedTimes | None = None,
    ) -> int:
        """Add one file's events (``order``: :func:`sorted_times` of them, when the caller has
        it, e.g. from a worker thread); returns how many of them were late."""
        if self._last_added is not None and position <= self._last_added:
            raise ValueError(f"positions must increase: {position} after {self._last_added}")
        self._last_added = position
        if self._read_through is None or position > self._read_through:
            self._read_through = position  # a resumed replay first re-reads up to its cursor
        late = 0
        newest = None
        if events.height:
            order = order if order is not None else sorted_times(events)
            mark = self._mark()
            if mark is not None:
                late = int(np.searchsorted(order.times, mark, side="left"))
            newest = int(order.times[-1])
            heapq.heappush(
                self._heap, (int(order.times[0]), self._arrivals, _Buffered(events, order))
            )
            self._arrivals += 1
            self.buffered_events += events.height
        self._open.append((position, newest))
        if progress is not None:
            ms = _ms(progress)
            if self._max_progress is None or ms > self._max_progress:
                self._max_progress = ms
        self._release()
        return late

    def _release(self) -> None:
        mark = self._mark()
        if mark is None:
            return
        heap = self._heap
        while heap and heap[0][0] < mark:
            _, arrival, entry = heapq.heappop(heap)
            times = entry.order.times
            end = int(np.searchsorted(times, mark, side="left"))
            whole = entry.start == 0 and end == len(times)
            self._ready.append(
                (entry.frame, None if whole else entry.order.rows[entry.start : end])
            )
            self.ready_events += end - entry.start
            self.buffered_events -= end - entry.start
            if end < len(times):
                entry.start = end
                heapq.heappush(heap, (int(times[end]), arrival, entry))
        while self._open and (self._open[0][1] is None or self._open[0][1] < mark):
            self._done_through = self._open.popleft()[0]

    def finish(self) -> None:
        """The input has ended: release everything still buffered."""
        for _, _, entry in sorted(self._heap, key=lambda e: e[:2]):
            rows = entry.order.rows
            self._ready.append((entry.frame, None if entry.start == 0 else rows[entry.start :]))
        self.ready_events += self.buffered_events
        self.buffered_events = 0
        self._heap.clear()
        self._open.clear()
        self._done_through = self._read_through

    def take_pieces(self) -> tuple[list[Piece], ArchiveCursor]:
        """The released pieces (:func:`sorted_events` makes them one sorted frame) and the
        cursor right after them. Cheap: the sorting is left to the caller's worker thread."""
        pieces, self._ready = self._ready, []
        self.ready_events = 0
        return pieces, ArchiveCursor(self._done_through, self._read_through, self.watermark)

    def take(self) -> tuple[pl.DataFrame, ArchiveCursor]:
        """The released events, sorted, and the cursor right after them."""
        pieces, cursor = self.take_pieces()
        return sorted_events(pieces), cursor
