"""Quiet hours and time to detect in the service: while the queue is idle the watermark follows
the wall clock (bounded), so windows close at night; /metrics exports the latency histogram."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.features import FeatureConfig
from detector.findings import Finding
from detector.ingest import InMemoryQueue, ManualClock
from detector.pipeline import Pipeline, PipelineConfig, PipelineState, StepReport
from detector.service import Consumer, ConsumerConfig, ServiceMetrics
from detector.service._policy import idle_watermark
from detector.sinks import MemoryFindingSink
from detector.state import InMemoryStateStore
from detector.suppression import FileRulesSource, Suppressor
from detector.timeliness import EarlyConfig
from tests.service.conftest import Stream
from tests.service.helpers import TEST_CONFIG, make_consumer, pump, send_bodies

LATENESS = timedelta(minutes=2)
T0 = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)


def _mark(
    now_minute: float, last_received_minute: float, *, watermark: float | None = None
) -> datetime | None:
    """The policy with windows open from 02:05 to 02:15 (their ends), 2 minutes of lateness,
    idle after 60 s; times in minutes after 02:00."""

    def at(minute: float) -> datetime:
        return T0 + timedelta(minutes=minute)

    return idle_watermark(
        now=at(now_minute),
        last_received=at(last_received_minute),
        watermark=None if watermark is None else at(watermark),
        open_windows=(at(5), at(15)),
        lateness=LATENESS,
        idle_seconds=60.0,
    )


def test_the_watermark_follows_the_wall_clock_only_while_idle_and_only_to_close_windows() -> None:
    """Timeline (minutes after 02:00; the last message came at 02:04)::

    02:04 received ─┬─ 02:04.5 not idle yet
                    ├─ 02:06   idle, but 02:06 - 2 min = 02:04 closes nothing (first end 02:05)
                    ├─ 02:08   idle: the watermark moves to 02:06, the 02:05 window closes
                    └─ 03:00   bounded by the last open window's end, 02:15
    """
    assert _mark(4.5, 4) is None
    assert _mark(6, 4) is None
    assert _mark(8, 4) == T0 + timedelta(minutes=6)
    assert _mark(60, 4) == T0 + timedelta(minutes=15)
    assert _mark(8, 4, watermark=6) is None  # never back, never in place
    assert _mark(8, 7.5) is None  # a message 30 s ago: not idle


def test_no_open_window_or_a_disabled_setting_never_moves_it() -> None:
    common: dict[str, Any] = {
        "now": T0 + timedelta(hours=3),
        "last_received": T0,
        "watermark": None,
        "lateness": LATENESS,
    }
    assert idle_watermark(**common, open_windows=None, idle_seconds=60.0) is None
    assert idle_watermark(**common, open_windows=(T0, T0), idle_seconds=0.0) is None


def _live(pipeline: Pipeline) -> Pipeline:
    artifact = pipeline.artifact
    return Pipeline(
        artifact,
        config=PipelineConfig(
            FeatureConfig(window=artifact.window, allowed_lateness=LATENESS), early=EarlyConfig()
        ),
    )


def _last_event_time(stream: Stream) -> datetime:
    times = [orjson.loads(body)["detail"]["eventTime"] for body in stream.bodies]
    return datetime.fromisoformat(max(times).replace("Z", "+00:00"))


async def test_windows_close_while_the_queue_is_idle(
    pipeline: Pipeline, short_stream: Stream
) -> None:
    live = _live(pipeline)
    clock = ManualClock(_last_event_time(short_stream) + timedelta(seconds=10))
    queue = InMemoryQueue(clock=clock)
    await send_bodies(queue, short_stream.bodies)
    consumer = make_consumer(live, queue, clock)
    await consumer.start()
    clock.advance(2)
    await pump(consumer)
    ends = live.open_window_ends(consumer.state)
    assert ends is not None, "the stream's last windows are still open"
    first_end, last_end = ends

    assert not await consumer.advance_if_idle()  # a message came a moment ago
    clock.advance(61)
    # Idle, but the wall clock minus the lateness has not reached the first open window's end.
    assert not await consumer.advance_if_idle()
    clock.advance((first_end + LATENESS - clock()).total_seconds() + 1)
    assert await consumer.advance_if_idle()

    watermark = consumer.state.features.watermark
    assert watermark is not None
    assert watermark >= first_end
    remaining = live.open_window_ends(consumer.state)
    assert remaining is None or remaining[0] > watermark
    assert consumer.metrics.value("detector_idle_watermark_advances_total") == 1
    assert not await consumer.advance_if_idle()  # nothing more to close until the clock moves
    if first_end == last_end:
        assert remaining is None


async def test_the_finding_latency_histogram_is_exported_per_family(
    pipeline: Pipeline, short_stream: Stream
) -> None:
    clock = ManualClock(_last_event_time(short_stream) + timedelta(seconds=10))
    queue = InMemoryQueue(clock=clock)
    await send_bodies(queue, short_stream.bodies)
    consumer = make_consumer(_live(pipeline), queue, clock)
    await consumer.start()
    clock.advance(3)  # the messages wait 3 s on the queue before they are received
    await pump(consumer)

    text = consumer.metrics.exposition().decode()
    assert "# TYPE detector_finding_latency_seconds histogram" in text
    count = consumer.metrics.value(
        "detector_finding_latency_seconds_count", {"family": "detection"}
    )
    assert count >= 1, "the stream stops CloudTrail logging: a detection reports it"
    assert consumer.metrics.value(
        "detector_finding_latency_seconds_sum", {"family": "detection"}
    ) == pytest.approx(3.0 * count)


class _IdleAdvanceReports(Pipeline):
    """The live pipeline whose idle advance also reports ``extra``: the consumer, not the
    pipeline, is under test (which findings of an idle advance reach the sinks)."""

    extra: tuple[Finding, ...] = ()

    def advance(
        self, state: PipelineState, watermark: datetime, now: datetime
    ) -> tuple[PipelineState, list[Finding], StepReport]:
        state, findings, report = super().advance(state, watermark, now)
        return state, [*findings, *self.extra], report


async def test_an_idle_advance_suppresses_its_findings_as_a_batch_does(
    pipeline: Pipeline, short_stream: Stream, tmp_path: Path
) -> None:
    live = _live(pipeline)
    idle = _IdleAdvanceReports(live.artifact, config=live.config)
    at = _last_event_time(short_stream)
    hidden = Finding(
        finding_id="hidden", kind="model_anomaly", title="t", severity=5.0,
        principal="quiet-role", principal_arn=None, principal_type="AssumedRole",
        account_id="111122223333", region="eu-west-1", window_start=at, window_end=at,
        first_seen=at, last_seen=at, created_at=at, score=1.0,
    )  # fmt: skip
    idle.extra = (hidden,)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - id: quiet-role\n    reason: test\n    owner: tests\n"
        "    match:\n      kinds: [model_anomaly]\n      principals: ['quiet-role']\n"
    )
    audit = MemoryFindingSink()
    suppressor = Suppressor(FileRulesSource(rules), audit)
    await suppressor.start()
    clock = ManualClock(at + timedelta(seconds=10))
    queue = InMemoryQueue(clock=clock)
    await send_bodies(queue, short_stream.bodies)
    sink = MemoryFindingSink()
    consumer = Consumer(
        idle,
        queue,
        [sink],
        InMemoryStateStore(),
        ConsumerConfig(**TEST_CONFIG),
        clock=clock,
        metrics=ServiceMetrics(),
        suppressor=suppressor,
    )
    await consumer.start()
    clock.advance(2)
    await pump(consumer)
    ends = live.open_window_ends(consumer.state)
    assert ends is not None, "the stream's last windows are still open"
    clock.advance((ends[0] + LATENESS - clock()).total_seconds() + 61)

    assert await consumer.advance_if_idle()
    assert "hidden" not in sink.finding_ids
    assert audit.finding_ids == ["hidden"]
    suppressed = consumer.metrics.value(
        "detector_findings_suppressed_total", {"rule": "quiet-role"}
    )
    assert suppressed == 1
