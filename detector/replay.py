"""Replay archived trails through the service's own pipeline (``detector replay``).

Events come from :func:`detector.archive.read_events` (a folder, ``s3://``, or a JSONL of
envelopes; filtered on keys; merged into event-time order within the allowed lateness) and go
through :class:`detector.pipeline.Pipeline` exactly as the stream's do, so the same events give
the same findings (same ids). Memory is bounded by the read-ahead and the active principals,
not by the archive's length.

Decoding (gzip, JSON, the records' fields) is most of a replay's work and is Python code holding
the interpreter lock, so by default it runs in worker processes
(:func:`detector.archive.decode_process_pool`, one per CPU), beside the features and scoring in
this one; on a single CPU, or with ``decode_processes=0``, it runs in a thread of this process.

Checkpoints: with a state store, the pipeline state and the archive cursor are saved together
every ``checkpoint_every`` events and at the end; a replay started again with the same store
and source continues after the cursor instead of starting over. The state is the one the
service reads, so ``detector replay ... --state-dir DIR`` then ``detector run --state-dir DIR``
starts the service with the history's profiles.

Imports: asyncio, polars, and the detector's archive, pipeline, sinks, findings and state
packages. The CLI owns files and the clock; they come in as arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, TextIO

import orjson
import polars as pl

from detector.archive import (
    ArchiveCursor,
    ArchiveFilter,
    ArchiveSource,
    EventChunk,
    decode_process_pool,
    read_events,
    replay_gc,
)
from detector.errors import StateError
from detector.findings import Finding, finding_to_json
from detector.pipeline import Pipeline, PipelineState
from detector.sinks import FindingMessage, FindingSink
from detector.state import Snapshot, StateStore

__all__ = ["Progress", "ReplaySummary", "event_frames", "replay"]

CURSOR_META: Final = "replay.cursor"
SOURCE_META: Final = "replay.source"
DEFAULT_CHECKPOINT_EVERY: Final = 500_000  # events between checkpoints


@dataclass
class ReplaySummary:
    """What a replay did; printed at the end."""

    events: int = 0
    duplicates: int = 0
    late_events: int = 0
    bad_records: int = 0
    files_read: int = 0
    files_skipped: int = 0
    principals: int = 0
    principals_learning: int | None = None  # at the end: the model does not report them yet
    resumed: bool = False
    findings_by_kind: Counter[str] = field(default_factory=Counter)
    findings_by_severity: Counter[str] = field(default_factory=Counter)
    failure_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def text(self) -> str:
        total = sum(self.findings_by_kind.values())
        rate = self.events / self.seconds if self.seconds else 0.0
        lines = [
            f"replayed {self.events:,} events in {self.seconds:.1f} s ({rate:,.0f} events/s)"
            + (" (resumed from a checkpoint)" if self.resumed else ""),
            f"files: {self.files_read:,} read, {self.files_skipped:,} skipped (digests, filtered)",
            f"principals: {self.principals:,}"
            + (
                f" ({self.principals_learning:,} still learning: no model findings for them yet)"
                if self.principals_learning
                else ""
            )
            + f"; late events: {self.late_events:,}; "
            f"duplicates: {self.duplicates:,}; bad records: {self.bad_records:,}",
            f"findings: {total}"
            + (
                " ("
                + ", ".join(f"{k} {v}" for k, v in sorted(self.findings_by_severity.items()))
                + ")"
                if total
                else ""
            ),
            *(f"  {kind}: {n}" for kind, n in self.findings_by_kind.most_common()),
            *(f"  bad record: {s}" for s in self.failure_samples),
        ]
        return "\n".join(lines)


class Progress:
    """One status line on a terminal (events/s, files, event time reached); silent otherwise."""

    def __init__(self, stream: TextIO = sys.stderr, *, every: float = 0.5) -> None:
        self._stream = stream
        self._on = stream.isatty()
        self._every = every
        self._last = 0.0
        self._started = time.monotonic()

    def update(self, summary: ReplaySummary, reached: datetime | None) -> None:
        now = time.monotonic()
        if not self._on or now - self._last < self._every:
            return
        self._last = now
        rate = summary.events / max(now - self._started, 1e-9)
        at = reached.strftime("%Y-%m-%d %H:%M") if reached else "-"
        self._stream.write(
            f"\r{summary.events:>12,} events {rate:>9,.0f}/s  {summary.files_read:,} files  "
            f"event time {at}  findings {sum(summary.findings_by_kind.values())}   "
        )
        self._stream.flush()

    def done(self) -> None:
        if self._on:
            self._stream.write("\n")
            self._stream.flush()


def _messages(findings: list[Finding]) -> list[FindingMessage]:
    return [FindingMessage(f.finding_id, f.principal, finding_to_json(f)) for f in findings]


def _resume_point(
    pipeline: Pipeline, store: StateStore | None, source_name: str
) -> tuple[PipelineState, ArchiveCursor | None]:
    snapshot = store.load() if store is not None else None
    if snapshot is None:
        return pipeline.initial_state(), None
    state = pipeline.restore(snapshot)
    text = snapshot.meta.get(CURSOR_META)
    if text is None or snapshot.meta.get(SOURCE_META) != source_name:
        # The state of a service or of another replay: start from its profiles, read it all.
        return state, None
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as err:
        raise StateError(f"replay checkpoint cursor is not JSON: {err}") from None
    return state, ArchiveCursor.from_dict(document)  # a bad cursor raises StateError


def _save(
    pipeline: Pipeline,
    store: StateStore,
    state: PipelineState,
    cursor: ArchiveCursor,
    source_name: str,
) -> None:
    snapshot = pipeline.snapshot(state)
    meta = {
        **snapshot.meta,
        CURSOR_META: orjson.dumps(cursor.to_dict()).decode(),
        SOURCE_META: source_name,
    }
    store.save(Snapshot(snapshot.frames, meta))


async def replay(
    source: ArchiveSource,
    source_name: str,
    pipeline: Pipeline,
    sink: FindingSink,
    *,
    filter: ArchiveFilter | None = None,
    store: StateStore | None = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Progress | None = None,
    decode_processes: int | None = None,
) -> ReplaySummary:
    """Replay ``source`` through ``pipeline``; findings to ``sink``; state to ``store``.

    ``decode_processes``: worker processes that decode the files (None: one per CPU when there
    are several; 0: none, decode in a thread of this process).
    """
    started = time.monotonic()
    summary = ReplaySummary()
    state, cursor = _resume_point(pipeline, store, source_name)
    summary.resumed = cursor is not None
    since_checkpoint = 0
    reached: datetime | None = None
    with replay_gc(), _decode_pool(decode_processes) as pool:
        chunks = read_events(source, filter, start_after=cursor, decode_executor=pool)
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                # In a thread, so that the event loop keeps handing files to the decode
                # workers while the step runs (polars releases the interpreter lock).
                state, findings, report = await asyncio.to_thread(
                    pipeline.step, state, chunk.events, clock()
                )
                _account(summary, chunk, report.principals, findings)
                if findings:
                    await sink.send(_messages(findings))
                since_checkpoint += chunk.events.height
                reached = report.watermark or reached
                if store is not None and since_checkpoint >= checkpoint_every:
                    _save(pipeline, store, state, chunk.cursor, source_name)
                    since_checkpoint = 0
                if progress is not None:
                    progress.update(summary, reached)
                cursor = chunk.cursor
        state, findings, report = pipeline.flush(state, clock())
        _count_findings(summary, findings)
        if findings:
            await sink.send(_messages(findings))
        if store is not None and cursor is not None:
            _save(pipeline, store, state, cursor, source_name)
    if progress is not None:
        progress.done()
    summary.principals = report.principals
    summary.principals_learning = report.principals_learning
    summary.seconds = time.monotonic() - started
    return summary


@contextlib.contextmanager
def _decode_pool(processes: int | None) -> Iterator[Executor | None]:
    if processes is None:
        cpus = os.cpu_count() or 1
        processes = cpus if cpus > 1 else 0
    if processes < 0:
        raise ValueError(f"decode_processes must be >= 0, got {processes}")
    if processes == 0:
        yield None
        return
    with decode_process_pool(processes) as pool:
        yield pool


def _count_findings(summary: ReplaySummary, findings: list[Finding]) -> None:
    summary.findings_by_kind.update(f.kind for f in findings)
    summary.findings_by_severity.update(f.severity_label for f in findings)


def _account(
    summary: ReplaySummary, chunk: EventChunk, principals: int, findings: list[Finding]
) -> None:
    counts = chunk.counts
    summary.events += chunk.events.height
    summary.late_events += counts.late_events
    summary.duplicates += counts.duplicate_events
    summary.bad_records += len(chunk.failures)
    summary.files_read += counts.files_read
    summary.files_skipped += counts.digest_files + counts.other_files + counts.filtered_files
    summary.principals = principals
    summary.failure_samples.extend(
        str(f) for f in chunk.failures[: 5 - len(summary.failure_samples)]
    )
    _count_findings(summary, findings)


def event_frames(
    open_source: Callable[[], contextlib.AbstractAsyncContextManager[ArchiveSource]],
    filter: ArchiveFilter | None = None,
    *,
    buffered_chunks: int = 2,
) -> Iterator[pl.DataFrame]:
    """The archive's events as a plain iterator of frames (for training and notebooks): the
    async reader runs on a thread of its own, at most ``buffered_chunks`` ahead."""
    handoff: queue.Queue[pl.DataFrame | BaseException | None] = queue.Queue(buffered_chunks)
    stop = threading.Event()

    async def pump() -> None:
        async with open_source() as source:
            chunks = read_events(source, filter)
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    if stop.is_set():
                        return
                    await asyncio.to_thread(handoff.put, chunk.events)

    def run() -> None:
        try:
            asyncio.run(pump())
            handoff.put(None)
        except BaseException as err:  # handed to the consuming thread, which raises it
            handoff.put(err)

    worker = threading.Thread(target=run, name="archive-reader", daemon=True)
    worker.start()
    try:
        while (item := handoff.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                handoff.get_nowait()
        worker.join(timeout=30)
