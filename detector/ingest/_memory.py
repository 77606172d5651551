"""The in-memory fake of the queue port: SQS semantics, no network, time from a clock.

What it keeps from SQS: visibility timeouts (driven by the injected clock), receive counts,
redrive to a dead-letter queue once a message has been received ``max_receive_count`` times,
receipt handles that go stale when the message is received again, and for FIFO queues
per-group ordering (a group with a message in flight delivers nothing else) with
deduplication by id or content over a 5-minute window. Entries SQS would refuse are refused.
It also counts the API calls the SQS adapter would have made, so tests can check batching.

It is written to be read, not to be fast: the messages sit in one dict in sending order, each
with the time it is visible from, and a receive walks them. Tests keep their queues shallow.

Imports: the standard library and this package.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Final

from detector.ingest._clock import Clock, utc_now
from detector.ingest._errors import QueueError
from detector.ingest._limits import MAX_VISIBILITY_TIMEOUT, check_outgoing, chunk
from detector.ingest._model import BatchFailure, BatchOutcome, OutgoingMessage, QueueMessage

__all__ = ["InMemoryQueue"]

DEDUPLICATION_WINDOW_SECONDS: Final = 300.0


@dataclass(slots=True)
class _Stored:
    """One message held by the fake (mutable; never leaves this module)."""

    message_id: str
    body: bytes
    sent_time: datetime
    group_id: str | None
    receive_count: int = 0
    receipt_handle: str | None = None
    visible_from: float = 0.0  # epoch seconds; in flight while it is in the future


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """SQS's ApproximateNumberOfMessages / ...NotVisible, exact here."""

    visible: int
    in_flight: int


def _failure(key: str, code: str, message: str) -> BatchFailure:
    return BatchFailure(key, code, message, sender_fault=True)


