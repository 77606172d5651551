"""The findings sinks: the memory fake, the JSONL file sink, and the SQS sink over the in-memory
queue (its SQS-over-moto twin is in tests/integration/test_sinks_sqs.py)."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from detector.errors import DetectorError
from detector.ingest import (
    BatchFailure,
    BatchOutcome,
    InMemoryQueue,
    ManualClock,
    OutgoingMessage,
    QueueError,
    QueueMessage,
    RetryPolicy,
)
from detector.sinks import (
    FindingMessage,
    FindingSink,
    JsonlFindingSink,
    MemoryFindingSink,
    SinkError,
    SqsFindingSink,
    fifo_token,
)

ALICE = "arn:aws:sts::123456789012:assumed-role/Admin/alice@example.com"


def finding(n: int, principal: str = ALICE) -> FindingMessage:
    body = json.dumps({"finding_id": f"f-{n:04d}", "principal": principal, "score": n / 10})
    return FindingMessage(f"f-{n:04d}", principal, body.encode())


class FakeTime:
    """A monotonic clock that moves only when the sink sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FlakyQueue:
    """A queue that fails chosen entries, as SendMessageBatch does under throttling, then
    passes the rest to an in-memory queue. ``failures[n]`` is how many more times the n-th
    finding of a call (by entry id) fails."""

    def __init__(
        self, inner: InMemoryQueue, failures: dict[str, int], *, sender_fault: bool = False
    ) -> None:
        self.inner = inner
        self.failures = dict(failures)
        self.sender_fault = sender_fault
        self.calls: list[list[str]] = []

    @property
    def fifo(self) -> bool:
        return self.inner.fifo

    async def send(self, messages: Sequence[OutgoingMessage]) -> BatchOutcome:
        self.calls.append([m.id for m in messages])
        failed, passed = [], []
        for message in messages:
            if self.failures.get(message.id, 0) > 0:
                self.failures[message.id] -= 1
                failed.append(
                    BatchFailure(message.id, "RequestThrottled", "slow down", self.sender_fault)
                )
            else:
                passed.append(message)
        outcome = await self.inner.send(passed)
        return BatchOutcome(outcome.succeeded, outcome.failed + tuple(failed))

    async def receive(
        self, max_messages: int = 10, wait_seconds: int = 20, visibility_timeout: int | None = None
    ) -> list[QueueMessage]:
        return await self.inner.receive(max_messages, wait_seconds, visibility_timeout)

    async def delete(self, messages: Sequence[QueueMessage]) -> BatchOutcome:
        return await self.inner.delete(messages)

    async def change_visibility(
        self, messages: Sequence[QueueMessage], timeout_seconds: int
    ) -> BatchOutcome:
        return await self.inner.change_visibility(messages, timeout_seconds)

    async def close(self) -> None:
        await self.inner.close()


async def drain(queue: InMemoryQueue) -> list[QueueMessage]:
    got: list[QueueMessage] = []
    while batch := await queue.receive(10, wait_seconds=0):
        got += batch
        await queue.delete(batch)
    return got


def sqs_sink(queue: InMemoryQueue | FlakyQueue, time: FakeTime, **kwargs: float) -> SqsFindingSink:
    return SqsFindingSink(
        queue,
        rng=random.Random(7),
        sleep=time.sleep,
        monotonic=time.monotonic,
        **kwargs,  # type: ignore[arg-type]
    )


# -- every sink ---------------------------------------------------------------------------


@pytest.fixture(params=["memory", "jsonl", "sqs"])
def sink(request: pytest.FixtureRequest, tmp_path: Path) -> FindingSink:
    if request.param == "memory":
        return MemoryFindingSink()
    if request.param == "jsonl":
        return JsonlFindingSink(tmp_path / "findings.jsonl")
    return SqsFindingSink(InMemoryQueue())


async def test_every_sink_accepts_batches_then_refuses_after_close(sink: FindingSink) -> None:
    await sink.send([finding(1), finding(2)])
    await sink.send([])
    await sink.close()
    await sink.close()
    with pytest.raises(SinkError) as caught:
        await sink.send([finding(3)])
    assert caught.value.finding_ids == ("f-0003",)


# -- memory -------------------------------------------------------------------------------


