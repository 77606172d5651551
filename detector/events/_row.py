"""One CloudTrail record -> one row: the parser's single row builder.

Both readers decode a record into the same :class:`Record` struct, which holds only the fields a
row reads: the fast path straight from JSON text with msgspec (:mod:`detector.events._fast`),
the fallback from an already-decoded dict (:func:`detector.events._parse.dict_row`).
:func:`record_row` turns a struct into the row; it raises :class:`FieldError` naming the field
for anything it cannot read, and the callers decide what that means (the fast path declines,
the fallback reports the record).

Imports: msgspec, orjson, and this package's principal and source-IP modules.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
import orjson

from detector.events._principal import principal_of
from detector.events._source_ip import classify_source_ip

__all__ = ["REQUIRED_FIELDS", "ROW_COLUMNS", "FieldError", "Record", "record_row"]


class FieldError(Exception):
    """One record's field cannot be read: ``field`` names it (dotted), ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason


class Record(msgspec.Struct, gc=False):
    """The fields of a CloudTrail record that a row reads; every other key is skipped.

    Text fields are typed, so a number where text belongs is refused while decoding; the nested
    objects are ``Any`` (dicts, lists) and are read as a whole below.
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


REQUIRED_FIELDS: Final = ("eventID", "eventTime", "eventSource", "eventName")
_EMPTY: Final[dict[str, Any]] = {}
_TRUE: Final = ("true", True)


def _json_text(value: Any, name: str) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as err:  # nested too deep, or an integer beyond 64 bits
        raise FieldError(name, f"cannot be written as JSON ({err})") from None


def _bool(value: Any, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if value == "true":
        return True
    if value == "false":
        return False
    raise FieldError(name, f"expected a boolean, got {value!r:.60}")


def _object(value: Any, name: str) -> dict[str, Any]:
    if not value:
        return _EMPTY
    if value.__class__ is not dict:
        raise FieldError(name, "expected an object")
    result: dict[str, Any] = value
    return result


def _kms_key(event_source: str | None, resources: Any, params: Any) -> str | None:
    if isinstance(resources, list):
        for res in resources:
            if isinstance(res, dict) and res.get("type") == "AWS::KMS::Key":
                arn = res.get("ARN")
                if isinstance(arn, str):
                    return arn
    if event_source == "kms.amazonaws.com" and isinstance(params, dict):
        key = params.get("keyId")
        if isinstance(key, str):
            return key
    return None


def _resource_arns(resources: Any) -> str:
    """ARNs of ``resources[]`` as JSON text: polars decodes the column in one vectorised step,
    where building a list column from Python lists would cost one Series per row."""
    if not isinstance(resources, list):
        raise FieldError("resources", "expected a list")
    arns = [r["ARN"] for r in resources if isinstance(r, dict) and isinstance(r.get("ARN"), str)]
    return orjson.dumps(arns).decode()


def record_row(record: Record) -> tuple[Any, ...]:
    """The row of one record, in :data:`ROW_COLUMNS` order (timestamps as text).

    This runs once per record and is the parser's floor: the common shapes take the shortest
    path, and every check names the field it refuses.
    """
    event_id = record.eventID
    event_time = record.eventTime
    event_source = record.eventSource
    event_name = record.eventName
    if not (event_id and event_time and event_source and event_name):
        for name in REQUIRED_FIELDS:
            value = getattr(record, name)
            if not value:
                why = "missing" if value is None else f"not a non-empty string: {value!r:.60}"
                raise FieldError(name, why)
    recipient = record.recipientAccountId
    ui = _object(record.userIdentity, "userIdentity")
    ctx = _object(ui.get("sessionContext"), "userIdentity.sessionContext")
    attributes = _object(ctx.get("attributes"), "userIdentity.sessionContext.attributes")
    principal = principal_of(ui or None, recipient)
    raw_ip = record.sourceIPAddress
    ip_kind, ip_address = classify_source_ip(raw_ip)
    tls = _object(record.tlsDetails, "tlsDetails")
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


# The columns of a row as :func:`record_row` builds it: the principal's fields come together
# (in :class:`Principal` order) and ``received_time`` is set per batch, not per record.
ROW_COLUMNS: Final = (
    "event_id",
    "event_time",
    "event_version",
    "account_id",
    "recipient_account_id",
    "region",
    "event_source",
    "event_name",
    "read_only",
    "event_type",
    "event_category",
    "management_event",
    "error_code",
    "error_message",
    "principal_key",
    "principal_type",
    "principal_arn",
    "session_issuer_arn",
    "session_name",
    "source_identity",
    "principal_id",
    "access_key_id",
    "mfa_authenticated",
    "session_created",
    "ec2_role_delivery",
    "source_ip",
    "source_ip_kind",
    "source_ip_address",
    "user_agent",
    "vpc_endpoint_id",
    "vpc_endpoint_account_id",
    "tls_version",
    "tls_cipher",
    "console",
    "invoked_by",
    "shared_event_id",
    "kms_key_arn",
    "resource_arns",
    "request_parameters",
    "response_elements",
    "additional_event_data",
)
