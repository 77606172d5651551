"""The SQS queue port with its deletes made by another process.

Every SQS call costs the client ~0.5 ms of CPU in botocore and aiohttp, and the event loop's
thread of a consumer is busy with receives, heartbeats and its own bookkeeping: there, deletes
are half of all calls. :class:`OffloadedDeletes` keeps receives and everything else in the
calling process and hands each :meth:`delete` to a worker process, which opens its own
:class:`SqsQueue` over the same configuration once and makes the ``DeleteMessageBatch`` calls
there (10 messages each, all of one ``delete`` at once), with the adapter's own retries.
Only message ids and receipt handles cross the process boundary.

A pool that fails (its worker died, or could not open its client) is not used again: deletes
are then made in the calling process, and the consumer goes on.

Imports: the standard library and this package's SQS adapter and values.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Final

from detector.ingest._errors import QueueError
from detector.ingest._limits import chunk
from detector.ingest._model import BatchOutcome, OutgoingMessage, QueueMessage
from detector.ingest._sqs import SqsConfig, SqsQueue

__all__ = ["OffloadedDeletes", "delete_in_worker"]

_log = logging.getLogger("detector.ingest")

# In a worker process: one event loop and one open queue per queue URL, kept between calls.
_WORKER_QUEUES: dict[str, tuple[asyncio.AbstractEventLoop, SqsQueue]] = {}
_UNSENT: Final = datetime(1970, 1, 1, tzinfo=UTC)  # a delete needs no body and no sent time


def _worker_queue(config: SqsConfig) -> tuple[asyncio.AbstractEventLoop, SqsQueue]:
    opened = _WORKER_QUEUES.get(config.queue_url)
    if opened is None:
        loop = asyncio.new_event_loop()
        queue = loop.run_until_complete(SqsQueue.open(config))
        opened = _WORKER_QUEUES[config.queue_url] = (loop, queue)
    return opened


def delete_in_worker(config: SqsConfig, receipts: Sequence[tuple[str, str]]) -> BatchOutcome:
    """Runs in the worker: delete ``(message id, receipt handle)`` pairs, 10 per call, all
    calls at once."""
    loop, queue = _worker_queue(config)
    messages = [QueueMessage(mid, handle, b"", _UNSENT, 0) for mid, handle in receipts]

    async def delete_all() -> BatchOutcome:
        calls = [queue.delete(group) for group in chunk(messages)]
        return BatchOutcome.combine(await asyncio.gather(*calls))

    return loop.run_until_complete(delete_all())


class OffloadedDeletes:
    """``inner`` for everything but :meth:`delete`, which ``pool`` runs (see the module)."""

    def __init__(self, inner: SqsQueue, pool: Executor) -> None:
        self.inner = inner
        self._pool: Executor | None = pool

    @property
    def fifo(self) -> bool:
        return self.inner.fifo

    @property
    def url(self) -> str:
        return self.inner.url

    async def receive(
        self,
        max_messages: int = 10,
        wait_seconds: int = 20,
        visibility_timeout: int | None = None,
    ) -> list[QueueMessage]:
        return await self.inner.receive(max_messages, wait_seconds, visibility_timeout)

    async def delete(self, messages: Sequence[QueueMessage]) -> BatchOutcome:
        pool = self._pool
        if pool is None or not messages:
            return await self.inner.delete(messages)
        receipts = [(m.message_id, m.receipt_handle) for m in messages]
        try:
            return await asyncio.get_running_loop().run_in_executor(
                pool, delete_in_worker, self.inner.config, receipts
            )
        except QueueError:
            raise  # the queue refused the call: as if it had been made here
        except Exception as err:  # the worker died, or could not open its client
            _log.error(
                "the delete process failed (%s: %s): deleting in this process from now on",
                type(err).__name__,
                err,
            )
            self._pool = None
            return await self.inner.delete(messages)

    async def change_visibility(
        self, messages: Sequence[QueueMessage], timeout_seconds: int
    ) -> BatchOutcome:
        return await self.inner.change_visibility(messages, timeout_seconds)

    async def send(self, messages: Sequence[OutgoingMessage]) -> BatchOutcome:
        return await self.inner.send(messages)

    async def close(self) -> None:
        await self.inner.close()