async def test_the_memory_sink_keeps_findings_in_order() -> None:
    sink = MemoryFindingSink()
    await sink.send([finding(2), finding(1)])
    await sink.send([finding(3)])
    assert sink.finding_ids == ["f-0002", "f-0001", "f-0003"]
    assert sink.send_calls == 2


# -- JSONL ----------------------------------------------------------------------------------


async def test_jsonl_appends_one_line_per_finding_across_sinks(tmp_path: Path) -> None:
    path = tmp_path / "findings.jsonl"
    first = JsonlFindingSink(path)
    await first.send([finding(1), finding(2)])
    await first.close()
    second = JsonlFindingSink(path)
    await second.send([finding(3)])
    await second.close()

    lines = path.read_bytes().splitlines()
    assert [json.loads(line)["finding_id"] for line in lines] == ["f-0001", "f-0002", "f-0003"]


async def test_jsonl_keeps_one_document_per_line_whatever_the_body_layout(tmp_path: Path) -> None:
    path = tmp_path / "findings.jsonl"
    pretty = json.dumps({"finding_id": "p", "note": "two\nlines"}, indent=2).encode() + b"\n"
    sink = JsonlFindingSink(path, fsync=False)
    await sink.send([FindingMessage("p", ALICE, pretty), finding(1)])
    await sink.close()

    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0]) == {"finding_id": "p", "note": "two\nlines"}


async def test_jsonl_ends_a_line_cut_short_by_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "findings.jsonl"
    path.write_bytes(b'{"finding_id": "f-0000"}\n{"finding_id": "f-00')
    sink = JsonlFindingSink(path)
    await sink.send([finding(1)])
    await sink.close()

    lines = path.read_bytes().splitlines()
    assert len(lines) == 3
    assert json.loads(lines[2])["finding_id"] == "f-0001"


async def test_jsonl_refuses_a_body_that_is_not_json_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "findings.jsonl"
    sink = JsonlFindingSink(path)
    with pytest.raises(SinkError, match="f-bad") as caught:
        await sink.send([finding(1), FindingMessage("f-bad", ALICE, b"{not json")])
    assert caught.value.finding_ids == ("f-bad",)
    assert not path.exists() or path.read_bytes() == b""
    await sink.close()


async def test_jsonl_reports_an_unwritable_path(tmp_path: Path) -> None:
    sink = JsonlFindingSink(tmp_path / "missing-folder" / "findings.jsonl")
    with pytest.raises(SinkError, match="cannot append"):
        await sink.send([finding(1)])
    await sink.close()


# -- SQS sink over the in-memory queue -----------------------------------------------------


async def test_sqs_sink_sends_bodies_in_batches_of_ten() -> None:
    queue = InMemoryQueue()
    sink = SqsFindingSink(queue)
    await sink.send([finding(n) for n in range(23)])

    got = await drain(queue)

    assert sorted(m.body for m in got) == sorted(finding(n).body for n in range(23))
    assert queue.api_calls["SendMessageBatch"] == 3
    await sink.close()
    assert (await queue.send([OutgoingMessage("q", b"{}")])).ok  # the sink did not own it


async def test_sqs_sink_on_fifo_groups_by_principal_and_deduplicates_by_finding_id() -> None:
    clock = ManualClock(datetime(2024, 5, 1, tzinfo=UTC))
    queue = InMemoryQueue(fifo=True, clock=clock)
    sink = SqsFindingSink(queue)
    bob = "arn:aws:iam::123456789012:user/bob"
    findings = [finding(1), finding(2, bob), finding(3)]

    await sink.send(findings)
    await sink.send(findings)  # the service redelivered its input and found the same findings
    clock.advance(60)
    await sink.send([finding(2, bob)])

    got = await drain(queue)
    assert sorted(json.loads(m.body)["finding_id"] for m in got) == ["f-0001", "f-0002", "f-0003"]
    assert {m.message_group_id for m in got} == {ALICE, bob}
    alice = [json.loads(m.body)["finding_id"] for m in got if m.message_group_id == ALICE]
    assert alice == ["f-0001", "f-0003"]


async def test_sqs_sink_on_fifo_lets_an_update_of_an_aggregated_finding_through() -> None:
    queue = InMemoryQueue(fifo=True, clock=ManualClock(datetime(2024, 5, 1, tzinfo=UTC)))
    sink = SqsFindingSink(queue)
    first = finding(1)
    body = json.dumps({"finding_id": "f-0001", "count": 3}).encode()
    update = dataclasses.replace(first, body=body, revision=3)

    await sink.send([first])
    await sink.send([update, update])  # the update, delivered twice

    got = [json.loads(m.body) for m in await drain(queue)]
    assert [(d["finding_id"], d.get("count", 1)) for d in got] == [("f-0001", 1), ("f-0001", 3)]


