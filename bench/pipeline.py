"""Throughput of the whole path through the real consumer, beside the bare decode rate.

    python -m bench.pipeline [--events 100000] [--batch 1000] [--model DIR] [--repeats 3]

Bodies are EventBridge envelopes of the synthetic organisation's trail (200,000 events a day,
so windows close and findings are produced). In the same run, on the same bodies:

1. ``bare decode``: :func:`envelopes_to_events` on micro-batches of ``--batch`` bodies (the
   reference: what any consumer must pay to get a DataFrame);
2. ``decode + step``: the same, then :meth:`Pipeline.step` on each batch (the pipeline alone,
   no queue);
3. ``consumer``: every body in an :class:`InMemoryQueue`, consumed by :class:`Consumer.run`
   (4 receive loops, micro-batches of ``--batch``, findings to a memory sink, checkpoints to a
   :class:`LocalStateStore` in a temporary folder every 10 s, deletes after each checkpoint),
   timed until every event is processed (the deletes that follow the last checkpoint are
   then awaited, untimed), once with the step in a worker thread (the service's default) and
   once on the event loop.

Figures: events/s (wall) and CPU µs per event (all threads, and the decode process when there
is one; its share is shown apart: the rest is this process's), and the
ratio of each rate to the bare decode rate (target for the consumer: >= 0.75). The machine's
load average is printed too: other processes on a 2-core machine move wall-clock figures, CPU
per event much less. Each variant's best of ``--repeats`` counts. Not part of the test suite.

For the variant with a decode process, where its time goes (from the best run): the share of
the run it spent decoding, and per 10,000 messages the time from handing a batch to the pool
until the process starts decoding it (the bodies crossing the pipe), the decoding itself, and
the time from its end until the events are back in this process (the answer crossing the
pipe). The decode process is the consumer's bottleneck: what it does not
spend decoding is hand-over.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import itertools
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from detector.events import envelopes_to_events
from detector.ingest import InMemoryQueue, OutgoingMessage, QueueCounts
from detector.pipeline import Pipeline
from detector.runtime import tune_gc, worker_pool
from detector.scoring import DEFAULT_MODEL_DIR, load_artifact
from detector.service import Consumer, ConsumerConfig, ServiceMetrics
from detector.service._decode import decode_bodies
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
    worker_cpu_seconds: float = 0.0  # of cpu_seconds, in the decode process
    handovers: list[Handover] = field(default_factory=list)

    @property
    def worker_cpu_us(self) -> float:
        return self.worker_cpu_seconds / self.events * 1e6

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu_seconds / self.events * 1e6


T = TypeVar("T")


@dataclass(frozen=True)
class Handover:
    """One call to the decode process, on this machine's monotonic clock (shared by processes)."""

    messages: int
    submitted: float
    started: float  # in the decode process
    ended: float  # in the decode process
    returned: float  # the answer unpickled here


def _clocked(call: Callable[[], T]) -> tuple[T, float, float]:
    """Runs in the decode process: ``call``'s result and when it started and ended."""
    started = time.perf_counter()
    result = call()
    return result, started, time.perf_counter()


class ClockedPool(Executor):
    """A process pool whose calls are timed end to end (see :class:`Handover`); the consumer
    uses it as its decode pool, unchanged."""

    def __init__(self, inner: ProcessPoolExecutor) -> None:
        self.inner = inner
        self._processes = inner._processes  # read by pool_cpu_seconds
        self.handovers: list[Handover] = []

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        call = functools.partial(fn, *args, **kwargs)
        bodies = call.args[0] if call.args else ()  # decode_bodies(bodies, ...)
        messages = len(bodies) if hasattr(bodies, "__len__") else 0
        submitted = time.perf_counter()
        outer: Future[T] = Future()

        def done(inner: Future[tuple[T, float, float]]) -> None:
            error = inner.exception()
            if error is not None:
                outer.set_exception(error)
                return
            result, started, ended = inner.result()
            self.handovers.append(
                Handover(messages, submitted, started, ended, time.perf_counter())
            )
            outer.set_result(result)

        self.inner.submit(_clocked, call).add_done_callback(done)
        return outer

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.inner.shutdown(wait, cancel_futures=cancel_futures)


def handover_summary(handovers: list[Handover], seconds: float) -> str:
    """The decode process's busy share and, per 10,000 messages, ms to hand over, decode and
    hand back."""
    messages = sum(h.messages for h in handovers)
    if not messages:
        return ""
    per = 10_000 / messages * 1000
    busy = sum(h.ended - h.started for h in handovers)
    return (
        f"decode process busy decoding {busy / seconds:.0%} of the run; per 10,000 messages: "
        f"{sum(h.started - h.submitted for h in handovers) * per:.0f} ms handing the bodies "
        f"over, {busy * per:.0f} ms decoding, "
        f"{sum(h.returned - h.ended for h in handovers) * per:.0f} ms handing the events back"
    )


def client_cpu_seconds(*pools: Executor | None) -> float:
    """CPU seconds of this process (all threads) plus the live workers of ``pools``: a decode
    or delete process's CPU is the consumer's too (``process_time`` alone would not see it)."""
    return time.process_time() + pool_cpu_seconds(*pools)