class InMemoryQueue:
    """A faithful in-process stand-in for one SQS queue (see the module docstring).

    ``dead_letter_queue`` and ``max_receive_count`` go together, like SQS's RedrivePolicy: a
    message already received ``max_receive_count`` times moves there on its next receive.
    """

    def __init__(
        self,
        *,
        name: str = "memory-queue",
        fifo: bool = False,
        content_based_deduplication: bool = False,
        visibility_timeout: int = 30,
        dead_letter_queue: InMemoryQueue | None = None,
        max_receive_count: int | None = None,
        clock: Clock = utc_now,
    ) -> None:
        if (dead_letter_queue is None) != (max_receive_count is None):
            raise ValueError("dead_letter_queue and max_receive_count go together")
        if max_receive_count is not None and max_receive_count < 1:
            raise ValueError("max_receive_count must be at least 1")
        if dead_letter_queue is not None and dead_letter_queue.fifo != fifo:
            raise ValueError("a dead-letter queue must be of the same type (FIFO or standard)")
        if content_based_deduplication and not fifo:
            raise ValueError("content-based deduplication is for FIFO queues")
        if not 0 <= visibility_timeout <= MAX_VISIBILITY_TIMEOUT:
            raise ValueError(f"visibility_timeout must be 0..{MAX_VISIBILITY_TIMEOUT}")
        self.name = name
        self._fifo = fifo
        self._content_based_deduplication = content_based_deduplication
        self._visibility_timeout = visibility_timeout
        self._dead_letter_queue = dead_letter_queue
        self._max_receive_count = max_receive_count
        self._clock = clock
        self.api_calls: Counter[str] = Counter()
        """The SQS API calls the real adapter would have made for the same operations."""

        self._messages: dict[int, _Stored] = {}  # by sequence number: in sending order
        self._sent = 0
        self._by_handle: dict[str, int] = {}  # each message's newest receipt handle
        self._deleted_handles: set[str] = set()  # deleting twice succeeds, like SQS
        self._handles = 0
        self._dedup_until: dict[str, float] = {}
        self._arrival = asyncio.Event()
        self._closed = False

    # -- the port -------------------------------------------------------------------------

    @property
    def fifo(self) -> bool:
        return self._fifo

    async def receive(
        self,
        max_messages: int = 10,
        wait_seconds: int = 20,
        visibility_timeout: int | None = None,
    ) -> list[QueueMessage]:
        """As SQS; a long poll waits in event-loop time and wakes on a send, a release or the
        end of a visibility timeout.

        With a :class:`ManualClock`, advance the clock and then receive: waiting does not move
        the clock, so an in-flight message never expires during the wait.
        """
        self._check_open()
        if not 1 <= max_messages <= 10:
            raise ValueError("max_messages must be 1..10")
        if not 0 <= wait_seconds <= 20:
            raise ValueError("wait_seconds must be 0..20")
        timeout = self._visibility_timeout if visibility_timeout is None else visibility_timeout
        if not 0 <= timeout <= MAX_VISIBILITY_TIMEOUT:
            raise ValueError(f"visibility_timeout must be 0..{MAX_VISIBILITY_TIMEOUT}")
        self.api_calls["ReceiveMessage"] += 1
        # A network call always suspends the caller; so does this one, or a receive loop on a
        # non-empty queue would never let the rest of the event loop run.
        await asyncio.sleep(0)
        got = self._take(max_messages, timeout)
        if got or wait_seconds == 0:
            return got
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while True:
            self._arrival.clear()
            got = self._take(max_messages, timeout)
            remaining = deadline - loop.time()
            if got or remaining <= 0 or self._closed:
                return got
            next_expiry = self._seconds_to_next_expiry()
            if next_expiry is not None:
                remaining = min(remaining, max(next_expiry, 0.001))
            try:
                async with asyncio.timeout(remaining):
                    await self._arrival.wait()
            except TimeoutError:
                pass

    async def delete(self, messages: Sequence[QueueMessage]) -> BatchOutcome:
        self._check_open()
        self._count_calls("DeleteMessageBatch", len(messages))
        succeeded: list[str] = []
        failed: list[BatchFailure] = []
        for message in messages:
            handle = message.receipt_handle
            seq = self._by_handle.pop(handle, None)
            if seq is not None:
                del self._messages[seq]
                self._deleted_handles.add(handle)
                succeeded.append(message.message_id)
            elif handle in self._deleted_handles:
                succeeded.append(message.message_id)
            else:
                failed.append(_invalid_handle(message))
        return BatchOutcome(tuple(succeeded), tuple(failed))

    async def change_visibility(
        self, messages: Sequence[QueueMessage], timeout_seconds: int
    ) -> BatchOutcome:
        self._check_open()
        self._count_calls("ChangeMessageVisibilityBatch", len(messages))
        now = self._now()
        succeeded: list[str] = []
        failed: list[BatchFailure] = []
        for message in messages:
            seq = self._by_handle.get(message.receipt_handle)
            if not 0 <= timeout_seconds <= MAX_VISIBILITY_TIMEOUT:
                failed.append(
                    _failure(
                        message.message_id,
                        "InvalidParameterValue",
                        f"visibility timeout {timeout_seconds} is not 0..{MAX_VISIBILITY_TIMEOUT}",
                    )
                )
            elif seq is None:
                failed.append(_invalid_handle(message))
            elif self._messages[seq].visible_from <= now:
                failed.append(
                    _failure(message.message_id, "MessageNotInflight", "the message is visible")
                )
            else:
                self._messages[seq].visible_from = now + timeout_seconds
                succeeded.append(message.message_id)
        if timeout_seconds == 0 and succeeded:
            self._arrival.set()
        return BatchOutcome(tuple(succeeded), tuple(failed))

    async def send(self, messages: Sequence[OutgoingMessage]) -> BatchOutcome:
        self._check_open()
        self._count_calls("SendMessageBatch", len(messages), sized=messages)
        now_time = self._clock()
        sent_time = now_time.replace(microsecond=now_time.microsecond // 1000 * 1000)
        succeeded: list[str] = []
        failed: list[BatchFailure] = []
        for message in messages:
            _, failure = check_outgoing(
                message,
                fifo=self._fifo,
                content_based_deduplication=self._content_based_deduplication,
            )
            if failure is not None:
                failed.append(failure)
                continue
            succeeded.append(message.id)
            if self._fifo and self._is_duplicate(message, now_time.timestamp()):
                continue  # SQS accepts a duplicate and drops it
            group = message.group_id if self._fifo else None
            self._store(_Stored(f"{self.name}-{self._sent + 1}", message.body, sent_time, group))
        if succeeded:
            self._arrival.set()
        return BatchOutcome(tuple(succeeded), tuple(failed))

    async def close(self) -> None:
        self._closed = True
        self._arrival.set()

    async def __aenter__(self) -> InMemoryQueue:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- inspection, for tests ------------------------------------------------------------

    def counts(self) -> QueueCounts:
        now = self._now()
        in_flight = sum(1 for m in self._messages.values() if m.visible_from > now)
        return QueueCounts(len(self._messages) - in_flight, in_flight)

    # -- internals --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise QueueError(f"in-memory queue {self.name!r} is closed")

    def _now(self) -> float:
        return self._clock().timestamp()

    def _count_calls(
        self, api: str, entries: int, sized: Sequence[OutgoingMessage] | None = None
    ) -> None:
        if sized is not None:
            self.api_calls[api] += sum(1 for _ in chunk(sized, lambda m: len(m.body)))
        else:
            self.api_calls[api] += -(-entries // 10)

    def _is_duplicate(self, message: OutgoingMessage, now: float) -> bool:
        key = message.deduplication_id or hashlib.sha256(message.body).hexdigest()
        if self._dedup_until.get(key, 0.0) > now:
            return True
        self._dedup_until[key] = now + DEDUPLICATION_WINDOW_SECONDS
        return False

    def _store(self, stored: _Stored) -> None:
        self._sent += 1
        self._messages[self._sent] = stored

    def _take(self, max_messages: int, timeout: int) -> list[QueueMessage]:
        """Up to ``max_messages`` visible messages, oldest sent first; on a FIFO queue none of
        a group with a message in flight."""
        now = self._now()
        busy_groups = {
            m.group_id for m in self._messages.values() if self._fifo and m.visible_from > now
        }
        taken: list[QueueMessage] = []
        for seq, stored in list(self._messages.items()):
            if len(taken) == max_messages:
                break
            if stored.visible_from > now or stored.group_id in busy_groups:
                continue
            if self._redriven(seq, stored):
                continue
            taken.append(self._deliver(seq, stored, now + timeout))
        return taken

    def _deliver(self, seq: int, stored: _Stored, visible_from: float) -> QueueMessage:
        """Hand out ``stored`` under a new receipt handle (the old one is stale from now on)."""
        if stored.receipt_handle is not None:
            del self._by_handle[stored.receipt_handle]
        self._handles += 1
        stored.receipt_handle = f"{self.name}#{self._handles}"
        self._by_handle[stored.receipt_handle] = seq
        stored.receive_count += 1
        stored.visible_from = visible_from
        return QueueMessage(
            stored.message_id,
            stored.receipt_handle,
            stored.body,
            stored.sent_time,
            stored.receive_count,
            stored.group_id,
        )

    def _redriven(self, seq: int, stored: _Stored) -> bool:
        """Move a message received too often to the dead-letter queue, as SQS does on receive."""
        limit = self._max_receive_count
        if limit is None or self._dead_letter_queue is None or stored.receive_count < limit:
            return False
        del self._messages[seq]
        if stored.receipt_handle is not None:
            del self._by_handle[stored.receipt_handle]
        dead = self._dead_letter_queue
        dead._store(
            _Stored(
                stored.message_id,
                stored.body,
                stored.sent_time,
                stored.group_id,
                stored.receive_count,
            )
        )
        dead._arrival.set()
        return True

    def _seconds_to_next_expiry(self) -> float | None:
        now = self._now()
        deadlines = [m.visible_from for m in self._messages.values() if m.visible_from > now]
        return min(deadlines) - now if deadlines else None


def _invalid_handle(message: QueueMessage) -> BatchFailure:
    return _failure(
        message.message_id,
        "ReceiptHandleIsInvalid",
        f"receipt handle {message.receipt_handle!r:.80} is stale or unknown",
    )
