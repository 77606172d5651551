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
from typing import Final

import polars as pl

from detector.events import RecordFailure, empty_events, envelopes_to_events
from detector.ingest import QueueMessage

__all__ = ["DECODE_CHUNK", "DecodedMessages", "decode_batch"]

# Decoding costs more per body in batches much larger than this (bigger working set), while
# the pipeline step costs less per event in larger batches: a large batch is decoded in
# chunks and stepped whole. Duplicates across chunks are dropped by the step instead.
DECODE_CHUNK: Final = 1000


@dataclass(frozen=True, slots=True)
class DecodedMessages:
    """The events of a batch of queue messages, and the receipt handles of its poison messages
    with why."""

    events: pl.DataFrame
    poison: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    duplicates_in_batch: int = 0


def decode_batch(messages: Sequence[QueueMessage], *, max_body_bytes: int) -> DecodedMessages:
    """Decode ``messages``; failures name the message id, the field and the reason.
    ``duplicates_in_batch`` counts the events dropped as repeated within a chunk."""
    poison: defaultdict[str, list[str]] = defaultdict(list)
    handles_of: defaultdict[str, list[str]] = defaultdict(list)
    kept: list[bytes] = []
    ids: list[str] = []
    sent: list[datetime | None] = []
    for message in messages:
        size = len(message.body)
        if size > max_body_bytes:
            poison[message.receipt_handle].append(
                f"message {message.message_id}: body of {size} bytes exceeds {max_body_bytes}"
            )
            continue
        handles_of[message.message_id].append(message.receipt_handle)
        kept.append(message.body)
        ids.append(message.message_id)
        sent.append(message.sent_time)
    if not kept:
        return DecodedMessages(empty_events(), _frozen(poison))
    frames: list[pl.DataFrame] = []
    duplicates = 0
    for start in range(0, len(kept), DECODE_CHUNK):
        end = start + DECODE_CHUNK
        result = envelopes_to_events(
            kept[start:end], message_ids=ids[start:end], received_times=sent[start:end]
        )
        frames.append(result.events)
        duplicates += len(result.duplicate_event_ids)
        for failure in result.failures:
            for handle in handles_of.get(failure.origin, ()):
                poison[handle].append(_describe(failure))
    events = frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")
    return DecodedMessages(events, _frozen(poison), duplicates)


def _describe(failure: RecordFailure) -> str:
    return f"message {failure}"


def _frozen(poison: Mapping[str, list[str]]) -> dict[str, tuple[str, ...]]:
    return {handle: tuple(reasons) for handle, reasons in poison.items()}
