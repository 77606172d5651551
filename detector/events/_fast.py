"""The parser's fast path: JSON text straight into :class:`~detector.events._row.Record` structs.

A dict per record, with every key of every record built, is two thirds of the cost of reading a
real trail. Here msgspec decodes the text into structs that hold only the fields a row needs
(the rest is skipped while parsing, never built), and :func:`~detector.events._row.record_row`
(the one row builder) reads them.

The contract: for every input the fast path accepts, its rows are the ones the fallback
(:mod:`detector.events._parse`, which decodes with orjson and builds the same struct) gives,
and for everything else it *declines* and the caller reads that unit (one message body, or one
archive file) with the fallback, which names the record and the field. It declines on anything
unusual: a field of an unexpected JSON type, a record without ``eventID`` (its id is a hash of
the whole record, which the struct does not keep), a missing ``eventTime``, a body that is not
an EventBridge envelope, invalid JSON, nesting deeper than msgspec will go. The property tests in
``tests/property/test_fast_parse.py`` check the contract.

Imports: msgspec, and this package's row builder.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from detector.events._row import FieldError, Record, record_row

__all__ = ["Declined", "body_row", "struct_row", "trail_records"]


class _Trail(msgspec.Struct, gc=False):
    """An archive file: ``{"Records": [...]}``."""

    Records: list[Record]


class _Envelope(msgspec.Struct, gc=False):
    """An EventBridge envelope; its other keys (id, source, account, time...) are skipped."""

    detail_type: str | None = msgspec.field(default=None, name="detail-type")
    detail: Record | None = None


_TRAIL: Final = msgspec.json.Decoder(_Trail)
_ENVELOPE: Final = msgspec.json.Decoder(_Envelope)
_SUFFIX: Final = "via CloudTrail"  # as detail-type ends for every CloudTrail event
# What msgspec raises on text it will not read: invalid or mistyped JSON, and nesting deeper
# than the interpreter's recursion limit (~1,000 levels).
_UNREADABLE: Final = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)


class Declined(Exception):
    """The fast path does not take this input: read it with the fallback, which names why."""


def trail_records(text: bytes | bytearray) -> list[Record]:
    """The records of one (decompressed) archive file; :class:`Declined` when it is not a
    well-formed ``{"Records": [...]}`` document of object records."""
    try:
        return _TRAIL.decode(text).Records
    except _UNREADABLE:
        raise Declined from None


def struct_row(record: Record) -> tuple[Any, ...]:
    """:func:`record_row`, or :class:`Declined` where it would refuse a field."""
    try:
        return record_row(record)
    except (FieldError, RecursionError):
        raise Declined from None


def body_row(body: bytes | str) -> tuple[Any, ...]:
    """The row of one SQS message body holding an EventBridge envelope of a CloudTrail event;
    :class:`Declined` for anything else (a bare record, an SNS notification, a failure)."""
    try:
        envelope = _ENVELOPE.decode(body)
    except _UNREADABLE:
        raise Declined from None
    detail_type = envelope.detail_type
    if detail_type is None or envelope.detail is None or not detail_type.endswith(_SUFFIX):
        raise Declined
    return struct_row(envelope.detail)
