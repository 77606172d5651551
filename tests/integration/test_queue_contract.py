"""The queue port's contract, run against the in-memory fake and against SqsQueue over moto.

Each test asks a harness for queues and for time to pass: the fake's clock jumps, moto's
real clock is waited for (one second at most per test). Behaviour that SQS, moto and the fake
do not share is tested in the fake's own unit tests instead (noted where it matters).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pytest

from detector.ingest import (
    InMemoryQueue,
    ManualClock,
    MessageQueue,
    OutgoingMessage,
    QueueError,
    QueueMessage,
    SqsQueue,
)
from tests.integration.moto_support import MotoServer, SqsAdmin, open_sqs_admin


@dataclass
class Made:
    queue: MessageQueue
    dead_letter: MessageQueue | None = None


class Harness(Protocol):
    async def make(
        self,
        *,
        fifo: bool = False,
        content_based_deduplication: bool = False,
        visibility_timeout: int = 30,
        max_receive_count: int | None = None,
    ) -> Made: ...

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for the queue."""

    async def settle(self) -> None:
        """Let a just-released message become visible (moto compares milliseconds)."""

    def now(self) -> datetime: ...


class MemoryHarness:
    def __init__(self) -> None:
        self.clock = ManualClock(datetime(2024, 5, 1, 12, 0, tzinfo=UTC))

    async def make(
        self,
        *,
        fifo: bool = False,
        content_based_deduplication: bool = False,
        visibility_timeout: int = 30,
        max_receive_count: int | None = None,
    ) -> Made:
        dead_letter = None
        if max_receive_count is not None:
            dead_letter = InMemoryQueue(name="dlq", fifo=fifo, clock=self.clock)
        queue = InMemoryQueue(
            name="queue",
            fifo=fifo,
            content_based_deduplication=content_based_deduplication,
            visibility_timeout=visibility_timeout,
            dead_letter_queue=dead_letter,
            max_receive_count=max_receive_count,
            clock=self.clock,
        )
        return Made(queue, dead_letter)

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    async def settle(self) -> None:
        pass

    def now(self) -> datetime:
        return self.clock()


