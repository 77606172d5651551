"""State in S3 (moto server): history replayed by ``detector replay --state-dir s3://...``
bootstraps a service pod that has nothing on its disk, and the service checkpoints there.

A pod rescheduled with an empty disk must carry on as if it had never stopped: the same
findings as one process that replayed the history and then consumed the stream, and none of
the "everything is new" of a cold start (measured on the profile-novelty features)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from detector.archive import LocalFolderSource
from detector.cli import main
from detector.events import records_to_events
from detector.features import update
from detector.ingest import InMemoryQueue, ManualClock
from detector.pipeline import Pipeline
from detector.replay import replay
from detector.service import ServiceRuntime
from detector.sinks import MemoryFindingSink
from detector.state import InMemoryStateStore, Snapshot, StateStore
from detector.synthetic import write_archive
from tests.integration.moto_support import REGION, TEST_CREDENTIALS
from tests.integration.state_support import BUCKET, S3State, s3_state
from tests.service.conftest import NOW, Stream
from tests.service.helpers import make_consumer, pump, send_bodies
from tests.service.moto_helpers import feed, wait_until
from tests.service.test_service_moto import settings_for


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """`detector replay` and the runtime read credentials the standard way."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_CREDENTIALS.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_CREDENTIALS.secret_access_key)
    monkeypatch.setenv("AWS_REGION", REGION)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def s3(moto_endpoint: str, aws_environment: None) -> Iterator[S3State]:
    with s3_state(moto_endpoint) as state:
        yield state


@pytest.fixture
def history_archive(small_trail: Any, attack_morning: list[dict[str, Any]], tmp_path: Path) -> Path:
    """The day before the attack morning, in CloudTrail's S3 layout."""
    first = attack_morning[0]["eventTime"][:19]
    since = (pl.Series([first]).str.to_datetime() - timedelta(days=1)).dt.strftime("%FT%T")[0]
    history = [r for r in small_trail.records if since <= r["eventTime"][:19] < first]
    write_archive(history, tmp_path / "archive", seed=1)
    return tmp_path / "archive"


async def _consume(pipeline: Pipeline, store: StateStore, stream: Stream) -> list[str]:
    """A service pod's consumer on ``store``: the stream in, findings out, a checkpoint."""
    clock = ManualClock(NOW)
    queue = InMemoryQueue(clock=clock)
    await send_bodies(queue, stream.bodies)
    sink = MemoryFindingSink()
    consumer = make_consumer(pipeline, queue, clock, sinks=[sink], store=store)
    await consumer.start()
    await pump(consumer)
    assert consumer.counts.checkpoints == 1
    return sink.finding_ids


def _generation(s3: S3State) -> int:
    key = s3.location.removeprefix(f"s3://{BUCKET}/") + "/MANIFEST.json"
    body = s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return int(json.loads(body)["current"]["seq"])


def _windows_with_something_new(
    pipeline: Pipeline, snapshot: Snapshot | None, records: list[dict[str, Any]]
) -> int:
    """Windows the records close in which an IP, network, region, user agent, VPC endpoint,
    API or access key is new to the principal's profile, starting from ``snapshot``."""
    state = pipeline.initial_state() if snapshot is None else pipeline.restore(snapshot)
    events = records_to_events(records, origin="live").events
    _, rows, _ = update(state.features, events, pipeline.config.features)
    assert rows.height > 0
    novelty = [c for c in rows.columns if c.startswith("new_") and rows.schema[c].is_numeric()]
    return int(rows.select(pl.sum_horizontal(novelty) > 0).to_series().sum())


async def test_a_pod_with_an_empty_disk_resumes_from_s3_as_if_never_interrupted(
    s3: S3State,
    history_archive: Path,
    trained_model_dir: Path,
    pipeline: Pipeline,
    morning_stream: Stream,
    attack_morning: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    argv = [
        "replay", str(history_archive), "--model", str(trained_model_dir),
        "--state-dir", s3.location, "--endpoint-url", s3.endpoint_url,
        "--out", str(tmp_path / "history-findings.jsonl"),
    ]  # fmt: skip
    assert await asyncio.to_thread(main, argv) == 0
    assert not list(tmp_path.glob("**/MANIFEST.json"))  # nothing on this disk
    replayed_generation = _generation(s3)
    reader = s3.open()
    try:
        from_s3 = reader.load()
    finally:
        reader.close()

    # The pod: a new process, its state only in S3.
    pod_store = s3.open()
    try:
        resumed = await _consume(pipeline, pod_store, morning_stream)
    finally:
        pod_store.close()

    # One process that replayed the same history and consumed the same stream.
    memory = InMemoryStateStore()
    await replay(
        LocalFolderSource(history_archive), "history", pipeline, MemoryFindingSink(),
        store=memory, decode_processes=0,
    )  # fmt: skip
    history_state = memory.load()
    assert history_state is not None
    uninterrupted = await _consume(pipeline, memory, morning_stream)

    assert resumed
    assert sorted(resumed) == sorted(uninterrupted)
    assert _generation(s3) == replayed_generation + 1  # the pod's checkpoint, in S3

    # What the pod resumed with, against what it would have seen from an empty disk.
    resumed_novel = _windows_with_something_new(pipeline, from_s3, attack_morning)
    assert resumed_novel == _windows_with_something_new(pipeline, history_state, attack_morning)
    cold_novel = _windows_with_something_new(pipeline, None, attack_morning)
    assert resumed_novel <= cold_novel // 2, (resumed_novel, cold_novel)


async def test_the_service_checkpoints_to_s3_and_a_new_pod_resumes_there(
    s3: S3State,
    sqs_admin: Any,
    short_stream: Stream,
    trained_model_dir: Path,
    pipeline: Pipeline,
    tmp_path: Path,
) -> None:
    input_url = await sqs_admin.create_queue("detector-input", visibility_timeout=5)
    settings = settings_for(
        sqs_admin.endpoint_url,
        input_url,
        tmp_path,
        trained_model_dir,
        state_dir=s3.location,
        s3_endpoint_url=s3.endpoint_url,
        findings_file=tmp_path / "findings.jsonl",
    )
    first_pod = ServiceRuntime(settings)
    task = asyncio.create_task(first_pod.run())
    await asyncio.wait_for(first_pod.consuming.wait(), 30)
    await feed(sqs_admin, input_url, short_stream.bodies)

    async def all_deleted() -> bool:
        return await sqs_admin.depth(input_url) == (0, 0)

    await wait_until(all_deleted, 30, "every message processed, checkpointed and deleted")
    first_pod.stop()
    assert await asyncio.wait_for(task, 30) == 0
    assert not list(tmp_path.glob("**/MANIFEST.json"))  # nothing on the pod's disk

    store = s3.open()
    try:
        saved = store.load()
    finally:
        store.close()
    assert saved is not None
    assert pipeline.restore(saved).features.seen_ids.height == len(short_stream)

    # Rescheduled elsewhere: another pod, another empty disk, the same S3 location.
    second_pod = ServiceRuntime(replace(settings, findings_file=tmp_path / "second.jsonl"))
    task = asyncio.create_task(second_pod.run())
    await asyncio.wait_for(second_pod.consuming.wait(), 30)
    assert second_pod.consumer is not None
    resumed = second_pod.consumer.state
    second_pod.stop()
    assert await asyncio.wait_for(task, 30) == 0
    assert pipeline.snapshot(resumed).equals(saved)
