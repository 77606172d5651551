"""The consumer against the in-memory queue, sink and state store, one decision at a time on a
manual clock: what is deleted and when, poison, heartbeats, backpressure, shutdown, FIFO."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from detector.ingest import (
    BatchOutcome,
    InMemoryQueue,
    ManualClock,
    QueueCounts,
    QueueError,
    QueueMessage,
)
from detector.pipeline import Pipeline, PipelineState
from detector.scoring import LearningConfig
from detector.service import Consumer, ConsumerConfig, Phase
from detector.sinks import MemoryFindingSink, SqsFindingSink
from detector.state import InMemoryStateStore, LocalStateStore
from tests.service.conftest import NOW, Stream, stream_of
from tests.service.helpers import (
    Journal,
    JournalingQueue,
    JournalingSink,
    JournalingStore,
    finding_bodies,
    make_consumer,
    pump,
    send_bodies,
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


async def test_every_event_counts_once_and_nothing_is_deleted_before_the_checkpoint(
    pipeline: Pipeline, morning_stream: Stream, clock: ManualClock
) -> None:
    queue = InMemoryQueue(clock=clock)
    await send_bodies(queue, morning_stream.bodies)
    sink = MemoryFindingSink()
    store = InMemoryStateStore()
    consumer = make_consumer(pipeline, queue, clock, sinks=[sink], store=store)
    await consumer.start()

    await pump(consumer, checkpoint=False)

    assert queue.api_calls["DeleteMessageBatch"] == 0
    assert queue.counts().in_flight == len(morning_stream)
    assert consumer.ledger.count(Phase.PROCESSED) == len(morning_stream)
    assert store.saves == 0
    assert set(sink.finding_ids) == morning_stream.finding_ids  # sent before any checkpoint

    assert await consumer.checkpoint()
    await consumer.wait_for_deletes()

    assert store.saves == 1
    assert queue.counts() == QueueCounts(0, 0)
    assert len(consumer.ledger) == 0
    assert len(sink.finding_ids) == len(set(sink.finding_ids))
    assert consumer.metrics.value("detector_events_processed_total") == len(morning_stream)
    assert consumer.metrics.value("detector_messages_processed_total") == len(morning_stream)
    # one DeleteMessageBatch per 10 messages, one ReceiveMessage per 10 (plus the empty one)
    assert queue.api_calls["DeleteMessageBatch"] == -(-len(morning_stream) // 10)
    assert queue.api_calls["ReceiveMessage"] == -(-len(morning_stream) // 10) + 1


async def test_findings_are_sent_then_state_saved_then_messages_deleted(
    pipeline: Pipeline, morning_stream: Stream, clock: ManualClock
) -> None:
    journal = Journal()
    queue = JournalingQueue(InMemoryQueue(clock=clock), journal)
    await send_bodies(queue.inner, morning_stream.bodies)
    consumer = make_consumer(
        pipeline, queue, clock, sinks=[JournalingSink(journal)], store=JournalingStore(journal)
    )
    await consumer.start()

    await pump(consumer)

    calls = journal.calls
    assert "send" in calls
    first_delete = calls.index("delete")
    assert calls.index("save") < first_delete
    assert max(i for i, c in enumerate(calls) if c == "send") < calls.index("save")


async def test_a_failing_state_store_leaves_every_message_undeleted(
    pipeline: Pipeline, morning_stream: Stream, clock: ManualClock
) -> None:
    journal = Journal()
    queue = InMemoryQueue(clock=clock)
    bodies = morning_stream.bodies[:300]
    await send_bodies(queue, bodies)
    store = JournalingStore(journal, fail=True)
    consumer = make_consumer(pipeline, queue, clock, store=store)
    await consumer.start()

    await pump(consumer)

    assert journal.calls == ["save-failed"]
    assert queue.api_calls["DeleteMessageBatch"] == 0
    assert queue.counts().in_flight == len(bodies)
    assert consumer.ledger.count(Phase.PROCESSED) == len(bodies)
    assert consumer.metrics.value("detector_checkpoint_failures_total") == 1
    assert not consumer.checkpoint_is_due()  # backing off

    store.fail = False
    clock.advance(30)
    assert consumer.checkpoint_is_due()
    assert await consumer.checkpoint()
    await consumer.wait_for_deletes()
    assert queue.counts() == QueueCounts(0, 0)


async def test_poison_is_counted_logged_never_deleted_and_reaches_the_dead_letter_queue(
    pipeline: Pipeline, morning_stream: Stream, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    good = morning_stream.bodies[:50]
    record = orjson.loads(good[0])["detail"]
    bad_time = orjson.dumps(
        {
            "detail-type": "AWS API Call via CloudTrail",
            "detail": record | {"eventTime": "yesterday", "eventID": "bad-time"},
        }
    )
    poison = {
        "malformed": b"{not json",
        "not an envelope": orjson.dumps(
            {"detail-type": "EC2 Instance State-change Notification", "detail": {}}
        ),
        "truncated": good[1][: len(good[1]) // 2],
        "oversized": orjson.dumps(
            {"detail-type": "AWS API Call via CloudTrail", "pad": "x" * 5000}
        ),
        "failing record": bad_time,
    }
    dlq = InMemoryQueue(name="dlq", clock=clock)
    queue = InMemoryQueue(clock=clock, dead_letter_queue=dlq, max_receive_count=3)
    await send_bodies(queue, [*good, *poison.values()])
    consumer = make_consumer(
        pipeline, queue, clock, max_receive_count=3, poison_retry_seconds=5, max_body_bytes=4096
    )
    await consumer.start()

    with caplog.at_level(logging.WARNING, logger="detector.service"):
        for _ in range(4):
            await pump(consumer)
            clock.advance(6)  # the poison becomes visible again after poison_retry_seconds
        await pump(consumer)

    assert queue.counts() == QueueCounts(0, 0)
    assert dlq.counts().visible == len(poison)
    dead = await dlq.receive(10, wait_seconds=0)
    assert sorted(m.body for m in dead) == sorted(poison.values())
    metrics = consumer.metrics
    assert metrics.value("detector_messages_failed_total") == 3 * len(poison)
    assert metrics.value("detector_messages_dlq_bound_total") == len(poison)
    assert metrics.value("detector_events_processed_total") == len(good)
    logged = [r for r in caplog.records if r.getMessage().startswith("poison message")]
    assert {r.detector_fields["message_id"] for r in logged} == {m.message_id for m in dead}  # type: ignore[attr-defined]
    reasons = " ".join(str(r.detector_fields["reasons"]) for r in logged)  # type: ignore[attr-defined]
    for fragment in ("not valid JSON", "not a CloudTrail event", "exceeds 4096", "eventTime"):
        assert fragment in reasons


async def test_a_step_that_raises_is_a_bug_counted_apart_and_its_batch_is_handed_back(
    pipeline: Pipeline, morning_stream: Stream, clock: ManualClock
) -> None:
    bodies = morning_stream.bodies[:64]

    class Broken(Pipeline):
        def step(self, state: PipelineState, events, now):  # type: ignore[no-untyped-def, override]
            raise RuntimeError("a bug in the feature step (test)")

    queue = InMemoryQueue(clock=clock)
    await send_bodies(queue, bodies)
    consumer = make_consumer(Broken(pipeline.artifact), queue, clock, poison_retry_seconds=30)
    await consumer.start()

    await pump(consumer, limit=7)

    metrics = consumer.metrics
    assert metrics.value("detector_step_failures_total") == 1
    assert metrics.value("detector_messages_failed_total") == 0  # not bad input
    assert metrics.value("detector_messages_processed_total") == 0  # nothing deleted
    assert queue.counts() == QueueCounts(0, len(bodies))  # undeleted, visible again later
    clock.advance(30)
    assert queue.counts() == QueueCounts(len(bodies), 0)


async def test_a_detection_that_raises_fails_alone_and_nothing_goes_to_the_dlq(
    pipeline: Pipeline, attack_morning: list[dict[str, Any]], clock: ManualClock
) -> None:
    """The production path (decode and step in a worker thread): one detection raises on an
    event; the other detections and the model still run on that batch, and everything they
    report is what a healthy pipeline reports. (This short stream from a cold start gives the
    model no finding since its learning period and peer groups: it scores the windows, and the
    live threshold gauge shows it did.)"""
    healthy = pipeline.detections
    config = dataclasses.replace(pipeline.config, learning=LearningConfig(enabled=False))
    morning_stream = stream_of(
        attack_morning, Pipeline(pipeline.artifact, config=config), "morning"
    )

    def boom(events: pl.LazyFrame, *_: object) -> pl.LazyFrame:
        def fail(name: str) -> str:
            raise RuntimeError(f"a bug that {name} triggers (test)")

        return events.with_columns(evidence=pl.col("event_name").map_elements(fail, pl.String))

    broken = dataclasses.replace(healthy[0], id="broken_rule", selects=pl.lit(True), matches=boom)
    with_bug = Pipeline(pipeline.artifact, detections=[broken, *healthy], config=config)
    queue = InMemoryQueue(clock=clock)
    await send_bodies(queue, morning_stream.bodies)
    sink = MemoryFindingSink()
    consumer = make_consumer(with_bug, queue, clock, sinks=[sink], batch_size=2000)
    await consumer.start()

    await pump(consumer)

    assert set(sink.finding_ids) == morning_stream.finding_ids  # detections and model alike
    kinds = {f["kind"] for f in finding_bodies(sink)}
    assert kinds & {d.id for d in healthy}
    metrics = consumer.metrics
    assert metrics.value("detector_model_threshold") > 0  # windows closed and were scored
    assert metrics.value("detector_detection_errors_total", {"detection": "broken_rule"}) == 1
    assert metrics.value("detector_messages_failed_total") == 0
    assert metrics.value("detector_step_failures_total") == 0
    assert queue.counts() == QueueCounts(0, 0)  # every message deleted, none left for the DLQ


async def test_findings_that_cannot_be_delivered_put_the_batch_back_unchanged(
    pipeline: Pipeline, morning_stream: Stream, clock: ManualClock
) -> None:
    journal = Journal()
    sink = JournalingSink(journal, fail=2)
    queue = InMemoryQueue(clock=clock)
    await send_bodies(queue, morning_stream.bodies)
    consumer = make_consumer(
        pipeline, queue, clock, sinks=[sink], batch_size=2000, max_held_messages=2000
    )
    await consumer.start()
    before = consumer.state

    await consumer.receive_once()
    while await consumer.receive_once():
        pass
    assert await consumer.process_due(force=True) == len(morning_stream)
    assert consumer.state is before  # the step was discarded
    assert consumer.ledger.count(Phase.BUFFERED) == len(morning_stream)
    assert await consumer.process_due() == 0  # backing off
    clock.advance(2.1)  # past the backoff (0.5 s) and the batch's age limit (2 s)
    assert await consumer.process_due() == len(morning_stream)  # fails again
    assert await consumer.process_due() == 0  # backing off 1 s
    clock.advance(1.1)
    await pump(consumer)

    assert journal.calls == ["send-failed", "send-failed", "send"]
    assert set(sink.inner.finding_ids) == morning_stream.finding_ids
    assert queue.counts() == QueueCounts(0, 0)
    assert consumer.metrics.value("detector_findings_send_failures_total") == 2


async def test_duplicate_deliveries_give_one_finding_each(
    pipeline: Pipeline, morning_stream: Stream, clock: ManualClock
) -> None:
    queue = InMemoryQueue(clock=clock)
    await send_bodies(queue, morning_stream.bodies)
    await send_bodies(queue, morning_stream.bodies[::3])  # SQS delivers some twice
    sink = MemoryFindingSink()
    consumer = make_consumer(pipeline, queue, clock, sinks=[sink])
    await consumer.start()

    await pump(consumer)

    assert sorted(sink.finding_ids) == sorted(morning_stream.finding_ids)
    # Each second copy is dropped: as a duplicate, or as too late once the watermark passed it.
    metrics = consumer.metrics
    dropped = metrics.value("detector_events_duplicate_total") + metrics.value(
        "detector_events_late_total"
    )
    assert dropped == len(morning_stream.bodies[::3])
    assert queue.counts() == QueueCounts(0, 0)


async def test_a_restart_after_a_crash_reprocesses_what_was_not_checkpointed_exactly_once(
    pipeline: Pipeline, morning_stream: Stream, clock: ManualClock
) -> None:
    """Crash after the findings of the second half were sent but before its checkpoint: the
    second half comes back, and a FIFO findings queue drops the re-sent findings."""
    half = len(morning_stream) // 2
    queue = InMemoryQueue(clock=clock, visibility_timeout=60)
    findings_queue = InMemoryQueue(name="findings.fifo", fifo=True, clock=clock)
    store = InMemoryStateStore()
    await send_bodies(queue, morning_stream.bodies[:half])
    first = make_consumer(
        pipeline, queue, clock, sinks=[SqsFindingSink(findings_queue)], store=store
    )
    await first.start()
    await pump(first)  # first half: checkpointed and deleted
    await send_bodies(queue, morning_stream.bodies[half:])
    await pump(first, checkpoint=False)  # second half: processed, findings sent, then kill -9
    assert queue.counts().in_flight == len(morning_stream) - half

    clock.advance(61)  # the dead consumer's messages become visible again
    second = make_consumer(
        pipeline, queue, clock, sinks=[SqsFindingSink(findings_queue)], store=store
    )
    await second.start()
    await pump(second)

    assert queue.counts() == QueueCounts(0, 0)
    received = []
    while batch := await findings_queue.receive(10, wait_seconds=0):
        received.extend(batch)
        await findings_queue.delete(batch)
    ids = [orjson.loads(m.body)["finding_id"] for m in received]
    assert sorted(ids) == sorted(morning_stream.finding_ids)


async def test_a_restart_resumes_from_the_checkpoint_without_a_burst_of_findings(
    pipeline: Pipeline, morning_stream: Stream, clock: ManualClock
) -> None:
    half = len(morning_stream) // 2
    queue = InMemoryQueue(clock=clock)
    store = InMemoryStateStore()
    sink = MemoryFindingSink()
    await send_bodies(queue, morning_stream.bodies[:half])
    first = make_consumer(pipeline, queue, clock, sinks=[sink], store=store)
    await first.start()
    await pump(first)
    report = await first.drain()
    assert report.clean

    await send_bodies(queue, morning_stream.bodies[half:])
    later = MemoryFindingSink()
    second = make_consumer(pipeline, queue, clock, sinks=[later], store=store)
    await second.start()
    await pump(second)

    # The same findings as one uninterrupted run: none repeated, none new, none missing.
    assert sorted(sink.finding_ids + later.finding_ids) == sorted(morning_stream.finding_ids)


async def test_heartbeats_keep_messages_held_past_their_visibility_timeout(
    pipeline: Pipeline, morning_stream: Stream, clock: ManualClock
) -> None:
    queue = InMemoryQueue(clock=clock)
    bodies = morning_stream.bodies[:40]
    await send_bodies(queue, bodies)
    consumer = make_consumer(pipeline, queue, clock, visibility_timeout=30, checkpoint_seconds=1000)
    await consumer.start()
    await pump(consumer, checkpoint=False)

    assert await consumer.heartbeat() == 0  # 30 s left: more than the 10 s margin
    clock.advance(21)
    assert await consumer.heartbeat() == len(bodies)
    assert queue.api_calls["ChangeMessageVisibilityBatch"] == 4
    clock.advance(21)  # 42 s after the receive: without the heartbeat they would be back
    assert await queue.receive(10, wait_seconds=0) == []
    assert consumer.metrics.value("detector_visibility_extended_total") == len(bodies)

    await consumer.checkpoint()
    await consumer.wait_for_deletes()
    assert queue.counts() == QueueCounts(0, 0)


async def test_a_receipt_that_cannot_be_extended_any_more_is_let_go(
    pipeline: Pipeline, morning_stream: Stream, clock: ManualClock
) -> None:
    journal = Journal()
    queue = JournalingQueue(InMemoryQueue(clock=clock), journal)
    await send_bodies(queue.inner, morning_stream.bodies[:20])
    consumer = make_consumer(pipeline, queue, clock, visibility_timeout=30)
    await consumer.start()
    await consumer.receive_once()
    lost = consumer.ledger.entries()[0].message.message_id
    queue.refuse_visibility.add(lost)

    clock.advance(25)
    assert await consumer.heartbeat() == 9
    assert consumer.metrics.value("detector_visibility_lost_total") == 1
    assert lost not in {e.message.message_id for e in consumer.ledger.entries()}


async def test_backpressure_stops_receiving_while_too_much_is_held(
    pipeline: Pipeline, morning_stream: Stream, clock: ManualClock
) -> None:
    queue = InMemoryQueue(clock=clock)
    await send_bodies(queue, morning_stream.bodies[:300])
    store = JournalingStore(Journal(), fail=True)
    consumer = make_consumer(
        pipeline,
        queue,
        clock,
        store=store,
        batch_size=50,
        max_held_messages=100,
        max_batch_size=50,
    )
    await consumer.start()

    # Scoring behind: one full batch buffered is the limit.
    while await consumer.receive_once():
        pass
    assert consumer.ledger.count(Phase.BUFFERED) == 50
    calls = queue.api_calls["ReceiveMessage"]
    assert await consumer.receive_once() == 0
    assert queue.api_calls["ReceiveMessage"] == calls  # not even asked
    assert consumer.metrics.value("detector_receive_paused") == 1

    # Too much held: processed but not checkpointed (the store fails).
    for _ in range(10):
        await consumer.process_due(force=True)
        await consumer.checkpoint()
        await consumer.receive_once()
    assert len(consumer.ledger) == 100
    assert consumer.ledger.count(Phase.PROCESSED) == 100
    assert not consumer.may_receive()
    assert consumer.metrics.value("detector_messages_in_flight") == 100

    store.fail = False
    await consumer.checkpoint()
    await consumer.wait_for_deletes()
    assert consumer.may_receive()
    assert consumer.metrics.value("detector_receive_paused") == 0
    assert consumer.metrics.value("detector_messages_in_flight") == len(consumer.ledger) == 0


async def test_drain_processes_what_is_buffered_checkpoints_and_deletes(
    pipeline: Pipeline, morning_stream: Stream, clock: ManualClock
) -> None:
    queue = InMemoryQueue(clock=clock)
    await send_bodies(queue, morning_stream.bodies[:120])
    store = InMemoryStateStore()
    consumer = make_consumer(pipeline, queue, clock, store=store)
    await consumer.start()
    for _ in range(12):
        await consumer.receive_once()
    assert consumer.ledger.count(Phase.BUFFERED) == 120

    report = await consumer.drain(grace_seconds=10)

    assert report.clean
    assert report.released == 0
    assert store.saves == 1
    assert queue.counts() == QueueCounts(0, 0)


async def test_drain_releases_what_it_cannot_finish(
    pipeline: Pipeline, morning_stream: Stream, clock: ManualClock
) -> None:
    """No time left in the grace period: the buffered batch is released (visible at once);
    the batch already processed is checkpointed and deleted."""
    queue = InMemoryQueue(clock=clock)
    await send_bodies(queue, morning_stream.bodies[:100])
    consumer = make_consumer(pipeline, queue, clock, batch_size=50, max_held_messages=100)
    await consumer.start()
    for _ in range(5):
        await consumer.receive_once()
    await consumer.process_due(force=True)
    for _ in range(5):
        await consumer.receive_once()

    report = await consumer.drain(grace_seconds=0)

    assert report.checkpointed
    assert report.released == 50
    assert queue.counts() == QueueCounts(50, 0)
    assert consumer.metrics.value("detector_messages_released_total") == 50


async def test_drain_after_a_failed_checkpoint_releases_the_processed_messages(
    pipeline: Pipeline, morning_stream: Stream, clock: ManualClock
) -> None:
    queue = InMemoryQueue(clock=clock)
    await send_bodies(queue, morning_stream.bodies[:60])
    consumer = make_consumer(pipeline, queue, clock, store=JournalingStore(Journal(), fail=True))
    await consumer.start()
    await pump(consumer, checkpoint=False)

    report = await consumer.drain(grace_seconds=10)

    assert not report.checkpointed
    assert not report.clean
    assert report.released == 60
    assert queue.counts() == QueueCounts(60, 0)


async def test_a_consumer_whose_state_another_committed_stops_and_deletes_nothing(
    pipeline: Pipeline, morning_stream: Stream, clock: ManualClock, tmp_path: Path
) -> None:
    """An old pod still running beside its replacement, both on one state: the first to
    checkpoint owns the state; the other stops, deletes nothing and hands its messages back."""
    bodies = morning_stream.bodies[:60]
    new_queue, old_queue = InMemoryQueue(clock=clock), InMemoryQueue(clock=clock)
    await send_bodies(new_queue, bodies[:30])
    await send_bodies(old_queue, bodies[30:])
    new_pod = make_consumer(pipeline, new_queue, clock, store=LocalStateStore(tmp_path))
    old_pod = make_consumer(pipeline, old_queue, clock, store=LocalStateStore(tmp_path))
    await new_pod.start()
    await old_pod.start()

    await pump(new_pod)
    await pump(old_pod)

    assert new_queue.counts() == QueueCounts(0, 0)
    assert old_queue.api_calls["DeleteMessageBatch"] == 0
    assert old_pod.stopping
    assert old_pod.fatal is not None
    assert "StateConflictError" in old_pod.fatal
    report = await old_pod.drain(grace_seconds=10)
    assert not report.clean
    assert report.released == 30
    assert old_queue.counts() == QueueCounts(30, 0)
    assert old_queue.api_calls["DeleteMessageBatch"] == 0
    assert old_pod.metrics.value("detector_checkpoint_failures_total") == 1


async def test_messages_a_long_poll_returns_after_stop_are_released(
    pipeline: Pipeline, morning_stream: Stream
) -> None:
    queue = InMemoryQueue()  # real time: the long poll waits in event-loop time
    consumer = Consumer(
        pipeline,
        queue,
        [MemoryFindingSink()],
        InMemoryStateStore(),
        ConsumerConfig(receivers=2, wait_seconds=1, batch_size=10, max_held_messages=100),
    )
    run = asyncio.create_task(consumer.run(grace_seconds=5))
    while queue.api_calls["ReceiveMessage"] < 2:  # until both receivers are in their long poll
        await asyncio.sleep(0)
    consumer.stop()
    await send_bodies(queue, morning_stream.bodies[:5])
    report = await asyncio.wait_for(run, 5)

    assert report.clean
    assert consumer.metrics.value("detector_messages_received_total") == 5
    assert consumer.metrics.value("detector_messages_released_total") == 5
    assert queue.counts() == QueueCounts(5, 0)


async def test_run_consumes_everything_with_concurrent_receivers_and_stops_cleanly(
    pipeline: Pipeline, morning_stream: Stream
) -> None:
    emptied = asyncio.Event()

    class Watched(InMemoryQueue):
        async def delete(self, messages: Sequence[QueueMessage]) -> BatchOutcome:
            outcome = await super().delete(messages)
            if self.counts() == QueueCounts(0, 0):
                emptied.set()
            return outcome

    queue = Watched(visibility_timeout=30)
    await send_bodies(queue, morning_stream.bodies)
    sink = MemoryFindingSink()
    store = InMemoryStateStore()
    consumer = Consumer(
        pipeline,
        queue,
        [sink],
        store,
        ConsumerConfig(
            receivers=4,
            wait_seconds=1,
            batch_size=250,
            batch_seconds=0.2,
            min_checkpoint_seconds=0.1,
        ),
    )
    run = asyncio.create_task(consumer.run(grace_seconds=10))
    await asyncio.wait_for(emptied.wait(), 60)
    consumer.stop()
    report = await asyncio.wait_for(run, 10)

    assert report.clean
    assert queue.counts() == QueueCounts(0, 0)
    assert sorted(sink.finding_ids) == sorted(morning_stream.finding_ids)
    assert store.saves >= 1


async def test_a_queue_that_keeps_refusing_receives_stops_the_consumer(
    pipeline: Pipeline,
) -> None:
    class Gone(InMemoryQueue):
        async def receive(self, *args: object, **kwargs: object) -> list[QueueMessage]:
            raise QueueError("SQS queue https://example/q does not exist (test)")

    queue = Gone()
    consumer = Consumer(
        pipeline,
        queue,
        [MemoryFindingSink()],
        InMemoryStateStore(),
        ConsumerConfig(receivers=1),
        backoff=lambda failures: 0.01,
    )
    report = await asyncio.wait_for(consumer.run(grace_seconds=2), 30)

    assert report.fatal is not None
    assert "does not exist" in report.fatal
    assert not report.clean


async def test_a_fifo_queue_is_consumed_in_group_order_despite_deferred_deletes(
    pipeline: Pipeline, morning_stream: Stream, clock: ManualClock
) -> None:
    """A FIFO group delivers nothing more while a message of it is in flight, so with deletes
    deferred to the checkpoint, an idle-looking queue triggers the checkpoint."""
    queue = InMemoryQueue(name="events.fifo", fifo=True, clock=clock)
    bodies = morning_stream.bodies[:200]
    for group in range(4):
        await send_bodies(queue, bodies[group::4], group=f"account-{group}")
    sink = MemoryFindingSink()
    consumer = make_consumer(pipeline, queue, clock, sinks=[sink], min_checkpoint_seconds=1)
    await consumer.start()

    order: list[bytes] = []
    for _ in range(100):
        got = await consumer.receive_once()
        order.extend(e.message.body for e in consumer.ledger.entries(Phase.BUFFERED)[-got:] if got)
        await consumer.process_due(force=True)
        if not got:
            clock.advance(1)
            if consumer.checkpoint_is_due():
                await consumer.checkpoint()
                await consumer.wait_for_deletes()
        if queue.counts() == QueueCounts(0, 0):
            break

    assert queue.counts() == QueueCounts(0, 0)
    assert consumer.metrics.value("detector_events_processed_total") == len(bodies)
    for group in range(4):
        mine = [b for b in order if b in set(bodies[group::4])]
        assert mine == bodies[group::4]
