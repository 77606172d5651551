"""A findings sink that puts each finding on an EventBridge bus, so users route findings with
ordinary rules (to SNS, chat, paging, tickets) instead of glue code.

Each finding is one event: source ``cloudtrail-detector``, detail-type ``CloudTrail Detector
Finding``, detail = the finding's JSON, resources = the principal's ARN when it has one. Events
go by PutEvents in batches of at most 10 entries and 256 KB (sized as EventBridge sizes them);
entries EventBridge reports as failed are retried alone, at most ``retry.max_attempts`` calls,
then ``send`` raises :class:`SinkError` so the service does not checkpoint. EventBridge does
not deduplicate: a re-delivery after a crash is a second event with the same ``finding_id``
in its detail, on which consumers deduplicate.

Imports: the standard library, aiobotocore (through ``_aws``), detector.ingest and this
package's port.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any, Final

import orjson

from detector.ingest import DEFAULT_RETRY_POLICY, RetryPolicy, Sleep
from detector.sinks._aws import (
    AwsConfig,
    AwsSink,
    ItemFailure,
    open_client,
    retryable_code,
)
from detector.sinks._port import FindingMessage, SinkError

__all__ = [
    "EVENT_DETAIL_TYPE",
    "EVENT_SOURCE",
    "MAX_PUT_BYTES",
    "MAX_PUT_ENTRIES",
    "EventBridgeFindingSink",
    "event_entry",
    "put_batches",
]

EVENT_SOURCE: Final = "cloudtrail-detector"
EVENT_DETAIL_TYPE: Final = "CloudTrail Detector Finding"
MAX_PUT_ENTRIES: Final = 10
MAX_PUT_BYTES: Final = 256 * 1024


def event_entry(finding: FindingMessage, bus: str) -> dict[str, Any]:
    """The PutEvents entry of one finding."""
    entry: dict[str, Any] = {
        "Source": EVENT_SOURCE,
        "DetailType": EVENT_DETAIL_TYPE,
        "Detail": finding.body.decode("utf-8"),
        "EventBusName": bus,
    }
    arn = _principal_arn(finding.body)
    if arn:
        entry["Resources"] = [arn]
    return entry


def _principal_arn(body: bytes) -> str | None:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    for key in ("principal_arn", "principal"):
        value = document.get(key)
        if isinstance(value, str) and value.startswith("arn:"):
            return value
    return None


def entry_size(entry: dict[str, Any]) -> int:
    """An entry's size as EventBridge counts it (source, detail-type, detail, resources)."""
    size = len(entry["Source"].encode()) + len(entry["DetailType"].encode())
    size += len(entry["Detail"].encode())
    size += sum(len(r.encode()) for r in entry.get("Resources", ()))
    return size + (14 if "Time" in entry else 0)


def put_batches(sizes: Sequence[int], positions: Sequence[int]) -> list[list[int]]:
    """``positions`` cut, in order, into batches of <= 10 entries and <= 256 KB."""
    batches: list[list[int]] = []
    current: list[int] = []
    total = 0
    for position in positions:
        size = sizes[position]
        if current and (len(current) == MAX_PUT_ENTRIES or total + size > MAX_PUT_BYTES):
            batches.append(current)
            current, total = [], 0
        current.append(position)
        total += size
    if current:
        batches.append(current)
    return batches


class EventBridgeFindingSink(AwsSink):
    """Puts findings on ``bus`` through ``client`` (an aiobotocore events client, or anything
    with its ``put_events``); see the module docstring."""

    def __init__(
        self,
        client: Any,
        bus: str,
        *,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        on_failures: Callable[[int], None] | None = None,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        stack: AsyncExitStack | None = None,
    ) -> None:
        super().__init__(
            client, retry=retry, on_failures=on_failures, rng=rng, sleep=sleep, stack=stack
        )
        self.bus = bus

    @classmethod
    async def open(
        cls, config: AwsConfig, bus: str, *, on_failures: Callable[[int], None] | None = None
    ) -> EventBridgeFindingSink:
        """A sink with its own client, once the bus is known to exist (ConfigError if not)."""
        from detector.errors import ConfigError

        stack = AsyncExitStack()
        try:
            client = await open_client("events", config, stack)
            try:
                await client.describe_event_bus(Name=bus)
            except Exception as err:
                raise ConfigError(f"event bus {bus!r} cannot be used: {err}") from None
        except BaseException:
            await stack.aclose()
            raise
        return cls(client, bus, retry=config.retry, on_failures=on_failures, stack=stack)

    async def send(self, findings: Sequence[FindingMessage]) -> None:
        if self._closed:
            raise SinkError("the EventBridge sink is closed", [f.finding_id for f in findings])
        if not findings:
            return
        entries = [event_entry(f, self.bus) for f in findings]
        sizes = [entry_size(e) for e in entries]
        too_big = [
            f.finding_id for f, size in zip(findings, sizes, strict=True) if size > MAX_PUT_BYTES
        ]
        if too_big:
            raise SinkError(
                f"EventBridge: {len(too_big)} findings exceed the {MAX_PUT_BYTES}-byte event limit",
                too_big,
            )
        ids = [f.finding_id for f in findings]

        async def put(batch: Sequence[int]) -> dict[int, ItemFailure]:
            response = await self.client.put_events(Entries=[entries[i] for i in batch])
            failures: dict[int, ItemFailure] = {}
            results = response.get("Entries", [])
            for position, result in zip(batch, results, strict=False):
                code = result.get("ErrorCode")
                if code:
                    failures[position] = ItemFailure(
                        str(code),
                        str(result.get("ErrorMessage", "")),
                        retryable_code(str(code)),
                    )
            if len(results) < len(batch):  # an answer that does not cover the batch
                failures |= {
                    p: ItemFailure("MissingResult", "", True) for p in batch[len(results) :]
                }
            return failures

        await self._deliver(
            f"event bus {self.bus}", ids, put_batches(sizes, range(len(entries))), put
        )
