"""Scale-out by principal: the router's CPU per event and a Kinesis consumer's events/s, beside
the single-replica SQS path measured in the same run.

    python -m bench.kinesis [--events 1000] [--shards 4] [--rounds 2]

A moto server runs in its own process (its CPU is not the client's). Each round, with the same
``--events`` EventBridge envelopes of the synthetic organisation:

1. ``sqs consumer``: the queue is filled (untimed), then the service's :class:`Consumer` over
   :class:`SqsQueue` drains it: decode, pipeline step, checkpoint to a local folder, delete;
2. ``router``: the queue is filled again (untimed), then :class:`Router` drains it into the
   stream (decode the envelope, principal key, PutRecords, delete);
3. ``kinesis consumer``: one :class:`Consumer` over :class:`KinesisShardQueue` (every shard)
   reads what the router put: decode, step, checkpoint with the shard positions.

Figures: client CPU µs per event (``time.process_time`` of this process: the server's CPU is
not in it) and events/s until done. moto's SQS and Kinesis are slow emulators, so the events/s
say more about moto than about AWS; the CPU per event is the client's own cost, the figure the
capacity math uses (docs/scale-out.md). Ratios are to the SQS consumer of the same round.
Findings go to an in-memory sink in both consumers. The first round warms up unless there is
only one. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiobotocore.session import AioSession

from bench.end_to_end import CREDENTIALS, REGION, Stopwatch, Timing, sqs_server
from bench.pipeline import bodies_of
from detector.ingest import (
    KinesisConfig,
    KinesisShardQueue,
    KinesisStream,
    MessageQueue,
    SqsConfig,
    SqsQueue,
)
from detector.pipeline import Pipeline
from detector.process import tune_gc
from detector.route import Router, RouterConfig
from detector.scoring import DEFAULT_MODEL_DIR, load_artifact
from detector.service import Consumer, ConsumerConfig, ServiceMetrics
from detector.sinks import MemoryFindingSink
from detector.state import LocalStateStore

CONSUMER = ConsumerConfig(wait_seconds=1, batch_seconds=0.2)


@dataclass
class Figures:
    name: str
    cpu_us: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)

    def add(self, timing: Timing) -> None:
        self.cpu_us.append(timing.cpu_seconds / timing.handled * 1e6)
        self.rates.append(timing.handled / timing.seconds)


def client(service: str, endpoint: str) -> Any:
    return AioSession().create_client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=CREDENTIALS.access_key_id,
        aws_secret_access_key=CREDENTIALS.secret_access_key,
    )


async def fill(sqs: Any, url: str, bodies: list[bytes]) -> None:
    for start in range(0, len(bodies), 10):
        entries = [
            {"Id": str(i), "MessageBody": body.decode()}
            for i, body in enumerate(bodies[start : start + 10])
        ]
        await sqs.send_message_batch(QueueUrl=url, Entries=entries)


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    while not await check():
        await asyncio.sleep(0.05)


async def _consume(
    pipeline: Pipeline, queue: MessageQueue, events: int, reached: Callable[[Consumer], int]
) -> Timing:
    """Time the service's consumer over ``queue`` until ``reached(consumer)`` is ``events``."""
    with tempfile.TemporaryDirectory() as state:
        consumer = Consumer(
            pipeline,
            queue,
            [MemoryFindingSink()],
            LocalStateStore(Path(state)),
            CONSUMER,
            metrics=ServiceMetrics(),
        )
        await consumer.start()
        with Stopwatch() as watch:
            task = asyncio.create_task(consumer.run())

            async def done() -> bool:
                return reached(consumer) >= events

            await until(done)
            consumer.stop()
            await task
    return watch.timing(events)


async def drain_sqs(pipeline: Pipeline, endpoint: str, url: str, events: int) -> Timing:
    config = SqsConfig(url, region=REGION, endpoint_url=endpoint, credentials=CREDENTIALS)
    async with SqsQueue(config) as queue:
        return await _consume(pipeline, queue, events, lambda c: c.counts.deleted)


