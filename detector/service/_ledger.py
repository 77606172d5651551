"""The ledger of held messages: every receipt the consumer holds, its phase and its deadline.

A message is *held* from the receive that returned it until it is deleted, released or handed
back to the queue as poison. Phases, in order::

    BUFFERED ──► PROCESSING ──► PROCESSED ──► CHECKPOINTED ──► (deleted: forgotten)
        ▲             │
        └─────────────┘  the findings could not be sent: back to the buffer, retried

Entries are keyed by receipt handle, not message id: a message received again (its visibility
ran out) is a second receipt, held and processed again; the event-id deduplication in the
pipeline state makes it count once, and each receipt is deleted with its own handle.

This is bookkeeping only (no I/O, time passed in). It is a mutable object rather than a value
because it changes per message at tens of thousands of messages a second; the consumer is its
only owner. Imports: the standard library and :mod:`detector.ingest`'s message value.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from detector.ingest import QueueMessage

__all__ = ["HeldMessage", "Ledger", "Phase"]


class Phase(enum.IntEnum):
    """(An IntEnum: the ledger counts by phase per message, and a plain Enum hashes slowly.)"""

    BUFFERED = 0  # received, waiting for a micro-batch
    PROCESSING = 1  # in the micro-batch being decoded, scored and sent
    PROCESSED = 2  # in the in-memory state and its findings sent; not yet durable
    CHECKPOINTED = 3  # in a durable checkpoint; its delete is under way


@dataclass(slots=True)
class HeldMessage:
    message: QueueMessage
    received_at: datetime
    visible_until: datetime
    phase: Phase
    held: bool = False  # True from the ledger's add until its forget

    @property
    def handle(self) -> str:
        return self.message.receipt_handle


class Ledger:
    """Held receipts by handle, the buffer in arrival order, and counts by phase."""

    def __init__(self) -> None:
        self._held: dict[str, HeldMessage] = {}
        self._buffer: deque[str] = deque()  # may hold handles no longer buffered (skipped)
        self._counts = [0] * len(Phase)

    # -- reading ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, handle: object) -> bool:
        return handle in self._held

    def count(self, phase: Phase) -> int:
        return self._counts[phase]

    def entries(self, phase: Phase | None = None) -> list[HeldMessage]:
        """Held entries in arrival order (all, or those of one phase)."""
        return [e for e in self._held.values() if phase is None or e.phase is phase]

    def oldest_buffered(self) -> datetime | None:
        while self._buffer:
            entry = self._held.get(self._buffer[0])
            if entry is not None and entry.phase is Phase.BUFFERED:
                return entry.received_at
            self._buffer.popleft()
        return None

    def due_for_heartbeat(self, now: datetime, margin: timedelta) -> list[HeldMessage]:
        """Entries whose invisibility ends within ``margin`` (and has not ended already: an
        expired receipt may have gone to another receiver, and its handle is stale)."""
        limit = now + margin
        return [e for e in self._held.values() if now < e.visible_until <= limit]

    # -- changing --------------------------------------------------------------------------

    def add(
        self, messages: Iterable[QueueMessage], now: datetime, visibility_seconds: int
    ) -> list[HeldMessage]:
        """Hold newly received messages (BUFFERED); returns the new entries."""
        until = now + timedelta(seconds=visibility_seconds)
        held = self._held
        buffer = self._buffer
        added = []
        for message in messages:
            handle = message.receipt_handle
            if handle in held:
                continue  # the same receipt twice is the same receipt
            entry = HeldMessage(message, now, until, Phase.BUFFERED, True)
            held[handle] = entry
            buffer.append(handle)
            added.append(entry)
        self._counts[Phase.BUFFERED] += len(added)
        return added

    def take_batch(self, limit: int) -> list[HeldMessage]:
        """Up to ``limit`` buffered entries, oldest first, moved to PROCESSING."""
        batch: list[HeldMessage] = []
        held = self._held
        buffer = self._buffer
        buffered, processing = Phase.BUFFERED, Phase.PROCESSING
        while buffer and len(batch) < limit:
            entry = held.get(buffer.popleft())
            if entry is None or entry.phase is not buffered:
                continue
            entry.phase = processing
            batch.append(entry)
        self._counts[buffered] -= len(batch)
        self._counts[processing] += len(batch)
        return batch

    def requeue(self, entries: Sequence[HeldMessage]) -> None:
        """Put PROCESSING entries back at the head of the buffer, in their order."""
        for entry in reversed(entries):
            if entry.held and entry.phase is Phase.PROCESSING:
                self._move(entry, Phase.BUFFERED)
                self._buffer.appendleft(entry.handle)

    def mark(self, handles: Iterable[str], phase: Phase) -> list[HeldMessage]:
        """Move held entries to ``phase``; handles no longer held are skipped."""
        held = self._held
        return self._move_all([e for e in map(held.get, handles) if e is not None], phase)

    def mark_entries(self, entries: Iterable[HeldMessage], phase: Phase) -> list[HeldMessage]:
        """:meth:`mark` for entries this ledger gave out; those no longer held are skipped."""
        counts = self._counts
        moved = []
        for entry in entries:
            if entry.held:
                counts[entry.phase] -= 1
                entry.phase = phase
                moved.append(entry)
        counts[phase] += len(moved)
        return moved

    def extend(self, handles: Iterable[str], until: datetime) -> None:
        for handle in handles:
            entry = self._held.get(handle)
            if entry is not None:
                entry.visible_until = until

    def forget(self, handles: Iterable[str]) -> list[HeldMessage]:
        """Stop holding (deleted, released, or handed back as poison)."""
        pop = self._held.pop
        gone = [e for e in (pop(handle, None) for handle in handles) if e is not None]
        counts = self._counts
        for entry in gone:
            entry.held = False
            counts[entry.phase] -= 1
        return gone

    def forget_entries(self, entries: Iterable[HeldMessage]) -> list[HeldMessage]:
        """:meth:`forget` for entries this ledger gave out; those no longer held are skipped."""
        held = self._held
        counts = self._counts
        gone = []
        for entry in entries:
            if entry.held:
                entry.held = False
                del held[entry.message.receipt_handle]
                counts[entry.phase] -= 1
                gone.append(entry)
        return gone

    def _move(self, entry: HeldMessage, phase: Phase) -> None:
        self._counts[entry.phase] -= 1
        self._counts[phase] += 1
        entry.phase = phase

    def _move_all(self, entries: list[HeldMessage], phase: Phase) -> list[HeldMessage]:
        counts = self._counts
        for entry in entries:
            counts[entry.phase] -= 1
            entry.phase = phase
        counts[phase] += len(entries)
        return entries
