"""Time to detect: a synthetic day through the service's consumer over a local SQS server.

    python -m bench.latency [--server moto|fauxqs] [--hours 24] [--no-early]

A synthetic organisation's clean days warm the state (as ``detector replay`` of the archive
would: 15 minutes of lateness, no early reports), then its attack day is streamed through
the real :class:`~detector.service.Consumer` with the service's own configuration
(:func:`~detector.service._runtime.pipeline_config`, :func:`consumer_config`: 2 minutes of
lateness, early reports every 30 s, idle watermark after 60 s), over :class:`SqsQueue` on a
local SQS server (moto by default; fauxqs once ``cd bench/node && npm install``).

Pace: an injected clock (:class:`ManualClock`) stands for the wall clock. Each event is sent to
the queue at its delivery time, its event time plus an EventBridge delay (1 s + an
exponential of mean 3 s; 2% of events are stragglers, 30-300 s late); the clock jumps from one
decision to the next (a delivery, a batch coming due, a quiet-hours check every 5 s while
nothing is buffered), and moves on by the real time the consumer spent processing, checkpointing
and advancing the watermark, so a day takes minutes while every cost the service would pay
still delays its findings. The queue's ``SentTimestamp`` is read on the injected clock (the
message's send time on it), so ``received_at`` and ``created_at`` share one clock.

Figures: per family (signature detections, model), the first report of each finding:
``created_at - received_at``, p50 / p95 / p99, against the targets (30 s, 2 min). Not part of
the test suite; results go to docs/performance.md and docs/latency.md.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.end_to_end import CREDENTIALS, REGION, client, sqs_server
from detector.events import records_to_events
from detector.ingest import ManualClock, QueueMessage, SqsConfig, SqsQueue
from detector.ingest._model import BatchOutcome
from detector.pipeline import Pipeline
from detector.scoring import DEFAULT_MODEL_DIR, load_artifact
from detector.service import Consumer, ServiceMetrics, ServiceSettings
from detector.service._runtime import consumer_config, pipeline_config
from detector.sinks import MemoryFindingSink
from detector.state import InMemoryStateStore
from detector.synthetic import SyntheticConfig, envelope, generate
from detector.timeliness import family_of

TARGETS = {"detection": 30.0, "model": 120.0}
IDLE_STEP = timedelta(seconds=5)


class SimulatedSentTime:
    """The SQS queue, with each message's ``SentTimestamp`` read on the injected clock (the
    time the bench sent it), so that receipt and creation times share one clock."""

    def __init__(self, queue: SqsQueue, sent_at: dict[str, datetime]) -> None:
        self._queue = queue
        self._sent_at = sent_at
        self.fifo = queue.fifo

    async def receive(
        self, max_messages: int, wait_seconds: int, visibility_timeout: int
    ) -> list[QueueMessage]:
        got = await self._queue.receive(max_messages, wait_seconds, visibility_timeout)
        return [m._replace(sent_time=self._sent_at[m.message_id]) for m in got]

    async def delete(self, messages: Sequence[QueueMessage]) -> BatchOutcome:
        return await self._queue.delete(messages)

    async def change_visibility(
        self, messages: Sequence[QueueMessage], timeout: int
    ) -> BatchOutcome:
        return await self._queue.change_visibility(messages, timeout)

    async def close(self) -> None:
        await self._queue.close()


@dataclass(frozen=True)
class Delivery:
    at: datetime
    body: str


def deliveries(records: Sequence[dict[str, Any]], seed: int) -> list[Delivery]:
    """Each record's EventBridge envelope at its delivery time, in delivery order."""
    rng = np.random.default_rng(seed)
    n = len(records)
    delay = 1.0 + rng.exponential(3.0, n)
    stragglers = rng.random(n) < 0.02
    delay[stragglers] = rng.uniform(30.0, 300.0, int(stragglers.sum()))
    out = []
    for i, (record, seconds) in enumerate(zip(records, delay, strict=True)):
        moment = datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00"))
        body = orjson.dumps(envelope(record, f"latency-{i}")).decode()
        out.append(Delivery(moment + timedelta(seconds=float(seconds)), body))
    return sorted(out, key=lambda d: d.at)


@dataclass
class Run:
    findings: list[dict[str, Any]]
    steps: int
    real_seconds: float
    busy_seconds: float
    early_reports: float
    idle_advances: float
    events: int


