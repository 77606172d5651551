"""The parser's fast path: JSON text straight into typed records with msgspec.

The reference parser (:func:`detector.events._parse._row`) reads dicts that orjson built for
every key of every record, then pulls ~40 fields out of them with ``dict.get``; on a real trail
that is two thirds of the cost of reading it. Here msgspec decodes the same text into
:class:`_Record` structs that hold only the fields a row needs (the rest is skipped while
parsing, never built), and :func:`struct_row` reads them as attributes. Nested objects whose
content matters as a whole (``userIdentity``, ``requestParameters``, ``resources``, ...) are
still decoded as plain dicts and lists, so the principal and the JSON texts come from exactly
the same code as in the reference.

The contract: for every input the fast path accepts, its rows are the reference's rows (the
property tests in ``tests/property/test_fast_parse.py`` check it), and for everything else it
*declines* and the caller parses that unit (one message body, or one archive file) with the
reference parser, which names the record and the field. It declines on anything unusual: a
field of an unexpected JSON type, a record without ``eventID`` (its id is a hash of the whole
record, which the struct does not keep), a missing ``eventTime``, a body that is not an
EventBridge envelope, invalid JSON. An integer beyond 64 bits (which no AWS service writes) is
read as an integer where orjson reads a float, and the rows are still the same: inside a
nested JSON text the fast path declines (orjson will not write it back), and no other column
keeps a number.

Imports: msgspec, and this package's parser.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from detector.events._parse import (
    _EMPTY,
    _TRUE,
    _bool,
    _FieldError,
    _json_text,
    _kms_key,
    _resource_arns,
)
from detector.events._principal import principal_of
from detector.events._source_ip import classify_source_ip

__all__ = ["body_row", "struct_row", "trail_records"]


class _Record(msgspec.Struct, gc=False):
    """The fields of a CloudTrail record that a row reads; every other key is skipped.

    Text fields are typed, so a number where text belongs makes the fast path decline; the
    nested objects are ``Any`` (dicts, lists) and go through the reference's own helpers.
    """

    eventID: str | None = None
    eventTime: str | None = None
    eventVersion: str | None = None
    eventSource: str | None = None
    eventName: str | None = None
    awsRegion: str | None = None
    recipientAccountId: str | None = None
    userIdentity: dict[str, Any] | None = None
    sourceIPAddress: str | None = None
    userAgent: str | None = None
    errorCode: str | None = None
    errorMessage: str | None = None
    readOnly: bool | str | None = None
    managementEvent: bool | str | None = None
    eventType: str | None = None
    eventCategory: str | None = None
    vpcEndpointId: str | None = None
    vpcEndpointAccountId: str | None = None
    sharedEventID: str | None = None
    sessionCredentialFromConsole: bool | str | None = None
    tlsDetails: dict[str, Any] | None = None
    requestParameters: Any = None
    responseElements: Any = None
    additionalEventData: Any = None
    resources: Any = None


class _Trail(msgspec.Struct, gc=False):
    """An archive file: ``{"Records": [...]}``."""

    Records: list[_Record]


class _Envelope(msgspec.Struct, gc=False):
    """An EventBridge envelope; its other keys (id, source, account, time...) are skipped."""

    detail_type: str | None = msgspec.field(default=None, name="detail-type")
    detail: _Record | None = None


_TRAIL: Final = msgspec.json.Decoder(_Trail)
_ENVELOPE: Final = msgspec.json.Decoder(_Envelope)
_SUFFIX: Final = "via CloudTrail"  # as detail-type ends for every CloudTrail event


class Declined(Exception):
    """The fast path does not take this input: parse it with the reference parser."""


def trail_records(text: bytes) -> list[_Record]:
    """The records of one (decompressed) archive file; :class:`Declined` when it is not a
    well-formed ``{"Records": [...]}`` document of object records."""
    try:
        return _TRAIL.decode(text).Records
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise Declined from None


def body_row(body: bytes | str) -> tuple[Any, ...]:
    """The row of one SQS message body holding an EventBridge envelope of a CloudTrail event;
    :class:`Declined` for anything else (a bare record, an SNS notification, a failure)."""
    try:
        envelope = _ENVELOPE.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise Declined from None
    detail_type = envelope.detail_type
    if detail_type is None or envelope.detail is None or not detail_type.endswith(_SUFFIX):
        raise Declined
    return struct_row(envelope.detail)


def struct_row(record: _Record) -> tuple[Any, ...]:
    """:func:`detector.events._parse._row` of a :class:`_Record`: the same tuple, or
    :class:`Declined` wherever the reference would raise or hash the whole record.

    Written as ``_row`` is, line for line, with attributes for ``get``: keep the two in step.
    """
    event_id = record.eventID
    event_time = record.eventTime
    event_source = record.eventSource
    event_name = record.eventName
    if not (event_id and event_time and event_source and event_name):
        raise Declined  # a content id, or a missing required field, to be named
    ui = record.userIdentity
    recipient = record.recipientAccountId
    try:
        if ui is None:
            ui = ctx = attributes = _EMPTY
        else:
            ctx = ui.get("sessionContext") or _EMPTY
            if ctx.__class__ is not dict:
                raise Declined
            attributes = ctx.get("attributes") or _EMPTY
            if attributes.__class__ is not dict:
                raise Declined
        principal = principal_of(ui or None, recipient)
        raw_ip = record.sourceIPAddress
        ip_kind, ip_address = classify_source_ip(raw_ip)
        tls = record.tlsDetails or _EMPTY
        read_only = record.readOnly
        if read_only is not None and read_only.__class__ is not bool:
            read_only = _bool(read_only, "readOnly")
        management = record.managementEvent
        if management is not None and management.__class__ is not bool:
            management = _bool(management, "managementEvent")
        params = record.requestParameters
        resources = record.resources
        extra = record.additionalEventData
        response = record.responseElements
        if isinstance(extra, dict) and "MFAUsed" in extra:
            mfa: bool | None = extra["MFAUsed"] == "Yes"
        else:
            mfa_value = attributes.get("mfaAuthenticated")
            mfa = None if mfa_value is None else (mfa_value is True or mfa_value == "true")
        return (
            event_id,
            event_time,
            record.eventVersion,
            ui.get("accountId") or recipient,
            recipient,
            record.awsRegion,
            event_source,
            event_name,
            read_only,
            record.eventType,
            record.eventCategory,
            management,
            record.errorCode,
            record.errorMessage,
            *principal,
            ui.get("principalId"),
            ui.get("accessKeyId") or None,
            mfa,
            attributes.get("creationDate"),
            ctx.get("ec2RoleDelivery"),
            raw_ip,
            ip_kind,
            ip_address,
            record.userAgent,
            record.vpcEndpointId,
            record.vpcEndpointAccountId,
            tls.get("tlsVersion"),
            tls.get("cipherSuite"),
            record.sessionCredentialFromConsole in _TRUE,
            ui.get("invokedBy"),
            record.sharedEventID,
            _kms_key(event_source, resources, params) if resources or params else None,
            _resource_arns(resources) if resources else None,
            None if params is None else _json_text(params, "requestParameters"),
            None if response is None else _json_text(response, "responseElements"),
            None if extra is None else _json_text(extra, "additionalEventData"),
        )
    except _FieldError:
        raise Declined from None
