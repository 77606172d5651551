"""OffloadedDeletes over moto: deletes made by a real worker process, outcomes per message,
and the fall-back to the calling process when that worker has died or cannot reach SQS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import BrokenExecutor, ProcessPoolExecutor
from pathlib import Path

import pytest

from detector.ingest import OffloadedDeletes, OutgoingMessage, QueueMessage, SqsQueue
from detector.runtime import worker_pool
from tests.integration.moto_support import SqsAdmin


@pytest.fixture(scope="module")
def deleter() -> Iterator[ProcessPoolExecutor]:
    with worker_pool(1) as pool:
        yield pool


async def fill_and_receive(queue: SqsQueue, count: int) -> list[QueueMessage]:
    outgoing = [OutgoingMessage(f"m{i}", f'{{"i": {i}}}'.encode()) for i in range(count)]
    assert (await queue.send(outgoing)).ok
    received: list[QueueMessage] = []
    while len(received) < count:
        got = await queue.receive(10, 0, 60)
        assert got, "moto returned nothing while messages were visible"
        received.extend(got)
    return received


async def test_a_worker_process_deletes_every_message_and_reports_each(
    sqs_admin: SqsAdmin, deleter: ProcessPoolExecutor
) -> None:
    url = await sqs_admin.create_queue("offloaded-deletes")
    async with SqsQueue(sqs_admin.config(url)) as sqs:
        queue = OffloadedDeletes(sqs, deleter)
        received = await fill_and_receive(sqs, 25)
        stale = QueueMessage(
            "gone", received[0].receipt_handle + "x", b"", received[0].sent_time, 1
        )

        outcome = await queue.delete([*received, stale])

        assert sorted(outcome.succeeded) == sorted(m.message_id for m in received)
        assert [f.id for f in outcome.failed] == ["gone"]  # a handle SQS does not know
        assert await sqs_admin.depth(url) == (0, 0)
        assert queue.url == url
        assert not queue.fifo


async def test_a_dead_delete_process_leaves_deleting_to_the_calling_process(
    sqs_admin: SqsAdmin,
) -> None:
    broken = worker_pool(1)
    with pytest.raises(BrokenExecutor):
        broken.submit(os._exit, 1).result()
    url = await sqs_admin.create_queue("offloaded-deletes-broken")
    try:
        async with SqsQueue(sqs_admin.config(url)) as sqs:
            queue = OffloadedDeletes(sqs, broken)
            first = await fill_and_receive(sqs, 12)
            assert (await queue.delete(first)).ok
            second = await fill_and_receive(sqs, 3)
            assert (await queue.delete(second)).ok  # no pool any more: straight to SQS
        assert await sqs_admin.depth(url) == (0, 0)
    finally:
        broken.shutdown()


async def test_a_delete_process_that_cannot_open_its_client_leaves_deleting_here(
    sqs_admin: SqsAdmin, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The worker's environment points botocore at a config file it cannot parse.
    bad = tmp_path / "aws-config"
    bad.write_text("[default\nregion = nowhere\n")
    url = await sqs_admin.create_queue("offloaded-deletes-unusable")
    with worker_pool(1, environ={"AWS_CONFIG_FILE": str(bad)}) as unusable:
        async with SqsQueue(sqs_admin.config(url)) as sqs:
            queue = OffloadedDeletes(sqs, unusable)
            received = await fill_and_receive(sqs, 5)
            assert (await queue.delete(received)).ok
    assert await sqs_admin.depth(url) == (0, 0)
    assert "the delete process failed (ConfigParseError" in caplog.text
