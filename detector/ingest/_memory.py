"""The in-memory fake of the queue port: SQS semantics, no network, time from a clock.

What it keeps from SQS: visibility timeouts (driven by the injected clock), receive counts,
redrive to a dead-letter queue once a message has been received ``max_receive_count`` times,
receipt handles that go stale when the message is received again, and for FIFO queues
per-group ordering (a group with a message in flight delivers nothing else) with
deduplication by id or content over a 5-minute window. Entries SQS would refuse are refused.
It also counts the API calls the SQS adapter would have made, so tests can check batching.

Every operation costs O(batch + log n): visible messages sit in deques, in-flight ones in a
heap keyed by the time they become visible again. A receive or visibility change gives all its
messages the same deadline, so it pushes one heap entry for all of them (one heap operation per
call, not per message); a message points at the entry that holds its current deadline, and an
entry counts the messages it still holds, so one that all have left (deleted, released,
extended) is dropped whole, lazily.

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
        "expiry",
        "group_id",
        "in_flight",
        "message_id",
        "receipt_handle",
        "receive_count",
        "sent_time",
        "seq",
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
        # The heap entry that holds this message's current deadline (while in flight); any
        # other entry it is still listed in is stale for it.
        self.expiry: _Expiry | None = None


class _Expiry:
    """One heap entry's messages; ``live`` of them still have their deadline here."""

    __slots__ = ("live", "members")

    def __init__(self, members: list[_Stored]) -> None:
        self.members = members
        self.live = len(members)


def _leave_expiry(stored: _Stored) -> None:
    """``stored`` is no longer in flight until the deadline it had (if any)."""
    expiry = stored.expiry
    if expiry is not None:
        expiry.live -= 1
        stored.expiry = None


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
        # (visible again at, push order, members): one entry per receive or visibility change.
        self._in_flight: list[tuple[float, int, _Expiry]] = []
        self._in_flight_slots = 0  # members listed in the heap, stale ones included
        self._pushes = 0
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
        by_handle = self._by_handle
        deleted_handles = self._deleted_handles
        deleted_order = self._deleted_order
        for message in messages:
            handle = message.receipt_handle
            stored = by_handle.pop(handle, None)
            if stored is None:
                if handle in deleted_handles:
                    succeeded.append(message.message_id)
                else:
                    failed.append(_invalid_handle(message))
                continue
            stored.deleted = True
            deleted_handles.add(handle)
            deleted_order.append(handle)
            if stored.in_flight:
                _leave_expiry(stored)
                stored.in_flight = False
                self._in_flight_count -= 1
                if stored.group_id is not None and self._fifo:
                    self._group_slot_freed(stored.group_id)
            else:
                self._visible_count -= 1
            succeeded.append(message.message_id)
        while len(deleted_order) > _REMEMBERED_DELETES:
            deleted_handles.discard(deleted_order.popleft())
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
        extended = _Expiry([])
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
                if timeout_seconds == 0:
                    _leave_expiry(stored)
                    self._make_visible(stored)
                elif stored.expiry is not extended:  # listed once, however often named
                    _leave_expiry(stored)
                    stored.expiry = extended
                    extended.members.append(stored)
                succeeded.append(message.message_id)
        if extended.members:
            extended.live = len(extended.members)
            self._push_in_flight(extended, now + timeout_seconds)
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
        taken: list[_Stored] = []
        if not self._fifo:
            ready = self._ready
            while ready and len(taken) < max_messages:
                stored = ready.popleft()
                if not stored.deleted and not self._redriven(stored):
                    taken.append(stored)
        else:
            ready_groups = self._ready_groups
            while ready_groups and len(taken) < max_messages:
                group_id = ready_groups[0]
                group = self._groups[group_id]
                while group.pending and len(taken) < max_messages:
                    stored = group.pending.popleft()
                    if not stored.deleted and not self._redriven(stored):
                        taken.append(stored)
                        group.in_flight += 1
                if group.in_flight or not group.pending:
                    ready_groups.popleft()
                    group.queued = False
                    if not group.in_flight:
                        del self._groups[group_id]
        if not taken:
            return []
        return self._deliver(taken, now + timeout)

    def _deliver(self, taken: list[_Stored], visible_at: float) -> list[QueueMessage]:
        """Hand out ``taken`` under new receipt handles, in flight until ``visible_at``."""
        by_handle = self._by_handle
        prefix = f"{self.name}#"
        number = self._handles
        expiry = _Expiry(taken)
        out: list[QueueMessage] = []
        for stored in taken:
            number += 1
            handle = f"{prefix}{number}"
            if stored.receipt_handle is not None:
                del by_handle[stored.receipt_handle]  # the old handle is stale from now on
            stored.receipt_handle = handle
            by_handle[handle] = stored
            stored.receive_count += 1
            stored.in_flight = True
            stored.expiry = expiry
            out.append(
                QueueMessage(
                    stored.message_id,
                    handle,
                    stored.body,
                    stored.sent_time,
                    stored.receive_count,
                    stored.group_id,
                )
            )
        self._handles = number
        self._visible_count -= len(taken)
        self._in_flight_count += len(taken)
        self._push_in_flight(expiry, visible_at)
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

    def _push_in_flight(self, expiry: _Expiry, visible_at: float) -> None:
        """Put ``expiry`` (whose members are in flight until ``visible_at``) on the heap."""
        self._pushes += 1
        heapq.heappush(self._in_flight, (visible_at, self._pushes, expiry))
        self._in_flight_slots += len(expiry.members)
        slots = self._in_flight_slots
        if slots > _HEAP_COMPACTION_MIN and slots > 4 * self._in_flight_count:
            self._compact()

    def _compact(self) -> None:
        """Drop the heap's entries no message has its deadline in any more, and the stale
        members of the others."""
        kept: list[tuple[float, int, _Expiry]] = []
        slots = 0
        for entry in self._in_flight:
            expiry = entry[2]
            if not expiry.live:
                continue
            if expiry.live < len(expiry.members):
                expiry.members = [m for m in expiry.members if m.expiry is expiry]
            kept.append(entry)
            slots += len(expiry.members)
        heapq.heapify(kept)
        self._in_flight = kept
        self._in_flight_slots = slots

    def _expire(self, now: float) -> None:
        """Make every in-flight message whose visibility timeout has passed visible again, in
        the order of their deadlines, then of their sending."""
        heap = self._in_flight
        if not heap or heap[0][0] > now:
            return
        expired: list[tuple[float, int, _Stored]] = []
        while heap and heap[0][0] <= now:
            visible_at, _, expiry = heapq.heappop(heap)
            self._in_flight_slots -= len(expiry.members)
            if expiry.live:
                expired.extend(
                    (visible_at, stored.seq, stored)
                    for stored in expiry.members
                    if stored.expiry is expiry
                )
        expired.sort(key=lambda item: (item[0], item[1]))
        for _, _, stored in expired:
            stored.expiry = None
            self._make_visible(stored)

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


def _invalid_handle(message: QueueMessage) -> BatchFailure:
    return _failure(
        message.message_id,
        "ReceiptHandleIsInvalid",
        f"receipt handle {message.receipt_handle!r:.80} is stale or unknown",
    )
