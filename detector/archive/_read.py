"""``read_events``: an archive source in, chunks of merged, event-time-ordered events out.

The pipeline, with memory bounded by ``read_ahead`` files plus the merge buffer::

    list_objects ──▶ batches of ``decode_batch`` objects: read (concurrently) + decode
                      (``read_ahead`` files ahead, in order)
                      ──▶ EventMerger (holds back ``lateness``) ──▶ EventChunk ...

Objects the filter rejects by key, digest files and stray files are counted, never read.
A file that cannot be read or parsed is a failure in the chunk's ``failures``; the replay goes
on. A batch of files is decoded in one call (:func:`decode_objects`): a trail file holds only
~150 records, and typing each on its own would pay polars' fixed cost per file, and hand the
interpreter lock back and forth with the event loop at every polars call. Decoding runs in one
worker thread of its own unless an executor is given: parsing is mostly Python code holding the
interpreter lock, so more threads do not help; a process pool
(:func:`~detector.archive.decode_process_pool`) runs it beside the consumer on other cores.

Imports: the standard library, polars, :mod:`detector.events` and this package.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from concurrent.futures import BrokenExecutor, Executor, ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import polars as pl

from detector.archive._cursor import ArchiveCursor
from detector.archive._decode import DecodedObject, DecodeLimits, decode_objects
from detector.archive._filter import ArchiveFilter
from detector.archive._merge import NO_EVENTS, EventMerger, sorted_events
from detector.archive._object import ArchiveObject
from detector.archive._source import ArchiveReadError, ArchiveSource
from detector.events import RecordFailure

__all__ = [
    "DEFAULT_CHUNK_EVENTS",
    "DEFAULT_CHUNK_FILES",
    "DEFAULT_DECODE_BATCH",
    "DEFAULT_LATENESS",
    "DEFAULT_READ_AHEAD",
    "ChunkCounts",
    "EventChunk",
    "read_events",
]

DEFAULT_CHUNK_EVENTS: Final = 50_000
DEFAULT_CHUNK_FILES: Final = 1_000  # a chunk also ends after this many files, even if small
DEFAULT_LATENESS: Final = timedelta(minutes=15)
DEFAULT_READ_AHEAD: Final = 128
DEFAULT_DECODE_BATCH: Final = 16  # objects decoded in one call (one polars typing pass)
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChunkCounts:
    """What happened to the objects and events behind one chunk."""

    files_read: int = 0  # read and parsed (a file that is not CloudTrail counts as failed)
    bytes_read: int = 0
    digest_files: int = 0  # recognised as digests (by key or content), not read / not parsed
    other_files: int = 0  # not CloudTrail log files (stray files, Insight files), not read
    filtered_files: int = 0  # listed, but the filter rejected the key: not read
    failed_files: int = 0  # unreadable, or not a CloudTrail file at all
    filtered_events: int = 0  # parsed, outside the filter's exact window/accounts/regions
    duplicate_events: int = 0  # repeated eventIDs within one file, kept once
    late_events: int = 0  # came after newer events (see EventMerger)

    def __add__(self, other: ChunkCounts) -> ChunkCounts:
        return ChunkCounts(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(ChunkCounts))
        )


@dataclass(frozen=True, slots=True)
class EventChunk:
    """Events in the normalized schema sorted by ``(event_time, event_id)``, what went wrong,
    and the cursor to resume after them."""

    events: pl.DataFrame
    failures: tuple[RecordFailure, ...]
    counts: ChunkCounts
    cursor: ArchiveCursor


_Skip = Literal["digest_files", "other_files", "filtered_files"]


@dataclass(frozen=True, slots=True)
class _Outcome:
    obj: ArchiveObject
    decoded: DecodedObject | None = None
    skipped: _Skip | None = None
    failure: RecordFailure | None = None
    size: int = 0


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None = None


_Item = asyncio.Task[list[_Outcome]] | _End


def _skip_reason(obj: ArchiveObject, filter: ArchiveFilter) -> _Skip | None:
    if obj.kind == "digest":
        return "digest_files"
    if obj.kind == "other":
        return "other_files"
    return None if filter.admits_object(obj) else "filtered_files"


class _Counter:
    """Counts and failures since the last chunk."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.failures: list[RecordFailure] = []
        self.objects = 0
        self.reset()

    def reset(self) -> None:
        self.values = {f.name: 0 for f in fields(ChunkCounts)}
        self.failures = []
        self.objects = 0

    def add(self, outcome: _Outcome, late: int) -> None:
        v = self.values
        self.objects += 1
        if outcome.skipped is not None:
            v[outcome.skipped] += 1
            return
        if outcome.failure is not None:
            v["failed_files"] += 1
            self.failures.append(outcome.failure)
            return
        decoded = outcome.decoded
        assert decoded is not None
        v["files_read"] += 1
        v["bytes_read"] += outcome.size
        v["digest_files"] += decoded.skipped
        v["filtered_events"] += decoded.filtered_events
        v["duplicate_events"] += decoded.duplicate_events
        v["late_events"] += late
        self.failures.extend(decoded.failures)
        if outcome.obj.kind == "trail" and any(f.index is None for f in decoded.failures):
            v["failed_files"] += 1  # the whole file was unreadable (records carry an index)
            v["files_read"] -= 1

    def take(self) -> tuple[ChunkCounts, tuple[RecordFailure, ...]]:
        counts = ChunkCounts(**self.values)
        failures = tuple(self.failures)
        self.reset()
        return counts, failures


