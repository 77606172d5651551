"""The service runtime in-process against a real moto server: EventBridge -> SQS -> service ->
findings queue and file, poison to the dead-letter queue, FIFO queues, start-up errors."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.errors import ConfigError, ModelError
from detector.findings import finding_from_json
from detector.service import ServiceMetrics, ServiceRuntime, ServiceSettings
from tests.integration.moto_support import REGION, MotoServer, SqsAdmin, aws_client
from tests.service.conftest import Stream
from tests.service.moto_helpers import (
    feed,
    put_cloudtrail_events,
    read_out,
    route_cloudtrail_to,
    split,
    wait_until,
)


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime reads credentials the standard way (botocore's default chain)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS"):
        monkeypatch.delenv(name, raising=False)


def settings_for(
    endpoint: str, queue_url: str, tmp_path: Path, model: Path, **overrides: Any
) -> ServiceSettings:
    values: dict[str, Any] = {
        "queue_url": queue_url,
        "findings_file": tmp_path / "findings.jsonl",
        "model_dir": model,
        "state_dir": tmp_path / "state",
        "metrics_host": "127.0.0.1",
        "metrics_port": 0,
        "wait_seconds": 1,
        "batch_seconds": 0.2,
        "checkpoint_seconds": 1.0,
        "grace_seconds": 10.0,
        "poison_retry_seconds": 0,
        "region": REGION,
        "endpoint_url": endpoint,
    }
    return ServiceSettings(**(values | overrides))


@dataclass
class Run:
    runtime: ServiceRuntime
    exit_code: int | None = None

    @property
    def metrics(self) -> ServiceMetrics:
        return self.runtime.metrics


@asynccontextmanager
async def running(settings: ServiceSettings) -> AsyncIterator[Run]:
    """The service started (consuming), then stopped as by SIGTERM on the way out."""
    run = Run(ServiceRuntime(settings))
    task = asyncio.create_task(run.runtime.run())
    consuming = asyncio.create_task(run.runtime.consuming.wait())
    await asyncio.wait({task, consuming}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        consuming.cancel()
        task.result()  # raises the start-up error
        raise AssertionError("the service stopped during start-up")
    assert consuming.done(), "the service did not start within 30 s"
    try:
        yield run
    finally:
        run.runtime.stop()
        run.exit_code = await asyncio.wait_for(task, 30)


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def ids_in_jsonl(path: Path) -> list[str]:
    return [orjson.loads(line)["finding_id"] for line in path.read_bytes().splitlines()]


async def test_eventbridge_to_sqs_to_the_service_to_the_findings_queue_and_file(
    sqs_admin: SqsAdmin,
    short_stream: Stream,
    attack_morning: list[dict[str, Any]],
    trained_model_dir: Path,
    tmp_path: Path,
) -> None:
    records = [r for r in attack_morning if r["eventID"] in set(short_stream.event_ids)]
    input_url = await sqs_admin.create_queue("detector-input", visibility_timeout=5)
    findings_url = await sqs_admin.create_queue("detector-findings")
    settings = settings_for(
        sqs_admin.endpoint_url,
        input_url,
        tmp_path,
        trained_model_dir,
        findings_queue_url=findings_url,
    )
    async with aws_client("events", sqs_admin.endpoint_url) as events:
        await route_cloudtrail_to(events, sqs_admin, input_url)
        async with running(settings) as run:
            assert run.runtime.ops is not None
            port = run.runtime.ops.port
            status, text = await asyncio.to_thread(get, port, "/readyz")
            assert (status, text) == (200, "ready\n")
            assert (await asyncio.to_thread(get, port, "/healthz"))[0] == 200

            await put_cloudtrail_events(events, records)

            async def all_processed() -> bool:
                return run.metrics.value("detector_messages_processed_total") >= len(records)

            await wait_until(all_processed, 30, "every event processed and deleted")
            status, metrics = await asyncio.to_thread(get, port, "/metrics")
            assert status == 200

    assert run.exit_code == 0
    assert f"detector_messages_received_total {len(records)}.0" in metrics
    assert f"detector_events_processed_total {len(records)}.0" in metrics
    assert "detector_findings_total{severity=" in metrics
    assert "detector_queue_lag_seconds_count" in metrics
    assert await sqs_admin.depth(input_url) == (0, 0)
    bodies = await read_out(sqs_admin, findings_url)
    findings = [finding_from_json(body) for body in bodies]  # one finding record per message
    assert sorted(f.finding_id for f in findings) == sorted(short_stream.finding_ids)
    assert sorted(ids_in_jsonl(tmp_path / "findings.jsonl")) == sorted(short_stream.finding_ids)


async def test_poison_reaches_the_dead_letter_queue_and_nothing_else_is_lost(
    sqs_admin: SqsAdmin, tamper_stream: Stream, trained_model_dir: Path, tmp_path: Path
) -> None:
    """Poison, and some messages delivered twice; the findings queue is FIFO."""
    dlq_url = await sqs_admin.create_queue("detector-input-dlq")
    input_url = await sqs_admin.create_queue(
        "detector-input", visibility_timeout=5, dead_letter_queue_url=dlq_url, max_receive_count=2
    )
    findings_url = await sqs_admin.create_queue("detector-findings", fifo=True)
    poison = [
        b"{this is not json",
        orjson.dumps({"detail-type": "EC2 Instance State-change Notification", "detail": {}}),
        tamper_stream.bodies[0][:100],  # truncated
        orjson.dumps({"detail-type": "AWS API Call via CloudTrail", "detail": {"eventID": "x"}}),
    ]
    first_slice, second_slice = split(tamper_stream)
    first = list(first_slice)
    for i, bad in enumerate(poison):
        first.insert(len(first) * (i + 1) // (len(poison) + 1), bad)
    second = second_slice + tamper_stream.bodies[::7]  # duplicate deliveries
    bodies = first + second
    settings = settings_for(
        sqs_admin.endpoint_url,
        input_url,
        tmp_path,
        trained_model_dir,
        findings_queue_url=findings_url,
    )
    async with running(settings) as run:
        await feed(sqs_admin, input_url, first)

        async def first_slice_done() -> bool:
            done = run.metrics.value("detector_messages_processed_total")
            return done >= len(first_slice)

        await wait_until(first_slice_done, 40, "the first slice processed and deleted")
        await feed(sqs_admin, input_url, second)

        async def settled() -> bool:
            dead = await sqs_admin.depth(dlq_url)
            return dead[0] == len(poison) and await sqs_admin.depth(input_url) == (0, 0)

        await wait_until(settled, 40, "the poison in the DLQ and the input queue empty")

    assert run.exit_code == 0
    metrics = run.metrics
    # Each poison message was received twice, then moved by the redrive policy; moto (like
    # SQS after a lost response) sometimes counts a receive whose answer never arrived.
    assert len(poison) <= metrics.value("detector_messages_failed_total") <= 2 * len(poison)
    assert 1 <= metrics.value("detector_messages_dlq_bound_total") <= len(poison)
    assert metrics.value("detector_messages_processed_total") >= len(bodies) - len(poison)
    assert sorted(await read_out(sqs_admin, dlq_url)) == sorted(b.decode() for b in poison)
    ids = [orjson.loads(body)["finding_id"] for body in await read_out(sqs_admin, findings_url)]
    assert sorted(ids) == sorted(tamper_stream.finding_ids)
    assert sorted(ids_in_jsonl(tmp_path / "findings.jsonl")) == sorted(tamper_stream.finding_ids)


async def test_a_fifo_input_queue_is_consumed_completely(
    sqs_admin: SqsAdmin, short_stream: Stream, trained_model_dir: Path, tmp_path: Path
) -> None:
    input_url = await sqs_admin.create_queue(
        "detector-input", fifo=True, content_based_deduplication=True, visibility_timeout=5
    )
    settings = settings_for(sqs_admin.endpoint_url, input_url, tmp_path, trained_model_dir)
    async with running(settings) as run:
        for start in range(0, len(short_stream), 10):
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": body.decode(),
                    "MessageGroupId": f"g{(start + i) % 3}",
                }
                for i, body in enumerate(short_stream.bodies[start : start + 10])
            ]
            await sqs_admin.client.send_message_batch(QueueUrl=input_url, Entries=entries)

        async def drained() -> bool:
            return await sqs_admin.depth(input_url) == (0, 0)

        await wait_until(drained, 30, "the FIFO queue drained")

    assert run.exit_code == 0
    assert run.metrics.value("detector_events_processed_total") == len(short_stream)
    assert sorted(ids_in_jsonl(tmp_path / "findings.jsonl")) == sorted(short_stream.finding_ids)


async def test_a_missing_queue_is_a_start_up_error_naming_it(
    sqs_admin: SqsAdmin, trained_model_dir: Path, tmp_path: Path
) -> None:
    missing = f"{sqs_admin.endpoint_url}/123456789012/no-such-queue"
    with pytest.raises(ConfigError, match=r"no-such-queue.*does not exist"):
        await ServiceRuntime(
            settings_for(sqs_admin.endpoint_url, missing, tmp_path, trained_model_dir)
        ).run()


async def test_refused_credentials_are_a_start_up_error(
    sqs_admin: SqsAdmin, moto_enforcing_auth: MotoServer, trained_model_dir: Path, tmp_path: Path
) -> None:
    url = f"{sqs_admin.endpoint_url}/123456789012/detector-input"
    with pytest.raises(ConfigError, match="credentials were refused"):
        await ServiceRuntime(
            settings_for(sqs_admin.endpoint_url, url, tmp_path, trained_model_dir)
        ).run()


async def test_an_unloadable_model_is_a_start_up_error_naming_the_folder(
    sqs_admin: SqsAdmin, trained_model_dir: Path, tmp_path: Path
) -> None:
    url = await sqs_admin.create_queue("detector-input")
    parent = trained_model_dir.parent
    with pytest.raises(ModelError, match=f"cannot load the model {parent}.*did you mean"):
        await ServiceRuntime(settings_for(sqs_admin.endpoint_url, url, tmp_path, parent)).run()
