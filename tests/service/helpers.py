"""Building blocks of the consumer tests: a consumer on fakes, a pump that drives it one
decision at a time on a manual clock, and ports that fail or record on demand."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from detector.errors import StateError
from detector.ingest import (
    BatchFailure,
    BatchOutcome,
    InMemoryQueue,
    ManualClock,
    OutgoingMessage,
    QueueMessage,
)
from detector.pipeline import Pipeline
from detector.service import Consumer, ConsumerConfig, ServiceMetrics
from detector.sinks import FindingMessage, FindingSink, MemoryFindingSink, SinkError
from detector.state import InMemoryStateStore, Snapshot, StateStore

TEST_CONFIG: dict[str, Any] = {
    "batch_size": 200,
    "wait_seconds": 0,
    "visibility_timeout": 60,
    "max_held_messages": 2000,
}


def make_consumer(
    pipeline: Pipeline,
    queue: Any,
    clock: ManualClock,
    *,
    sinks: Sequence[FindingSink] | None = None,
    store: StateStore | None = None,
    **settings: Any,
) -> Consumer:
    return Consumer(
        pipeline,
        queue,
        [MemoryFindingSink()] if sinks is None else sinks,
        InMemoryStateStore() if store is None else store,
        ConsumerConfig(**(TEST_CONFIG | settings)),
        clock=clock,
        metrics=ServiceMetrics(),
    )


async def send_bodies(
    queue: InMemoryQueue, bodies: Sequence[bytes], group: str | None = None
) -> None:
    outgoing = [
        OutgoingMessage(
            str(i),
            body,
            group_id=group,
            deduplication_id=f"d{i}-{hash(body) & 0xFFFFFFFF:x}" if group is not None else None,
        )
        for i, body in enumerate(bodies)
    ]
    outcome = await queue.send(outgoing)
    assert outcome.ok, outcome.failed


async def pump(consumer: Consumer, *, checkpoint: bool = True, limit: int = 10_000) -> None:
    """Receive until nothing more comes, process everything buffered, then (optionally)
    checkpoint and wait for the deletes."""
    for _ in range(limit):
        received = await consumer.receive_once(wait_seconds=0)
        processed = await consumer.process_due()
        if not received and not processed:
            break
    while await consumer.process_due(force=True):
        pass
    if checkpoint:
        await consumer.checkpoint()
        await consumer.wait_for_deletes()


def finding_ids(sink: MemoryFindingSink) -> list[str]:
    return sink.finding_ids


def finding_bodies(sink: MemoryFindingSink) -> list[dict[str, Any]]:
    return [orjson.loads(f.body) for f in sink.findings]


@dataclass
class Journal:
    """The order in which the ports were called."""

    calls: list[str] = field(default_factory=list)


class JournalingStore:
    def __init__(self, journal: Journal, fail: bool = False) -> None:
        self.inner = InMemoryStateStore()
        self.journal = journal
        self.fail = fail

    def load(self) -> Snapshot | None:
        return self.inner.load()

    def save(self, snapshot: Snapshot) -> None:
        if self.fail:
            self.journal.calls.append("save-failed")
            raise StateError("disk full (test)")
        self.inner.save(snapshot)
        self.journal.calls.append("save")


class JournalingSink:
    def __init__(self, journal: Journal, fail: int = 0) -> None:
        self.inner = MemoryFindingSink()
        self.journal = journal
        self.failures_left = fail

    async def send(self, findings: Sequence[FindingMessage]) -> None:
        if self.failures_left:
            self.failures_left -= 1
            self.journal.calls.append("send-failed")
            raise SinkError("findings queue down (test)", [f.finding_id for f in findings])
        await self.inner.send(findings)
        self.journal.calls.append("send")

    async def close(self) -> None:
        await self.inner.close()


class JournalingQueue:
    """An InMemoryQueue that journals deletes and can refuse heartbeats for some messages."""

    def __init__(self, inner: InMemoryQueue, journal: Journal) -> None:
        self.inner = inner
        self.journal = journal
        self.refuse_visibility: set[str] = set()

    @property
    def fifo(self) -> bool:
        return self.inner.fifo

    async def receive(
        self, max_messages: int = 10, wait_seconds: int = 20, visibility_timeout: int | None = None
    ) -> list[QueueMessage]:
        return await self.inner.receive(max_messages, wait_seconds, visibility_timeout)

    async def delete(self, messages: Sequence[QueueMessage]) -> BatchOutcome:
        self.journal.calls.append("delete")
        return await self.inner.delete(messages)

    async def change_visibility(
        self, messages: Sequence[QueueMessage], timeout_seconds: int
    ) -> BatchOutcome:
        self.journal.calls.append(f"visibility-{timeout_seconds}")
        refused = [m for m in messages if m.message_id in self.refuse_visibility]
        allowed = [m for m in messages if m.message_id not in self.refuse_visibility]
        outcome = await self.inner.change_visibility(allowed, timeout_seconds)
        failures = tuple(
            BatchFailure(m.message_id, "ReceiptHandleIsInvalid", "stale (test)", True)
            for m in refused
        )
        return BatchOutcome(outcome.succeeded, outcome.failed + failures)

    async def send(self, messages: Sequence[OutgoingMessage]) -> BatchOutcome:
        return await self.inner.send(messages)

    async def close(self) -> None:
        await self.inner.close()
