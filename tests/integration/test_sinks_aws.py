"""The Security Hub and EventBridge findings sinks against a moto server.

Security Hub: a batch over 100 findings lands whole, and a finding sent again with a later
``UpdatedAt`` (a repeated finding merged under its id) updates the one Security Hub finding.
EventBridge: events reach a rule's target; entries PutEvents reports as failed are retried
alone (a proxy in front of moto fails chosen entries, as EventBridge does under throttling),
and a send whose entries keep failing raises instead of returning.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from detector.findings import Finding, finding_from_json, finding_id_of, finding_to_json
from detector.ingest import RetryPolicy
from detector.sinks import (
    EVENT_DETAIL_TYPE,
    EVENT_SOURCE,
    AwsConfig,
    EventBridgeFindingSink,
    FindingMessage,
    SecurityHubFindingSink,
    SinkError,
)
from tests.integration.moto_support import REGION, TEST_CREDENTIALS, SqsAdmin, aws_client

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_seconds=0.0, max_delay_seconds=0.0)


def finding(n: int, **changes: Any) -> Finding:
    principal = f"arn:aws:iam::111122223333:user/user{n % 7}"
    window = T0 + timedelta(hours=n)
    base = Finding(
        finding_id=finding_id_of("cloudtrail_stopped", principal, window),
        kind="cloudtrail_stopped",
        title="CloudTrail logging stopped or its trail deleted",
        severity=7.0,
        principal=principal,
        principal_arn=principal,
        principal_type="IAMUser",
        account_id="111122223333",
        region="eu-west-1",
        window_start=window,
        window_end=window + timedelta(hours=1),
        first_seen=window,
        last_seen=window + timedelta(minutes=5),
        created_at=window + timedelta(hours=1),
        score=1.0,
        event_ids=(f"e-{n}",),
        event_count=1,
        source_ips=("203.0.113.10",),
        model_version="detections/1",
        mitre=("T1562.008",),
    )
    return dataclasses.replace(base, **changes)


def message(f: Finding) -> FindingMessage:
    return FindingMessage(f.finding_id, f.principal, finding_to_json(f))


def aws(endpoint: str, **changes: Any) -> AwsConfig:
    return AwsConfig(region=REGION, endpoint_url=endpoint, credentials=TEST_CREDENTIALS, **changes)


async def hub_findings(endpoint: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async with aws_client("securityhub", endpoint) as hub:
        token: str | None = None
        while True:
            page = await hub.get_findings(MaxResults=100, **({"NextToken": token} if token else {}))
            found += page["Findings"]
            token = page.get("NextToken")
            if not token:
                return found


# --- Security Hub ---------------------------------------------------------------------------


async def test_a_batch_of_findings_lands_in_security_hub_one_finding_each(
    moto_endpoint: str,
) -> None:
    findings = [finding(n) for n in range(130)]  # two BatchImportFindings calls
    failures: list[int] = []
    sink = await SecurityHubFindingSink.open(aws(moto_endpoint), on_failures=failures.append)
    try:
        await sink.send([message(f) for f in findings])
    finally:
        await sink.close()
    landed = await hub_findings(moto_endpoint)
    assert sorted(f["Id"] for f in landed) == sorted(f.finding_id for f in findings)
    account = sink.account_id
    assert {f["ProductArn"] for f in landed} == {
        f"arn:aws:securityhub:{REGION}:{account}:product/{account}/default"
    }
    assert {f["GeneratorId"] for f in landed} == {"cloudtrail_stopped"}
    assert {tuple(f["Types"]) for f in landed} == {("TTPs/Defense Evasion/cloudtrail_stopped",)}
    assert failures == []


async def test_an_updated_finding_updates_the_one_security_hub_finding(
    moto_endpoint: str,
) -> None:
    first = finding(1)
    later = dataclasses.replace(
        first,
        last_seen=first.last_seen + timedelta(minutes=30),
        created_at=first.created_at + timedelta(minutes=30),
        event_count=4,
    )
    sink = await SecurityHubFindingSink.open(aws(moto_endpoint))
    try:
        await sink.send([message(first)])
        await sink.send([message(first)])  # a re-delivery after a crash
        await sink.send([message(later)])
    finally:
        await sink.close()
    (landed,) = await hub_findings(moto_endpoint)
    assert landed["Id"] == first.finding_id
    assert landed["UpdatedAt"] > landed["CreatedAt"]
    assert landed["LastObservedAt"].startswith("2024-05-01T13:35")
    assert landed["ProductFields"]["detector/event_count"] == "4"


# --- EventBridge ----------------------------------------------------------------------------


@dataclasses.dataclass
class PutEventsFaults:
    """A proxy in front of moto that fails chosen entries of the next PutEvents calls."""

    upstream: str
    failing: list[set[int]] = dataclasses.field(default_factory=list)  # per call: positions
    calls: list[list[dict[str, Any]]] = dataclasses.field(default_factory=list)
    endpoint_url: str = ""

    async def handle(self, request: web.Request, session: aiohttp.ClientSession) -> web.Response:
        raw = await request.read()
        target = request.headers.get("X-Amz-Target", "")
        failing: set[int] = set()
        if target.endswith(".PutEvents"):
            document = json.loads(raw)
            self.calls.append(document["Entries"])
            failing = self.failing.pop(0) if self.failing else set()
            document["Entries"] = [e for i, e in enumerate(document["Entries"]) if i not in failing]
            raw = json.dumps(document).encode()
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in {"host", "content-length", "transfer-encoding", "connection"}
        }
        if failing and not json.loads(raw)["Entries"]:
            answer: dict[str, Any] = {"FailedEntryCount": 0, "Entries": []}
            status, content_type = 200, "application/x-amz-json-1.1"
        else:
            async with session.request(
                request.method, self.upstream + request.path_qs, headers=headers, data=raw
            ) as response:
                body, status, content_type = (
                    await response.read(),
                    response.status,
                    response.content_type,
                )
            if not failing:
                return web.Response(status=status, body=body, content_type=content_type)
            answer = json.loads(body)
        results = iter(answer["Entries"])
        total = len(self.calls[-1])
        answer["Entries"] = [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "injected"}
            if i in failing
            else next(results)
            for i in range(total)
        ]
        answer["FailedEntryCount"] = len(failing)
        return web.Response(
            status=status, body=json.dumps(answer).encode(), content_type=content_type
        )


@asynccontextmanager
async def put_events_faults(upstream: str) -> AsyncIterator[PutEventsFaults]:
    proxy = PutEventsFaults(upstream)
    async with aiohttp.ClientSession() as session:
        app = web.Application()

        async def handle(request: web.Request) -> web.Response:
            return await proxy.handle(request, session)

        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        proxy.endpoint_url = f"http://{host}:{port}"
        try:
            yield proxy
        finally:
            await runner.cleanup()


async def bus_to_queue(endpoint: str, sqs_admin: SqsAdmin, bus: str) -> str:
    """A bus whose rule sends every detector finding to a fresh queue (its URL)."""
    url = await sqs_admin.create_queue("bus-target")
    arn = (await sqs_admin.client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]))[
        "Attributes"
    ]["QueueArn"]
    async with aws_client("events", endpoint) as events:
        await events.create_event_bus(Name=bus)
        await events.put_rule(
            Name="findings",
            EventBusName=bus,
            EventPattern=json.dumps({"source": [EVENT_SOURCE], "detail-type": [EVENT_DETAIL_TYPE]}),
        )
        await events.put_targets(
            Rule="findings", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}]
        )
    return url


async def queued_findings(sqs_admin: SqsAdmin, url: str) -> list[Finding]:
    found = []
    while True:
        batch = (
            await sqs_admin.client.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
        ).get("Messages", [])
        if not batch:
            return found
        for m in batch:
            event = json.loads(m["Body"])
            assert event["source"] == EVENT_SOURCE
            assert event["detail-type"] == EVENT_DETAIL_TYPE
            found.append(finding_from_json(json.dumps(event["detail"])))
            await sqs_admin.client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


async def test_findings_reach_a_rule_target_through_the_bus(
    moto_endpoint: str, sqs_admin: SqsAdmin
) -> None:
    url = await bus_to_queue(moto_endpoint, sqs_admin, "security")
    findings = [finding(n) for n in range(23)]
    sink = await EventBridgeFindingSink.open(aws(moto_endpoint), "security")
    try:
        await sink.send([message(f) for f in findings])
    finally:
        await sink.close()
    assert sorted(f.finding_id for f in await queued_findings(sqs_admin, url)) == sorted(
        f.finding_id for f in findings
    )


async def test_entries_that_failed_are_retried_alone(
    moto_endpoint: str, sqs_admin: SqsAdmin
) -> None:
    url = await bus_to_queue(moto_endpoint, sqs_admin, "security")
    findings = [finding(n) for n in range(12)]  # batches of 10 and 2
    failures: list[int] = []
    async with put_events_faults(moto_endpoint) as proxy:
        proxy.failing = [{1, 7}, {0}]  # the first call loses 2 entries, their retry loses 1
        sink = await EventBridgeFindingSink.open(
            aws(proxy.endpoint_url, retry=FAST_RETRY), "security", on_failures=failures.append
        )
        try:
            await sink.send([message(f) for f in findings])
        finally:
            await sink.close()
    first, retry, again, rest = proxy.calls
    assert len(first) == 10
    assert [json.loads(e["Detail"])["finding_id"] for e in retry] == [
        findings[1].finding_id,
        findings[7].finding_id,
    ]
    assert [json.loads(e["Detail"])["finding_id"] for e in again] == [findings[1].finding_id]
    assert len(rest) == 2
    assert failures == [2, 1]
    delivered = [f.finding_id for f in await queued_findings(sqs_admin, url)]
    assert sorted(delivered) == sorted(f.finding_id for f in findings)  # each exactly once


async def test_entries_that_keep_failing_raise_naming_them(
    moto_endpoint: str, sqs_admin: SqsAdmin
) -> None:
    await bus_to_queue(moto_endpoint, sqs_admin, "security")
    findings = [finding(n) for n in range(3)]
    async with put_events_faults(moto_endpoint) as proxy:
        # the third entry, then its retries alone (each call numbers its own entries)
        proxy.failing = [{2}] + [{0}] * (FAST_RETRY.max_attempts - 1)
        sink = await EventBridgeFindingSink.open(
            aws(proxy.endpoint_url, retry=FAST_RETRY), "security"
        )
        try:
            with pytest.raises(SinkError) as raised:
                await sink.send([message(f) for f in findings])
        finally:
            await sink.close()
    assert raised.value.finding_ids == (findings[2].finding_id,)
    assert len(proxy.calls) == FAST_RETRY.max_attempts
