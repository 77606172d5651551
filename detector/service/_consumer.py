"""The consumer: queue messages in, findings out, state checkpointed before anything is deleted.

It reads as its loop does: receive, batch, step, send findings, checkpoint, delete, heartbeat,
drain. Message lifecycle (see :mod:`detector.service._ledger` for the phases)::

    receive(10, long poll) ─► held, BUFFERED ─► micro-batch (1,000 msgs or 2 s; under load
        everything buffered, up to 10,000: the step's cost is mostly per batch)
        ─► decode and pipeline step (one worker thread: the event loop keeps receiving)
        ─► findings sent to every sink (those a suppression rule matches, to its audit sink
            instead: :mod:`detector.suppression`, the file re-read here when it changed)
        ─► PROCESSED (held; its events live in the in-memory state)
        ─► checkpoint (every 10 s, when too much is held, or when the queue looks drained)
        ─► CHECKPOINTED ─► DeleteMessageBatch (on the event loop) ─► forgotten

The one rule that makes a crash harmless: a message is deleted only after a checkpoint that
includes it was saved, and a checkpoint only follows the delivery of the findings its messages
produced. Whatever was not checkpointed comes back from the queue and, with the event ids the
state remembers, counts once. Findings are delivered at least once with deterministic ids: a
crash between a send and the next checkpoint re-sends the same ids (a FIFO findings queue drops
them as duplicates; other readers deduplicate on ``finding_id``).

Failures are data:

- a poison message (bad JSON, not CloudTrail, oversized, a record that fails normalization) is
  counted, logged with its message id, and *not deleted*: it becomes visible again after
  ``poison_retry_seconds`` and the queue's redrive policy moves it to the dead-letter queue
  after ``maxReceiveCount`` receives. Only decoding makes a message poison;
- a detection that raises fails alone: the step goes on without it, and the error is logged
  with the detection id and counted (``detector_detection_errors_total{detection}``);
- a step that raises anyway is a bug, not bad input: counted apart
  (``detector_step_failures_total``), logged, and the whole batch is handed back undeleted
  like poison. The batch is not split to find a culprit: that would send exactly the events
  that found the bug to the DLQ as if they were bad data. A bug that persists moves the
  batches through the redrive policy to the DLQ, to be redriven once it is fixed;
- findings that cannot be delivered put the batch back in the buffer (the state is a value, so
  the step is simply discarded) and it is retried after a backoff;
- a checkpoint that fails leaves its messages held, undeleted and heartbeated, and is retried;
  one refused because another process committed the same state first
  (:class:`~detector.errors.StateConflictError`) is fatal: that process owns the state now, so
  this one stops, deletes nothing and releases what it holds;
- a receive or delete that fails is logged and retried or left to the visibility timeout.

A Kinesis source (``detector run --source kinesis://STREAM``) plugs in through one seam,
:class:`~detector.ingest.PositionedSource`: its read positions are saved in the checkpoint's
snapshot with the state, a restart resumes from them, "deletes" only let the positions move on,
and poison or a failed step is handed back to it (read again, then dropped) instead of to a
visibility timeout (see docs/scale-out.md).

Every decision is taken by the pure rules in :mod:`detector.service._policy` on the clock it is
given, and each piece of work is a public method (:meth:`Consumer.receive_once`,
:meth:`~Consumer.process_due`, :meth:`~Consumer.checkpoint`, :meth:`~Consumer.heartbeat`,
:meth:`~Consumer.drain`), so tests drive them one at a time against the in-memory queue with a
manual clock; :meth:`Consumer.run` composes them with concurrent receive loops.

Between two batches, :meth:`Consumer.adopt_model` swaps in a model its ``model_updates`` have
verified (see :mod:`detector.service._model_watch`), keeping the state.

Imports: the standard library, numpy, polars, and the detector's pipeline, events, ingest,
sinks, findings, scoring (types), state and this package. I/O only through the ports it is
given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

import numpy as np
import polars as pl

from detector.errors import StateConflictError, StateError
from detector.findings import Finding, finding_to_json
from detector.ingest import (
    Clock,
    MessageQueue,
    PositionedSource,
    QueueError,
    QueueMessage,
    QueueUnavailableError,
    utc_now,
)
from detector.pipeline import Pipeline, PipelineState, StepReport
from detector.scoring import ModelArtifact
from detector.service._decode import DecodedMessages, decode_batch
from detector.service._http import Health
from detector.service._ledger import HeldMessage, Ledger, Phase
from detector.service._logging import fields
from detector.service._metrics import ServiceMetrics
from detector.service._model_watch import swap_model
from detector.service._policy import (
    DEFAULT_GRACE_SECONDS,
    DRAINED_POLL_SECONDS,
    ConsumerConfig,
    batch_due,
    checkpoint_due,
    idle_watermark,
    may_receive,
    queue_drained,
    queue_idle,
    seconds_to_next_decision,
)
from detector.sinks import FindingMessage, FindingSink, SinkError
from detector.state import Snapshot, StateStore
from detector.suppression import Split, Suppressor

__all__ = ["Consumer", "ConsumerCounts", "DrainReport", "ModelUpdates"]


class ModelUpdates(Protocol):
    """Where verified new models wait (a :class:`~detector.service._model_watch.ModelWatcher`)."""

    def take(self) -> ModelArtifact | None: ...


_FATAL_RECEIVE_ERRORS: Final = 5  # non-transient receive errors in a row before giving up
_MAX_BACKOFF_SECONDS: Final = 10.0
_LOGGED_REASONS: Final = 5
_LOGGED_IDS: Final = 10  # message ids named in one log line
_RECEIVE_BATCH: Final = 10  # SQS's most messages per receive
_DELETE_GROUP: Final = 100  # messages per delete task: 10 DeleteMessageBatch calls
_HANDLE_GONE: Final = frozenset(
    {"ReceiptHandleIsInvalid", "MessageNotInflight", "InvalidParameterValue"}
)

_log = logging.getLogger("detector.service")


@dataclass(frozen=True, slots=True)
class DrainReport:
    """How a shutdown went: ``checkpointed`` False means the last state was not saved (its
    messages were released and will be processed again)."""

    checkpointed: bool
    released: int
    still_held: int
    fatal: str | None = None

    @property
    def clean(self) -> bool:
        return self.checkpointed and self.fatal is None


@dataclass(slots=True)
class ConsumerCounts:
    """Running totals since start (the metrics hold the same; these are plain ints, cheap to
    read in a loop and in tests)."""

    received: int = 0
    events: int = 0
    deleted: int = 0
    poison: int = 0
    findings: int = 0
    checkpoints: int = 0


@dataclass(frozen=True, slots=True)
class _Stepped:
    """What decoding and stepping a batch gave, computed off the event loop."""

    decoded: DecodedMessages
    state: PipelineState
    findings: list[Finding]
    report: StepReport
    lags: np.ndarray


def _backoff(failures: int) -> float:
    return float(min(_MAX_BACKOFF_SECONDS, 0.5 * 2 ** max(0, failures - 1)))


def _finding_message(finding: Finding) -> FindingMessage:
    return FindingMessage(
        finding.finding_id, finding.principal, finding_to_json(finding), finding.count
    )


class Consumer:
    """Consumes ``queue`` into ``pipeline``, sends findings to ``sinks``, checkpoints to
    ``store`` (see the module docstring). The ports are the caller's to open and close.

    ``clock`` dates receipts and drives every decision; ``monotonic`` times the drain and the
    metrics; ``backoff(n)`` is the pause in seconds after the n-th failure in a row (of
    receives, finding deliveries or checkpoints): 0.5 s doubling up to 10 s by default.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        queue: MessageQueue,
        sinks: Sequence[FindingSink],
        store: StateStore,
        config: ConsumerConfig | None = None,
        *,
        clock: Clock = utc_now,
        metrics: ServiceMetrics | None = None,
        health: Health | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        backoff: Callable[[int], float] | None = None,
        suppressor: Suppressor | None = None,
        model_updates: ModelUpdates | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.suppressor = suppressor
        self.model_updates = model_updates
        self.queue = queue
        self.sinks = tuple(sinks)
        self.store = store
        self.config = config or ConsumerConfig()
        self.metrics = metrics or ServiceMetrics()
        self.metrics.in_flight.set_function(self._held_count)
        self.health = health
        self.ledger = Ledger()
        self.counts = ConsumerCounts()
        self.fatal: str | None = None
        self._superseded = False  # another writer committed the state: never save again
        self._clock = clock
        self._monotonic = monotonic
        self._backoff = backoff or _backoff
        self._state: PipelineState | None = None
        self._last_checkpoint = clock()
        self._checkpoint_failures = 0
        self._checkpoint_retry_at: datetime | None = None
        self._last_checkpoint_seconds = 0.0
        self._sink_failures = 0
        self._sink_retry_at: datetime | None = None
        self._short_receive = False  # the last receive brought fewer than asked for
        self._last_cut: datetime | None = None  # when the last micro-batch was taken
        self._last_received = clock()  # the last receive that brought messages
        self._polls: dict[int, float] = {}  # receive loops' long polls in flight: start times
        self._positions_moved = False  # a stream's records were given up since the last save
        self._stopping = False
        self._stop_requested_at: float | None = None
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._paused = False  # what _room and the receive_paused gauge say
        self._delete_slots = asyncio.Semaphore(self.config.delete_concurrency)
        self._deletes: set[asyncio.Task[None]] = set()
        self._received_after_stop: list[QueueMessage] = []

    # -- lifecycle -------------------------------------------------------------------------

    def _held_count(self) -> float:
        return float(len(self.ledger))

    @property
    def state(self) -> PipelineState:
        if self._state is None:
            raise RuntimeError("the consumer has not started: await start() first")
        return self._state

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def start(self) -> None:
        """Resume from the store's last snapshot (or start empty); raises ``StateError`` if
        what is stored cannot be used."""
        snapshot = await asyncio.to_thread(self.store.load)
        if snapshot is None:
            self._state = self.pipeline.initial_state()
            _log.info("no saved state: starting empty", extra=fields(store=repr(self.store)))
        else:
            self._state = self.pipeline.restore(snapshot)
            _log.info(
                "state restored",
                extra=fields(
                    store=repr(self.store),
                    principals=self._state.features.profiles.principals.height,
                    watermark=self._state.features.watermark,
                ),
            )
        if isinstance(self.queue, PositionedSource):
            self.queue.resume({} if snapshot is None else snapshot.meta)
        self._last_checkpoint = self._clock()
        self.metrics.model.loaded(self.pipeline.artifact)

    def adopt_model(self) -> bool:
        """Between batches: swap in the model :attr:`model_updates` has verified, if any,
        keeping the state (see :func:`detector.service._model_watch.swap_model`)."""
        artifact = None if self.model_updates is None else self.model_updates.take()
        if artifact is None:
            return False
        before = self.pipeline.artifact.version
        self.pipeline, self._state = swap_model(self.pipeline, self.state, artifact)
        self.metrics.model.loaded(artifact)
        self.metrics.model.reloads.inc()
        _log.info("model swapped", extra=fields(model_version=artifact.version, previous=before))
        return True

    def stop(self) -> None:
        """Stop receiving and drain (idempotent; safe from a signal handler)."""
        if not self._stopping:
            self._stopping = True
            self._stop_requested_at = self._monotonic()
            _log.info("stopping: no new receives; finishing held work")
        self._stopped.set()
        self._wake.set()
        self._room.set()

    # -- receiving -------------------------------------------------------------------------

    def may_receive(self) -> bool:
        return may_receive(
            held=len(self.ledger), buffered=self.ledger.count(Phase.BUFFERED), config=self.config
        )

    async def receive_once(self, wait_seconds: int | None = None) -> int:
        """One receive call, unless backpressure holds it back; returns messages now held."""
        if self._stopping or not self.may_receive():
            self._update_room()
            return 0
        messages = await self.queue.receive(
            _RECEIVE_BATCH,
            self.config.wait_seconds if wait_seconds is None else wait_seconds,
            self.config.visibility_timeout,
        )
        return await self._accept(messages)

    async def _accept(self, messages: Sequence[QueueMessage]) -> int:
        # Fewer messages than asked for: the queue had no more visible (or SQS sampled few of
        # its servers). Either way it looks drained enough to checkpoint and let deletes go,
        # rather than holding them until a long poll comes back empty.
        self._short_receive = len(messages) < _RECEIVE_BATCH
        if not messages:
            if self.ledger.count(Phase.PROCESSED):
                self._wake.set()  # a drained queue may make a checkpoint due
            return 0
        self.metrics.messages_received.inc(len(messages))
        self.counts.received += len(messages)
        self._last_received = self._clock()
        if self._stopping:
            # A long poll that returned after stop(): released once every receiver is done, so
            # that another receiver's poll cannot take them again (each receive counts
            # towards maxReceiveCount).
            self._received_after_stop.extend(messages)
            return 0
        added = self.ledger.add(messages, self._clock(), self.config.visibility_timeout)
        self._update_room()
        buffered = self.ledger.count(Phase.BUFFERED)
        # Wake the processor only when a decision changes: the first buffered message starts
        # the batch's clock, a full batch is due at once; otherwise its timer suffices.
        if buffered == len(added) or buffered >= self.config.batch_size:
            self._wake.set()
        return len(added)

    def _update_room(self) -> None:
        # Called after every change to the ledger: only a change of decision costs anything
        # (the in-flight gauge reads the ledger when scraped).
        paused = not (self.may_receive() or self._stopping)
        if paused == self._paused:
            return
        self._paused = paused
        if paused:
            self._room.clear()
        else:
            self._room.set()
        self.metrics.receive_paused.set(1 if paused else 0)

    # -- processing ------------------------------------------------------------------------

    def batch_is_due(self) -> bool:
        return batch_due(
            self.ledger.count(Phase.BUFFERED),
            self.ledger.oldest_buffered(),
            self._clock(),
            self.config,
            self._last_cut,
            queue_drained=self._queue_drained(),
            queue_deep=not self._short_receive,
        )

    def _take_batch(self) -> list[HeldMessage]:
        batch = self.ledger.take_batch(self.config.max_batch_size)
        if batch:
            self._last_cut = self._clock()
            self._update_room()  # the buffer has room again: receive while it is worked on
        return batch

    async def process_due(self, *, force: bool = False) -> int:
        """Process one micro-batch if one is due (``force``: whatever is buffered, now);
        returns how many messages it took from the buffer (poison included)."""
        if not force:
            if self._sink_retry_at is not None and self._clock() < self._sink_retry_at:
                return 0
            if not self.batch_is_due():
                return 0
        batch = self._take_batch()
        if batch:
            await self._process(batch)
        return len(batch)

    async def _process(self, batch: list[HeldMessage]) -> bool:
        """Step one batch and send its findings; False if they could not be delivered (the
        batch is back in the buffer)."""
        started = self._monotonic()
        now = self._clock()
        messages = [entry.message for entry in batch]
        try:
            stepped = await asyncio.to_thread(self._decode_and_step, self.state, messages, now)
        except Exception:
            await self._step_failed(batch)
            return True
        poison = stepped.decoded.poison
        good = [entry for entry in batch if entry.handle not in poison] if poison else batch
        if poison:
            await self._hand_back_poison([e for e in batch if e.handle in poison], poison)
        try:
            split = await self._deliver(stepped.findings)
        except SinkError as err:
            self._findings_failed(err, len(stepped.findings), good, now)
            return False
        if self._sink_failures:
            self._sink_failures = 0
            self._sink_retry_at = None
            if self.health is not None:
                self.health.ready("findings")
        self._state = stepped.state
        self.ledger.mark_entries(good, Phase.PROCESSED)
        self._update_room()
        self._record(stepped, split.kept, len(good), self._monotonic() - started)
        return True

    async def _deliver(self, findings: list[Finding]) -> Split:
        """Suppress, send what is kept, audit what is not; raises :class:`SinkError` (then
        nothing is recorded, and the findings come again with the retry)."""
        if self.suppressor is None:
            split = Split(tuple(findings), ())
        else:
            split = await self.suppressor.split(findings)
        await self._send(split.kept)
        if self.suppressor is not None:
            await self.suppressor.write_audit(split)
            self.suppressor.record(split)
            for rule_id, n in Counter(rule.id for _, rule in split.suppressed).items():
                self.metrics.findings_suppressed.labels(rule=rule_id).inc(n)
        return split

    def _decode_and_step(
        self, state: PipelineState, messages: Sequence[QueueMessage], now: datetime
    ) -> _Stepped:
        """Pure, and run in a worker thread: decoding is Python, the step mostly polars."""
        decoded = decode_batch(messages, max_body_bytes=self.config.max_body_bytes)
        new_state, findings, report = self.pipeline.step(state, decoded.events, now)
        return _Stepped(decoded, new_state, findings, report, _lag_seconds(decoded.events, now))

    async def _step_failed(self, batch: Sequence[HeldMessage]) -> None:
        """A step that raised is a bug: counted apart from poison, and the batch handed back
        undeleted (see the module docstring)."""
        self.metrics.step_failures.inc()
        _log.exception(
            "pipeline step failed: the batch is handed back undeleted",
            extra=fields(
                messages=len(batch),
                message_ids=[entry.message.message_id for entry in batch[:_LOGGED_IDS]],
            ),
        )
        await self._hand_back(batch)

    def _findings_failed(
        self, err: SinkError, findings: int, batch: list[HeldMessage], now: datetime
    ) -> None:
        self._sink_failures += 1
        pause = self._backoff(self._sink_failures)
        self._sink_retry_at = now + timedelta(seconds=pause)
        self.metrics.findings_send_failures.inc()
        _log.error(
            "findings not delivered: the batch goes back to the buffer",
            extra=fields(
                error=str(err), findings=findings, messages=len(batch), retry_in_seconds=pause
            ),
        )
        if self.health is not None:
            self.health.unready("findings", f"delivery failing: {err}")
        self.ledger.requeue(batch)
        self._update_room()

    async def _send(self, findings: Sequence[Finding]) -> None:
        if not findings or not self.sinks:
            return
        messages = [_finding_message(f) for f in findings]
        results = await asyncio.gather(
            *(sink.send(messages) for sink in self.sinks), return_exceptions=True
        )
        for result in results:
            if isinstance(result, asyncio.CancelledError):
                raise result
        problems = [r for r in results if isinstance(r, BaseException)]
        if problems:
            first = problems[0]
            if isinstance(first, SinkError):
                raise first
            raise SinkError(
                f"findings sink failed: {type(first).__name__}: {first}",
                [m.finding_id for m in messages],
            ) from first

    async def _hand_back_poison(
        self, entries: Sequence[HeldMessage], reasons: Mapping[str, tuple[str, ...]]
    ) -> None:
        """Count and log poison, then leave it to the redrive policy: never deleted."""
        limit = self.config.max_receive_count
        bound = 0
        for entry in entries:
            message = entry.message
            dlq_bound = limit is not None and message.receive_count >= limit
            bound += dlq_bound
            why = reasons.get(entry.handle, ())
            _log.warning(
                "poison message left for the dead-letter queue",
                extra=fields(
                    message_id=message.message_id,
                    receive_count=message.receive_count,
                    max_receive_count=limit,
                    dlq_bound=dlq_bound,
                    reasons=list(why[:_LOGGED_REASONS]),
                    more_reasons=max(0, len(why) - _LOGGED_REASONS),
                ),
            )
        self.metrics.messages_failed.inc(len(entries))
        self.counts.poison += len(entries)
        if bound:
            self.metrics.messages_dlq_bound.inc(bound)
        await self._hand_back(entries)

    async def _hand_back(self, entries: Sequence[HeldMessage]) -> None:
        """Let messages go undeleted: visible again after ``poison_retry_seconds`` (or at the
        end of their visibility timeout), each receive counting towards the redrive policy."""
        if isinstance(self.queue, PositionedSource):  # a stream: read again, or given up
            dropped = self.queue.hand_back([e.message for e in entries])
            if dropped:
                self._positions_moved = True
                self._wake.set()
                self.metrics.messages_dlq_bound.inc(len(dropped))
                _log.error(
                    "records dropped after repeated failures (a stream has no dead-letter queue)",
                    extra=fields(
                        message_ids=[m.message_id for m in dropped[:_LOGGED_IDS]],
                        count=len(dropped),
                    ),
                )
            self.ledger.forget_entries(entries)
            self._update_room()
            return
        retry = self.config.poison_retry_seconds
        if retry is not None:
            try:
                await self.queue.change_visibility([e.message for e in entries], retry)
            except QueueError as err:  # they come back at the end of their visibility timeout
                _log.warning("could not shorten visibility", extra=fields(error=str(err)))
        self.ledger.forget_entries(entries)
        self._update_room()

    def _record(
        self, stepped: _Stepped, sent: Sequence[Finding], messages: int, seconds: float
    ) -> None:
        m = self.metrics
        report = stepped.report
        m.batch_seconds.observe(seconds)
        for severity, count in Counter(f.severity_label for f in sent).items():
            m.findings.labels(severity=severity).inc(count)
        if report.principals_learning is not None:
            m.principals_learning.set(report.principals_learning)
        if report.model_threshold is not None:
            m.model_threshold.set(report.model_threshold)
        for failure in report.detection_failures:
            m.detection_errors.labels(detection=failure.detection_id).inc()
            _log.error(
                "detection failed on a batch: the others went on without it",
                extra=fields(detection=failure.detection_id, error=failure.error),
            )
        duplicates = report.duplicates + stepped.decoded.duplicates_in_batch
        m.events_processed.inc(report.events_in)
        m.events_duplicate.inc(duplicates)
        m.events_late.inc(report.late_events)
        m.queue_lag_seconds.observe_many(stepped.lags)
        m.model.observe(report, stepped.findings)
        self._record_timeliness(report)
        self.counts.events += report.events_in
        self.counts.findings += len(sent)
        _log.debug(
            "batch processed",
            extra=fields(
                messages=messages,
                events=report.events_in,
                duplicates=duplicates,
                late=report.late_events,
                findings=len(sent),
                suppressed=len(stepped.findings) - len(sent),
                seconds=round(seconds, 4),
            ),
        )

    def _record_timeliness(self, report: StepReport) -> None:
        for family, seconds in report.detect_seconds:
            self.metrics.finding_latency_seconds.labels(family=family).observe(seconds)
        if report.early_reports:
            self.metrics.early_reports.inc(report.early_reports)

    # -- quiet hours -----------------------------------------------------------------------

    async def advance_if_idle(self) -> bool:
        """While the queue is idle, move the watermark with the wall clock and report the
        windows that close (:func:`~detector.service._policy.idle_watermark`); True if it did.
        The state is checkpointed with the next batch (a crash before re-closes the windows
        after the restart, with the same finding ids)."""
        if self._stopping or self.ledger.count(Phase.BUFFERED):
            return False
        now = self._clock()
        state = self.state
        target = idle_watermark(
            now=now,
            last_received=self._last_received,
            watermark=state.features.watermark,
            open_windows=self.pipeline.open_window_ends(state),
            lateness=self.pipeline.config.features.allowed_lateness,
            idle_seconds=self.config.idle_seconds,
        )
        if target is None:
            return False
        advanced, findings, report = await asyncio.to_thread(
            self.pipeline.advance, state, target, now
        )
        try:
            # Through the same suppression as a batch's findings: replay suppresses them too.
            split = await self._deliver(findings)
        except SinkError as err:
            _log.warning(
                "idle queue: findings of the closing windows not delivered; retried",
                extra=fields(error=str(err), findings=len(findings)),
            )
            return False
        self._state = advanced
        self.metrics.idle_advances.inc()
        for severity, count in Counter(f.severity_label for f in split.kept).items():
            self.metrics.findings.labels(severity=severity).inc(count)
        self._record_timeliness(report)
        self.counts.findings += len(split.kept)
        _log.info(
            "queue idle: the watermark follows the wall clock",
            extra=fields(
                watermark=target,
                windows_closed=report.windows_closed,
                findings=len(split.kept),
                suppressed=len(split.suppressed),
            ),
        )
        return True

    # -- checkpoints and deletes -----------------------------------------------------------

    def checkpoint_is_due(self) -> bool:
        return checkpoint_due(
            # Records given up on a stream move its positions: that alone is worth a checkpoint.
            processed=self.ledger.count(Phase.PROCESSED) + self._positions_moved,
            held=len(self.ledger),
            now=self._clock(),
            last_checkpoint=self._last_checkpoint,
            retry_after=self._checkpoint_retry_at,
            queue_idle=queue_idle(
                short_receive=self._short_receive,
                fifo=self.queue.fifo,
                drained=self._queue_drained(),
                buffered=self.ledger.count(Phase.BUFFERED),
            ),
            config=self.config,
            last_checkpoint_seconds=self._last_checkpoint_seconds,
        )

    async def checkpoint(self) -> bool:
        """Save the state; only then delete the messages it includes (in the background).
        On failure nothing is deleted and the messages stay held."""
        now = self._clock()
        entries = self.ledger.entries(Phase.PROCESSED)
        if self._superseded:
            return False
        if not entries and not self._positions_moved:
            self._last_checkpoint = now
            return True
        state = self.state
        positions: dict[str, str] = {}
        if isinstance(self.queue, PositionedSource):  # read positions go into the snapshot
            positions = self.queue.positions([e.message for e in entries])
        started = self._monotonic()
        try:
            await asyncio.to_thread(self._save, state, positions)
        except StateConflictError as err:
            self._superseded = True
            self.fatal = f"{type(err).__name__}: {err}"
            self.metrics.checkpoint_failures.inc()
            _log.error(
                "another process committed this state first: stopping without deleting",
                extra=fields(error=str(err), messages=len(entries)),
            )
            if self.health is not None:
                self.health.unready("state", f"superseded: {err}")
            self.stop()
            return False
        except Exception as err:
            self._checkpoint_failures += 1
            pause = min(self.config.checkpoint_seconds, self._backoff(self._checkpoint_failures))
            self._checkpoint_retry_at = now + timedelta(seconds=pause)
            self.metrics.checkpoint_failures.inc()
            _log.error(
                "checkpoint failed: its messages stay held and undeleted",
                exc_info=not isinstance(err, StateError | OSError),
                extra=fields(
                    error=f"{type(err).__name__}: {err}",
                    messages=len(entries),
                    retry_in_seconds=pause,
                ),
            )
            if self.health is not None:
                self.health.unready("state", f"checkpoint failing: {err}")
            return False
        seconds = self._monotonic() - started
        self._last_checkpoint_seconds = seconds
        if self._checkpoint_failures and self.health is not None:
            self.health.ready("state")
        self._checkpoint_failures = 0
        self._checkpoint_retry_at = None
        self._last_checkpoint = now
        self.metrics.checkpoints.inc()
        self.counts.checkpoints += 1
        self.metrics.checkpoint_seconds.observe(seconds)
        self.ledger.mark_entries(entries, Phase.CHECKPOINTED)
        self._positions_moved = False
        _log.debug(
            "checkpoint saved", extra=fields(messages=len(entries), seconds=round(seconds, 4))
        )
        task = asyncio.create_task(self._delete(entries), name="delete")
        self._deletes.add(task)
        task.add_done_callback(self._deletes.discard)
        return True

    def _save(self, state: PipelineState, positions: Mapping[str, str]) -> None:
        snapshot = self.pipeline.snapshot(state)
        if positions:
            snapshot = Snapshot(snapshot.frames, {**snapshot.meta, **positions})
        self.store.save(snapshot)

    async def _delete(self, entries: Sequence[HeldMessage]) -> None:
        # Groups of 10 calls, at most delete_concurrency of them at once: few tasks, and the
        # held count drops as each group is done.
        groups = [entries[i : i + _DELETE_GROUP] for i in range(0, len(entries), _DELETE_GROUP)]
        await asyncio.gather(*(self._delete_group(group) for group in groups))

    async def _delete_group(self, group: Sequence[HeldMessage]) -> None:
        async with self._delete_slots:
            try:
                outcome = await self.queue.delete([entry.message for entry in group])
            except QueueError as err:
                self.metrics.messages_delete_failed.inc(len(group))
                _log.warning(
                    "delete failed: the messages come back and count once",
                    extra=fields(error=str(err), messages=len(group)),
                )
            else:
                self.metrics.messages_processed.inc(len(outcome.succeeded))
                self.counts.deleted += len(outcome.succeeded)
                if outcome.failed:
                    self.metrics.messages_delete_failed.inc(len(outcome.failed))
                    for failure in outcome.failed:
                        _log.warning(
                            "delete refused: the message comes back and counts once",
                            extra=fields(
                                message_id=failure.id, code=failure.code, error=failure.message
                            ),
                        )
            finally:
                self.ledger.forget_entries(group)
                self._update_room()

    async def wait_for_deletes(self, timeout: float | None = None) -> bool:
        """Wait for the deletes under way; False if some were still running at ``timeout``."""
        pending = set(self._deletes)
        if not pending:
            return True
        _, still = await asyncio.wait(pending, timeout=timeout)
        return not still

    # -- heartbeats and releases -----------------------------------------------------------

    async def heartbeat(self) -> int:
        """Extend the invisibility of held messages close to their deadline; a receipt that
        cannot be extended any more (redelivered elsewhere) is let go. Returns how many
        were extended."""
        now = self._clock()
        due = self.ledger.due_for_heartbeat(now, self.config.heartbeat_margin)
        if not due:
            return 0
        timeout = self.config.visibility_timeout
        try:
            outcome = await self.queue.change_visibility([e.message for e in due], timeout)
        except QueueError as err:
            _log.warning(
                "visibility heartbeat failed", extra=fields(error=str(err), messages=len(due))
            )
            return 0
        failed = {failure.id: failure for failure in outcome.failed}
        extended = [e.handle for e in due if e.message.message_id not in failed]
        self.ledger.extend(extended, now + timedelta(seconds=timeout))
        gone = [
            e
            for e in due
            if e.message.message_id in failed
            and failed[e.message.message_id].code in _HANDLE_GONE
            and e.phase is not Phase.PROCESSING
        ]
        if gone:
            self.metrics.visibility_lost.inc(len(gone))
            _log.warning(
                "held receipts expired: the queue will deliver those messages again",
                extra=fields(
                    message_ids=[e.message.message_id for e in gone[:_LOGGED_IDS]], count=len(gone)
                ),
            )
            self.ledger.forget(e.handle for e in gone)
            self._update_room()
        self.metrics.visibility_extended.inc(len(extended))
        return len(extended)

    async def _release(self, messages: Sequence[QueueMessage], why: str) -> int:
        if not messages:
            return 0
        try:
            outcome = await self.queue.change_visibility(messages, 0)
        except QueueError as err:
            _log.warning(
                "release failed: the messages come back at the end of their visibility timeout",
                extra=fields(error=str(err), messages=len(messages), why=why),
            )
            return 0
        self.metrics.messages_released.inc(len(outcome.succeeded))
        return len(outcome.succeeded)

    async def release_held(self, why: str) -> int:
        """Hand every held, not checkpointed message back to the queue (visibility 0)."""
        entries = [e for e in self.ledger.entries() if e.phase is not Phase.CHECKPOINTED]
        released = await self._release([e.message for e in entries], why)
        self.ledger.forget(e.handle for e in entries)
        self._update_room()
        if entries:
            _log.info(
                "messages released", extra=fields(messages=len(entries), released=released, why=why)
            )
        return released

    # -- the composition -------------------------------------------------------------------

    async def run(self, *, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> DrainReport:
        """Receive, process, checkpoint and heartbeat until :meth:`stop`, then drain within
        ``grace_seconds`` of the stop."""
        if self._state is None:
            await self.start()
        receivers = [
            asyncio.create_task(self._receive_loop(), name=f"receive-{i}")
            for i in range(self.config.receivers)
        ]
        heartbeats = asyncio.create_task(self._heartbeat_loop(), name="heartbeat")
        try:
            await self._process_loop()
            return await self.drain(receivers, grace_seconds=grace_seconds)
        finally:
            for task in [*receivers, heartbeats]:
                task.cancel()
            await asyncio.gather(*receivers, heartbeats, return_exceptions=True)

    async def drain(
        self,
        receivers: Sequence[asyncio.Task[None]] = (),
        *,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
    ) -> DrainReport:
        """Shutdown: let outstanding receives return (what they bring is released), process
        what is buffered, checkpoint, wait for the deletes, release everything else."""
        self.stop()
        assert self._stop_requested_at is not None
        deadline = self._stop_requested_at + grace_seconds
        reserve = min(5.0, grace_seconds / 4)  # for the checkpoint, the deletes and closing

        def left(margin: float = 0.0) -> float:
            return max(0.0, deadline - margin - self._monotonic())

        pending = [task for task in receivers if not task.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=left(reserve))
            for task in late:  # what a cancelled long poll had taken returns after its timeout
                task.cancel()
        late_arrivals, self._received_after_stop = self._received_after_stop, []
        await self._release(late_arrivals, "received while stopping")
        while self.ledger.count(Phase.BUFFERED) and left(reserve) > 0:
            if not await self._process(self._take_batch()):
                break  # findings cannot be delivered now: release instead
        due = self.ledger.count(Phase.PROCESSED) or self._positions_moved
        checkpointed = await self.checkpoint() if due else True
        await self.wait_for_deletes(timeout=left())
        released = await self.release_held(
            "shutting down" if checkpointed else "shutting down; the last checkpoint failed"
        )
        report = DrainReport(checkpointed, released, len(self.ledger), self.fatal)
        _log.info(
            "drained",
            extra=fields(
                checkpointed=checkpointed,
                released=released,
                still_held=report.still_held,
                seconds=round(self._monotonic() - self._stop_requested_at, 3),
            ),
        )
        return report

    async def _receive_loop(self) -> None:
        errors = 0
        poll = id(asyncio.current_task())  # this loop's key in _polls
        while not self._stopping:
            if not self.may_receive():
                self._update_room()
                await self._room.wait()
                continue
            self._polls[poll] = self._monotonic()
            try:
                messages = await self.queue.receive(
                    _RECEIVE_BATCH, self.config.wait_seconds, self.config.visibility_timeout
                )
            except QueueUnavailableError as err:
                errors += 1
                await self._receive_failed(err, errors, fatal=False)
                continue
            except QueueError as err:
                errors += 1
                await self._receive_failed(err, errors, fatal=errors >= _FATAL_RECEIVE_ERRORS)
                continue
            finally:
                self._polls.pop(poll, None)
            if errors:
                errors = 0
                if self.health is not None:
                    self.health.ready("queues")
            await self._accept(messages)

    async def _receive_failed(self, err: QueueError, errors: int, *, fatal: bool) -> None:
        self.metrics.receive_errors.inc()
        if self.health is not None:
            self.health.unready("queues", f"receive failing: {err}")
        if fatal:
            self.fatal = f"{type(err).__name__}: {err}"
            _log.error(
                "the input queue keeps refusing receives: stopping", extra=fields(error=str(err))
            )
            self.stop()
            return
        pause = self._backoff(errors)
        _log.warning("receive failed", extra=fields(error=str(err), retry_in_seconds=pause))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(pause):
                await self._stopped.wait()

    async def _heartbeat_loop(self) -> None:
        every = self.config.heartbeat_every_seconds
        while True:
            await asyncio.sleep(every)
            try:
                await self.heartbeat()
            except Exception:  # a heartbeat must never take the service down
                _log.exception("heartbeat round failed")

    async def _process_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            if self.health is not None:
                self.health.tick()
            self.adopt_model()
            processed = await self.process_due()
            # Checked after every batch: under a steady stream batches are always due, and
            # deletes must keep pace with them.
            if self.checkpoint_is_due():
                await self.checkpoint()
                continue
            if processed or await self.advance_if_idle():
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._seconds_to_next_decision()):
                    await self._wake.wait()

    def _queue_drained(self) -> bool:
        return queue_drained(self._polls.values(), self._monotonic())

    def _seconds_to_next_decision(self) -> float:
        drained_in = None
        if self._polls:
            drained_in = min(self._polls.values()) + DRAINED_POLL_SECONDS - self._monotonic()
        return seconds_to_next_decision(
            now=self._clock(),
            config=self.config,
            oldest_buffered=self.ledger.oldest_buffered(),
            buffered=self.ledger.count(Phase.BUFFERED),
            last_cut=self._last_cut,
            processed=self.ledger.count(Phase.PROCESSED) + self._positions_moved,
            last_checkpoint=self._last_checkpoint,
            last_checkpoint_seconds=self._last_checkpoint_seconds,
            retries=(self._sink_retry_at, self._checkpoint_retry_at),
            drained_in=drained_in,
        )


def _lag_seconds(events: pl.DataFrame, now: datetime) -> np.ndarray:
    """now - event time, in seconds, per event."""
    if events.height == 0:
        return np.empty(0, dtype=np.float64)
    millis = events.get_column("event_time").dt.epoch("ms").to_numpy()
    return (now.timestamp() * 1000.0 - millis.astype(np.float64)) / 1000.0
