"""SqsQueue's own behaviour over moto: the start-up check, and retries of the faults SQS
produces under load (injected by a proxy in front of moto: no botocore mocks)."""

from __future__ import annotations

import random
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from detector.errors import ConfigError
from detector.ingest import (
    OutgoingMessage,
    QueueError,
    QueueUnavailableError,
    RetryPolicy,
    SqsConfig,
    SqsQueue,
    StaticCredentials,
)
from tests.integration.fault_proxy import Fault, FaultProxy, running_fault_proxy
from tests.integration.moto_support import REGION, MotoServer, SqsAdmin


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
async def proxy(sqs_admin: SqsAdmin) -> AsyncIterator[FaultProxy]:
    async with running_fault_proxy(sqs_admin.endpoint_url) as proxy:
        yield proxy


async def open_through(
    proxy: FaultProxy, admin: SqsAdmin, url: str, sleeps: Sleeps, seed: int = 1
) -> SqsQueue:
    config = SqsConfig(
        queue_url=url,
        region=REGION,
        endpoint_url=proxy.endpoint_url,
        credentials=admin.config(url).credentials,
        retry=RetryPolicy(max_attempts=4, base_delay_seconds=0.1, max_delay_seconds=1.0),
    )
    return await SqsQueue.open(config, rng=random.Random(seed), sleep=sleeps)


def bodies(count: int) -> list[OutgoingMessage]:
    return [OutgoingMessage(f"m{i}", f'{{"i": {i}}}'.encode()) for i in range(count)]


# -- start-up -----------------------------------------------------------------------------


async def test_a_missing_queue_is_a_config_error_naming_the_url(sqs_admin: SqsAdmin) -> None:
    url = sqs_admin.endpoint_url + "/123456789012/no-such-queue"
    with pytest.raises(ConfigError, match=rf"SQS queue {re.escape(url)} .* does not exist"):
        await SqsQueue.open(sqs_admin.config(url))


async def test_an_unreachable_endpoint_is_a_config_error_after_retries() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/123456789012/events"
    sleeps = Sleeps()
    config = SqsConfig(
        queue_url=url,
        endpoint_url=f"http://127.0.0.1:{port}",
        credentials=StaticCredentials("testing", "testing"),
        retry=RetryPolicy(max_attempts=3),
    )
    with pytest.raises(ConfigError, match=rf"SQS queue {re.escape(url)} .* is unreachable"):
        await SqsQueue.open(config, sleep=sleeps)
    assert len(sleeps.delays) == 2


async def test_refused_credentials_are_a_config_error(
    sqs_admin: SqsAdmin, moto_enforcing_auth: MotoServer
) -> None:
    url = sqs_admin.endpoint_url + "/123456789012/events"
    config = sqs_admin.config(url, credentials=StaticCredentials("AKIDUNKNOWN", "wrong"))
    with pytest.raises(ConfigError, match="credentials were refused"):
        await SqsQueue.open(config)