def pool_cpu_seconds(*pools: Executor | None) -> float:
    """CPU seconds of the live worker processes of ``pools``."""
    total = 0.0
    pids = [pid for pool in pools for pid in list(getattr(pool, "_processes", None) or ())]
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


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


async def fill(queue: InMemoryQueue, bodies: list[bytes]) -> None:
    for start in range(0, len(bodies), 1000):
        chunk = bodies[start : start + 1000]
        outcome = await queue.send([OutgoingMessage(str(i), b) for i, b in enumerate(chunk)])
        assert outcome.ok


async def consume(
    pipeline: Pipeline,
    bodies: list[bytes],
    batch: int,
    step_in_thread: bool,
    state_dir: Path,
    pool: ClockedPool | None = None,
) -> Figure:
    queue = InMemoryQueue(visibility_timeout=300)
    await fill(queue, bodies)
    sink = MemoryFindingSink()
    metrics = ServiceMetrics()
    consumer = Consumer(
        pipeline,
        queue,
        [sink],
        LocalStateStore(state_dir),
        ConsumerConfig(batch_size=batch, wait_seconds=1, step_in_thread=step_in_thread),
        metrics=metrics,
        decode_pool=pool,
    )
    await consumer.start()
    gc.collect()
    if pool is not None:
        pool.handovers.clear()
    wall, cpu, worker_cpu = time.perf_counter(), client_cpu_seconds(pool), pool_cpu_seconds(pool)
    run = asyncio.create_task(consumer.run())
    while consumer.counts.events < len(bodies):
        await asyncio.sleep(0.01)
    seconds, cpu_seconds = time.perf_counter() - wall, client_cpu_seconds(pool) - cpu
    worker_cpu_seconds = pool_cpu_seconds(pool) - worker_cpu
    # Deletes follow the next checkpoint (deferred by design): wait for them, untimed.
    while queue.counts() != QueueCounts(0, 0) or len(consumer.ledger):
        await asyncio.sleep(0.01)
    consumer.stop()
    report = await run
    assert report.clean
    events = int(metrics.value("detector_events_processed_total"))
    assert events == len(bodies), (events, len(bodies))
    where = "in a worker thread" if step_in_thread else "on the event loop"
    if pool is not None:
        where += ", decode in a process"
    checkpoints = int(metrics.value("detector_checkpoints_total"))
    return Figure(
        f"consumer, step {where}",
        events,
        seconds,
        cpu_seconds,
        f"{len(sink.findings)} findings, {checkpoints} checkpoints, "
        f"{queue.api_calls['ReceiveMessage']} receives, "
        f"{queue.api_calls['DeleteMessageBatch']} delete batches",
        worker_cpu_seconds,
        list(pool.handovers) if pool is not None else [],  # all decoded in the timed part
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
    # The service's decode process (--decode-workers 1), started and warmed up untimed.
    pool = ClockedPool(worker_pool(1))
    pool.submit(
        decode_bodies, bodies[:10], ["w"] * 10, ["w"] * 10, [None] * 10, max_body_bytes=1 << 20
    ).result()
    for round_number in range(args.repeats):
        print(f"round {round_number + 1}/{args.repeats} ...", flush=True)
        figures.setdefault("bare", []).append(timed("bare decode", n, bare_decode(batches)))
        figures.setdefault("step", []).append(
            timed("decode + pipeline.step", n, decode_and_step(pipeline, batches))
        )
        for in_thread, use_pool in ((True, True), (True, False), (False, False)):
            with tempfile.TemporaryDirectory(prefix="bench-state-") as state_dir:
                figure = asyncio.run(
                    consume(
                        pipeline,
                        bodies,
                        args.batch,
                        in_thread,
                        Path(state_dir),
                        pool if use_pool else None,
                    )
                )
            figures.setdefault(figure.name, []).append(figure)

    pool.shutdown()
    reference = best(figures["bare"])
    load = os.getloadavg()
    print()
    print(
        f"{n:,} events, micro-batches of {args.batch:,}, model {args.model}, "
        f"best of {args.repeats}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    header = (
        f"{'variant':<55} {'events/s':>10} {'CPU µs/event':>13} {'in decode proc.':>16} "
        f"{'x bare decode':>14}"
    )
    print(header)
    print("-" * len(header))
    for runs in figures.values():
        figure = best(runs)
        in_worker = f"{figure.worker_cpu_us:.1f}" if figure.worker_cpu_seconds else "-"
        print(
            f"{figure.name:<55} {figure.rate:>10,.0f} {figure.cpu_us:>13.1f} {in_worker:>16} "
            f"{figure.rate / reference.rate:>14.2f}   {figure.note}"
        )
    for runs in figures.values():
        figure = best(runs)
        if figure.handovers:
            print()
            print(f"{figure.name}: {handover_summary(figure.handovers, figure.seconds)}")
    print()
    print("target: consumer >= 0.75 x bare decode (events/s)")


if __name__ == "__main__":
    main()
