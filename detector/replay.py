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

Suppression: with a :class:`~detector.suppression.Suppressor`, findings its rules match go to
its audit sink instead of ``sink``, judged at their own event time as the service judges them.

Imports: asyncio, polars, and the detector's archive, pipeline, sinks, findings, state and
suppression packages. The CLI owns files and the clock; they come in as arguments.
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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Final, TextIO

import orjson
import polars as pl

from detector.archive import (
    ArchiveCursor,
    ArchiveFilter,
    ArchiveSource,
    DecodeLimits,
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
from detector.suppression import Split, Suppressor

__all__ = [
    "DEFAULT_MAX_BAD",
    "BadInputLimit",
    "Progress",
    "ReplaySummary",
    "event_frames",
    "replay",
]

CURSOR_META: Final = "replay.cursor"
SOURCE_META: Final = "replay.source"
DEFAULT_CHECKPOINT_EVERY: Final = 500_000  # events between checkpoints


NAMED_FAILURES: Final = 10  # bad files and records named in the summary; the rest are counted


@dataclass
class ReplaySummary:
    """What a replay did; printed at the end."""

    events: int = 0
    duplicates: int = 0
    late_events: int = 0
    filtered_events: int = 0
    bad_records: int = 0  # records refused, in files otherwise read
    files_read: int = 0  # read and parsed
    files_failed: int = 0  # unreadable, too large, or not a CloudTrail file at all
    files_skipped: int = 0
    principals: int = 0
    principals_learning: int | None = None  # at the end: the model does not report them yet
    resumed: bool = False
    findings_by_kind: Counter[str] = field(default_factory=Counter)
    findings_by_severity: Counter[str] = field(default_factory=Counter)
    suppressed_by_rule: Counter[str] = field(default_factory=Counter)  # not sent: audited
    failure_samples: list[str] = field(default_factory=list)
    failures: int = 0  # bad records and failed files together (all of them, named or not)
    # Batches on which a detection raised (a bug in it), by detection id: the rest went on.
    detection_errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def records(self) -> int:
        """Records met in the files read: kept, duplicated, filtered out or refused."""
        return self.events + self.duplicates + self.filtered_events + self.bad_records

    def text(self) -> str:
        total = sum(self.findings_by_kind.values())
        rate = self.events / self.seconds if self.seconds else 0.0
        unnamed = self.failures - len(self.failure_samples)
        lines = [
            f"replayed {self.events:,} events in {self.seconds:.1f} s ({rate:,.0f} events/s)"
            + (" (resumed from a checkpoint)" if self.resumed else ""),
            f"files: {self.files_read:,} read, {self.files_failed:,} failed, "
            f"{self.files_skipped:,} skipped (digests, filtered)",
            f"principals: {self.principals:,}"
            + (
                f" ({self.principals_learning:,} still learning: no model findings for them yet)"
                if self.principals_learning
                else ""
            )
            + f"; late events: {self.late_events:,}; "
            f"duplicates: {self.duplicates:,}; bad records: {self.bad_records:,} "
            f"of {self.records:,}",
            f"findings: {total}"
            + (
                " ("
                + ", ".join(f"{k} {v}" for k, v in sorted(self.findings_by_severity.items()))
                + ")"
                if total
                else ""
            ),
            *(f"  {kind}: {n}" for kind, n in self.findings_by_kind.most_common()),
            *(
                [f"suppressed: {sum(self.suppressed_by_rule.values())}"]
                if self.suppressed_by_rule
                else []
            ),
            *(f"  rule {rule}: {n}" for rule, n in sorted(self.suppressed_by_rule.items())),
            *(f"  failed: {s}" for s in self.failure_samples),
            *([f"  ... and {unnamed:,} more failed files and records"] if unnamed > 0 else []),
            *(
                f"detection {d} failed on {n} batch(es): its findings there are missing"
                for d, n in sorted(self.detection_errors.items())
            ),
        ]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class BadInputLimit:
    """How much bad input a replay tolerates before it counts as failed (``--max-bad``).

    A count (``--max-bad 100``): more than that many failed files and bad records together.
    A fraction (``--max-bad 0.01`` or ``1%``): more than that share of the files failed, or
    more than that share of the records read were refused.
    """

    count: int | None = None
    fraction: float | None = None

    @staticmethod
    def parse(text: str) -> BadInputLimit:
        try:
            if text.endswith("%"):
                return BadInputLimit(fraction=_share(float(text[:-1]) / 100))
            if any(c in text for c in ".eE"):
                return BadInputLimit(fraction=_share(float(text)))
            count = int(text)
        except ValueError:
            raise ValueError(
                f"--max-bad: expected a count (100), a fraction (0.01) or a percentage (1%), "
                f"got {text!r}"
            ) from None
        if count < 0:
            raise ValueError(f"--max-bad: a count must be >= 0, got {count}")
        return BadInputLimit(count=count)

    def exceeded(self, summary: ReplaySummary) -> str | None:
        """Why ``summary`` holds too much bad input, or None."""
        files = summary.files_read + summary.files_failed
        if self.count is not None and summary.failures > self.count:
            return f"{summary.failures:,} failed files and records, more than {self.count:,}"
        if self.fraction is None:
            return None
        if files and summary.files_failed / files > self.fraction:
            return f"{summary.files_failed:,} of {files:,} files failed, over {self.fraction:.2%}"
        if summary.records and summary.bad_records / summary.records > self.fraction:
            return (
                f"{summary.bad_records:,} of {summary.records:,} records were bad, "
                f"over {self.fraction:.2%}"
            )
        return None


def _share(value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError(f"--max-bad: a fraction must be within 0..1, got {value}")
    return value


DEFAULT_MAX_BAD: Final = BadInputLimit(fraction=0.01)


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
    return [
        FindingMessage(f.finding_id, f.principal, finding_to_json(f), f.count) for f in findings
    ]


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
    limits: DecodeLimits | None = None,
    suppressor: Suppressor | None = None,
) -> ReplaySummary:
    """Replay ``source`` through ``pipeline``; findings to ``sink``; state to ``store``;
    findings ``suppressor``'s rules match to its audit sink instead (as the service does).

    ``decode_processes``: worker processes that decode the files (None: one per CPU when there
    are several; 0: none, decode in a thread of this process). ``limits``: the decompressed
    size cap, and the latest plausible event time for files without a delivery stamp
    (default: the cap's default and ``clock()`` at the start).
    """
    if limits is None:
        limits = DecodeLimits(not_after=clock())
    elif limits.not_after is None:
        limits = replace(limits, not_after=clock())
    started = time.monotonic()
    summary = ReplaySummary()
    state, cursor = _resume_point(pipeline, store, source_name)
    summary.resumed = cursor is not None
    since_checkpoint = 0
    reached: datetime | None = None
    with replay_gc(), _decode_pool(decode_processes) as pool:
        chunks = read_events(
            source, filter, start_after=cursor, decode_executor=pool, limits=limits
        )
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                # In a thread, so that the event loop keeps handing files to the decode
                # workers while the step runs (polars releases the interpreter lock).
                state, findings, report = await asyncio.to_thread(
                    pipeline.step, state, chunk.events, clock()
                )
                _account(summary, chunk, report.principals)
                summary.detection_errors.update(f.detection_id for f in report.detection_failures)
                await _deliver(findings, sink, suppressor, summary)
                since_checkpoint += chunk.events.height
                reached = report.watermark or reached
                if store is not None and since_checkpoint >= checkpoint_every:
                    _save(pipeline, store, state, chunk.cursor, source_name)
                    since_checkpoint = 0
                if progress is not None:
                    progress.update(summary, reached)
                cursor = chunk.cursor
        state, findings, report = pipeline.flush(state, clock())
        await _deliver(findings, sink, suppressor, summary)
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


async def _deliver(
    findings: list[Finding],
    sink: FindingSink,
    suppressor: Suppressor | None,
    summary: ReplaySummary,
) -> None:
    """As the service's consumer does: suppressed findings to the audit sink, the rest to
    ``sink``; counted once both have them."""
    if suppressor is None:
        split = Split(tuple(findings), ())
    else:
        split = await suppressor.split(findings)
    if split.kept:
        await sink.send(_messages(list(split.kept)))
    if suppressor is not None:
        await suppressor.write_audit(split)
        suppressor.record(split)
    summary.findings_by_kind.update(f.kind for f in split.kept)
    summary.findings_by_severity.update(f.severity_label for f in split.kept)
    summary.suppressed_by_rule.update(rule.id for _, rule in split.suppressed)


def _account(summary: ReplaySummary, chunk: EventChunk, principals: int) -> None:
    counts = chunk.counts
    summary.events += chunk.events.height
    summary.late_events += counts.late_events
    summary.duplicates += counts.duplicate_events
    summary.filtered_events += counts.filtered_events
    summary.bad_records += len(chunk.failures) - counts.failed_files
    summary.files_read += counts.files_read
    summary.files_failed += counts.failed_files
    summary.files_skipped += counts.digest_files + counts.other_files + counts.filtered_files
    summary.principals = principals
    summary.failures += len(chunk.failures)
    summary.failure_samples.extend(
        str(f) for f in chunk.failures[: NAMED_FAILURES - len(summary.failure_samples)]
    )


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
