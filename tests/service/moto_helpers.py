"""Helpers of the service tests against a moto server: feeding a queue without letting it grow
deep, EventBridge set-up, reading a queue out, waiting for a condition."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from tests.integration.moto_support import SqsAdmin
from tests.service.conftest import Stream

MAX_DEPTH = 60  # moto's SQS slows down as a queue grows


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, every: float = 0.1
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(every)


async def feed(
    admin: SqsAdmin, url: str, bodies: Sequence[bytes], max_depth: int = MAX_DEPTH
) -> None:
    """Send ``bodies`` in order, 10 at a time, keeping the queue at most ``max_depth`` deep."""
    for start in range(0, len(bodies), 10):
        while sum(await admin.depth(url)) > max_depth - 10:
            await asyncio.sleep(0.05)
        entries = [
            {"Id": str(i), "MessageBody": body.decode()}
            for i, body in enumerate(bodies[start : start + 10])
        ]
        response = await admin.client.send_message_batch(QueueUrl=url, Entries=entries)
        assert not response.get("Failed"), response


async def read_out(admin: SqsAdmin, url: str) -> list[str]:
    """Every body in the queue (received and deleted)."""
    bodies: list[str] = []
    while True:
        response = await admin.client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30
        )
        batch = response.get("Messages", [])
        if not batch:
            return bodies
        bodies += [m["Body"] for m in batch]
        await admin.client.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ],
        )


async def route_cloudtrail_to(events: Any, admin: SqsAdmin, queue_url: str) -> None:
    """The deploy's rule: CloudTrail events on the default bus go to the input queue."""
    pattern = {"detail-type": [{"suffix": "via CloudTrail"}]}
    await events.put_rule(
        Name="cloudtrail-to-detector", EventPattern=json.dumps(pattern), State="ENABLED"
    )
    arn = await admin.queue_arn(queue_url)
    await events.put_targets(Rule="cloudtrail-to-detector", Targets=[{"Id": "input", "Arn": arn}])


async def put_cloudtrail_events(events: Any, records: Sequence[dict[str, Any]]) -> None:
    """PutEvents as CloudTrail would (source aws.<service>, the record as the detail)."""
    for start in range(0, len(records), 10):
        entries = [
            {
                "Source": "aws." + str(r.get("eventSource", "unknown")).split(".", 1)[0],
                "DetailType": "AWS API Call via CloudTrail",
                "Detail": json.dumps(r),
            }
            for r in records[start : start + 10]
        ]
        response = await events.put_events(Entries=entries)
        assert response["FailedEntryCount"] == 0, response


def split(stream: Stream) -> tuple[list[bytes], list[bytes]]:
    """The two slices of the tamper stream: each spans less than the allowed lateness, but
    together they span more, so the second is fed only once the first is consumed: then any
    delivery order (restarts put released messages behind newer ones; a receive whose answer
    moto lost redelivers its messages after the visibility timeout) gives the same findings."""
    first = sum(1 for body in stream.bodies if b'"eventTime":"2024-03-08T07:' in body)
    return stream.bodies[:first], stream.bodies[first:]
