"""The queue port: what the service needs from SQS, and nothing more.

Two implementations keep the same contract (``tests/integration/test_queue_contract.py`` runs
one suite against both): :class:`~detector.ingest.SqsQueue` and the in-memory fake
:class:`~detector.ingest.InMemoryQueue`.

Imports: this package's message values only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from detector.ingest._model import BatchOutcome, OutgoingMessage, QueueMessage

__all__ = ["MessageQueue", "PositionedSource"]


class MessageQueue(Protocol):
    """An SQS-like queue with at-least-once delivery.

    Batch methods take any number of entries and split them into calls of at most 10 entries
    and at most 256 KiB of bodies. They retry throttling and transient failures themselves and
    report what still failed in the :class:`BatchOutcome`; they raise
    :class:`~detector.ingest.QueueError` only when the queue as a whole refuses the call.
    """

    @property
    def fifo(self) -> bool:
        """True for a FIFO queue: sends then need a group id (and a dedup id, unless the
        queue deduplicates by content)."""
        ...

    async def receive(
        self,
        max_messages: int = 10,
        wait_seconds: int = 20,
        visibility_timeout: int | None = None,
    ) -> list[QueueMessage]:
        """Up to ``max_messages`` (1..10) messages, waiting up to ``wait_seconds`` for the first
        one; each stays invisible to other receivers for ``visibility_timeout`` seconds (None:
        the queue's default)."""
        ...

    async def delete(self, messages: Sequence[QueueMessage]) -> BatchOutcome:
        """Delete by receipt handle; outcome ids are message ids."""
        ...

    async def change_visibility(
        self, messages: Sequence[QueueMessage], timeout_seconds: int
    ) -> BatchOutcome:
        """Extend (heartbeat) or end (0: release now) the messages' invisibility."""
        ...

    async def send(self, messages: Sequence[OutgoingMessage]) -> BatchOutcome:
        """Send; outcome ids are the :class:`OutgoingMessage` ids."""
        ...

    async def close(self) -> None:
        """Release the connection; idempotent. Further calls raise ``QueueError``."""
        ...


@runtime_checkable
class PositionedSource(Protocol):
    """A queue whose read positions live in the consumer's checkpoint rather than in deletes
    (a Kinesis shard): the seam between the consumer and :class:`~detector.ingest.
    KinesisShardQueue`. The consumer calls :meth:`resume` with the restored snapshot's
    metadata, saves :meth:`positions` in every checkpoint's metadata, and hands poison and
    failed batches to :meth:`hand_back` instead of changing their visibility."""

    def resume(self, meta: Mapping[str, str]) -> None:
        """Continue after the positions in ``meta`` ({}: from the start)."""
        ...

    def positions(self, checkpointed: Sequence[QueueMessage]) -> dict[str, str]:
        """Metadata to save with a checkpoint whose state holds ``checkpointed``."""
        ...

    def hand_back(self, messages: Sequence[QueueMessage]) -> list[QueueMessage]:
        """Deliver again later; returns those given up for good."""
        ...