async def stream(args: argparse.Namespace, endpoint: str) -> Run:
    config = SyntheticConfig(
        baseline_days=args.baseline_days,
        attack_days=1,
        app_calls_per_instance_hour=args.app_rate,
    )
    trail = generate(config, seed=args.seed)
    cut = config.start + timedelta(days=config.baseline_days)
    until = cut + timedelta(hours=args.hours)
    stamp = f"{cut:%Y-%m-%dT%H:%M:%SZ}"
    end = f"{until:%Y-%m-%dT%H:%M:%SZ}"
    history = [r for r in trail.records if r["eventTime"] < stamp]
    day = [r for r in trail.records if stamp <= r["eventTime"] < end]
    artifact = load_artifact(DEFAULT_MODEL_DIR)

    # The archive's replay warms the state: profiles, baselines, principals past learning.
    archive = Pipeline(artifact)
    events = records_to_events(history, origin="history").events.sort("event_time")
    state = archive.initial_state()
    fixed = datetime(2025, 1, 1, tzinfo=UTC)
    for lo in range(0, events.height, 50_000):
        state, _, _ = archive.step(state, events.slice(lo, 50_000), fixed)
    store = InMemoryStateStore()
    store.save(archive.snapshot(state))

    async with client(endpoint) as admin:
        url = (
            await admin.create_queue(
                QueueName="latency-input", Attributes={"VisibilityTimeout": "300"}
            )
        )["QueueUrl"]
        settings = ServiceSettings(
            queue_url=url,
            findings_file=Path("unused.jsonl"),
            checkpoint_seconds=args.checkpoint_seconds,
            early_seconds=0.0 if args.no_early else 30.0,
        )
        live = Pipeline(artifact, config=pipeline_config(settings, artifact.window))
        sqs = await SqsQueue.open(
            SqsConfig(queue_url=url, region=REGION, endpoint_url=endpoint, credentials=CREDENTIALS)
        )
        sent_at: dict[str, datetime] = {}
        queue = SimulatedSentTime(sqs, sent_at)
        todo = deliveries(day, args.seed)
        clock = ManualClock(todo[0].at)
        sink = MemoryFindingSink()
        metrics = ServiceMetrics()
        consumer = Consumer(
            live,
            queue,  # type: ignore[arg-type]
            [sink],
            store,
            replace(consumer_config(settings, {"VisibilityTimeout": "300"}), wait_seconds=0),
            clock=clock,
            metrics=metrics,
        )
        await consumer.start()
        started = time.perf_counter()
        busy = 0.0
        steps = 0
        i = 0
        outstanding = 0
        last_at = todo[-1].at
        settle = last_at + timedelta(minutes=15)  # the last windows close on the idle clock
        while clock() < settle or outstanding or len(consumer.ledger):
            now = clock()
            due = []
            while i < len(todo) and todo[i].at <= now:
                due.append(todo[i].body)
                i += 1
            for lo in range(0, len(due), 10):
                reply = await admin.send_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(k), "MessageBody": b} for k, b in enumerate(due[lo : lo + 10])
                    ],
                )
                for ok in reply.get("Successful", []):
                    sent_at[ok["MessageId"]] = now
                outstanding += len(reply.get("Successful", []))
            while outstanding:
                got = await consumer.receive_once(wait_seconds=0)
                if not got:
                    break
                outstanding -= got
            t = time.perf_counter()
            processed = await consumer.process_due()
            steps += bool(processed)
            if consumer.checkpoint_is_due():
                await consumer.checkpoint()
                await consumer.wait_for_deletes()
            if not processed:
                await consumer.advance_if_idle()
            spent = time.perf_counter() - t
            busy += spent
            clock.advance(spent)  # the consumer's own time delays what comes next
            oldest = consumer.ledger.oldest_buffered()
            upcoming = todo[i].at if i < len(todo) else settle
            wake = clock() + IDLE_STEP
            if oldest is not None:
                wake = oldest + timedelta(seconds=consumer.config.batch_seconds)
            target = min(upcoming, wake)
            if target > clock():
                clock.advance((target - clock()).total_seconds())
            elif oldest is None and not due and not processed:
                clock.advance(0.001)
        await consumer.drain(grace_seconds=30)
        await sqs.close()
    findings = [orjson.loads(f.body) for f in sink.findings]
    return Run(
        findings,
        steps,
        time.perf_counter() - started,
        busy,
        metrics.value("detector_early_reports_total"),
        metrics.value("detector_idle_watermark_advances_total"),
        len(day),
    )


def first_reports(findings: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    """Per family, created_at - received_at of each finding's first report, in seconds."""
    seen: set[str] = set()
    out: dict[str, list[float]] = {"detection": [], "model": []}
    for f in findings:
        if f["finding_id"] in seen or f["received_at"] is None:
            continue
        seen.add(f["finding_id"])
        created = datetime.fromisoformat(f["created_at"])
        received = datetime.fromisoformat(f["received_at"])
        out[family_of(f["kind"])].append((created - received).total_seconds())
    return out


def report(run: Run, args: argparse.Namespace) -> str:
    lines = [
        f"events streamed: {run.events:,} ({args.hours:g} h of the attack day), steps: "
        f"{run.steps:,}, real time {run.real_seconds:.0f} s (consumer busy {run.busy_seconds:.0f}"
        f" s), early reports: {run.early_reports:.0f}, idle advances: {run.idle_advances:.0f}",
        "",
        "| family | findings | p50 | p95 | p99 | max | target (p95) |",
        "|---|---|---|---|---|---|---|",
    ]
    for family, values in first_reports(run.findings).items():
        if not values:
            lines.append(f"| {family} | 0 | - | - | - | - | {TARGETS[family]:g} s |")
            continue
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        met = "met" if p95 <= TARGETS[family] else "NOT met"
        lines.append(
            f"| {family} | {len(values)} | {p50:.1f} s | {p95:.1f} s | {p99:.1f} s | "
            f"{max(values):.1f} s | {TARGETS[family]:g} s: {met} |"
        )
    provisional = sum(f["provisional"] for f in run.findings)
    lines.append("")
    lines.append(f"sends: {len(run.findings)} ({provisional} provisional)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", choices=("moto", "fauxqs"), default="moto")
    parser.add_argument("--hours", type=float, default=24.0, help="of the attack day")
    parser.add_argument("--baseline-days", type=int, default=3)
    parser.add_argument("--app-rate", type=int, default=15, help="calls per instance-hour")
    parser.add_argument("--checkpoint-seconds", type=float, default=300.0)
    parser.add_argument("--no-early", action="store_true", help="early reports off")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    with sqs_server(args.server) as endpoint:
        run = asyncio.run(stream(args, endpoint))
    print(report(run, args))


if __name__ == "__main__":
    main()
