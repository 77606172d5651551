"""``detector run --source kinesis://STREAM`` as a real process against a moto server: killed
with SIGKILL mid-stream and restarted, it resumes at the shard positions saved with its state
and finds exactly what one pipeline fed every event finds; nothing is lost."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import orjson

from tests.integration.moto_support import SqsAdmin
from tests.service.conftest import Stream
from tests.service.kinesis_helpers import (
    create_stream,
    route_all,
    saved_positions,
    shard_ends,
    shard_events,
)
from tests.service.moto_helpers import feed, split, wait_until
from tests.service.test_kinesis_moto import input_queue
from tests.service.test_service_process import (
    REPO,
    ServiceProcess,
    finding_ids,
    processes,
    service_env,
)

__all__ = ["processes"]


async def test_kill_9_of_a_kinesis_consumer_then_restart_from_its_snapshot_loses_nothing(
    sqs_admin: SqsAdmin,
    tamper_stream: Stream,
    trained_model_dir: Path,
    tmp_path: Path,
    processes: list[ServiceProcess],
) -> None:
    url = await input_queue(sqs_admin)
    await create_stream(sqs_admin.endpoint_url, "events")
    slices = split(tamper_stream)
    state_dir = tmp_path / "state"
    env = service_env(
        sqs_admin.endpoint_url,
        source="kinesis://events",
        consumer_ordinal="0",
        consumer_count="1",
        findings_file=str(tmp_path / "findings.jsonl"),
        model=str(trained_model_dir),
        state_dir=str(state_dir),
        checkpoint_seconds="1",
        batch_size="10",
        max_batch_size="10",
    )

    first = ServiceProcess(env, tmp_path / "first.log")
    processes.append(first)
    await first.consuming()
    routing = asyncio.create_task(route_all(sqs_admin, url, "events", slices))

    async def busy() -> bool:
        return (
            await first.metric("detector_checkpoints_total") >= 1
            and await first.metric("detector_events_processed_total") >= len(slices[0]) // 2
        )

    await wait_until(busy, 60, "a checkpoint and half of the first slice processed")
    first.kill()  # while the router still routes
    assert await first.exit_code(timeout=5) == -signal.SIGKILL
    assert await routing >= len(tamper_stream)  # a message SQS delivered twice is put twice
    ends = await shard_ends(sqs_admin.endpoint_url, "events")
    at_kill = await asyncio.to_thread(saved_positions, state_dir)
    assert at_kill  # it had checkpointed shard positions with its state
    assert at_kill != ends  # and had not reached the end of every shard

    second = ServiceProcess(env, tmp_path / "second.log")
    processes.append(second)
    await second.consuming()
    assert second.logged("state restored")

    async def caught_up() -> bool:
        return await asyncio.to_thread(saved_positions, state_dir) == ends

    await wait_until(caught_up, 60, "the state to reach the end of every shard")
    second.proc.send_signal(signal.SIGTERM)
    assert await second.exit_code(timeout=15) == 0
    # Findings sent after the last checkpoint were sent again, with the same ids.
    assert set(finding_ids(tmp_path / "findings.jsonl")) == tamper_stream.finding_ids


async def test_detector_route_as_a_process_routes_the_queue_and_drains_on_sigterm(
    sqs_admin: SqsAdmin, short_stream: Stream, tmp_path: Path
) -> None:
    url = await input_queue(sqs_admin)
    await create_stream(sqs_admin.endpoint_url, "events")
    env = service_env(sqs_admin.endpoint_url, queue_url=url, stream="events")
    log = tmp_path / "router.log"
    with log.open("ab") as err:
        router = subprocess.Popen(
            [sys.executable, "-m", "detector.cli", "route"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    try:
        await feed(sqs_admin, url, short_stream.bodies)

        async def routed() -> bool:
            assert router.poll() is None, log.read_text()
            (stored,) = await shard_events(sqs_admin.endpoint_url, "events", 1)
            return await sqs_admin.depth(url) == (0, 0) and stored >= len(short_stream)

        await wait_until(routed, 60, "every message routed and deleted")
        router.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(router.wait, 15) == 0
    finally:
        if router.poll() is None:
            router.kill()
            router.wait()
    drained = [orjson.loads(line) for line in log.read_bytes().splitlines() if line]
    counts = [line["fields"] for line in drained if line["msg"] == "router drained"]
    assert counts
    assert counts[-1]["poison"] == 0
    assert counts[-1]["deleted"] >= len(short_stream)
