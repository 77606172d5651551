"""The in-memory fake of the queue port: SQS semantics, no network, time from a clock.

What it keeps from SQS: visibility timeouts (driven by the injected clock), receive counts,
redrive to a dead-letter queue once a message has been received ``max_receive_count`` times,
receipt handles that go stale when the message is received again, and for FIFO queues
per-group ordering (a group with a message in flight delivers nothing else) with
deduplication by id or content over a 5-minute window. Entries SQS would refuse are refused.
It also counts the API calls the SQS adapter would have made, so tests can check batching.

Every operation costs O(batch + log n): visible messages sit in deques, in-flight ones in a
heap keyed by the time they become visible again (stale heap entries are skipped lazily).

Imports: the standard library and this package.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
from collections import Counter, deque
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
_REMEMBERED_DELETES: Final = 100_000  # deleting twice with the same handle succeeds, like SQS
_HEAP_COMPACTION_MIN: Final = 4096


class _Stored:
    """One message held by the fake (mutable; never leaves this module)."""

    __slots__ = (
        "body",
        "deleted",
        "group_id",
        "in_flight",
        "message_id",
        "receipt_handle",
        "receive_count",
        "sent_time",
        "seq",
        "version",
    )

    def __init__(
        self,
        seq: int,
        message_id: str,
        body: bytes,
        sent_time: datetime,
        group_id: str | None,
        receive_count: int = 0,
    ) -> None:
        self.seq = seq
        self.message_id = message_id
        self.body = body
        self.sent_time = sent_time
        self.group_id = group_id
        self.receive_count = receive_count
        self.receipt_handle: str | None = None
        self.in_flight = False
        self.deleted = False
        self.version = 0  # bumped on every visibility change; older heap entries are stale


class _Group:
    """A FIFO message group: its waiting messages in order, and how many are in flight."""

    __slots__ = ("in_flight", "pending", "queued")

    def __init__(self) -> None:
        self.pending: deque[_Stored] = deque()
        self.in_flight = 0
        self.queued = False  # listed in the queue's ready groups


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

        self._seq = 0
        self._handles = 0
        self._ready: deque[_Stored] = deque()  # standard queues
        self._groups: dict[str, _Group] = {}  # FIFO queues
        self._ready_groups: deque[str] = deque()
        self._in_flight: list[tuple[float, int, int, _Stored]] = []
        self._by_handle: dict[str, _Stored] = {}
        self._deleted_handles: set[str] = set()
        self._deleted_order: deque[str] = deque()
        self._dedup_until: dict[str, float] = {}
        self._dedup_order: deque[tuple[float, str]] = deque()
        self._visible_count = 0
        self._in_flight_count = 0
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
        """As SQS; a long poll waits in event-loop time and wakes on a send or a release.

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
        while not got and not self._closed:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._arrival.clear()
            until_expiry = self._seconds_to_next_expiry()
            if until_expiry is not None:
                remaining = min(remaining, max(until_expiry, 0.001))
            try:
                async with asyncio.timeout(remaining):
                    await self._arrival.wait()
            except TimeoutError:
                pass
            if not self._closed:
                got = self._take(max_messages, timeout)
        return got

    async def delete(self, messages: Sequence[QueueMessage]) -> BatchOutcome:
        self._check_open()
        self._count_calls("DeleteMessageBatch", len(messages))
        self._expire(self._now())
        succeeded: list[str] = []
        failed: list[BatchFailure] = []
        for message in messages:
            handle = message.receipt_handle
            stored = self._by_handle.pop(handle, None)
            if stored is None:
                if handle in self._deleted_handles:
                    succeeded.append(message.message_id)
                else:
                    failed.append(_invalid_handle(message))
                continue
            stored.deleted = True
            self._remember_deleted(handle)
            if stored.in_flight:
                stored.in_flight = False
                self._in_flight_count -= 1
                if stored.group_id is not None and self._fifo:
                    self._group_slot_freed(stored.group_id)
            else:
                self._visible_count -= 1
            succeeded.append(message.message_id)
        return BatchOutcome(tuple(succeeded), tuple(failed))

    async def change_visibility(
        self, messages: Sequence[QueueMessage], timeout_seconds: int
    ) -> BatchOutcome:
        self._check_open()
        self._count_calls("ChangeMessageVisibilityBatch", len(messages))
        now = self._now()
        self._expire(now)
        succeeded: list[str] = []
        failed: list[BatchFailure] = []
        for message in messages:
            stored = self._by_handle.get(message.receipt_handle)
            if not 0 <= timeout_seconds <= MAX_VISIBILITY_TIMEOUT:
                failed.append(
                    _failure(
                        message.message_id,
                        "InvalidParameterValue",
                        f"visibility timeout {timeout_seconds} is not 0..{MAX_VISIBILITY_TIMEOUT}",
                    )
                )
            elif stored is None:
                failed.append(_invalid_handle(message))
            elif not stored.in_flight:
                failed.append(
                    _failure(message.message_id, "MessageNotInflight", "the message is visible")
                )
            else:
                stored.version += 1
                if timeout_seconds == 0:
                    self._make_visible(stored)
                else:
                    self._push_in_flight(stored, now + timeout_seconds)
                succeeded.append(message.message_id)
        if timeout_seconds == 0 and succeeded:
            self._arrival.set()
        return BatchOutcome(tuple(succeeded), tuple(failed))

    async def send(self, messages: Sequence[OutgoingMessage]) -> BatchOutcome:
        self._check_open()
        self._count_calls("SendMessageBatch", len(messages), sized=messages)
        now_time = self._clock()
        now = now_time.timestamp()
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
            if self._fifo and self._is_duplicate(message, now):
                succeeded.append(message.id)  # SQS accepts a duplicate and drops it
                continue
            self._seq += 1
            group = message.group_id if self._fifo else None
            self._enqueue(
                _Stored(self._seq, f"{self.name}-{self._seq}", message.body, sent_time, group)
            )
            succeeded.append(message.id)
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
        self._expire(self._now())
        return QueueCounts(self._visible_count, self._in_flight_count)

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
        order = self._dedup_order
        while order and order[0][0] <= now:
            until, key = order.popleft()
            if self._dedup_until.get(key) == until:
                del self._dedup_until[key]
        key = message.deduplication_id or hashlib.sha256(message.body).hexdigest()
        if self._dedup_until.get(key, 0.0) > now:
            return True
        until = now + DEDUPLICATION_WINDOW_SECONDS
        self._dedup_until[key] = until
        order.append((until, key))
        return False

    def _enqueue(self, stored: _Stored) -> None:
        self._visible_count += 1
        if stored.group_id is None or not self._fifo:
            self._ready.append(stored)
            return
        group = self._groups.get(stored.group_id)
        if group is None:
            group = self._groups[stored.group_id] = _Group()
        group.pending.append(stored)
        if not group.queued and group.in_flight == 0:
            group.queued = True
            self._ready_groups.append(stored.group_id)

    def _take(self, max_messages: int, timeout: int) -> list[QueueMessage]:
        now = self._now()
        self._expire(now)
        out: list[QueueMessage] = []
        if not self._fifo:
            ready = self._ready
            while ready and len(out) < max_messages:
                stored = ready.popleft()
                if not stored.deleted and not self._redriven(stored):
                    out.append(self._deliver(stored, now, timeout))
            return out
        ready_groups = self._ready_groups
        while ready_groups and len(out) < max_messages:
            group_id = ready_groups[0]
            group = self._groups[group_id]
            while group.pending and len(out) < max_messages:
                stored = group.pending.popleft()
                if not stored.deleted and not self._redriven(stored):
                    out.append(self._deliver(stored, now, timeout))
                    group.in_flight += 1
            if group.in_flight or not group.pending:
                ready_groups.popleft()
                group.queued = False
                if not group.in_flight:
                    del self._groups[group_id]
        return out

    def _redriven(self, stored: _Stored) -> bool:
        """Move a message received too often to the dead-letter queue, as SQS does on receive."""
        limit = self._max_receive_count
        if limit is None or self._dead_letter_queue is None or stored.receive_count < limit:
            return False
        if stored.receipt_handle is not None:
            self._by_handle.pop(stored.receipt_handle, None)
        stored.deleted = True
        self._visible_count -= 1
        self._dead_letter_queue._accept_redriven(stored)
        return True

    def _accept_redriven(self, source: _Stored) -> None:
        self._seq += 1
        self._enqueue(
            _Stored(
                self._seq,
                source.message_id,
                source.body,
                source.sent_time,
                source.group_id,
                source.receive_count,
            )
        )
        self._arrival.set()

    def _deliver(self, stored: _Stored, now: float, timeout: int) -> QueueMessage:
        self._handles += 1
        handle = f"{self.name}#{self._handles}"
        if stored.receipt_handle is not None:
            del self._by_handle[stored.receipt_handle]  # the old handle is stale from now on
        stored.receipt_handle = handle
        self._by_handle[handle] = stored
        stored.receive_count += 1
        stored.in_flight = True
        stored.version += 1
        self._visible_count -= 1
        self._in_flight_count += 1
        self._push_in_flight(stored, now + timeout)
        return QueueMessage(
            stored.message_id,
            handle,
            stored.body,
            stored.sent_time,
            stored.receive_count,
            stored.group_id,
        )

    def _push_in_flight(self, stored: _Stored, visible_at: float) -> None:
        heap = self._in_flight
        heapq.heappush(heap, (visible_at, stored.seq, stored.version, stored))
        if len(heap) > _HEAP_COMPACTION_MIN and len(heap) > 4 * self._in_flight_count:
            heap[:] = [entry for entry in heap if _current(entry)]
            heapq.heapify(heap)

    def _expire(self, now: float) -> None:
        """Make every in-flight message whose visibility timeout has passed visible again."""
        heap = self._in_flight
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if _current(entry):
                self._make_visible(entry[3])

    def _seconds_to_next_expiry(self) -> float | None:
        return self._in_flight[0][0] - self._now() if self._in_flight else None

    def _make_visible(self, stored: _Stored) -> None:
        stored.in_flight = False
        self._in_flight_count -= 1
        self._visible_count += 1
        if stored.group_id is None or not self._fifo:
            self._ready.append(stored)
            return
        # Back to its place at the head of the group: only messages taken with it precede it.
        group = self._groups[stored.group_id]
        pending = group.pending
        index = 0
        while index < len(pending) and pending[index].seq < stored.seq:
            index += 1
        pending.insert(index, stored)
        self._group_slot_freed(stored.group_id)

    def _group_slot_freed(self, group_id: str) -> None:
        group = self._groups[group_id]
        group.in_flight -= 1
        if group.in_flight:
            return
        if group.pending:
            if not group.queued:
                group.queued = True
                self._ready_groups.append(group_id)
        elif not group.queued:
            del self._groups[group_id]

    def _remember_deleted(self, handle: str) -> None:
        self._deleted_handles.add(handle)
        self._deleted_order.append(handle)
        if len(self._deleted_order) > _REMEMBERED_DELETES:
            self._deleted_handles.discard(self._deleted_order.popleft())


def _current(entry: tuple[float, int, int, _Stored]) -> bool:
    stored = entry[3]
    return stored.in_flight and not stored.deleted and stored.version == entry[2]


def _invalid_handle(message: QueueMessage) -> BatchFailure:
    return _failure(
        message.message_id,
        "ReceiptHandleIsInvalid",
        f"receipt handle {message.receipt_handle!r:.80} is stale or unknown",
    )
