"""End to end over a local SQS server: the consumer beside the server's raw receive-and-delete.

    python -m bench.end_to_end [--server fauxqs|moto] [--depth 20000] [--receivers 4] [--rounds 3]

The server runs in its own process, so its CPU is not the client's:

- ``fauxqs`` (default; an SQS emulator on Node, fast enough to show the client's own cost):
  ``cd bench/node && npm install`` once; ``bench/node/server.mjs`` serves it on 127.0.0.1
  only (its CLI binds 0.0.0.0);
- ``moto`` (fallback, always installed; slow, and slower as a queue grows: keep ``--depth``
  under 100).

Each round fills the input queue to ``--depth`` EventBridge envelopes (untimed), then drains it
with ``--receivers`` concurrent loops, three ways:

1. ``raw``: bare aiobotocore, ReceiveMessage(10) + DeleteMessageBatch loops (the server's raw
   receive-and-delete rate, and the client CPU it costs);
2. ``consumer, transport only``: the real :class:`Consumer` over :class:`SqsQueue` with the
   decode and pipeline step replaced by a no-op, so its CPU per message is the consumer's SQS
   handling beside the raw loop's;
3. ``consumer, whole path``: the real consumer and pipeline as the service runs them (one
   process: decode and step in a worker thread, deletes on the event loop), findings to an SQS
   findings queue, checkpoints to a local state folder.

Figures: messages/s until the queue is empty (every message processed and deleted), the rate
against the raw loop's (target for the whole path: >= 0.75x), and client CPU µs per message.
The consumer deletes after a checkpoint and
notices the queue drained after one empty long poll: at a shallow depth that tail, and the
batch age limit (``--batch-seconds``), dominate its wall time, so compare rates at a depth of
thousands. The consumer runs with the service's own settings (``consumer_config`` of the
default :class:`ServiceSettings`), except the receive loops and a 1 s long poll. The whole
path's line also gives the worker thread's CPU per message in decode and step: the event
loop is CPU-bound here, so the rate is about the raw loop's times transport / (transport +
that). Variants alternate round by round; the first round warms up. Not part of the test
suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from aiobotocore.session import AioSession

from bench.pipeline import bodies_of
from detector.events import empty_events
from detector.ingest import QueueMessage, SqsConfig, SqsQueue, StaticCredentials
from detector.pipeline import Pipeline, PipelineState, StepReport
from detector.process import tune_gc
from detector.scoring import DEFAULT_MODEL_DIR, load_artifact
from detector.service import (
    Consumer,
    DecodedMessages,
    ServiceMetrics,
    ServiceSettings,
)
from detector.service._consumer import _Stepped
from detector.service._runtime import consumer_config, pipeline_config
from detector.sinks import SqsFindingSink
from detector.state import InMemoryStateStore, LocalStateStore, StateStore

REGION = "us-east-1"
CREDENTIALS = StaticCredentials("bench", "bench")
ATTRIBUTES = ["SentTimestamp", "ApproximateReceiveCount", "MessageGroupId"]
NODE_DIR = Path(__file__).resolve().parent / "node"


# -- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:
                reply.read()
            return
        except OSError as err:
            if isinstance(err, urllib.error.HTTPError):
                return  # it answers
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"the SQS server did not start ({url})") from None
            time.sleep(0.1)


@contextlib.contextmanager
def sqs_server(kind: str) -> Iterator[str]:
    port = free_port()
    if kind == "fauxqs":
        if not (NODE_DIR / "node_modules" / "fauxqs").is_dir():
            raise SystemExit(f"fauxqs is not installed: cd {NODE_DIR} && npm install")
        node = shutil.which("node") or "node"
        command = [node, str(NODE_DIR / "server.mjs"), str(port)]
        probe = f"http://127.0.0.1:{port}/health"
    else:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        probe = f"http://127.0.0.1:{port}/moto-api/data.json"
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(probe, server)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


# -- the variants ----------------------------------------------------------------------------


_NOTHING = StepReport(0, 0, 0, 0, 0, None, {}, {})


class TransportOnly(Consumer):
    """The consumer with decoding and the pipeline step replaced by nothing."""

    def _decode_and_step(
        self, state: PipelineState, messages: Sequence[QueueMessage], now: datetime
    ) -> _Stepped:
        return _Stepped(DecodedMessages(empty_events()), state, [], _NOTHING, np.empty(0))


class WholePath(Consumer):
    """The real consumer, counting the CPU its worker thread spends decoding and stepping."""

    step_cpu_seconds = 0.0

    def _decode_and_step(
        self, state: PipelineState, messages: Sequence[QueueMessage], now: datetime
    ) -> _Stepped:
        started = time.thread_time()
        try:
            return super()._decode_and_step(state, messages, now)
        finally:
            self.step_cpu_seconds += time.thread_time() - started


@dataclass(frozen=True)
class Timing:
    handled: int
    seconds: float
    cpu_seconds: float


class Stopwatch:
    """Wall and CPU time of the measured part only (clients are opened before it)."""

    def __enter__(self) -> Stopwatch:
        gc.collect()
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.wall
        self.cpu_seconds = time.process_time() - self.cpu

    def timing(self, handled: int) -> Timing:
        return Timing(handled, self.seconds, self.cpu_seconds)


@dataclass
class Variant:
    name: str
    run: Callable[[], Awaitable[Timing]]  # drains the queue
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def measure(variant: Variant, keep: bool) -> None:
    timing = await variant.run()
    if keep:
        variant.rates.append(timing.handled / timing.seconds)
        variant.cpu_us.append(timing.cpu_seconds / timing.handled * 1e6)


def client(endpoint: str) -> Any:
    return AioSession().create_client(
        "sqs",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=CREDENTIALS.access_key_id,
        aws_secret_access_key=CREDENTIALS.secret_access_key,
    )


async def bench(args: argparse.Namespace, endpoint: str) -> list[Variant]:
    bodies = [b.decode() for b in bodies_of(args.depth)]
    # The service's own pipeline: its live lateness and early reports (docs/latency.md).
    artifact = load_artifact(args.model)
    overrides: dict[str, Any] = {"receivers": args.receivers, "wait_seconds": 1}
    if args.batch_seconds is not None:
        overrides["batch_seconds"] = args.batch_seconds
    live = ServiceSettings(queue_url="http://bench", findings_file=Path("unused"), **overrides)
    pipeline = Pipeline(artifact, config=pipeline_config(live, artifact.window))
    # The service's own consumer settings, built as the runtime builds them.
    consumer_settings = consumer_config(live, {"VisibilityTimeout": "300"})
    async with client(endpoint) as admin, client(endpoint) as bare:
        input_url = (
            await admin.create_queue(
                QueueName="bench-input", Attributes={"VisibilityTimeout": "300"}
            )
        )["QueueUrl"]
        findings_url = (await admin.create_queue(QueueName="bench-findings"))["QueueUrl"]

        def config(url: str, connections: int = 10) -> SqsConfig:
            return SqsConfig(
                queue_url=url,
                region=REGION,
                endpoint_url=endpoint,
                credentials=CREDENTIALS,
                max_pool_connections=connections,
            )

        async def drain(url: str) -> None:
            while True:
                response = await admin.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                )
                messages = response.get("Messages", [])
                if not messages:
                    return
                await admin.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )

        async def refill() -> None:
            await drain(input_url)
            await drain(findings_url)
            sends = [
                admin.send_message_batch(
                    QueueUrl=input_url,
                    Entries=[
                        {"Id": str(i), "MessageBody": body}
                        for i, body in enumerate(bodies[start : start + 10])
                    ],
                )
                for start in range(0, len(bodies), 10)
            ]
            for start in range(0, len(sends), 50):
                await asyncio.gather(*sends[start : start + 50])

        async def raw() -> Timing:
            handled = 0

            async def loop() -> None:
                nonlocal handled
                while handled < args.depth:
                    response = await bare.receive_message(
                        QueueUrl=input_url,
                        MaxNumberOfMessages=10,
                        WaitTimeSeconds=0,
                        MessageSystemAttributeNames=ATTRIBUTES,
                    )
                    messages = response.get("Messages", [])
                    if not messages:
                        await asyncio.sleep(0.01)
                        continue
                    result = await bare.delete_message_batch(
                        QueueUrl=input_url,
                        Entries=[
                            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                            for i, m in enumerate(messages)
                        ],
                    )
                    handled += len(result.get("Successful", []))

            with Stopwatch() as watch:
                await asyncio.gather(*(loop() for _ in range(args.receivers)))
            return watch.timing(handled)

        async def run_consumer(whole: bool, variant: Variant) -> Timing:
            metrics = ServiceMetrics()
            connections = args.receivers + 6
            folder = tempfile.mkdtemp(prefix="bench-state-")
            store: StateStore = LocalStateStore(folder) if whole else InMemoryStateStore()
            async with (
                SqsQueue(config(input_url, connections)) as sqs,
                await SqsFindingSink.open(config(findings_url)) as sink,
            ):
                kind = WholePath if whole else TransportOnly
                consumer = kind(
                    pipeline,
                    sqs,
                    [sink],
                    store,
                    consumer_settings,
                    metrics=metrics,
                )
                await consumer.start()
                with Stopwatch() as watch:
                    started = time.perf_counter()
                    task = asyncio.create_task(consumer.run())
                    # Local counters only: asking the server would cost this process CPU.
                    scored = 0.0
                    while consumer.counts.deleted < args.depth:
                        if not scored and consumer.counts.events >= args.depth:
                            scored = time.perf_counter() - started
                        await asyncio.sleep(0.02)
                deleted = watch.seconds
                consumer.stop()
                await task
            shutil.rmtree(folder, ignore_errors=True)
            step_cpu = ""
            if isinstance(consumer, WholePath):
                per_message = consumer.step_cpu_seconds / consumer.counts.received * 1e6
                step_cpu = f"; decode + step {per_message:.0f} µs CPU/msg"
            variant.notes.append(
                f"all processed after {scored:.2f} s, deleted after {deleted:.2f} s; "
                f"{consumer.counts.checkpoints} checkpoints{step_cpu}"
            )
            return watch.timing(consumer.counts.deleted)

        variants = [Variant("raw receive(10) + DeleteMessageBatch", raw)]
        transport = Variant("consumer, transport only", lambda: run_consumer(False, transport))
        whole = Variant("consumer, whole path", lambda: run_consumer(True, whole))
        variants += [transport, whole]
        for round_number in range(args.rounds + 1):
            order = variants if round_number % 2 else variants[::-1]
            for variant in order:
                await refill()
                await measure(variant, keep=round_number > 0)
            print(f"round {round_number}/{args.rounds} done", flush=True)
    return variants


def report(variants: list[Variant], args: argparse.Namespace) -> None:
    raw = variants[0]
    load = os.getloadavg()
    print()
    print(
        f"server {args.server}, depth {args.depth:,}, {args.receivers} receive loops, "
        f"{args.rounds} rounds (medians); load average {load[0]:.1f} on {os.cpu_count()} CPUs"
    )
    header = (
        f"{'variant':<38} {'msgs/s':>9} {'rate vs raw':>12} {'client CPU µs/msg':>18} "
        f"{'CPU vs raw':>11}"
    )
    print(header)
    print("-" * len(header))
    base_rate = statistics.median(raw.rates)
    base_cpu = statistics.median(raw.cpu_us)
    for variant in variants:
        rate = statistics.median(variant.rates)
        cpu = statistics.median(variant.cpu_us)
        print(
            f"{variant.name:<38} {rate:>9,.0f} {rate / base_rate:>12.2f} {cpu:>18.0f} "
            f"{cpu / base_cpu:>11.2f}   {variant.notes[-1] if variant.notes else ''}"
        )
        print(f"{'':<38} rounds: {', '.join(f'{r:,.0f}' for r in variant.rates)} msgs/s")
    print()
    print("target: consumer, whole path >= 0.75x the raw loop's rate, every message deleted")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--server", choices=("fauxqs", "moto"), default="fauxqs")
    parser.add_argument("--depth", type=int, default=None, help="fauxqs 20000, moto 50")
    parser.add_argument("--receivers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument(
        "--batch-seconds",
        type=float,
        default=None,
        help="the consumer's batch age limit (default: the service's, 2 s)",
    )
    args = parser.parse_args(argv)
    if args.depth is None:
        args.depth = 20_000 if args.server == "fauxqs" else 50
    tune_gc()
    with sqs_server(args.server) as endpoint:
        variants = asyncio.run(bench(args, endpoint))
    report(variants, args)
    print(json.dumps({v.name: statistics.median(v.rates) for v in variants}))


if __name__ == "__main__":
    main()
