"""The Security Hub and EventBridge sinks' own decisions, over in-memory stand-ins for the
AWS clients: what is retried, what raises, what is counted, how batches are cut."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from botocore.exceptions import ClientError

from detector.findings import Finding, finding_id_of, finding_to_json
from detector.ingest import RetryPolicy
from detector.sinks import (
    MAX_IMPORT_BATCH,
    EventBridgeFindingSink,
    FindingMessage,
    SecurityHubFindingSink,
    SinkError,
    put_batches,
)
from detector.sinks._eventbridge import MAX_PUT_BYTES, MAX_PUT_ENTRIES

T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)
RETRY = RetryPolicy(max_attempts=3, base_delay_seconds=0.0, max_delay_seconds=0.0)


def message(n: int) -> FindingMessage:
    principal = f"arn:aws:iam::111122223333:user/u{n}"
    finding = Finding(
        finding_id=finding_id_of("root_console_login", principal, T0),
        kind="root_console_login",
        title="Root user signed in to the console",
        severity=8.0,
        principal=principal,
        principal_arn=principal,
        principal_type="IAMUser",
        account_id="111122223333",
        region="us-east-1",
        window_start=T0,
        window_end=T0 + timedelta(hours=1),
        first_seen=T0,
        last_seen=T0,
        created_at=T0 + timedelta(hours=1),
        score=1.0,
        mitre=("T1078.004",),
    )
    return FindingMessage(finding.finding_id, principal, finding_to_json(finding))


async def no_sleep(_: float) -> None:
    return None


class FakeHub:
    """BatchImportFindings that fails the ids it is told to, ``times`` calls each."""

    def __init__(self, failing: dict[str, tuple[str, int]] | None = None) -> None:
        self.failing = dict(failing or {})
        self.calls: list[list[str]] = []
        self.throttle_calls = 0

    async def batch_import_findings(self, Findings: list[dict[str, Any]]) -> dict[str, Any]:
        if self.throttle_calls:
            self.throttle_calls -= 1
            raise ClientError(
                {"Error": {"Code": "TooManyRequestsException"}}, "BatchImportFindings"
            )
        self.calls.append([f["Id"] for f in Findings])
        failed = []
        for f in Findings:
            code, times = self.failing.get(f["Id"], ("", 0))
            if times:
                self.failing[f["Id"]] = (code, times - 1)
                failed.append({"Id": f["Id"], "ErrorCode": code, "ErrorMessage": "no"})
        return {
            "FailedCount": len(failed),
            "SuccessCount": len(Findings) - len(failed),
            "FailedFindings": failed,
        }


def hub_sink(hub: FakeHub, counted: list[int]) -> SecurityHubFindingSink:
    return SecurityHubFindingSink(
        hub,
        account_id="123456789012",
        region="us-east-1",
        retry=RETRY,
        on_failures=counted.append,
        rng=random.Random(1),
        sleep=no_sleep,
    )


async def test_security_hub_gets_batches_of_at_most_100() -> None:
    hub, counted = FakeHub(), []
    await hub_sink(hub, counted).send([message(n) for n in range(250)])
    assert [len(c) for c in hub.calls] == [MAX_IMPORT_BATCH, MAX_IMPORT_BATCH, 50]
    assert counted == []


async def test_a_transient_per_finding_failure_is_retried_alone_and_counted() -> None:
    messages = [message(n) for n in range(5)]
    hub, counted = FakeHub({messages[3].finding_id: ("InternalException", 1)}), []
    await hub_sink(hub, counted).send(messages)
    assert hub.calls[1] == [messages[3].finding_id]
    assert counted == [1]


async def test_a_refused_finding_raises_at_once_naming_it() -> None:
    messages = [message(n) for n in range(5)]
    hub, counted = FakeHub({messages[2].finding_id: ("InvalidInput", 9)}), []
    with pytest.raises(SinkError) as raised:
        await hub_sink(hub, counted).send(messages)
    assert raised.value.finding_ids == (messages[2].finding_id,)
    assert len(hub.calls) == 1  # retrying a refusal cannot help
    assert counted == [1]


async def test_a_throttled_call_is_retried_whole() -> None:
    hub, counted = FakeHub(), []
    hub.throttle_calls = 2
    messages = [message(n) for n in range(3)]
    await hub_sink(hub, counted).send(messages)
    assert hub.calls == [[m.finding_id for m in messages]]
    assert counted == [3, 3]


async def test_the_same_finding_twice_in_one_send_is_imported_once() -> None:
    hub = FakeHub()
    twice = [message(1), message(2), message(1)]
    await hub_sink(hub, []).send(twice)
    assert sorted(hub.calls[0]) == sorted({m.finding_id for m in twice})


async def test_a_closed_sink_refuses() -> None:
    sink = hub_sink(FakeHub(), [])
    await sink.close()
    with pytest.raises(SinkError):
        await sink.send([message(1)])


class FakeBus:
    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []

    async def put_events(self, Entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(list(Entries))
        return {
            "FailedEntryCount": 0,
            "Entries": [{"EventId": str(i)} for i in range(len(Entries))],
        }


async def test_events_carry_the_finding_and_are_cut_at_10_entries() -> None:
    bus = FakeBus()
    messages = [message(n) for n in range(23)]
    await EventBridgeFindingSink(bus, "security", retry=RETRY, sleep=no_sleep).send(messages)
    assert [len(c) for c in bus.calls] == [10, 10, 3]
    entry = bus.calls[0][0]
    assert entry["Source"] == "cloudtrail-detector"
    assert entry["DetailType"] == "CloudTrail Detector Finding"
    assert entry["EventBusName"] == "security"
    assert orjson.loads(entry["Detail"])["finding_id"] == messages[0].finding_id
    assert entry["Resources"] == [messages[0].group]


def test_batches_respect_the_request_size_limit() -> None:
    sizes = [100_000, 100_000, 100_000, 10, 10]
    batches = put_batches(sizes, range(len(sizes)))
    assert batches == [[0, 1], [2, 3, 4]]
    assert all(sum(sizes[i] for i in b) <= MAX_PUT_BYTES for b in batches)
    assert all(len(b) <= MAX_PUT_ENTRIES for b in put_batches([1] * 25, range(25)))


async def test_an_event_over_the_size_limit_is_refused_not_dropped() -> None:
    big = FindingMessage(
        "big", "p", orjson.dumps({"finding_id": "big", "pad": "x" * MAX_PUT_BYTES})
    )
    with pytest.raises(SinkError) as raised:
        await EventBridgeFindingSink(FakeBus(), "security").send([message(1), big])
    assert raised.value.finding_ids == ("big",)
