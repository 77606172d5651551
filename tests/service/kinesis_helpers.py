"""Helpers of the scale-out tests against a moto server: a Kinesis stream, the router run
in-process until the input queue is drained, and consumers of groups of shards."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from detector.ingest import (
    KinesisConfig,
    KinesisShardQueue,
    KinesisStream,
    SqsQueue,
    owned_shards,
)
from detector.pipeline import Pipeline
from detector.route import Router, RouterConfig
from detector.service import Consumer, ConsumerConfig, ServiceMetrics
from detector.sinks import MemoryFindingSink
from detector.state import LocalStateStore
from tests.integration.moto_support import REGION, TEST_CREDENTIALS, SqsAdmin, aws_client
from tests.service.moto_helpers import feed, wait_until

SHARDS = 4


async def create_stream(endpoint_url: str, name: str, shards: int = SHARDS) -> None:
    async with aws_client("kinesis", endpoint_url) as client:
        await client.create_stream(StreamName=name, ShardCount=shards)
        while True:
            described = await client.describe_stream_summary(StreamName=name)
            if described["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
                return
            await asyncio.sleep(0.05)


def kinesis_config(endpoint_url: str, stream: str) -> KinesisConfig:
    return KinesisConfig(
        stream,
        region=REGION,
        endpoint_url=endpoint_url,
        credentials=TEST_CREDENTIALS,
        poll_seconds=0.05,
    )


async def route_all(admin: SqsAdmin, url: str, stream: str, slices: Sequence[list[bytes]]) -> int:
    """Feed each slice (the next once the router has drained the queue), routing them to the
    stream; returns the records put."""
    async with (
        SqsQueue(admin.config(url)) as queue,
        KinesisStream(kinesis_config(admin.endpoint_url, stream)) as writer,
    ):
        router = Router(queue, writer, RouterConfig(batch_seconds=0.05), wait_seconds=1)
        task = asyncio.create_task(router.run())
        for bodies in slices:
            await feed(admin, url, bodies)

            async def drained() -> bool:
                return await admin.depth(url) == (0, 0) and router.pending == 0

            await wait_until(drained, 30, "the router to drain the queue")
        router.stop()
        await task
        return router.counts.put


class ShardConsumer:
    """Consumer ``ordinal`` of ``count`` over the stream, its state in ``state_dir``."""

    def __init__(
        self,
        pipeline: Pipeline,
        endpoint_url: str,
        stream: str,
        ordinal: int,
        count: int,
        state_dir: Path,
    ) -> None:
        self.pipeline = pipeline
        self.config = kinesis_config(endpoint_url, stream)
        self.ordinal = ordinal
        self.count = count
        self.state_dir = state_dir
        self.store = LocalStateStore(state_dir)
        self.sink = MemoryFindingSink()
        self.consumer: Consumer | None = None

    async def consume(
        self, records: int, until: Callable[[], Awaitable[bool]] | None = None
    ) -> Consumer:
        """Run until ``records`` records were received and the saved state is at the end of
        every shard this consumer owns (and ``until()`` holds), then drain. (Not a count of
        events: two copies of one event in one batch count once.)"""
        async with KinesisStream(self.config) as stream:
            queue = await KinesisShardQueue(stream, self.ordinal, self.count).open()
            consumer = Consumer(
                self.pipeline,
                queue,
                [self.sink],
                self.store,
                ConsumerConfig(batch_size=100, wait_seconds=1, batch_seconds=0.1),
                metrics=ServiceMetrics(),
            )
            self.consumer = consumer
            await consumer.start()
            ends = await shard_ends(self.config.endpoint_url or "", self.config.stream)
            owned = {shard: end for shard, end in ends.items() if shard in queue.shards}
            task = asyncio.create_task(consumer.run(grace_seconds=10))

            async def done() -> bool:
                if task.done():  # stopped by itself: say why rather than time out
                    raise AssertionError(f"consumer stopped early: {task.result()}")
                if consumer.counts.received < records:
                    return False
                if await asyncio.to_thread(saved_positions, self.state_dir) != owned:
                    return False
                return until is None or await until()

            await wait_until(done, 60, f"consumer {self.ordinal} to read {records} records")
            consumer.stop()
            report = await task
            assert report.clean, report
            return consumer


async def shard_records(endpoint_url: str, stream: str) -> dict[str, list[dict[str, Any]]]:
    """Every record the stream holds, by shard, from the trim horizon."""
    records: dict[str, list[dict[str, Any]]] = {}
    async with KinesisStream(kinesis_config(endpoint_url, stream)) as client:
        for shard in await client.shard_ids():
            records[shard] = []
            iterator = (
                await client.client.get_shard_iterator(
                    StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
                )
            )["ShardIterator"]
            while iterator:
                response = await client.client.get_records(ShardIterator=iterator, Limit=1000)
                if not response["Records"]:
                    break
                records[shard] += response["Records"]
                iterator = response.get("NextShardIterator")
    return records


async def shard_events(endpoint_url: str, stream: str, count: int) -> list[int]:
    """How many records each of ``count`` consumers will read (what the stream holds)."""
    records = await shard_records(endpoint_url, stream)
    shards = list(records)
    return [sum(len(records[s]) for s in owned_shards(shards, i, count)) for i in range(count)]


async def shard_ends(endpoint_url: str, stream: str) -> dict[str, str]:
    """The last sequence number of each shard that holds records."""
    records = await shard_records(endpoint_url, stream)
    return {shard: held[-1]["SequenceNumber"] for shard, held in records.items() if held}


def saved_positions(state_dir: Path) -> dict[str, str]:
    """The shard positions in the last snapshot saved in ``state_dir`` ({} if none)."""
    snapshot = LocalStateStore(state_dir).load()
    if snapshot is None:
        return {}
    positions: dict[str, str] = orjson.loads(snapshot.meta.get("kinesis_positions", "{}"))
    return positions