class MotoHarness:
    def __init__(self, admin: SqsAdmin, stack: AsyncExitStack) -> None:
        self.admin = admin
        self.stack = stack
        self.count = 0

    async def make(
        self,
        *,
        fifo: bool = False,
        content_based_deduplication: bool = False,
        visibility_timeout: int = 30,
        max_receive_count: int | None = None,
    ) -> Made:
        self.count += 1
        dead_letter_url = None
        if max_receive_count is not None:
            dead_letter_url = await self.admin.create_queue(f"dlq{self.count}", fifo=fifo)
        url = await self.admin.create_queue(
            f"queue{self.count}",
            fifo=fifo,
            content_based_deduplication=content_based_deduplication,
            visibility_timeout=visibility_timeout,
            dead_letter_queue_url=dead_letter_url,
            max_receive_count=max_receive_count,
        )
        queue = await self.stack.enter_async_context(SqsQueue(self.admin.config(url)))
        dead_letter = None
        if dead_letter_url is not None:
            dead_letter = await self.stack.enter_async_context(
                SqsQueue(self.admin.config(dead_letter_url))
            )
        return Made(queue, dead_letter)

    async def advance(self, seconds: float) -> None:
        await asyncio.sleep(seconds + 0.05)

    async def settle(self) -> None:
        await asyncio.sleep(0.01)

    def now(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture(params=["memory", "moto"])
async def harness(
    request: pytest.FixtureRequest, moto_server: MotoServer
) -> AsyncIterator[Harness]:
    if request.param == "memory":
        yield MemoryHarness()
        return
    moto_server.reset()
    async with AsyncExitStack() as stack:
        admin = await stack.enter_async_context(open_sqs_admin(moto_server.endpoint_url))
        yield MotoHarness(admin, stack)


def outgoing(*bodies: str, group: str | None = None) -> list[OutgoingMessage]:
    return [
        OutgoingMessage(f"m{i}", body.encode(), group_id=group) for i, body in enumerate(bodies)
    ]


async def drain(queue: MessageQueue, *, delete: bool = True) -> list[QueueMessage]:
    """Everything receivable now, deleting as it goes."""
    got: list[QueueMessage] = []
    while batch := await queue.receive(10, wait_seconds=0):
        got.extend(batch)
        if delete:
            assert (await queue.delete(batch)).ok
    return got


async def test_send_receive_delete(harness: Harness) -> None:
    made = await harness.make()
    queue = made.queue
    sent = await queue.send(outgoing('{"n": 1}', '{"n": 2}', '{"n": "é✓"}'))
    assert sent.ok
    assert sorted(sent.succeeded) == ["m0", "m1", "m2"]

    got = await queue.receive(10, wait_seconds=0)

    assert sorted(m.body for m in got) == sorted([b'{"n": 1}', b'{"n": 2}', '{"n": "é✓"}'.encode()])
    assert len({m.message_id for m in got}) == 3
    for message in got:
        assert message.receive_count == 1
        assert message.message_group_id is None
        assert message.sent_time.tzinfo is not None
        assert message.sent_time.utcoffset() == timedelta(0)
        assert abs(message.sent_time - harness.now()) < timedelta(seconds=30)
    deleted = await queue.delete(got)
    assert deleted.ok
    assert sorted(deleted.succeeded) == sorted(m.message_id for m in got)
    assert await queue.receive(10, wait_seconds=0) == []


async def test_an_in_flight_message_is_not_received_twice(harness: Harness) -> None:
    queue = (await harness.make()).queue
    await queue.send(outgoing("a"))
    assert len(await queue.receive(10, wait_seconds=0)) == 1
    assert await queue.receive(10, wait_seconds=0) == []


async def test_visibility_timeout_expiry_redelivers_with_a_higher_receive_count(
    harness: Harness,
) -> None:
    queue = (await harness.make()).queue
    await queue.send(outgoing("a"))
    [first] = await queue.receive(1, wait_seconds=0, visibility_timeout=1)

    await harness.advance(1.1)
    [second] = await queue.receive(1, wait_seconds=0)

    assert second.message_id == first.message_id
    assert second.receive_count == 2
    assert second.receipt_handle != first.receipt_handle
    assert second.sent_time == first.sent_time


async def test_change_visibility_extends_the_timeout(harness: Harness) -> None:
    queue = (await harness.make()).queue
    await queue.send(outgoing("a"))
    got = await queue.receive(1, wait_seconds=0, visibility_timeout=1)

    assert (await queue.change_visibility(got, 30)).ok
    await harness.advance(1.1)

    assert await queue.receive(1, wait_seconds=0) == []


async def test_change_visibility_zero_releases_now(harness: Harness) -> None:
    queue = (await harness.make()).queue
    await queue.send(outgoing("a", "b"))
    got = await queue.receive(10, wait_seconds=0)
    assert len(got) == 2

    released = await queue.change_visibility(got, 0)
    await harness.settle()

    assert sorted(released.succeeded) == sorted(m.message_id for m in got)
    again = await queue.receive(10, wait_seconds=0)
    assert sorted(m.message_id for m in again) == sorted(m.message_id for m in got)
    assert {m.receive_count for m in again} == {2}


async def test_batches_over_ten_entries_and_256_kib_are_chunked(harness: Harness) -> None:
    queue = (await harness.make()).queue
    bodies = [f'{{"i": {i}}}' for i in range(23)]
    big = ["x" * 100_000] * 4  # 400 kB: needs more than one 256 KiB SendMessageBatch

    sent = await queue.send(outgoing(*bodies, *big))

    assert sent.ok
    assert len(sent.succeeded) == 27
    got = await drain(queue, delete=False)
    assert len(got) == 27
    deleted = await queue.delete(got)
    assert deleted.ok
    assert len(deleted.succeeded) == 27
    assert await queue.receive(10, wait_seconds=0) == []


async def test_redrive_to_the_dead_letter_queue_after_max_receive_count(
    harness: Harness,
) -> None:
    made = await harness.make(max_receive_count=2)
    assert made.dead_letter is not None
    await made.queue.send(outgoing('{"poison": true}'))
    for expected_count in (1, 2):
        [message] = await made.queue.receive(1, wait_seconds=0)
        assert message.receive_count == expected_count
        await made.queue.change_visibility([message], 0)  # "processing failed"
        await harness.settle()

    assert await made.queue.receive(10, wait_seconds=0) == []
    [dead] = await made.dead_letter.receive(10, wait_seconds=0)
    assert dead.message_id == message.message_id
    assert dead.body == b'{"poison": true}'


async def test_fifo_delivers_each_group_in_order_one_batch_in_flight_at_a_time(
    harness: Harness,
) -> None:
    queue = (await harness.make(fifo=True, content_based_deduplication=True)).queue
    assert queue.fifo
    messages = [
        OutgoingMessage(f"{group}{n}", f"{group}{n}".encode(), group_id=group)
        for n in range(4)
        for group in ("a", "b")
    ]
    assert (await queue.send(messages)).ok

    first = await queue.receive(1, wait_seconds=0)
    assert [m.body for m in first] == [b"a0"]
    assert first[0].message_group_id == "a"
    # Group a has a message in flight: nothing else of a until it is deleted.
    others = await queue.receive(10, wait_seconds=0)
    assert [m.body for m in others] == [b"b0", b"b1", b"b2", b"b3"]
    assert await queue.receive(10, wait_seconds=0) == []

    await queue.delete(first)
    rest = await queue.receive(10, wait_seconds=0)
    assert [m.body for m in rest] == [b"a1", b"a2", b"a3"]


async def test_fifo_release_keeps_the_order(harness: Harness) -> None:
    queue = (await harness.make(fifo=True, content_based_deduplication=True)).queue
    await queue.send([OutgoingMessage(str(n), str(n).encode(), group_id="g") for n in range(3)])
    got = await queue.receive(2, wait_seconds=0)
    assert [m.body for m in got] == [b"0", b"1"]

    await queue.change_visibility(got, 0)
    await harness.settle()

    again = await queue.receive(10, wait_seconds=0)
    assert [m.body for m in again] == [b"0", b"1", b"2"]
    assert [m.receive_count for m in again] == [2, 2, 1]


async def test_fifo_deduplicates_by_id_and_by_content(harness: Harness) -> None:
    by_id = (await harness.make(fifo=True)).queue
    sent = await by_id.send(
        [
            OutgoingMessage("1", b"first", group_id="g", deduplication_id="finding-1"),
            OutgoingMessage("2", b"second", group_id="g", deduplication_id="finding-1"),
        ]
    )
    sent_again = await by_id.send(
        [OutgoingMessage("3", b"third", group_id="g", deduplication_id="finding-1")]
    )
    assert sent.ok
    assert sent_again.ok  # a duplicate is accepted, and dropped
    assert [m.body for m in await drain(by_id)] == [b"first"]

    by_content = (await harness.make(fifo=True, content_based_deduplication=True)).queue
    await by_content.send(outgoing("same", "same", "other", group="g"))
    assert [m.body for m in await drain(by_content)] == [b"same", b"other"]


async def test_fifo_and_standard_refuse_misplaced_ids(harness: Harness) -> None:
    fifo = (await harness.make(fifo=True)).queue
    outcome = await fifo.send(
        [
            OutgoingMessage("no-group", b"x", deduplication_id="d1"),
            OutgoingMessage("no-dedup", b"x", group_id="g"),
            OutgoingMessage("ok", b"x", group_id="g", deduplication_id="d2"),
        ]
    )
    assert outcome.succeeded == ("ok",)
    assert outcome.failed_ids == {"no-group", "no-dedup"}
    assert all(f.sender_fault for f in outcome.failed)

    standard = (await harness.make()).queue
    outcome = await standard.send([OutgoingMessage("grouped", b"x", group_id="g")])
    assert outcome.failed_ids == {"grouped"}


async def test_bodies_sqs_cannot_carry_fail_alone(harness: Harness) -> None:
    queue = (await harness.make()).queue
    outcome = await queue.send(
        [
            OutgoingMessage("nul", b"a\x00b"),
            OutgoingMessage("latin1", b"caf\xe9"),
            OutgoingMessage("huge", b"x" * 262_145),
            OutgoingMessage("fine", b"{}"),
        ]
    )
    assert outcome.succeeded == ("fine",)
    codes = {f.id: f.code for f in outcome.failed}
    assert codes == {
        "nul": "InvalidMessageContents",
        "latin1": "InvalidMessageContents",
        "huge": "MessageTooLong",
    }


async def test_a_stale_receipt_handle_never_raises_and_the_current_one_deletes(
    harness: Harness,
) -> None:
    """After a re-receive only the newest handle is sure to delete. SQS "succeeds, but might
    not delete" for an older one; moto deletes; the fake reports ReceiptHandleIsInvalid. The
    contract is what the service relies on: no exception, and the current handle works."""
    queue = (await harness.make()).queue
    await queue.send(outgoing("a"))
    [old] = await queue.receive(1, wait_seconds=0)
    await queue.change_visibility([old], 0)
    await harness.settle()
    [current] = await queue.receive(1, wait_seconds=0)

    stale = await queue.delete([old])

    assert set(stale.succeeded) | stale.failed_ids == {old.message_id}
    assert (await queue.delete([current])).ok
    assert await queue.receive(10, wait_seconds=0) == []


async def test_deleting_twice_with_the_same_handle_succeeds(harness: Harness) -> None:
    queue = (await harness.make()).queue
    await queue.send(outgoing("a"))
    got = await queue.receive(1, wait_seconds=0)
    assert (await queue.delete(got)).ok
    assert (await queue.delete(got)).ok


async def test_an_unknown_receipt_handle_fails_that_entry_only(harness: Harness) -> None:
    queue = (await harness.make()).queue
    await queue.send(outgoing("a"))
    [real] = await queue.receive(1, wait_seconds=0)
    bogus = QueueMessage("bogus-id", "not-a-handle", b"", real.sent_time, 1)

    outcome = await queue.delete([bogus, real])

    assert outcome.succeeded == (real.message_id,)
    [failure] = outcome.failed
    assert (failure.id, failure.code, failure.sender_fault) == (
        "bogus-id",
        "ReceiptHandleIsInvalid",
        True,
    )


async def test_empty_batches_do_nothing(harness: Harness) -> None:
    queue = (await harness.make()).queue
    assert (await queue.send([])).ok
    assert (await queue.delete([])).ok
    assert (await queue.change_visibility([], 0)).ok


async def test_a_long_poll_returns_as_soon_as_a_message_arrives(harness: Harness) -> None:
    queue = (await harness.make()).queue

    async def send_later() -> None:
        await asyncio.sleep(0.1)
        await queue.send(outgoing("late"))

    sender = asyncio.create_task(send_later())
    started = asyncio.get_running_loop().time()
    got = await queue.receive(10, wait_seconds=5)
    elapsed = asyncio.get_running_loop().time() - started
    await sender

    assert [m.body for m in got] == [b"late"]
    assert elapsed < 2.5


async def test_a_closed_queue_raises_queue_error(harness: Harness) -> None:
    queue = (await harness.make()).queue
    await queue.close()
    await queue.close()  # idempotent
    with pytest.raises(QueueError):
        await queue.receive(1, wait_seconds=0)
    with pytest.raises(QueueError):
        await queue.send(outgoing("a"))


async def test_arguments_out_of_range_are_refused(harness: Harness) -> None:
    queue = (await harness.make()).queue
    with pytest.raises(ValueError, match="max_messages"):
        await queue.receive(11, wait_seconds=0)
    with pytest.raises(ValueError, match="wait_seconds"):
        await queue.receive(1, wait_seconds=21)
    await queue.send(outgoing("a"))
    got = await queue.receive(1, wait_seconds=0)
    outcome = await queue.change_visibility(got, 43_201)
    assert [f.code for f in outcome.failed] == ["InvalidParameterValue"]
