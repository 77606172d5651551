"""Model-based test of the in-memory queue: random interleavings of send, receive, heartbeat,
release, delete and the passing of time, checked against a plain record of what SQS promises.

The record does not re-implement the fake: it follows what the fake returns and checks that
each answer is allowed (a message is never delivered while its previous receipt is still in
flight, receive counts go up by one, only the newest receipt handle works, FIFO groups come out
in order with one batch in flight, nothing is lost or duplicated, poison messages end up in the
dead-letter queue).
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from detector.ingest import InMemoryQueue, ManualClock, OutgoingMessage, QueueMessage

T = TypeVar("T")
MAX_RECEIVE_COUNT = 3


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that waits on nothing: with wait_seconds=0 the fake only yields
    control once per receive (a bare ``asyncio.sleep(0)``, as a network call would)."""
    while True:
        try:
            awaited = coroutine.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        if awaited is not None:  # a future: the fake is waiting for something
            coroutine.close()
            raise AssertionError("the fake waited on something")


@dataclass
class Tracked:
    seq: int
    group: str | None
    receive_count: int = 0
    handle: str | None = None
    visible_at: float = 0.0
    deleted: bool = False
    handles: list[str] = field(default_factory=list)


class QueueMachine(RuleBasedStateMachine):
    fifo = False

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(datetime(2024, 1, 1, tzinfo=UTC))
        self.dead_letter = InMemoryQueue(name="dlq", fifo=self.fifo, clock=self.clock)
        self.queue = InMemoryQueue(
            fifo=self.fifo,
            content_based_deduplication=self.fifo,
            visibility_timeout=10,
            dead_letter_queue=self.dead_letter,
            max_receive_count=MAX_RECEIVE_COUNT,
            clock=self.clock,
        )
        self.sent = 0
        self.tracked: dict[bytes, Tracked] = {}
        self.receipts: list[QueueMessage] = []  # every receipt ever, stale ones included
        self.deleted_handles: set[str] = set()

    def now(self) -> float:
        return self.clock().timestamp()

    def in_flight(self, tracked: Tracked) -> bool:
        return not tracked.deleted and tracked.visible_at > self.now()

    @initialize()
    def start(self) -> None:
        pass

    @rule(count=st.integers(1, 12), group=st.sampled_from(["a", "b", "c"]))
    def send(self, count: int, group: str) -> None:
        messages = []
        for _ in range(count):
            body = str(self.sent).encode()
            self.tracked[body] = Tracked(self.sent, group if self.fifo else None)
            messages.append(OutgoingMessage(body.decode(), body, group_id=self.tracked[body].group))
            self.sent += 1
        assert run(self.queue.send(messages)).ok

    @rule(max_messages=st.integers(1, 10), timeout=st.sampled_from([0, 1, 5, 10, 30]))
    def receive(self, max_messages: int, timeout: int) -> None:
        now = self.now()
        locked = {t.group for t in self.tracked.values() if self.in_flight(t)}
        got = run(self.queue.receive(max_messages, wait_seconds=0, visibility_timeout=timeout))
        assert len(got) <= max_messages
        assert len({m.message_id for m in got}) == len(got)
        for message in got:
            tracked = self.tracked[message.body]
            assert not tracked.deleted
            assert not self.in_flight(tracked), "delivered while a receipt was in flight"
            assert tracked.receive_count < MAX_RECEIVE_COUNT, "should have gone to the DLQ"
            assert message.receive_count == tracked.receive_count + 1
            tracked.receive_count += 1
            tracked.handle = message.receipt_handle
            tracked.handles.append(message.receipt_handle)
            tracked.visible_at = now + timeout
            self.receipts.append(message)
        if self.fifo:
            self.check_fifo_batch(got, locked)

    def check_fifo_batch(self, got: list[QueueMessage], locked: set[str | None]) -> None:
        by_group: dict[str | None, list[int]] = {}
        for message in got:
            by_group.setdefault(message.message_group_id, []).append(self.tracked[message.body].seq)
        for group, seqs in by_group.items():
            assert group not in locked, f"group {group} delivered while in flight"
            assert seqs == sorted(seqs)
            # The first delivered is the oldest message of the group still waiting.
            waiting = [
                t.seq
                for t in self.tracked.values()
                if t.group == group and not t.deleted and t.seq < seqs[0]
            ]
            assert all(self.moved_to_dlq(seq) for seq in waiting), (group, seqs, waiting)

    def moved_to_dlq(self, seq: int) -> bool:
        tracked = next(t for t in self.tracked.values() if t.seq == seq)
        return tracked.receive_count >= MAX_RECEIVE_COUNT and not self.in_flight(tracked)

    @rule(seconds=st.sampled_from([0.5, 1, 5, 10, 31]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def some_receipts(self, max_size: int) -> st.SearchStrategy[list[QueueMessage]]:
        """Receipts, current or stale, at most one per message (outcomes name message ids)."""
        return st.lists(
            st.sampled_from(self.receipts),
            max_size=max_size,
            unique_by=lambda message: message.message_id,
        )

    @rule(data=st.data(), timeout=st.sampled_from([0, 5, 30]))
    def change_visibility(self, data: st.DataObject, timeout: int) -> None:
        if not self.receipts:
            return
        chosen = data.draw(self.some_receipts(4))
        outcome = run(self.queue.change_visibility(chosen, timeout))
        assert len(outcome.succeeded) + len(outcome.failed) == len(chosen)
        failed = {f.id for f in outcome.failed}
        now = self.now()
        for message in chosen:
            tracked = self.tracked[message.body]
            expected = message.receipt_handle == tracked.handle and self.in_flight(tracked)
            assert (message.message_id not in failed) == expected, (message, tracked)
            if expected:
                tracked.visible_at = now + timeout

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        if not self.receipts:
            return
        chosen = data.draw(self.some_receipts(10))
        expected: dict[str, bool | None] = {}
        for message in chosen:
            tracked = self.tracked[message.body]
            if message.receipt_handle in self.deleted_handles:
                expected[message.message_id] = True
            elif message.receipt_handle != tracked.handle or tracked.deleted:
                expected[message.message_id] = False
            elif tracked.receive_count >= MAX_RECEIVE_COUNT and not self.in_flight(tracked):
                expected[message.message_id] = None  # unless a receive moved it to the DLQ
            else:
                expected[message.message_id] = True
        outcome = run(self.queue.delete(chosen))
        failed = {f.id for f in outcome.failed}
        for message in chosen:
            succeeded = message.message_id not in failed
            assert expected[message.message_id] in (succeeded, None), message
            tracked = self.tracked[message.body]
            if succeeded and not tracked.deleted:
                tracked.deleted = True
                self.deleted_handles.add(message.receipt_handle)

    @invariant()
    def nothing_is_lost_or_duplicated(self) -> None:
        counts = self.queue.counts()
        dead = self.dead_letter.counts()
        deleted = sum(t.deleted for t in self.tracked.values())
        assert counts.visible + counts.in_flight + dead.visible + dead.in_flight + deleted == (
            self.sent
        )
        in_flight = sum(self.in_flight(t) for t in self.tracked.values())
        assert counts.in_flight == in_flight

    def teardown(self) -> None:
        """Eventually every message not deleted is delivered again or dead-lettered."""
        self.clock.advance(1_000)
        remaining = {body for body, t in self.tracked.items() if not t.deleted}
        seen: set[bytes] = set()
        while got := run(self.queue.receive(10, wait_seconds=0)):
            seen.update(m.body for m in got)
            assert run(self.queue.delete(got)).ok
        while got := run(self.dead_letter.receive(10, wait_seconds=0)):
            seen.update(m.body for m in got)
            assert run(self.dead_letter.delete(got)).ok
        assert seen == remaining


class FifoQueueMachine(QueueMachine):
    fifo = True


TestStandardQueueModel = QueueMachine.TestCase
TestStandardQueueModel.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestFifoQueueModel = FifoQueueMachine.TestCase
TestFifoQueueModel.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
