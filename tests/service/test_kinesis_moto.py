"""Scale-out against a real moto server: SQS -> ``detector route`` -> Kinesis (keyed by
principal) -> 1 or 3 consumers of groups of shards give exactly the finding ids of one pipeline
fed every event (what ``detector replay`` does); a consumer restarted from its snapshot
resumes at the shard positions saved with its state."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from detector.errors import StateError
from detector.ingest import KinesisShardQueue, KinesisStream
from detector.pipeline import Pipeline
from detector.service import Consumer, ConsumerConfig, ServiceMetrics
from detector.sinks import MemoryFindingSink
from tests.integration.moto_support import SqsAdmin, aws_client
from tests.integration.state_support import s3_state
from tests.service.conftest import Stream
from tests.service.kinesis_helpers import (
    ShardConsumer,
    create_stream,
    kinesis_config,
    route_all,
    saved_positions,
    shard_ends,
    shard_events,
)
from tests.service.moto_helpers import split, wait_until


async def input_queue(admin: SqsAdmin) -> str:
    dlq = await admin.create_queue("detector-input-dlq")
    return await admin.create_queue(
        "detector-input", visibility_timeout=30, dead_letter_queue_url=dlq, max_receive_count=5
    )


@pytest.mark.parametrize("consumers", [1, 3])
async def test_routed_through_kinesis_the_consumers_find_what_replay_finds(
    consumers: int,
    sqs_admin: SqsAdmin,
    tamper_stream: Stream,
    pipeline: Pipeline,
    tmp_path: Path,
) -> None:
    url = await input_queue(sqs_admin)
    await create_stream(sqs_admin.endpoint_url, "events")
    routed = await route_all(sqs_admin, url, "events", split(tamper_stream))
    assert routed >= len(tamper_stream)  # a message SQS delivered twice is put twice

    per_consumer = await shard_events(sqs_admin.endpoint_url, "events", consumers)
    assert sum(per_consumer) == routed
    assert all(per_consumer)  # every consumer has principals of its own
    found: list[str] = []
    for ordinal, events in enumerate(per_consumer):
        shard_consumer = ShardConsumer(
            pipeline, sqs_admin.endpoint_url, "events", ordinal, consumers, tmp_path / str(ordinal)
        )
        consumer = await shard_consumer.consume(events)
        assert consumer.counts.poison == 0
        found += [f.finding_id for f in shard_consumer.sink.findings]
    assert tamper_stream.finding_ids
    assert set(found) == tamper_stream.finding_ids


async def test_a_state_written_for_another_shard_layout_is_refused_saying_what_to_do(
    sqs_admin: SqsAdmin, short_stream: Stream, pipeline: Pipeline, tmp_path: Path
) -> None:
    url = await input_queue(sqs_admin)
    await create_stream(sqs_admin.endpoint_url, "events")
    routed = await route_all(sqs_admin, url, "events", [short_stream.bodies])
    alone = ShardConsumer(pipeline, sqs_admin.endpoint_url, "events", 0, 1, tmp_path)
    await alone.consume(routed)

    one_of_two = ShardConsumer(pipeline, sqs_admin.endpoint_url, "events", 0, 2, tmp_path)
    with pytest.raises(StateError, match=r"consumer 0/1 .* this is consumer 0/2") as refused:
        await one_of_two.consume(routed)
    assert "empty state location" in str(refused.value)


async def test_a_poison_record_is_read_again_then_dropped_and_the_shard_moves_on(
    sqs_admin: SqsAdmin, short_stream: Stream, pipeline: Pipeline, tmp_path: Path
) -> None:
    await create_stream(sqs_admin.endpoint_url, "events", shards=1)
    async with aws_client("kinesis", sqs_admin.endpoint_url) as client:
        for body in [b"{not json", *short_stream.bodies]:
            await client.put_record(StreamName="events", Data=body, PartitionKey="p")
    ends = await shard_ends(sqs_admin.endpoint_url, "events")

    async def past_the_end() -> bool:
        return await asyncio.to_thread(saved_positions, tmp_path) == ends

    alone = ShardConsumer(pipeline, sqs_admin.endpoint_url, "events", 0, 1, tmp_path)
    consumer = await alone.consume(len(short_stream), until=past_the_end)
    assert consumer.counts.poison == 3  # read three times, then given up
    assert consumer.metrics.value("detector_messages_dlq_bound_total") == 1
    assert {f.finding_id for f in alone.sink.findings} == short_stream.finding_ids


async def test_two_consumers_started_on_the_same_shards_one_refuses_to_commit(
    sqs_admin: SqsAdmin, short_stream: Stream, pipeline: Pipeline
) -> None:
    # Two pods with the same ordinal (a misconfigured StatefulSet, a stuck pod and its
    # replacement) on one S3 state: both load it empty, the first checkpoint wins, and the
    # other stops without saving or deleting anything, instead of overwriting the winner.
    url = await input_queue(sqs_admin)
    await create_stream(sqs_admin.endpoint_url, "events")
    await route_all(sqs_admin, url, "events", [short_stream.bodies])
    with s3_state(sqs_admin.endpoint_url) as s3:
        async with contextlib.AsyncExitStack() as stack:
            consumers = []
            for _ in range(2):
                stream = await stack.enter_async_context(
                    KinesisStream(kinesis_config(sqs_admin.endpoint_url, "events"))
                )
                queue = await KinesisShardQueue(stream, 0, 1).open()
                consumer = Consumer(
                    pipeline,
                    queue,
                    [MemoryFindingSink()],
                    s3.open(),
                    ConsumerConfig(batch_size=100, wait_seconds=1, batch_seconds=0.1),
                    metrics=ServiceMetrics(),
                )
                await consumer.start()  # both load the empty state before either saves
                consumers.append(consumer)
            tasks = [asyncio.create_task(c.run(grace_seconds=10)) for c in consumers]

            async def one_stopped() -> bool:
                return any(t.done() for t in tasks)

            await wait_until(one_stopped, 60, "one of the two consumers to stop by itself")
            for consumer in consumers:
                consumer.stop()
            reports = [await t for t in tasks]
    refused = [r for r in reports if r.fatal is not None]
    assert len(refused) == 1, reports
    assert "StateConflictError" in (refused[0].fatal or "")
    winner = reports[0] if refused[0] is reports[1] else reports[1]
    assert winner.clean, winner
    loser = consumers[reports.index(refused[0])]
    assert loser.metrics.value("detector_checkpoint_failures_total") == 1
