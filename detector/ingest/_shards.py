"""Kinesis rules as pure functions: which consumer owns which shard, how records are batched
into PutRecords calls, and which sequence number a checkpoint may record per shard.

- :func:`owned_shards`: consumer ``ordinal`` of ``count`` owns the shards whose index in the
  stream's shard list (ListShards order, i.e. by shard id) is ``ordinal`` modulo ``count``;
- :func:`put_batches`: records in order, cut at 500 records or 5 MiB per call (the data and the
  partition key count); :func:`record_size` above 1 MiB is refused by the caller;
- :func:`safe_position`: the last sequence number of a shard below which every record read is
  done (in a checkpoint, or settled), so that a restart from it neither skips a record whose
  events are not in the saved state nor needs more than the event-id dedup for the others.

Sequence numbers are decimal strings of up to 128 bits: compared as integers. Imports: the
standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_PUT_BYTES",
    "MAX_PUT_RECORDS",
    "MAX_RECORD_BYTES",
    "OutgoingRecord",
    "owned_shards",
    "partition_key_of",
    "put_batches",
    "record_size",
    "safe_position",
    "sequence_key",
]

MAX_PUT_RECORDS: Final = 500  # records per PutRecords call
MAX_PUT_BYTES: Final = 5 * 1024 * 1024  # data + partition keys per PutRecords call
MAX_RECORD_BYTES: Final = 1024 * 1024  # data + partition key of one record
MAX_PARTITION_KEY_CHARS: Final = 256


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """One record to put: ``id`` is the caller's (the SQS message id) and comes back in the
    outcome; ``partition_key`` at most 256 characters (see :func:`partition_key_of`)."""

    id: str
    partition_key: str
    data: bytes


def partition_key_of(principal_key: str) -> str:
    """Kinesis takes partition keys of 1..256 Unicode characters and hashes them with MD5: a
    longer principal key (a long role path plus a session e-mail) keeps its first 256; keys
    that share those land on one shard, which is all the partitioning needs."""
    return principal_key[:MAX_PARTITION_KEY_CHARS] or "-"


def record_size(record: OutgoingRecord) -> int:
    return len(record.data) + len(record.partition_key.encode("utf-8"))


def put_batches(records: Sequence[OutgoingRecord]) -> list[list[OutgoingRecord]]:
    """``records`` in order, in groups within PutRecords' limits (each record must itself be
    within :data:`MAX_RECORD_BYTES`)."""
    batches: list[list[OutgoingRecord]] = []
    current: list[OutgoingRecord] = []
    size = 0
    for record in records:
        n = record_size(record)
        if current and (len(current) == MAX_PUT_RECORDS or size + n > MAX_PUT_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(record)
        size += n
    if current:
        batches.append(current)
    return batches


def owned_shards(shard_ids: Sequence[str], ordinal: int, count: int) -> list[str]:
    """The shards consumer ``ordinal`` (0-based) of ``count`` reads, in the stream's order."""
    if count < 1 or not 0 <= ordinal < count:
        raise ValueError(f"consumer ordinal {ordinal} is not within 0..{count - 1}")
    ordered = sorted(shard_ids)
    return [shard for i, shard in enumerate(ordered) if i % count == ordinal]


def sequence_key(sequence_number: str) -> int:
    return int(sequence_number)


def safe_position(read: Iterable[str], done: Iterable[str], previous: str | None) -> str | None:
    """The sequence number a checkpoint records for one shard.

    ``read``: the sequence numbers read from the shard and not yet settled (any order);
    ``done``: those of them whose events are in the state being saved, or that were given up;
    ``previous``: the position recorded so far (the restart point when nothing else is done).
    The answer is the highest done sequence number below the lowest one not done: a restart
    reads everything after it again, so a record not in the state is never skipped.
    """
    done_keys = {sequence_key(s) for s in done}
    pending = sorted(read, key=sequence_key)
    position = previous
    for sequence in pending:
        if sequence_key(sequence) not in done_keys:
            break
        position = sequence
    return position