async def route(endpoint: str, url: str, stream: str, events: int) -> Timing:
    config = SqsConfig(url, region=REGION, endpoint_url=endpoint, credentials=CREDENTIALS)
    kinesis = KinesisConfig(stream, region=REGION, endpoint_url=endpoint, credentials=CREDENTIALS)
    async with SqsQueue(config) as queue, KinesisStream(kinesis) as writer:
        router = Router(queue, writer, RouterConfig(), wait_seconds=1, metrics=ServiceMetrics())
        with Stopwatch() as watch:
            task = asyncio.create_task(router.run())

            async def done() -> bool:
                return router.counts.deleted >= events

            await until(done)
            router.stop()
            await task
    return watch.timing(events)


async def drain_kinesis(pipeline: Pipeline, endpoint: str, stream: str, events: int) -> Timing:
    kinesis = KinesisConfig(
        stream, region=REGION, endpoint_url=endpoint, credentials=CREDENTIALS, poll_seconds=0.05
    )
    async with KinesisStream(kinesis) as reader:
        queue = await KinesisShardQueue(reader, 0, 1).open()
        return await _consume(pipeline, queue, events, lambda c: c.counts.events)


async def bench(args: argparse.Namespace, endpoint: str) -> list[Figures]:
    pipeline = Pipeline(load_artifact(args.model))
    bodies = bodies_of(args.events)
    figures = [Figures("sqs consumer"), Figures("router"), Figures("kinesis consumer")]
    async with client("sqs", endpoint) as sqs, client("kinesis", endpoint) as kinesis:
        for round_ in range(args.rounds):
            keep = args.rounds == 1 or round_ > 0
            url = (await sqs.create_queue(QueueName=f"input-{round_}"))["QueueUrl"]
            stream = f"events-{round_}"
            await kinesis.create_stream(StreamName=stream, ShardCount=args.shards)
            await fill(sqs, url, bodies)
            sqs_timing = await drain_sqs(pipeline, endpoint, url, len(bodies))
            await fill(sqs, url, bodies)
            route_timing = await route(endpoint, url, stream, len(bodies))
            kinesis_timing = await drain_kinesis(pipeline, endpoint, stream, len(bodies))
            if keep:
                for figure, timing in zip(
                    figures, (sqs_timing, route_timing, kinesis_timing), strict=True
                ):
                    figure.add(timing)
    return figures


def report(figures: list[Figures], args: argparse.Namespace) -> dict[str, Any]:
    base = figures[0]
    base_cpu = statistics.median(base.cpu_us)
    base_rate = statistics.median(base.rates)
    print(f"{args.events} events, {args.shards} shards, moto server, median of kept rounds")
    print(f"{'path':<18} {'CPU µs/event':>13} {'x sqs':>7} {'events/s':>10} {'x sqs':>7}")
    rows = {}
    for figure in figures:
        cpu = statistics.median(figure.cpu_us)
        rate = statistics.median(figure.rates)
        rows[figure.name] = {"cpu_us_per_event": round(cpu, 1), "events_per_s": round(rate, 1)}
        print(
            f"{figure.name:<18} {cpu:>13.1f} {cpu / base_cpu:>6.2f}x {rate:>10.1f} "
            f"{rate / base_rate:>6.2f}x"
        )
    consumer_cpu = statistics.median(figures[2].cpu_us)
    router_cpu = statistics.median(figures[1].cpu_us)
    print(
        f"per core: a Kinesis consumer ~{1e6 / consumer_cpu:,.0f} events/s of CPU, a router "
        f"~{1e6 / router_cpu:,.0f}; the extra hop costs {router_cpu / base_cpu:.2f}x the "
        "single-replica path's CPU per event"
    )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    tune_gc()
    started = time.perf_counter()
    with sqs_server("moto") as endpoint:
        figures = asyncio.run(bench(args, endpoint))
    rows = report(figures, args)
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
