"""The in-memory queue's own behaviour: what the contract suite cannot ask of moto.

(The shared behaviour is in tests/integration/test_queue_contract.py, run against both.)
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from detector.errors import DetectorError
from detector.ingest import (
    InMemoryQueue,
    ManualClock,
    MessageQueue,
    OutgoingMessage,
    QueueCounts,
    QueueMessage,
)

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


def outgoing(*bodies: str, group: str | None = None) -> list[OutgoingMessage]:
    return [
        OutgoingMessage(f"m{i}", body.encode(), group_id=group) for i, body in enumerate(bodies)
    ]


async def test_a_stale_receipt_handle_is_refused_and_deletes_nothing(clock: ManualClock) -> None:
    queue = InMemoryQueue(clock=clock)
    await queue.send(outgoing("a"))
    [old] = await queue.receive(1, wait_seconds=0, visibility_timeout=10)
    clock.advance(10)
    [current] = await queue.receive(1, wait_seconds=0)

    outcome = await queue.delete([old])

    assert [(f.id, f.code, f.sender_fault) for f in outcome.failed] == [
        (old.message_id, "ReceiptHandleIsInvalid", True)
    ]
    assert queue.counts() == QueueCounts(visible=0, in_flight=1)
    assert (await queue.delete([current])).ok
    assert queue.counts() == QueueCounts(visible=0, in_flight=0)


async def test_visibility_expires_exactly_at_the_timeout(clock: ManualClock) -> None:
    queue = InMemoryQueue(clock=clock, visibility_timeout=30)
    await queue.send(outgoing("a"))
    await queue.receive(1, wait_seconds=0)
    clock.advance(29.999)
    assert await queue.receive(1, wait_seconds=0) == []
    clock.advance(0.001)
    assert [m.receive_count for m in await queue.receive(1, wait_seconds=0)] == [2]


async def test_sent_time_is_the_clock_at_send_in_milliseconds(clock: ManualClock) -> None:
    clock.advance(1.234567)
    queue = InMemoryQueue(clock=clock)
    await queue.send(outgoing("a"))
    [message] = await queue.receive(1, wait_seconds=0)
    assert message.sent_time == START + timedelta(seconds=1.234)


async def test_a_visible_message_cannot_have_its_visibility_changed(clock: ManualClock) -> None:
    queue = InMemoryQueue(clock=clock)
    await queue.send(outgoing("a"))
    got = await queue.receive(1, wait_seconds=0, visibility_timeout=5)
    clock.advance(6)
    outcome = await queue.change_visibility(got, 30)
    assert [f.code for f in outcome.failed] == ["MessageNotInflight"]


async def test_a_message_deleted_after_its_timeout_is_not_redelivered(clock: ManualClock) -> None:
    """The handle stays the newest until the message is received again, so it still deletes."""
    queue = InMemoryQueue(clock=clock)
    await queue.send(outgoing("a"))
    got = await queue.receive(1, wait_seconds=0, visibility_timeout=5)
    clock.advance(60)
    assert (await queue.delete(got)).ok
    assert await queue.receive(10, wait_seconds=0) == []
    assert queue.counts() == QueueCounts(0, 0)


async def test_fifo_deduplication_outlives_deletion_for_five_minutes(clock: ManualClock) -> None:
    queue = InMemoryQueue(fifo=True, clock=clock)

    def finding(body: bytes) -> list[OutgoingMessage]:
        return [OutgoingMessage("f", body, group_id="alice", deduplication_id="finding-1")]

    await queue.send(finding(b"1"))
    await queue.delete(await queue.receive(10, wait_seconds=0))
    clock.advance(299)
    await queue.send(finding(b"2"))
    assert await queue.receive(10, wait_seconds=0) == []
    clock.advance(1)
    await queue.send(finding(b"3"))
    assert [m.body for m in await queue.receive(10, wait_seconds=0)] == [b"3"]


async def test_fifo_messages_expiring_out_of_order_return_in_order(clock: ManualClock) -> None:
    queue = InMemoryQueue(fifo=True, content_based_deduplication=True, clock=clock)
    await queue.send([OutgoingMessage(str(n), str(n).encode(), group_id="g") for n in range(4)])
    first, _second, third = await queue.receive(3, wait_seconds=0, visibility_timeout=10)
    await queue.change_visibility([first], 20)
    await queue.delete([third])
    clock.advance(10)  # second expires; first is still in flight, so the group stays locked
    assert await queue.receive(10, wait_seconds=0) == []
    clock.advance(10)  # first expires too

    again = await queue.receive(10, wait_seconds=0)

    assert [m.body for m in again] == [b"0", b"1", b"3"]


async def test_fifo_groups_do_not_block_each_other(clock: ManualClock) -> None:
    queue = InMemoryQueue(fifo=True, content_based_deduplication=True, clock=clock)
    await queue.send(
        [OutgoingMessage(f"{g}{n}", f"{g}{n}".encode(), group_id=g) for g in "abc" for n in (0, 1)]
    )
    got = await queue.receive(3, wait_seconds=0)
    assert [m.body for m in got] == [b"a0", b"a1", b"b0"]
    assert [m.body for m in await queue.receive(10, wait_seconds=0)] == [b"c0", b"c1"]


async def test_redrive_keeps_the_message_and_its_group(clock: ManualClock) -> None:
    dead_letter = InMemoryQueue(name="dlq", fifo=True, clock=clock)
    queue = InMemoryQueue(
        fifo=True,
        content_based_deduplication=True,
        dead_letter_queue=dead_letter,
        max_receive_count=1,
        clock=clock,
    )
    await queue.send([OutgoingMessage("p", b"poison", group_id="alice")])
    [message] = await queue.receive(1, wait_seconds=0, visibility_timeout=1)
    clock.advance(1)

    assert await queue.receive(1, wait_seconds=0) == []
    [dead] = await dead_letter.receive(1, wait_seconds=0)
    assert (dead.message_id, dead.body, dead.message_group_id, dead.sent_time) == (
        message.message_id,
        b"poison",
        "alice",
        message.sent_time,
    )
    assert dead.receive_count == 2
    assert queue.counts() == QueueCounts(0, 0)


async def test_api_calls_count_what_sqs_would_bill(clock: ManualClock) -> None:
    queue = InMemoryQueue(clock=clock)
    await queue.send(outgoing(*["x" * 100_000] * 3, *["y"] * 12))  # 300 kB + 12 small
    got = []
    while batch := await queue.receive(10, wait_seconds=0):
        got += batch
    await queue.delete(got)
    await queue.change_visibility(got[:3], 0)

    assert dict(queue.api_calls) == {
        "SendMessageBatch": 3,  # [x, x] 200 kB | [x, y*9] | [y*3]
        "ReceiveMessage": 3,
        "DeleteMessageBatch": 2,
        "ChangeMessageVisibilityBatch": 1,
    }


async def test_a_long_poll_on_an_empty_queue_returns_empty_after_the_wait() -> None:
    queue = InMemoryQueue()
    assert await queue.receive(10, wait_seconds=1) == []
    assert queue.api_calls["ReceiveMessage"] == 1


async def poll_started(queue: InMemoryQueue, polls: int = 1) -> None:
    """Let the event loop run until ``polls`` receives have begun (no timing involved)."""
    while queue.api_calls["ReceiveMessage"] < polls:
        await asyncio.sleep(0)


async def test_a_long_poll_wakes_when_a_message_is_released() -> None:
    queue = InMemoryQueue()
    await queue.send(outgoing("a"))
    got = await queue.receive(1, wait_seconds=0)

    waiter = asyncio.create_task(queue.receive(1, wait_seconds=20))
    await poll_started(queue, 2)
    await queue.change_visibility(got, 0)
    again = await asyncio.wait_for(waiter, 5)
    assert [m.receive_count for m in again] == [2]


async def test_close_wakes_a_long_poll() -> None:
    queue = InMemoryQueue()
    waiter = asyncio.create_task(queue.receive(10, wait_seconds=20))
    await poll_started(queue)
    await queue.close()
    assert await asyncio.wait_for(waiter, 1) == []


async def test_async_with_closes(clock: ManualClock) -> None:
    async with InMemoryQueue(clock=clock) as queue:
        await queue.send(outgoing("a"))
    with pytest.raises(Exception, match="closed"):
        await queue.receive(1, wait_seconds=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_receive_count": 3}, "go together"),
        ({"dead_letter_queue": InMemoryQueue(), "max_receive_count": 0}, "at least 1"),
        ({"dead_letter_queue": InMemoryQueue(fifo=True), "max_receive_count": 1}, "same type"),
        ({"content_based_deduplication": True}, "FIFO"),
        ({"visibility_timeout": 43_201}, "visibility_timeout"),
    ],
)
def test_impossible_queues_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        InMemoryQueue(**kwargs)  # type: ignore[arg-type]


async def test_messages_that_leave_a_shared_deadline_leave_the_others_in_flight_to_it(
    clock: ManualClock,
) -> None:
    """Deleting, releasing or extending some of a receive's messages leaves the others due
    exactly then, and visible again in sending order."""
    queue = InMemoryQueue(clock=clock)
    for start in range(0, 200, 10):
        await queue.send(outgoing(*(f"b{i:04}" for i in range(start, start + 10))))
    batches = []
    while got := await queue.receive(10, wait_seconds=0, visibility_timeout=30):
        batches.append(got)
    for even, odd in zip(batches[::2], batches[1::2], strict=True):
        assert (await queue.delete(even)).ok
        assert (await queue.delete(odd[:6])).ok
        assert (await queue.change_visibility(odd[6:7], 0)).ok
        assert (await queue.change_visibility(odd[7:8] + odd[7:8], 60)).ok  # named twice
    odd_batches = batches[1::2]
    assert [m.body for m in await drain(queue)] == [b[6].body for b in odd_batches]

    clock.advance(30)  # the kept ones, in sending order; the extended ones still in flight
    assert [m.body for m in await drain(queue)] == [m.body for b in odd_batches for m in b[8:]]
    assert queue.counts() == QueueCounts(visible=0, in_flight=len(odd_batches) * 4)
    clock.advance(30)
    assert [m.body for m in await drain(queue)] == [b[7].body for b in odd_batches]


async def drain(queue: InMemoryQueue) -> list[QueueMessage]:
    out: list[QueueMessage] = []
    while got := await queue.receive(10, wait_seconds=0, visibility_timeout=600):
        out.extend(got)
    return out


async def test_a_fifo_queue_with_many_groups_keeps_each_in_order(clock: ManualClock) -> None:
    queue = InMemoryQueue(fifo=True, content_based_deduplication=True, clock=clock)
    total = 1_000
    for start in range(0, total, 10):
        await queue.send(
            [
                OutgoingMessage(str(i), str(i).encode(), group_id=f"principal-{i % 50}")
                for i in range(start, start + 10)
            ]
        )
    seen: dict[str, list[int]] = {}
    while batch := await queue.receive(10, wait_seconds=0):
        for message in batch:
            seen.setdefault(str(message.message_group_id), []).append(int(message.body))
        await queue.delete(batch)
    assert sum(len(v) for v in seen.values()) == total
    assert all(values == sorted(values) for values in seen.values())


def test_queue_message_is_a_frozen_value() -> None:
    message = QueueMessage("id", "rh", b"{}", START, 1)
    with pytest.raises(AttributeError):
        message.body = b"x"  # type: ignore[misc]


def test_the_public_names_are_the_intended_ones() -> None:
    import detector.ingest

    assert sorted(detector.ingest.__all__) == sorted(
        [
            "DEFAULT_RETRY_POLICY",
            "MAX_BATCH_BYTES",
            "MAX_BATCH_ENTRIES",
            "MAX_MESSAGE_BYTES",
            "BatchFailure",
            "BatchOutcome",
            "Clock",
            "InMemoryQueue",
            "KinesisConfig",
            "KinesisShardQueue",
            "KinesisStream",
            "ManualClock",
            "MessageQueue",
            "OutgoingMessage",
            "QueueCounts",
            "QueueError",
            "QueueMessage",
            "QueueUnavailableError",
            "RetryPolicy",
            "Sleep",
            "SqsConfig",
            "SqsQueue",
            "StaticCredentials",
            "utc_now",
            "OutgoingRecord",
            "PositionedSource",
            "kinesis_stream_name",
            "owned_shards",
            "partition_key_of",
            "put_batches",
            "safe_position",
        ]
    )
    for name in detector.ingest.__all__:
        assert getattr(detector.ingest, name) is not None
    assert issubclass(detector.ingest.QueueError, DetectorError)


def test_the_fake_satisfies_the_port() -> None:
    queue: MessageQueue = InMemoryQueue()  # mypy checks the protocol; this checks it imports
    assert not queue.fifo
