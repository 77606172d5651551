"""A micro-batch of queue messages -> normalized events, and which messages are poison.

A message is *poison* when its body cannot be used: larger than the consumer accepts, not
JSON (truncated, binary), not a CloudTrail envelope or record, or holding a record that fails
normalization. Poison is data here, never an exception: the rest of the batch goes on.

Imports: polars, the detector's events package and the queue message value. No I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from detector.events import RecordFailure, empty_events, envelopes_to_events
from detector.ingest import QueueMessage

__all__ = ["DecodedBatch", "decode_batch"]


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """The events of a batch, and the receipt handles of its poison messages with why."""

    events: pl.DataFrame
    poison: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    duplicates_in_batch: int = 0


def decode_batch(messages: Sequence[QueueMessage], *, max_body_bytes: int) -> DecodedBatch:
    """Decode ``messages``; failures name the message id, the field and the reason."""
    poison: defaultdict[str, list[str]] = defaultdict(list)
    handles_of: defaultdict[str, list[str]] = defaultdict(list)
    bodies: list[bytes] = []
    ids: list[str] = []
    sent: list[datetime | None] = []
    for message in messages:
        if len(message.body) > max_body_bytes:
            poison[message.receipt_handle].append(
                f"message {message.message_id}: body of {len(message.body)} bytes exceeds "
                f"{max_body_bytes}"
            )
            continue
        handles_of[message.message_id].append(message.receipt_handle)
        bodies.append(message.body)
        ids.append(message.message_id)
        sent.append(message.sent_time)
    if not bodies:
        return DecodedBatch(empty_events(), _frozen(poison))
    result = envelopes_to_events(bodies, message_ids=ids, received_times=sent)
    for failure in result.failures:
        for handle in handles_of.get(failure.origin, ()):
            poison[handle].append(_describe(failure))
    return DecodedBatch(result.events, _frozen(poison), len(result.duplicate_event_ids))


def _describe(failure: RecordFailure) -> str:
    return f"message {failure}"


def _frozen(poison: Mapping[str, list[str]]) -> dict[str, tuple[str, ...]]:
    return {handle: tuple(reasons) for handle, reasons in poison.items()}
