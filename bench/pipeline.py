"""Throughput of the whole path through the real consumer, beside the bare decode rate.

    python -m bench.pipeline [--events 100000] [--batch 1000] [--model DIR] [--repeats 3]

Bodies are EventBridge envelopes of the synthetic organisation's trail (200,000 events a day,
so windows close and findings are produced). In the same run, on the same bodies:

1. ``bare decode``: :func:`envelopes_to_events` on micro-batches of ``--batch`` bodies (the
   reference: what any consumer must pay to get a DataFrame);
2. ``decode + step``: the same, then :meth:`Pipeline.step` on each batch (the pipeline alone,
   no queue);
3. ``consumer``: every body in a :class:`StubQueue`, consumed by :class:`Consumer.run`
   (4 receive loops, micro-batches of ``--batch``, findings to a memory sink, checkpoints to a
   :class:`LocalStateStore` in a temporary folder, deletes after each checkpoint), timed until
   every event is processed (the deletes that follow the last checkpoint are then awaited,
   untimed).

Figures: events/s (wall) and CPU µs per event (all threads), and the ratio of each rate to the
bare decode rate. The machine's load average is printed too: other processes on a 2-core
machine move wall-clock figures, CPU per event much less. Each variant's best of ``--repeats``
counts. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from detector.events import envelopes_to_events
from detector.ingest import BatchOutcome, OutgoingMessage, QueueMessage
from detector.pipeline import Pipeline
from detector.process import tune_gc
from detector.scoring import DEFAULT_MODEL_DIR, load_artifact
from detector.service import Consumer, ConsumerConfig, ServiceMetrics
from detector.sinks import MemoryFindingSink
from detector.state import LocalStateStore
from detector.synthetic import SyntheticConfig, envelope, iter_records

NOW = datetime(2024, 6, 1, tzinfo=UTC)


@dataclass
class Figure:
    name: str
    events: int
    seconds: float
    cpu_seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu_seconds / self.events * 1e6


class StubQueue:
    """A queue port for this benchmark only: visible bodies in a deque, in-flight ones in a
    dict, no visibility timeouts (nothing here outlives them). The tests' :class:`InMemoryQueue`
    is written to be read, not to hold 100,000 messages."""

    fifo = False

    def __init__(self, bodies: list[bytes]) -> None:
        self.visible = deque(enumerate(bodies))
        self.in_flight: dict[str, int] = {}
        self.receives = self.deletes = 0

    async def receive(
        self, max_messages: int = 10, wait_seconds: int = 20, visibility_timeout: int | None = None
    ) -> list[QueueMessage]:
        self.receives += 1
        await asyncio.sleep(0)  # as a network call would
        taken: list[QueueMessage] = []
        while self.visible and len(taken) < max_messages:
            number, body = self.visible.popleft()
            self.in_flight[f"h{number}"] = number
            taken.append(QueueMessage(f"m{number}", f"h{number}", body, NOW, 1))
        if not taken and wait_seconds:
            await asyncio.sleep(0.05)  # a long poll on an empty queue
        return taken

    async def delete(self, messages: Sequence[QueueMessage]) -> BatchOutcome:
        self.deletes += 1
        for message in messages:
            del self.in_flight[message.receipt_handle]
        return BatchOutcome(tuple(m.message_id for m in messages), ())

    async def change_visibility(
        self, messages: Sequence[QueueMessage], timeout_seconds: int
    ) -> BatchOutcome:
        return BatchOutcome(tuple(m.message_id for m in messages), ())

    async def send(self, messages: Sequence[OutgoingMessage]) -> BatchOutcome:
        raise NotImplementedError("filled once, at construction")

    async def close(self) -> None:
        pass

    def empty(self) -> bool:
        return not self.visible and not self.in_flight


def timed(name: str, events: int, run: Callable[[], str | None]) -> Figure:
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    note = run() or ""
    return Figure(name, events, time.perf_counter() - wall, time.process_time() - cpu, note)


def best(figures: list[Figure]) -> Figure:
    return min(figures, key=lambda f: f.seconds)


def bodies_of(events: int) -> list[bytes]:
    config = SyntheticConfig().with_events_per_day(200_000)
    records = itertools.islice(iter_records(config, seed=7), events)
    return [orjson.dumps(envelope(r, f"env-{i}")) for i, r in enumerate(records)]


def bare_decode(batches: list[list[bytes]]) -> Callable[[], str | None]:
    def run() -> None:
        for batch in batches:
            envelopes_to_events(batch)

    return run


def decode_and_step(pipeline: Pipeline, batches: list[list[bytes]]) -> Callable[[], str | None]:
    def run() -> str:
        state = pipeline.initial_state()
        findings = 0
        for batch in batches:
            state, found, _ = pipeline.step(state, envelopes_to_events(batch).events, NOW)
            findings += len(found)
        return f"{findings} findings"

    return run


async def consume(pipeline: Pipeline, bodies: list[bytes], batch: int, state_dir: Path) -> Figure:
    queue = StubQueue(bodies)
    sink = MemoryFindingSink()
    metrics = ServiceMetrics()
    consumer = Consumer(
        pipeline,
        queue,
        [sink],
        LocalStateStore(state_dir),
        ConsumerConfig(batch_size=batch, wait_seconds=1),
        metrics=metrics,
    )
    await consumer.start()
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    run = asyncio.create_task(consumer.run())
    while consumer.counts.events < len(bodies):
        await asyncio.sleep(0.01)
    seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    # Deletes follow the next checkpoint (deferred by design): wait for them, untimed.
    while not queue.empty() or len(consumer.ledger):
        await asyncio.sleep(0.01)
    consumer.stop()
    report = await run
    assert report.clean
    events = int(metrics.value("detector_events_processed_total"))
    assert events == len(bodies), (events, len(bodies))
    checkpoints = int(metrics.value("detector_checkpoints_total"))
    return Figure(
        "consumer (decode and step in a worker thread)",
        events,
        seconds,
        cpu_seconds,
        f"{len(sink.findings)} findings, {checkpoints} checkpoints, "
        f"{queue.receives} receives, {queue.deletes} delete batches",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    tune_gc()

    print(f"generating {args.events:,} envelopes ...", flush=True)
    bodies = bodies_of(args.events)
    batches = [bodies[i : i + args.batch] for i in range(0, len(bodies), args.batch)]
    pipeline = Pipeline(load_artifact(args.model))
    n = len(bodies)

    figures: dict[str, list[Figure]] = {}
    for round_number in range(args.repeats):
        print(f"round {round_number + 1}/{args.repeats} ...", flush=True)
        figures.setdefault("bare", []).append(timed("bare decode", n, bare_decode(batches)))
        figures.setdefault("step", []).append(
            timed("decode + pipeline.step", n, decode_and_step(pipeline, batches))
        )
        with tempfile.TemporaryDirectory(prefix="bench-state-") as state_dir:
            figure = asyncio.run(consume(pipeline, bodies, args.batch, Path(state_dir)))
        figures.setdefault("consumer", []).append(figure)

    reference = best(figures["bare"])
    load = os.getloadavg()
    print()
    print(
        f"{n:,} events, micro-batches of {args.batch:,}, model {args.model}, "
        f"best of {args.repeats}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    header = f"{'variant':<50} {'events/s':>10} {'CPU µs/event':>13} {'x bare decode':>14}"
    print(header)
    print("-" * len(header))
    for runs in figures.values():
        figure = best(runs)
        print(
            f"{figure.name:<50} {figure.rate:>10,.0f} {figure.cpu_us:>13.1f} "
            f"{figure.rate / reference.rate:>14.2f}   {figure.note}"
        )
    print()


if __name__ == "__main__":
    main()
