"""A findings sink that sends each finding as one message to an SQS queue.

Findings go out by SendMessageBatch through a :class:`~detector.ingest.MessageQueue` (so the
in-memory fake stands in for SQS in tests). Entries that fail are retried, alone, with
exponential backoff and jitter until ``deadline_seconds`` have passed; then :class:`SinkError`
names the findings not delivered. Entries SQS refuses as the sender's fault are not retried.

On a FIFO queue each finding's MessageGroupId is its group (the principal) and its
MessageDeduplicationId its finding id and count (``<id>-<count>``: an update of an aggregated
finding is a new message, a second delivery of the same update is not), so delivering the same
finding twice within SQS's 5-minute window yields one message. Both must be 1-128 printable ASCII characters: a value
that is not is replaced by ``sha256:<hex>`` of itself, which is as stable. On a standard queue
duplicates are possible and consumers deduplicate on ``finding_id``.

Imports: the standard library, detector.ingest and this package's port.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Final

from detector.ingest import (
    DEFAULT_RETRY_POLICY,
    MessageQueue,
    OutgoingMessage,
    QueueError,
    RetryPolicy,
    Sleep,
    SqsConfig,
    SqsQueue,
)
from detector.sinks._port import FindingMessage, SinkError

__all__ = ["SqsFindingSink", "fifo_token"]

DEFAULT_DEADLINE_SECONDS: Final = 30.0
_TOKEN: Final = re.compile(r"[!-~]{1,128}")


def fifo_token(value: str) -> str:
    """``value`` if SQS accepts it as a group or deduplication id, else a stable digest of it."""
    if _TOKEN.fullmatch(value):
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()


class SqsFindingSink:
    """Sends findings to ``queue`` (see the module docstring).

    The queue is the caller's to close unless ``owns_queue`` (as with :meth:`open`).
    ``rng``, ``sleep`` and ``monotonic`` drive the backoff and the deadline; tests pass fakes.
    """

    def __init__(
        self,
        queue: MessageQueue,
        *,
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        owns_queue: bool = False,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue = queue
        self.deadline_seconds = deadline_seconds
        self.retry = retry
        self._owns_queue = owns_queue
        self._rng = rng if rng is not None else random.Random()
        self._sleep = sleep
        self._monotonic = monotonic
        self._closed = False

    @classmethod
    async def open(
        cls, config: SqsConfig, *, deadline_seconds: float = DEFAULT_DEADLINE_SECONDS
    ) -> SqsFindingSink:
        """A sink over its own :class:`SqsQueue` (checked at start-up; ``ConfigError`` if
        missing or unreachable), closed with the sink."""
        queue = await SqsQueue.open(config)
        return cls(queue, deadline_seconds=deadline_seconds, owns_queue=True)

    async def __aenter__(self) -> SqsFindingSink:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def send(self, findings: Sequence[FindingMessage]) -> None:
        if self._closed:
            raise SinkError("the SQS findings sink is closed", [f.finding_id for f in findings])
        fifo = self.queue.fifo
        # Entry ids are positions: finding ids need not be unique or valid SQS batch ids.
        pending = {
            str(i): OutgoingMessage(
                str(i),
                finding.body,
                group_id=fifo_token(finding.group) if fifo else None,
                deduplication_id=(
                    fifo_token(f"{finding.finding_id}-{finding.revision}") if fifo else None
                ),
            )
            for i, finding in enumerate(findings)
        }
        refused: dict[str, str] = {}
        deadline = self._monotonic() + self.deadline_seconds
        attempt = 0
        last_problem = ""
        while pending:
            try:
                outcome = await self.queue.send(list(pending.values()))
            except QueueError as err:  # the queue as a whole refused: retrying will not help
                raise SinkError(
                    f"findings queue refused the batch: {err}",
                    [findings[int(k)].finding_id for k in pending],
                ) from err
            retry: dict[str, OutgoingMessage] = {}
            for failure in outcome.failed:
                if failure.id not in pending:
                    continue
                if failure.sender_fault:
                    refused[failure.id] = f"{failure.code}: {failure.message}"
                else:
                    retry[failure.id] = pending[failure.id]
                    last_problem = f"{failure.code}: {failure.message}"
            pending = retry
            if not pending:
                break
            pause = self.retry.delay(attempt, self._rng)
            if self._monotonic() + pause > deadline:
                ids = [findings[int(k)].finding_id for k in pending]
                raise SinkError(
                    f"{len(ids)} findings not delivered within {self.deadline_seconds} s "
                    f"({attempt + 1} attempts; last: {last_problem})",
                    ids + [findings[int(k)].finding_id for k in refused],
                )
            await self._sleep(pause)
            attempt += 1
        if refused:
            details = "; ".join(
                f"{findings[int(k)].finding_id}: {why}" for k, why in refused.items()
            )
            raise SinkError(
                f"findings queue refused {len(refused)} findings: {details}",
                [findings[int(k)].finding_id for k in refused],
            )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_queue:
            await self.queue.close()
