"""SQS message bodies -> normalized events.

A body is what an EventBridge rule put on the queue: an envelope whose ``detail`` is one
CloudTrail record (``detail-type`` "AWS API Call via CloudTrail", "AWS Console Sign In via
CloudTrail", "AWS Service Event via CloudTrail", "AWS Insight via CloudTrail", ...). For
convenience a body may also be a bare CloudTrail record, or an SNS notification wrapping either.
A body that is none of these is a failure of that message only.

Bodies take the parser's fast path (:mod:`detector.events._fast`) and fall back, body by body,
on the reference parser, which reads anything else and names what is wrong.

Imports: orjson, and this package's parsers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import orjson

from detector.events._fast import Declined, body_row
from detector.events._parse import (
    ParseResult,
    RecordFailure,
    _failure,
    dict_row,
    rows_to_events,
    unexpected,
)
from detector.events._row import FieldError

__all__ = [
    "CLOUDTRAIL_DETAIL_SUFFIX",
    "DEFAULT_MAX_BODY_BYTES",
    "envelopes_to_events",
    "record_of_body",
]

CLOUDTRAIL_DETAIL_SUFFIX: Final = "via CloudTrail"
# SQS takes messages of up to 1 MiB (256 KiB before 2025); a longer body (a JSONL line) is refused.
DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024


class _BodyError(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason


def _record_of(doc: Any) -> Any:
    if not isinstance(doc, dict):
        raise _BodyError("<body>", f"expected a JSON object, got {type(doc).__name__}")
    detail_type = doc.get("detail-type")
    if detail_type is not None:
        if not isinstance(detail_type, str) or not detail_type.endswith(CLOUDTRAIL_DETAIL_SUFFIX):
            raise _BodyError("detail-type", f"not a CloudTrail event: {detail_type!r:.80}")
        detail = doc.get("detail")
        if not isinstance(detail, dict):
            raise _BodyError("detail", "missing or not an object")
        return detail
    if "eventID" in doc or "eventVersion" in doc:
        return doc  # a bare CloudTrail record
    if doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        return _record_of(_loads(doc["Message"], "Message"))
    raise _BodyError("detail-type", "neither an EventBridge envelope nor a CloudTrail record")


def _loads(text: bytes | str, field: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as err:
        raise _BodyError(field, f"not valid JSON ({err})") from None


def record_of_body(body: bytes | str) -> Any:
    """The CloudTrail record inside one message body; raises ``ValueError`` naming the field."""
    try:
        return _record_of(_loads(body, "<body>"))
    except _BodyError as err:
        raise ValueError(f"field '{err.field}': {err.reason}") from None


def envelopes_to_events(
    bodies: Sequence[bytes | str],
    *,
    message_ids: Sequence[str] | None = None,
    received_times: Sequence[datetime | None] | None = None,
    not_after: datetime | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> ParseResult:
    """Normalize a batch of message bodies; failures carry the message id as their origin.

    A body longer than ``max_body_bytes`` is refused unread; event times are bounded as
    :func:`~detector.events.records_to_events` says (``not_after`` for bodies without a
    received time)."""
    ids = message_ids if message_ids is not None else [f"body#{i}" for i in range(len(bodies))]
    rows: list[tuple[Any, ...]] = []
    origins: list[str] = []
    times: list[datetime | None] = []
    failures: list[RecordFailure] = []
    record_failures: list[RecordFailure] = []
    for i, body in enumerate(bodies):
        if len(body) > max_body_bytes:
            why = f"{len(body):,} bytes, over the cap of {max_body_bytes:,} for one message"
            failures.append(RecordFailure(ids[i], None, None, "<body>", why))
            continue
        try:
            rows.append(body_row(body))
        except Declined:  # anything unusual: the reference parser reads it and names the fault
            try:
                record = _record_of(_loads(body, "<body>"))
            except _BodyError as err:
                failures.append(RecordFailure(ids[i], None, None, err.field, err.reason))
                continue
            try:
                rows.append(dict_row(record))
            except FieldError as err:
                record_failures.append(_failure(record, i, err.field, err.reason, "sqs", ids))
                continue
            except Exception as err:  # anything else one body provokes is its failure alone
                record_failures.append(_failure(record, i, "<record>", unexpected(err), "sqs", ids))
                continue
        origins.append(ids[i])
        times.append(received_times[i] if received_times is not None else None)
    result = rows_to_events(
        rows,
        list(range(len(rows))),
        record_failures,
        origin="sqs",
        origins=origins,
        received_times=times,
        not_after=not_after,
    )
    return ParseResult(result.events, tuple(failures) + result.failures, result.duplicate_event_ids)
