"""Model roll-out without a restart, against a real moto server (S3 registry, SQS queue): a
promotion is picked up between batches, a tampered version is refused while the old model
keeps scoring, and the training quantiles of the model scoring are exported."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiobotocore.session import AioSession

from detector.registry import ModelRegistry, S3ObjectStore
from tests.integration.moto_support import REGION, SqsAdmin
from tests.model_versions import model_copy
from tests.service.conftest import Stream
from tests.service.moto_helpers import feed, wait_until
from tests.service.test_service_moto import aws_environment, running, settings_for

__all__ = ["aws_environment"]

BUCKET = "org-models"
ROOT = f"s3://{BUCKET}/detector/models"
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def s3_endpoint(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The service finds the registry's endpoint the standard way."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    return moto_endpoint


async def make_bucket(endpoint: str) -> None:
    async with AioSession().create_client(
        "s3", region_name=REGION, endpoint_url=endpoint
    ) as client:
        await client.create_bucket(Bucket=BUCKET)


def thirds(stream: Stream) -> list[list[bytes]]:
    n = len(stream.bodies)
    return [
        stream.bodies[: n // 3],
        stream.bodies[n // 3 : 2 * n // 3],
        stream.bodies[2 * n // 3 :],
    ]


async def test_a_promotion_is_swapped_in_between_batches_and_a_tampered_model_is_refused(
    sqs_admin: SqsAdmin,
    s3_endpoint: str,
    short_stream: Stream,
    trained_model_dir: Path,
    tmp_path: Path,
) -> None:
    await make_bucket(s3_endpoint)
    first_dir, first = model_copy(tmp_path / "trained", "org", trained_model_dir)
    second_dir, second = model_copy(tmp_path / "trained", "org-retrained", trained_model_dir)
    third_dir, third = model_copy(tmp_path / "trained", "org-tampered", trained_model_dir)
    async with S3ObjectStore.from_url(ROOT, endpoint_url=s3_endpoint) as store:
        registry = ModelRegistry(store)
        await registry.publish(first_dir, first)
        await registry.promote(first.version, NOW)

        input_url = await sqs_admin.create_queue("detector-input", visibility_timeout=5)
        settings = settings_for(
            s3_endpoint,
            input_url,
            tmp_path,
            trained_model_dir,
            model_dir=f"{ROOT}/current",
            model_poll_seconds=0.1,
        )
        parts = thirds(short_stream)
        async with running(settings) as run:
            metrics = run.metrics
            consumer = run.runtime.consumer
            assert consumer is not None
            watcher = consumer.model_updates
            fed = 0

            async def feed_and_process(bodies: list[bytes]) -> None:
                nonlocal fed
                fed += len(bodies)
                await feed(sqs_admin, input_url, bodies)

                async def processed() -> bool:
                    return metrics.value("detector_messages_processed_total") >= fed

                await wait_until(processed, 60, f"{fed} messages processed")

            await feed_and_process(parts[0])
            assert metrics.value("detector_model_info", {"version": first.version}) == 1
            events_before = metrics.value("detector_events_processed_total")

            # Promote a retrained version: verified by the poll, swapped in before the next batch.
            await registry.publish(second_dir, second)
            await registry.promote(second.version, NOW)

            async def verified() -> bool:
                return getattr(watcher, "version", None) == second.version

            await wait_until(verified, 30, "the promoted version verified")
            await feed_and_process(parts[1])
            assert metrics.value("detector_model_info", {"version": second.version}) == 1
            assert metrics.value("detector_model_info", {"version": first.version}) == 0
            assert metrics.value("detector_model_reloads_total") == 1
            assert consumer.pipeline.artifact.version == second.version
            assert metrics.value("detector_events_processed_total") > events_before

            # A version whose peers file was changed after training: refused, the old one stays.
            await registry.publish(third_dir, third)
            key = f"{third.version}/peers.json"
            peers = await store.get(key)
            assert peers is not None
            await store.put(key, peers.replace(b"[", b"[ ", 1))
            await registry.promote(third.version, NOW)

            async def refused() -> bool:
                return (
                    metrics.value(
                        "detector_model_reload_failures_total", {"reason": "verification"}
                    )
                    == 1
                )

            await wait_until(refused, 30, "the tampered version refused")
            events_before = metrics.value("detector_events_processed_total")
            await feed_and_process(parts[2])
            assert metrics.value("detector_events_processed_total") > events_before
            assert metrics.value("detector_model_info", {"version": second.version}) == 1
            assert consumer.pipeline.artifact.version == second.version
            assert metrics.value("detector_model_reloads_total") == 1
            # The same refused pointer is not fetched again at every poll.
            assert (
                metrics.value("detector_model_reload_failures_total", {"reason": "verification"})
                == 1
            )
            # Drift: the running model's training quantiles are exported beside the live ones.
            assert metrics.value(
                "detector_model_score_quantile", {"quantile": "0.99", "scores": "training"}
            ) == pytest.approx(float(second.manifest["score_quantiles"]["0.99"]))
    assert run.exit_code == 0
