"""The values that cross the queue port: received messages, messages to send, batch outcomes.

Imports: the standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

__all__ = ["BatchFailure", "BatchOutcome", "OutgoingMessage", "QueueMessage"]


class QueueMessage(NamedTuple):
    """One received message.

    ``receipt_handle`` belongs to this receipt only: after the message is received again, only
    the newer handle deletes it. ``sent_time`` is SQS's ``SentTimestamp`` (UTC, millisecond
    precision); ``receive_count`` is ``ApproximateReceiveCount`` (1 on the first receipt).

    (A named tuple rather than a frozen dataclass like the other values: one is made per
    message received, at tens of thousands a second, and a frozen dataclass costs 2.5 times
    as much to make.)
    """

    message_id: str
    receipt_handle: str
    body: bytes
    sent_time: datetime
    receive_count: int
    message_group_id: str | None = None


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message to send; ``id`` is the caller's name for it in the :class:`BatchOutcome`.

    ``group_id`` and ``deduplication_id`` are for FIFO queues only (SQS rejects them on a
    standard queue); a FIFO queue without content-based deduplication needs a
    ``deduplication_id``.
    """

    id: str
    body: bytes
    group_id: str | None = None
    deduplication_id: str | None = None


@dataclass(frozen=True, slots=True)
class BatchFailure:
    """One entry of a batch call that failed after the adapter's own retries.

    ``id`` is the message id (delete, change_visibility) or the :class:`OutgoingMessage` id
    (send). ``sender_fault`` is SQS's flag: True means repeating the same request cannot help
    (bad receipt handle, invalid body); False means it may succeed later.
    """

    id: str
    code: str
    message: str
    sender_fault: bool


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What a batch call did, entry by entry: a failed entry is data, not an exception."""

    succeeded: tuple[str, ...] = ()
    failed: tuple[BatchFailure, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def failed_ids(self) -> frozenset[str]:
        return frozenset(failure.id for failure in self.failed)

    @staticmethod
    def combine(outcomes: Iterable[BatchOutcome]) -> BatchOutcome:
        succeeded: list[str] = []
        failed: list[BatchFailure] = []
        for outcome in outcomes:
            succeeded.extend(outcome.succeeded)
            failed.extend(outcome.failed)
        return BatchOutcome(tuple(succeeded), tuple(failed))