async def test_sqs_sink_retries_only_the_failed_entries_with_backoff() -> None:
    inner = InMemoryQueue()
    queue = FlakyQueue(inner, {"1": 2, "4": 1})
    time = FakeTime()
    sink = sqs_sink(queue, time)

    await sink.send([finding(n) for n in range(6)])

    assert queue.calls == [["0", "1", "2", "3", "4", "5"], ["1", "4"], ["1"]]
    assert len(time.sleeps) == 2
    policy = RetryPolicy()
    assert 0 <= time.sleeps[0] <= policy.base_delay_seconds
    assert 0 <= time.sleeps[1] <= 2 * policy.base_delay_seconds
    assert sorted(m.body for m in await drain(inner)) == sorted(finding(n).body for n in range(6))


async def test_sqs_sink_gives_up_at_its_deadline_naming_the_findings() -> None:
    inner = InMemoryQueue()
    queue = FlakyQueue(inner, {"2": 10_000})
    time = FakeTime()
    sink = sqs_sink(queue, time, deadline_seconds=5.0)

    with pytest.raises(SinkError, match=r"within 5\.0 s") as caught:
        await sink.send([finding(n) for n in range(4)])

    assert caught.value.finding_ids == ("f-0002",)
    assert time.now <= 5.0
    assert len(queue.calls) > 3  # it kept trying until the deadline
    assert len(await drain(inner)) == 3  # the others were delivered


async def test_sqs_sink_does_not_retry_what_sqs_refuses_as_the_senders_fault() -> None:
    inner = InMemoryQueue()
    time = FakeTime()
    sink = sqs_sink(inner, time)

    with pytest.raises(SinkError, match="refused 1 findings") as caught:
        await sink.send([finding(1), FindingMessage("f-huge", ALICE, b"x" * 300_000)])

    assert caught.value.finding_ids == ("f-huge",)
    assert time.sleeps == []
    assert [json.loads(m.body)["finding_id"] for m in await drain(inner)] == ["f-0001"]


async def test_sqs_sink_turns_a_refused_queue_into_a_sink_error() -> None:
    queue = InMemoryQueue()
    await queue.close()
    sink = SqsFindingSink(queue)
    with pytest.raises(SinkError, match="refused the batch") as caught:
        await sink.send([finding(1)])
    assert isinstance(caught.value.__cause__, QueueError)


async def test_sqs_sink_owning_its_queue_closes_it() -> None:
    queue = InMemoryQueue()
    async with SqsFindingSink(queue, owns_queue=True) as sink:
        await sink.send([finding(1)])
    with pytest.raises(QueueError):
        await queue.receive(1, wait_seconds=0)


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("arn:aws:iam::123456789012:user/bob", True),
        ("f-" + "0" * 126, True),
        ("f-" + "0" * 127, False),
        ("arn:aws:sts::1:assumed-role/R/josé", False),
        ("has space", False),
        ("", False),
    ],
)
def test_fifo_tokens_are_kept_or_hashed_stably(value: str, kept: bool) -> None:
    token = fifo_token(value)
    assert (token == value) is kept
    assert token == fifo_token(value)
    assert 1 <= len(token) <= 128


def test_the_public_names_are_the_intended_ones() -> None:
    import detector.sinks

    assert sorted(detector.sinks.__all__) == sorted(
        [
            "EVENT_DETAIL_TYPE",
            "EVENT_SOURCE",
            "FINDING_FORMATS",
            "MAX_IMPORT_BATCH",
            "AwsConfig",
            "EventBridgeFindingSink",
            "FanOutFindingSink",
            "SinkChoice",
            "open_sinks",
            "FindingFormat",
            "FindingMessage",
            "FindingSink",
            "FormattedFindingSink",
            "JsonlFindingSink",
            "MemoryFindingSink",
            "SecurityHubFindingSink",
            "SinkError",
            "SqsFindingSink",
            "asff_documents",
            "event_entry",
            "fifo_token",
            "put_batches",
            "render",
        ]
    )
    assert issubclass(SinkError, DetectorError)