async def read_events(
    source: ArchiveSource,
    filter: ArchiveFilter | None = None,
    *,
    chunk_events: int = DEFAULT_CHUNK_EVENTS,
    chunk_files: int = DEFAULT_CHUNK_FILES,
    lateness: timedelta = DEFAULT_LATENESS,
    start_after: ArchiveCursor | None = None,
    read_ahead: int = DEFAULT_READ_AHEAD,
    decode_batch: int = DEFAULT_DECODE_BATCH,
    decode_executor: Executor | None = None,
    limits: DecodeLimits | None = None,
) -> AsyncGenerator[EventChunk, None]:
    """Replay ``source``: chunks of about ``chunk_events`` events, in event-time order.

    Ordering guarantee: each chunk is sorted by ``(event_time, event_id)``, and an event comes
    out after a newer one only if it is *late*: the watermark (newest delivery stamp read,
    minus ``lateness``) had passed its event time when its file was read, which happens only
    to events delivered more than ``lateness`` after they happened. Late events are emitted
    anyway, in the next chunk, and counted in ``counts.late_events`` (see
    :mod:`detector.archive._merge`).

    Each chunk's ``cursor`` says what has been emitted up to and including that chunk; pass it
    as ``start_after`` to emit exactly the events after it (see :class:`ArchiveCursor`). The
    last chunk (possibly without events) ends the replay; its cursor is complete.

    ``limits`` caps each file's decompressed size and bounds event times in files without a
    delivery stamp (:class:`DecodeLimits`); a file or record beyond them is a failure.

    Files are read and decoded ``decode_batch`` at a time (at most ``read_ahead``), about
    ``read_ahead`` files ahead of the consumer. Close the iterator when stopping early
    (``contextlib.aclosing``) so reads in flight stop.
    """
    if chunk_events < 1 or chunk_files < 1 or read_ahead < 1 or decode_batch < 1:
        raise ValueError("chunk_events, chunk_files, read_ahead and decode_batch must be >= 1")
    filter = filter if filter is not None else ArchiveFilter()
    merger = EventMerger(lateness, resume=start_after)
    resumed = start_after if start_after is not None and not start_after.is_complete else None
    decode_limits = limits or DecodeLimits()
    batch_size = min(decode_batch, read_ahead)
    queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=max(1, read_ahead // batch_size))
    loop = asyncio.get_running_loop()
    own_executor = None
    executor = decode_executor
    if executor is None:
        own_executor = executor = ThreadPoolExecutor(1, thread_name_prefix="archive-decode")

    async def read(obj: ArchiveObject) -> bytes | RecordFailure:
        try:
            return await source.read(obj)
        except ArchiveReadError as err:
            return RecordFailure(obj.key, None, None, "<file>", str(err))

    def drop_before(obj: ArchiveObject) -> datetime | None:
        if resumed is not None and resumed.read_through is not None:
            return resumed.watermark if obj.position <= resumed.read_through else None
        return None

    async def decode(
        readable: list[tuple[ArchiveObject, bytes, datetime | None]],
    ) -> dict[str, DecodedObject]:
        """The batch decoded; if decoding it raises (the parser turns every bad record and
        file into a failure, so this is a bug), each file alone, leaving out those that raise,
        so one file never stops a replay. A broken worker pool still does."""
        try:
            decoding = await loop.run_in_executor(
                executor, decode_objects, readable, filter, decode_limits
            )
            return {obj.key: d for obj, d in decoding.objects()}
        except BrokenExecutor:
            raise
        except Exception:
            if len(readable) == 1:
                _log.exception("archive: decoding %r failed", readable[0][0].key)
                return {}
        decoded: dict[str, DecodedObject] = {}
        for one in readable:
            decoded |= await decode([one])
        return decoded

    async def fetch(batch: list[tuple[ArchiveObject, _Skip | None]]) -> list[_Outcome]:
        wanted = [obj for obj, reason in batch if reason is None]
        datas = await asyncio.gather(*(read(obj) for obj in wanted))
        readable = [
            (obj, data, drop_before(obj))
            for obj, data in zip(wanted, datas, strict=True)
            if isinstance(data, bytes)
        ]
        read_back = dict(zip((obj.key for obj in wanted), datas, strict=True))
        decoded: dict[str, DecodedObject] = {}
        if readable:
            decoded = await decode(readable)
            for obj, _, _ in readable:
                if obj.key not in decoded:
                    why = "cannot be decoded (see the log)"
                    read_back[obj.key] = RecordFailure(obj.key, None, None, "<file>", why)
        outcomes = []
        for obj, reason in batch:
            if reason is not None:
                outcomes.append(_Outcome(obj, skipped=reason))
                continue
            data = read_back[obj.key]
            if isinstance(data, RecordFailure):
                outcomes.append(_Outcome(obj, failure=data))
            else:
                outcomes.append(_Outcome(obj, decoded[obj.key], size=len(data)))
        return outcomes

    async def submit(batch: list[tuple[ArchiveObject, _Skip | None]]) -> None:
        task = asyncio.create_task(fetch(batch))
        try:
            await queue.put(task)
        except asyncio.CancelledError:
            task.cancel()
            raise

    async def produce() -> None:
        try:
            after = start_after.done_through if start_after is not None else None
            batch: list[tuple[ArchiveObject, _Skip | None]] = []
            async for obj in source.list_objects(filter, start_after=after):
                batch.append((obj, _skip_reason(obj, filter)))
                if len(batch) >= batch_size:
                    await submit(batch)
                    batch = []
            if batch:
                await submit(batch)
            await queue.put(_End())
        except Exception as err:  # handed to the consumer, which raises it
            await queue.put(_End(err))

    producer = asyncio.create_task(produce())
    counter = _Counter()
    try:
        while True:
            item = await queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                break
            for outcome in await item:
                late = _feed(merger, outcome)
                counter.add(outcome, late)
                if merger.ready_events >= chunk_events or counter.objects >= chunk_files:
                    yield await _chunk(merger, counter)
        merger.finish()
        yield await _chunk(merger, counter)
    finally:
        await _stop(producer, queue)
        if own_executor is not None:
            own_executor.shutdown(wait=False, cancel_futures=True)


def _feed(merger: EventMerger, outcome: _Outcome) -> int:
    obj, decoded = outcome.obj, outcome.decoded
    if decoded is not None:
        return merger.add(obj.position, decoded.events, decoded.progress, order=decoded.order)
    progress = obj.delivered if outcome.failure is not None else None
    merger.add(obj.position, NO_EVENTS, progress)
    return 0


async def _chunk(merger: EventMerger, counter: _Counter) -> EventChunk:
    pieces, cursor = merger.take_pieces()
    # Sorting releases the interpreter lock; in the event loop's thread it would then wait
    # for decode threads to hand it back, so it runs in a worker thread too.
    events = await asyncio.to_thread(sorted_events, pieces)
    counts, failures = counter.take()
    return EventChunk(events, failures, counts, cursor)


async def _stop(producer: asyncio.Task[None], queue: asyncio.Queue[_Item]) -> None:
    """Cancel the listing and every read in flight, and wait for them to end."""
    producer.cancel()
    pending: list[asyncio.Task[Any]] = [producer]
    while not queue.empty():
        item = queue.get_nowait()
        if isinstance(item, asyncio.Task):
            item.cancel()
            pending.append(item)
    await asyncio.gather(*pending, return_exceptions=True)
