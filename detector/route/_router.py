"""The router: SQS messages in, Kinesis records out, keyed by principal; stateless.

Receivers long-poll the input queue and decode each body into a record (poison is counted,
logged and left undeleted for the redrive policy); a flusher cuts PutRecords batches
(:func:`~detector.route._policy.batch_due`), puts them, deletes the messages whose records
were all accepted and retries or leaves the others (:func:`~detector.route._policy.settle`).
Any number of routers can share one queue: each message goes to the shard its principal
hashes to, whichever router put it, and a message put twice (a router died between its put
and its delete) is a duplicate event that the consumers' event-id dedup counts once.

Imports: the standard library, the detector's ingest values and ports, the service's metrics
and health, and this package's policy. I/O only through the ports it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from detector.ingest import (
    BatchOutcome,
    Clock,
    MessageQueue,
    OutgoingRecord,
    QueueError,
    QueueMessage,
    utc_now,
)
from detector.route._policy import Pending, RouterConfig, batch_due, route_messages, settle
from detector.service._http import Health
from detector.service._logging import fields
from detector.service._metrics import ServiceMetrics

__all__ = ["RecordWriter", "Router", "RouterCounts"]

_RECEIVE_BATCH: Final = 10
_LOGGED_IDS: Final = 10
_POLL_SECONDS: Final = 0.05  # the flusher's pace while records wait for their batch

_log = logging.getLogger("detector.route")


class RecordWriter(Protocol):
    """Where records go (:class:`~detector.ingest.KinesisStream`, or a fake in tests)."""

    async def put(self, records: Sequence[OutgoingRecord]) -> BatchOutcome: ...


@dataclass(slots=True)
class RouterCounts:
    received: int = 0
    put: int = 0
    deleted: int = 0
    poison: int = 0
    retried: int = 0
    left: int = 0


class Router:
    """Routes ``queue`` into ``stream`` (see the module docstring); the ports are the caller's."""

    def __init__(
        self,
        queue: MessageQueue,
        stream: RecordWriter,
        config: RouterConfig | None = None,
        *,
        receivers: int = 4,
        wait_seconds: int = 20,
        clock: Clock = utc_now,
        metrics: ServiceMetrics | None = None,
        health: Health | None = None,
    ) -> None:
        self.queue = queue
        self.stream = stream
        self.config = config or RouterConfig()
        self.receivers = receivers
        self.wait_seconds = wait_seconds
        self.metrics = metrics or ServiceMetrics()
        self.health = health
        self.counts = RouterCounts()
        self._clock = clock
        self._pending: list[Pending] = []
        self._stopping = False
        self._room = asyncio.Event()
        self._room.set()
        self._wake = asyncio.Event()
        self.stopped = asyncio.Event()

    def stop(self) -> None:
        """Stop receiving, put what is pending, return from :meth:`run` (idempotent)."""
        self._stopping = True
        self.stopped.set()
        self._room.set()
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    # -- the pieces (tests drive them one at a time) -----------------------------------------

    async def receive_once(self, wait_seconds: int | None = None) -> int:
        """One receive; returns the records it added to the pending batch."""
        messages = await self.queue.receive(
            _RECEIVE_BATCH,
            self.wait_seconds if wait_seconds is None else wait_seconds,
            self.config.visibility_timeout,
        )
        return self._accept(messages)

    def _accept(self, messages: Sequence[QueueMessage]) -> int:
        if not messages:
            return 0
        self.metrics.messages_received.inc(len(messages))
        self.counts.received += len(messages)
        routing = route_messages(messages, self._clock())
        if routing.poison:
            self.metrics.messages_failed.inc(len(routing.poison))
            self.counts.poison += len(routing.poison)
            for message_id, why in list(routing.poison.items())[:_LOGGED_IDS]:
                _log.warning(
                    "poison message left for the dead-letter queue",
                    extra=fields(message_id=message_id, reason=why),
                )
        self._pending.extend(routing.pending)
        if len(self._pending) >= self.config.batch_records:
            self._wake.set()
        if len(self._pending) >= 2 * self.config.batch_records:
            self._room.clear()  # backpressure: the puts are behind
        return len(routing.pending)

    def batch_is_due(self) -> bool:
        now = self._clock()
        ready = [p for p in self._pending if p.not_before is None or p.not_before <= now]
        oldest = min((p.received_at for p in ready), default=None)
        return batch_due(len(ready), oldest, now, self.config, draining=self._stopping)

    async def flush_once(self) -> int:
        """Put one batch of the records that may be tried now; delete, retry or leave their
        messages. Returns the records put."""
        now = self._clock()
        ready = [p for p in self._pending if p.not_before is None or p.not_before <= now]
        batch = ready[: self.config.batch_records]
        if not batch:
            return 0
        taken = {id(p) for p in batch}
        self._pending = [p for p in self._pending if id(p) not in taken]
        try:
            outcome = await self.stream.put([p.record for p in batch])
        except QueueError as err:
            _log.error("PutRecords failed as a whole", extra=fields(error=str(err)))
            failed = {p.record.id: str(err) for p in batch}
            if self.health is not None:
                self.health.unready("stream", f"PutRecords failing: {err}")
        else:
            failed = {f.id: f"{f.code}: {f.message}" for f in outcome.failed}
            if self.health is not None:
                self.health.ready("stream")
        decided = settle(batch, failed, self._clock(), self.config)
        put = len(batch) - len(failed)
        self.counts.put += put
        self.metrics.events_processed.inc(put)
        self._pending.extend(decided.retry)
        self.counts.retried += len(decided.retry)
        if decided.leave:
            self.counts.left += len(decided.leave)
            self.metrics.messages_released.inc(len(decided.leave))
            _log.warning(
                "records not accepted before their receipts expire: left for SQS to redeliver",
                extra=fields(message_ids=[m.message_id for m in decided.leave[:_LOGGED_IDS]]),
            )
        if decided.delete:
            await self._delete(decided.delete)
        if len(self._pending) < 2 * self.config.batch_records:
            self._room.set()
        return put

    async def _delete(self, messages: Sequence[QueueMessage]) -> None:
        try:
            outcome = await self.queue.delete(messages)
        except QueueError as err:
            self.metrics.messages_delete_failed.inc(len(messages))
            _log.warning(
                "delete failed: the messages come back and are put again (deduplicated)",
                extra=fields(error=str(err), messages=len(messages)),
            )
            return
        self.counts.deleted += len(outcome.succeeded)
        self.metrics.messages_processed.inc(len(outcome.succeeded))
        if outcome.failed:
            self.metrics.messages_delete_failed.inc(len(outcome.failed))

    # -- the composition ---------------------------------------------------------------------

    async def run(self) -> None:
        """Receive and flush until :meth:`stop`, then put what is pending and return."""
        receivers = [
            asyncio.create_task(self._receive_loop(), name=f"route-receive-{i}")
            for i in range(self.receivers)
        ]
        try:
            while not self._stopping:
                if self.health is not None:
                    self.health.tick()
                if self.batch_is_due():
                    await self.flush_once()
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_POLL_SECONDS):
                        await self._wake.wait()
        finally:
            for task in receivers:
                task.cancel()
            await asyncio.gather(*receivers, return_exceptions=True)
        # Draining: one try for what is pending; the rest comes back from SQS.
        while self._pending:
            if not await self.flush_once():
                break
        if self._pending:
            with contextlib.suppress(QueueError):
                await self.queue.change_visibility([p.message for p in self._pending], 0)
        _log.info("router drained", extra=fields(**self._count_fields()))

    def _count_fields(self) -> dict[str, int]:
        c = self.counts
        return {
            "received": c.received,
            "put": c.put,
            "deleted": c.deleted,
            "poison": c.poison,
            "retried": c.retried,
            "left": c.left,
        }

    async def _receive_loop(self) -> None:
        errors = 0
        while not self._stopping:
            await self._room.wait()
            if self.stopped.is_set():
                return
            try:
                await self.receive_once()
            except QueueError as err:
                errors += 1
                self.metrics.receive_errors.inc()
                if self.health is not None:
                    self.health.unready("queues", f"receive failing: {err}")
                _log.warning("receive failed", extra=fields(error=str(err)))
                await asyncio.sleep(min(10.0, 0.5 * 2 ** min(errors, 5)))
                continue
            if errors:
                errors = 0
                if self.health is not None:
                    self.health.ready("queues")
