"""The router's decisions as pure functions of messages, outcomes, counts and times.

A message's life in the router::

    received (SQS, invisible for visibility_timeout)
      ├─ body does not decode ─► poison: never deleted (the redrive policy takes it to the DLQ)
      └─ record (partition key = principal key) ─► PutRecords
            ├─ every record of the message accepted ─► deleted from SQS
            ├─ some record refused, time left ─► those records retried after a backoff
            └─ refused and its receipt close to expiry ─► left undeleted: SQS delivers it
               again and it is put again (a duplicate the consumers' event-id dedup absorbs)

:func:`route_messages` decodes; :func:`settle` takes the put outcome and says what to delete,
what to retry and what to leave; :func:`batch_due` says when to cut a PutRecords batch.

Imports: the standard library and the detector's events and ingest values. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final

from detector.events import principal_of, record_of_body
from detector.ingest import OutgoingRecord, QueueMessage, partition_key_of
from detector.route._settings import DEFAULT_BATCH_SECONDS, DEFAULT_VISIBILITY_TIMEOUT

__all__ = [
    "Pending",
    "RouterConfig",
    "Routing",
    "Settlement",
    "batch_due",
    "route_messages",
    "settle",
]

DEFAULT_BATCH_RECORDS: Final = 500  # one PutRecords call
DEFAULT_EXPIRY_MARGIN_SECONDS: Final = 10.0
DEFAULT_RETRY_BASE_SECONDS: Final = 0.2
DEFAULT_RETRY_MAX_SECONDS: Final = 5.0


@dataclass(frozen=True, slots=True)
class RouterConfig:
    batch_records: int = DEFAULT_BATCH_RECORDS
    batch_seconds: float = DEFAULT_BATCH_SECONDS
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT
    expiry_margin_seconds: float = DEFAULT_EXPIRY_MARGIN_SECONDS
    retry_base_seconds: float = DEFAULT_RETRY_BASE_SECONDS
    retry_max_seconds: float = DEFAULT_RETRY_MAX_SECONDS


@dataclass(frozen=True, slots=True)
class Pending:
    """One record waiting to be put: its message, when the message was received, how many
    puts it has failed, and not before when it may be tried again."""

    message: QueueMessage
    record: OutgoingRecord
    received_at: datetime
    failures: int = 0
    not_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class Routing:
    """What a batch of messages became: records to put, and poison with why."""

    pending: list[Pending] = field(default_factory=list)
    poison: dict[str, str] = field(default_factory=dict)  # message id -> reason


@dataclass(frozen=True, slots=True)
class Settlement:
    delete: list[QueueMessage] = field(default_factory=list)
    retry: list[Pending] = field(default_factory=list)
    leave: list[QueueMessage] = field(default_factory=list)  # undeleted, to come back from SQS


def route_messages(messages: Sequence[QueueMessage], received_at: datetime) -> Routing:
    """One record per message body (an EventBridge envelope holds one CloudTrail record), keyed
    by the principal key the pipeline derives (:func:`~detector.events.principal_of`)."""
    routing = Routing()
    for message in messages:
        try:
            record = record_of_body(message.body)
            if not isinstance(record, dict):
                raise ValueError("field '<record>': not a JSON object")
            key = principal_of(record.get("userIdentity"), record.get("recipientAccountId")).key
        except ValueError as err:
            routing.poison[message.message_id] = str(err)
            continue
        data = OutgoingRecord(message.message_id, partition_key_of(key), message.body)
        routing.pending.append(Pending(message, data, received_at))
    return routing


def _retry_delay(failures: int, config: RouterConfig) -> float:
    return float(min(config.retry_max_seconds, config.retry_base_seconds * 2 ** (failures - 1)))


def settle(
    put: Sequence[Pending], failed: Mapping[str, str], now: datetime, config: RouterConfig
) -> Settlement:
    """After a PutRecords of ``put``: ``failed`` maps the record ids refused (after the
    adapter's own retries) to why. A message is deleted only when every record of it was
    accepted; a refused record is retried while its receipt has time left, else left."""
    refused_messages = {p.message.message_id for p in put if p.record.id in failed}
    settlement = Settlement()
    seen: set[str] = set()
    for pending in put:
        message_id = pending.message.message_id
        if message_id not in refused_messages:
            if message_id not in seen:
                settlement.delete.append(pending.message)
                seen.add(message_id)
            continue
        if pending.record.id not in failed:
            continue  # accepted, but a sibling record was not: the message waits for it
        failures = pending.failures + 1
        retry_at = now + timedelta(seconds=_retry_delay(failures, config))
        expires = pending.received_at + timedelta(
            seconds=config.visibility_timeout - config.expiry_margin_seconds
        )
        if retry_at < expires:
            settlement.retry.append(replace(pending, failures=failures, not_before=retry_at))
        elif message_id not in seen:
            settlement.leave.append(pending.message)
            seen.add(message_id)
    return settlement


def batch_due(
    buffered: int, oldest: datetime | None, now: datetime, config: RouterConfig, *, draining: bool
) -> bool:
    """Cut a PutRecords batch when it is full, when its oldest record has waited
    ``batch_seconds``, or when stopping."""
    if buffered == 0:
        return False
    if draining or buffered >= config.batch_records:
        return True
    return oldest is not None and now - oldest >= timedelta(seconds=config.batch_seconds)