async def test_missing_credentials_are_a_config_error(
    sqs_admin: SqsAdmin, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = await sqs_admin.create_queue("events")
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    config = SqsConfig(queue_url=url, region=REGION, endpoint_url=sqs_admin.endpoint_url)
    with pytest.raises(ConfigError, match="no usable AWS credentials"):
        await SqsQueue.open(config)


def test_config_is_checked_when_built() -> None:
    with pytest.raises(ConfigError, match="http"):
        SqsConfig(queue_url="events")
    with pytest.raises(ConfigError, match="long poll"):
        SqsConfig(queue_url="https://sqs.us-east-1.amazonaws.com/1/q", read_timeout_seconds=20)
    secret = StaticCredentials("AKID", "very-secret", "token")
    assert "very-secret" not in repr(SqsConfig(queue_url="https://x/1/q", credentials=secret))


async def test_the_start_up_check_learns_that_a_queue_is_fifo(sqs_admin: SqsAdmin) -> None:
    url = await sqs_admin.create_queue("findings", fifo=True)
    async with SqsQueue(sqs_admin.config(url)) as queue:
        assert queue.fifo
        outcome = await queue.send([OutgoingMessage("a", b"{}", group_id="g")])
        assert [f.code for f in outcome.failed] == ["InvalidParameterValue"]  # no dedup id


async def test_an_unopened_or_closed_queue_says_so(sqs_admin: SqsAdmin) -> None:
    url = await sqs_admin.create_queue("events")
    queue = SqsQueue(sqs_admin.config(url))
    with pytest.raises(QueueError, match="not open"):
        await queue.receive(1, wait_seconds=0)
    async with queue:
        pass
    with pytest.raises(QueueError, match="closed"):
        await queue.delete([])
    with pytest.raises(QueueError, match="closed"):
        await queue.__aenter__()


# -- retries ------------------------------------------------------------------------------


async def test_receive_retries_5xx_and_throttling_with_jittered_backoff(
    sqs_admin: SqsAdmin, proxy: FaultProxy
) -> None:
    url = await sqs_admin.create_queue("events")
    sleeps = Sleeps()
    queue = await open_through(proxy, sqs_admin, url, sleeps)
    await queue.send(bodies(3))
    proxy.inject(
        Fault("ReceiveMessage", status=500, code="InternalError"),
        Fault("ReceiveMessage", status=400, code="RequestThrottled"),
    )

    got = await queue.receive(10, wait_seconds=0)

    assert len(got) == 3
    assert len(proxy.calls("ReceiveMessage")) == 3
    assert len(sleeps.delays) == 2
    assert 0 <= sleeps.delays[0] <= 0.1
    assert 0 <= sleeps.delays[1] <= 0.2
    again = Sleeps()  # the same seed draws the same pauses
    replay = await open_through(proxy, sqs_admin, url, again)
    proxy.inject(*[Fault("ReceiveMessage", status=503, code="ServiceUnavailable")] * 2)
    await replay.receive(1, wait_seconds=0)
    assert again.delays == sleeps.delays
    await queue.close()
    await replay.close()


async def test_receive_gives_up_with_queue_unavailable(
    sqs_admin: SqsAdmin, proxy: FaultProxy
) -> None:
    url = await sqs_admin.create_queue("events")
    sleeps = Sleeps()
    async with await open_through(proxy, sqs_admin, url, sleeps) as queue:
        proxy.inject(*[Fault("ReceiveMessage", status=500, code="InternalError")] * 4)
        with pytest.raises(QueueUnavailableError, match=rf"{re.escape(url)} still failing after 4"):
            await queue.receive(1, wait_seconds=0)
        assert len(sleeps.delays) == 3


async def test_a_partial_send_failure_retries_only_the_failed_entries(
    sqs_admin: SqsAdmin, proxy: FaultProxy
) -> None:
    url = await sqs_admin.create_queue("events")
    async with await open_through(proxy, sqs_admin, url, Sleeps()) as queue:
        proxy.inject(
            Fault(
                "SendMessageBatch",
                failed_entries={"1": ("RequestThrottled", False), "3": ("InternalError", False)},
            )
        )

        outcome = await queue.send(bodies(5))

        assert outcome.ok
        assert sorted(outcome.succeeded) == ["m0", "m1", "m2", "m3", "m4"]
        retried = proxy.calls("SendMessageBatch")[1]["Entries"]
        assert sorted(entry["MessageBody"] for entry in retried) == ['{"i": 1}', '{"i": 3}']
        assert await sqs_admin.depth(url) == (5, 0)


async def test_a_senders_fault_is_reported_not_retried(
    sqs_admin: SqsAdmin, proxy: FaultProxy
) -> None:
    url = await sqs_admin.create_queue("events")
    async with await open_through(proxy, sqs_admin, url, Sleeps()) as queue:
        proxy.inject(
            Fault("SendMessageBatch", failed_entries={"0": ("InvalidParameterValue", True)})
        )

        outcome = await queue.send(bodies(2))

        assert outcome.succeeded == ("m1",)
        assert [(f.id, f.code, f.sender_fault) for f in outcome.failed] == [
            ("m0", "InvalidParameterValue", True)
        ]
        assert len(proxy.calls("SendMessageBatch")) == 1


async def test_a_spurious_invalid_receipt_handle_is_retried_once(
    sqs_admin: SqsAdmin, proxy: FaultProxy
) -> None:
    """moto answers ReceiptHandleIsInvalid for a good handle under concurrent consumers."""
    url = await sqs_admin.create_queue("events")
    async with await open_through(proxy, sqs_admin, url, Sleeps()) as queue:
        await queue.send(bodies(3))
        got = await queue.receive(10, wait_seconds=0)
        proxy.inject(
            Fault("DeleteMessageBatch", failed_entries={"2": ("ReceiptHandleIsInvalid", True)})
        )

        outcome = await queue.delete(got)

        assert outcome.ok
        assert [len(call["Entries"]) for call in proxy.calls("DeleteMessageBatch")] == [3, 1]
        assert await sqs_admin.depth(url) == (0, 0)


async def test_a_persistently_invalid_receipt_handle_is_reported(
    sqs_admin: SqsAdmin, proxy: FaultProxy
) -> None:
    url = await sqs_admin.create_queue("events")
    async with await open_through(proxy, sqs_admin, url, Sleeps()) as queue:
        await queue.send(bodies(2))
        got = await queue.receive(10, wait_seconds=0)
        invalid = {"0": ("ReceiptHandleIsInvalid", True)}
        proxy.inject(Fault("DeleteMessageBatch", failed_entries=invalid))
        proxy.inject(Fault("DeleteMessageBatch", failed_entries=invalid))

        outcome = await queue.delete(got)

        assert outcome.failed_ids == {got[0].message_id}
        assert outcome.succeeded == (got[1].message_id,)


async def test_transient_failures_that_outlast_the_policy_fail_the_entries(
    sqs_admin: SqsAdmin, proxy: FaultProxy
) -> None:
    url = await sqs_admin.create_queue("events")
    async with await open_through(proxy, sqs_admin, url, Sleeps()) as queue:
        await queue.send(bodies(2))
        got = await queue.receive(10, wait_seconds=0)
        proxy.inject(*[Fault("ChangeMessageVisibilityBatch", status=500, code="InternalError")] * 4)

        outcome = await queue.change_visibility(got, 0)

        assert [(f.code, f.sender_fault) for f in outcome.failed] == [("InternalError", False)] * 2


async def test_a_queue_deleted_under_the_consumer_raises_queue_error(
    sqs_admin: SqsAdmin,
) -> None:
    url = await sqs_admin.create_queue("events")
    async with SqsQueue(sqs_admin.config(url)) as queue:
        await queue.send(bodies(1))
        got = await queue.receive(1, wait_seconds=0)
        await sqs_admin.client.delete_queue(QueueUrl=url)
        with pytest.raises(QueueError, match=f"DeleteMessageBatch on SQS queue {re.escape(url)}"):
            await queue.delete(got)
        with pytest.raises(QueueError, match=f"ReceiveMessage on SQS queue {re.escape(url)}"):
            await queue.receive(1, wait_seconds=0)
