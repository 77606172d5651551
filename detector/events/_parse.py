"""Decoded CloudTrail records -> the normalized events frame, column-wise.

One pass of plain Python pulls each record's fields into a row tuple (no per-record DataFrame
work), ``zip(*rows)`` turns rows into columns, and polars builds and types the columns in bulk:
timestamps are parsed vectorised. A record that cannot be read becomes a
:class:`RecordFailure` naming the record and the field; the rest of the batch goes on.

Imports: orjson, polars, and this package's schema, principal and source-IP modules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
import polars as pl

from detector.events._principal import principal_of
from detector.events._schema import EVENT_COLUMNS, EVENT_SCHEMA, UTC_MS
from detector.events._source_ip import classify_source_ip

__all__ = ["ParseResult", "RecordFailure", "empty_events", "records_to_events"]


@dataclass(frozen=True, slots=True)
class RecordFailure:
    """One record that could not be normalized: where it came from, which field, and why."""

    origin: str  # SQS message id, archive key, or a caller-chosen batch name
    index: int | None  # position of the record within its origin, when it has one
    event_id: str | None
    field: str
    reason: str

    def __str__(self) -> str:
        where = self.origin if self.index is None else f"{self.origin}[{self.index}]"
        ident = f" (eventID {self.event_id})" if self.event_id else ""
        return f"{where}{ident}: field '{self.field}': {self.reason}"


@dataclass(frozen=True, slots=True)
class ParseResult:
    """Normalized events plus everything that did not make it, as data."""

    events: pl.DataFrame
    failures: tuple[RecordFailure, ...] = ()
    duplicate_event_ids: tuple[str, ...] = field(default=())
    skipped: int = 0  # inputs recognised and deliberately ignored (digest files, ...)

    @staticmethod
    def concat(results: Sequence[ParseResult]) -> ParseResult:
        """Combine results of several inputs, dropping events duplicated across them."""
        if not results:
            return ParseResult(empty_events())
        frames = [r.events for r in results]
        merged = pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]
        deduped, dupes = _dedup(merged)
        return ParseResult(
            deduped,
            tuple(f for r in results for f in r.failures),
            tuple(d for r in results for d in r.duplicate_event_ids) + dupes,
            sum(r.skipped for r in results),
        )


def empty_events() -> pl.DataFrame:
    return pl.DataFrame(schema=EVENT_SCHEMA)


class _FieldError(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason


_EMPTY: Final[dict[str, Any]] = {}
_TIME_FORMATS: Final = ("%Y-%m-%dT%H:%M:%S%.fZ", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f%:z")
_REQUIRED: Final = ("eventTime", "eventSource", "eventName")


def _json_text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as err:  # only for hand-built records: JSON text always dumps
        raise _FieldError(name, f"cannot be written as JSON ({err})") from None


def _why_not_string(record: dict[str, Any], name: str, value: Any) -> str:
    if value is not None:
        return f"not a non-empty string: {value!r:.60}"
    lower = name.lower()
    near = next((k for k in record if isinstance(k, str) and k.lower() == lower), None)
    return f"missing (found {near!r}: keys are case-sensitive)" if near else "missing"


def _content_id(record: dict[str, Any]) -> str:
    """An id for a record that lacks ``eventID`` (hand-written samples do; AWS never omits it):
    a hash of its content, so that the same record delivered twice still counts once."""
    try:
        text = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as err:
        raise _FieldError("<record>", f"cannot be written as JSON ({err})") from None
    digest = hashlib.blake2b(text, digest_size=16)
    return f"content:{digest.hexdigest()}"


def _bool(value: Any, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if value == "true":
        return True
    if value == "false":
        return False
    raise _FieldError(name, f"expected a boolean, got {value!r:.60}")


def _kms_key(event_source: Any, resources: Any, params: Any) -> str | None:
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


def _resource_arns(resources: Any) -> str | None:
    """ARNs of ``resources[]`` as JSON text: polars decodes the column in one vectorised step,
    where building a list column from Python lists would cost one Series per row."""
    if not resources:
        return None
    if not isinstance(resources, list):
        raise _FieldError("resources", "expected a list")
    arns = [r["ARN"] for r in resources if isinstance(r, dict) and isinstance(r.get("ARN"), str)]
    return orjson.dumps(arns).decode()


def _row(record: Any) -> tuple[Any, ...]:
    """The row of one decoded record, in :data:`_ROW_COLUMNS` order (timestamps as text).

    This runs once per record and is the parser's floor, so the common shapes take the
    shortest path: the checks that name a bad field are kept, helpers are inlined.
    """
    if record.__class__ is not dict and not isinstance(record, dict):
        raise _FieldError("<record>", f"expected a JSON object, got {type(record).__name__}")
    get = record.get
    event_id = get("eventID")
    if event_id is None:
        event_id = _content_id(record)
    elif event_id.__class__ is not str or not event_id:
        raise _FieldError("eventID", f"not a non-empty string: {event_id!r:.60}")
    event_time = get("eventTime")
    event_source = get("eventSource")
    event_name = get("eventName")
    if (
        event_time.__class__ is not str
        or event_source.__class__ is not str
        or event_name.__class__ is not str
        or not (event_time and event_source and event_name)
    ):
        for name in _REQUIRED:
            value = get(name)
            if not isinstance(value, str) or not value:
                raise _FieldError(name, _why_not_string(record, name, value))
    ui = get("userIdentity")
    recipient = get("recipientAccountId")
    if ui is None:
        ui = ctx = attributes = _EMPTY
    else:
        if ui.__class__ is not dict:
            raise _FieldError("userIdentity", "expected an object")
        ctx = ui.get("sessionContext") or _EMPTY
        if ctx.__class__ is not dict:
            raise _FieldError("userIdentity.sessionContext", "expected an object")
        attributes = ctx.get("attributes") or _EMPTY
        if attributes.__class__ is not dict:
            raise _FieldError("userIdentity.sessionContext.attributes", "expected an object")
    principal = principal_of(ui or None, recipient if isinstance(recipient, str) else None)
    raw_ip = get("sourceIPAddress")
    if raw_ip is not None and raw_ip.__class__ is not str:
        raise _FieldError("sourceIPAddress", f"expected a string, got {raw_ip!r:.60}")
    ip_kind, ip_address = classify_source_ip(raw_ip)
    tls = get("tlsDetails") or _EMPTY
    if tls.__class__ is not dict:
        raise _FieldError("tlsDetails", "expected an object")
    read_only = get("readOnly")
    if read_only is not None and read_only.__class__ is not bool:
        read_only = _bool(read_only, "readOnly")
    management = get("managementEvent")
    if management is not None and management.__class__ is not bool:
        management = _bool(management, "managementEvent")
    params = get("requestParameters")
    resources = get("resources")
    extra = get("additionalEventData")
    response = get("responseElements")
    if isinstance(extra, dict) and "MFAUsed" in extra:
        mfa: bool | None = extra["MFAUsed"] == "Yes"
    else:
        mfa_value = attributes.get("mfaAuthenticated")
        mfa = None if mfa_value is None else (mfa_value is True or mfa_value == "true")
    return (
        event_id,
        event_time,
        get("eventVersion"),
        ui.get("accountId") or recipient,
        recipient,
        get("awsRegion"),
        event_source,
        event_name,
        read_only,
        get("eventType"),
        get("eventCategory"),
        management,
        get("errorCode"),
        get("errorMessage"),
        *principal,
        ui.get("principalId"),
        ui.get("accessKeyId") or None,
        mfa,
        attributes.get("creationDate"),
        ctx.get("ec2RoleDelivery"),
        raw_ip,
        ip_kind,
        ip_address,
        get("userAgent"),
        get("vpcEndpointId"),
        get("vpcEndpointAccountId"),
        tls.get("tlsVersion"),
        tls.get("cipherSuite"),
        get("sessionCredentialFromConsole") in _TRUE,
        ui.get("invokedBy"),
        get("sharedEventID"),
        _kms_key(event_source, resources, params) if resources or params else None,
        _resource_arns(resources) if resources else None,
        None if params is None else _json_text(params, "requestParameters"),
        None if response is None else _json_text(response, "responseElements"),
        None if extra is None else _json_text(extra, "additionalEventData"),
    )


_TRUE: Final = ("true", True)
# The columns of a row as :func:`_row` builds it: the principal's fields come together (in
# :class:`Principal` order) and ``received_time`` is set per batch, not per record.
_ROW_COLUMNS: Final = (
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


if sorted(_ROW_COLUMNS) != sorted(set(EVENT_COLUMNS) - {"received_time"}):
    raise AssertionError("_ROW_COLUMNS must name every event column but received_time, once")

_TIME_COLUMNS: Final = ("event_time", "session_created")
_TEXT_COLUMNS: Final = (*_TIME_COLUMNS, "resource_arns")
_TEXT_TIME_SCHEMA: Final = pl.Schema(
    {n: (pl.String() if n in _TEXT_COLUMNS else EVENT_SCHEMA[n]) for n in _ROW_COLUMNS}
)
# Which source field fills each column, for error messages when a column will not type.
_SOURCE_FIELD: Final = {
    "event_version": "eventVersion",
    "account_id": "userIdentity.accountId",
    "recipient_account_id": "recipientAccountId",
    "region": "awsRegion",
    "event_type": "eventType",
    "event_category": "eventCategory",
    "error_code": "errorCode",
    "error_message": "errorMessage",
    "principal_id": "userIdentity.principalId",
    "access_key_id": "userIdentity.accessKeyId",
    "session_created": "userIdentity.sessionContext.attributes.creationDate",
    "ec2_role_delivery": "userIdentity.sessionContext.ec2RoleDelivery",
    "user_agent": "userAgent",
    "vpc_endpoint_id": "vpcEndpointId",
    "vpc_endpoint_account_id": "vpcEndpointAccountId",
    "tls_version": "tlsDetails.tlsVersion",
    "tls_cipher": "tlsDetails.cipherSuite",
    "invoked_by": "userIdentity.invokedBy",
    "shared_event_id": "sharedEventID",
    "principal_arn": "userIdentity.arn",
    "session_issuer_arn": "userIdentity.sessionContext.sessionIssuer.arn",
    "session_name": "userIdentity.userName / session name",
    "source_identity": "userIdentity.sessionContext.sourceIdentity",
}


def _parse_times(column: str) -> pl.Expr:
    text = pl.col(column)
    return pl.coalesce(
        [
            text.str.to_datetime(f, strict=False, time_unit="ms", time_zone="UTC")
            for f in _TIME_FORMATS
        ]
    ).alias(column)


_TYPING_EXPRESSIONS: Final = (
    _parse_times("event_time"),
    _parse_times("session_created"),
    pl.col("resource_arns").str.json_decode(EVENT_SCHEMA["resource_arns"]),
)


def _bad_string_rows(columns: dict[str, list[Any]]) -> dict[int, str]:
    """Slow path, run only when a column refused to type: which row, which field."""
    bad: dict[int, str] = {}
    for name, values in columns.items():
        dtype = _TEXT_TIME_SCHEMA[name]
        if dtype != pl.String():
            continue
        for i, v in enumerate(values):
            if v is not None and not isinstance(v, str) and i not in bad:
                bad[i] = _SOURCE_FIELD.get(name, name)
    return bad


def _build(rows: list[tuple[Any, ...]]) -> tuple[pl.DataFrame, dict[int, str]]:
    """Frame from rows; returns the rows that would not type (position -> field) as well."""
    if not rows:
        return pl.DataFrame(schema=_TEXT_TIME_SCHEMA), {}
    columns = dict(zip(_ROW_COLUMNS, map(list, zip(*rows, strict=True)), strict=True))
    try:
        frame = pl.DataFrame(columns, schema=_TEXT_TIME_SCHEMA, strict=True)
        return frame, {}
    except (TypeError, pl.exceptions.PolarsError):
        bad = _bad_string_rows(columns)
        if not bad:
            raise
        keep = [r for i, r in enumerate(rows) if i not in bad]
        frame, _ = _build(keep)
        return frame, bad


def _dedup(frame: pl.DataFrame) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """Keep the first event of each ``eventID``; name the ids that came more than once."""
    dup_mask = frame.get_column("event_id").is_duplicated()
    if not dup_mask.any():
        return frame, ()
    dupes = tuple(frame.filter(dup_mask).get_column("event_id").unique(maintain_order=True))
    return frame.unique(subset="event_id", keep="first", maintain_order=True), dupes


def records_to_events(
    records: Iterable[Any],
    *,
    origin: str,
    received_time: datetime | None = None,
    origins: Sequence[str] | None = None,
    received_times: Sequence[datetime | None] | None = None,
) -> ParseResult:
    """Normalize decoded CloudTrail records.

    ``origin`` names the batch in failure messages; ``origins``/``received_times`` give one
    value per record instead (e.g. the SQS message each record came in), overriding the batch
    values. Never raises for bad data: bad records come back as failures.
    """
    rows, positions, failures = rows_of(records, origin, origins)
    return rows_to_events(
        rows,
        positions,
        failures,
        origin=origin,
        received_time=received_time,
        origins=origins,
        received_times=received_times,
    )


def rows_of(
    records: Iterable[Any], origin: str, origins: Sequence[str] | None = None
) -> tuple[list[tuple[Any, ...]], list[int], list[RecordFailure]]:
    """The first half of :func:`records_to_events`: each record's row (:func:`_row`), each
    row's record index, and the failures of the records that made no row."""
    rows: list[tuple[Any, ...]] = []
    positions: list[int] = []
    failures: list[RecordFailure] = []
    for i, record in enumerate(records):
        try:
            rows.append(_row(record))
            positions.append(i)
        except _FieldError as err:
            failures.append(_failure(record, i, err.field, err.reason, origin, origins))
    return rows, positions, failures


def rows_to_events(
    rows: list[tuple[Any, ...]],
    positions: list[int],
    failures: list[RecordFailure],
    *,
    origin: str,
    received_time: datetime | None = None,
    origins: Sequence[str] | None = None,
    received_times: Sequence[datetime | None] | None = None,
) -> ParseResult:
    """The second half of :func:`records_to_events`, for rows built by :func:`_row` or by the
    fast path (:mod:`detector.events._fast`): ``positions[j]`` is row ``j``'s record index and
    ``failures`` those of the records that made no row. Types the columns, reports the rows
    that would not type or carry no valid time, and drops repeated eventIDs."""
    frame, bad = _build(rows)
    for j, name in sorted(bad.items()):
        i = positions[j]
        failures.append(_failure(None, i, name, "expected a string", origin, origins, rows[j][0]))
    if bad:
        positions = [p for j, p in enumerate(positions) if j not in bad]
    frame = _typed(frame, positions, received_time, received_times)
    bad_time = frame.get_column("event_time").is_null()
    if bad_time.any():
        for j in bad_time.arg_true().to_list():
            failures.append(
                _failure(
                    None,
                    positions[j],
                    "eventTime",
                    "not an ISO-8601 UTC timestamp",
                    origin,
                    origins,
                    frame.item(j, "event_id"),
                )
            )
        frame = frame.filter(~bad_time)
    frame, dupes = _dedup(frame)
    return ParseResult(frame, tuple(failures), dupes)


def _typed(
    frame: pl.DataFrame,
    positions: list[int],
    received_time: datetime | None,
    received_times: Sequence[datetime | None] | None,
) -> pl.DataFrame:
    received: pl.Expr | pl.Series
    if received_times is not None:
        received = _received_column([received_times[p] for p in positions])
    else:
        received = pl.lit(received_time, dtype=UTC_MS).alias("received_time")
    # A file of ~150 records pays polars' fixed cost per call: the expressions are built once.
    return frame.with_columns(*_TYPING_EXPRESSIONS, received).select(EVENT_COLUMNS)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)


def _received_column(times: list[datetime | None]) -> pl.Series:
    """Datetimes as a column: via integer milliseconds, as polars converts each Python
    datetime object slowly (~2 µs, against ~0.15 µs for the subtraction)."""
    try:
        millis = [None if t is None else (t - _EPOCH) // _MILLISECOND for t in times]
    except TypeError:  # a naive datetime: polars' own conversion reads it as UTC
        return pl.Series("received_time", times, dtype=UTC_MS)
    return pl.Series("received_time", millis, dtype=pl.Int64).cast(UTC_MS)


def _failure(
    record: Any,
    index: int,
    field_name: str,
    reason: str,
    origin: str,
    origins: Sequence[str] | None,
    event_id: Any = None,
) -> RecordFailure:
    if event_id is None and isinstance(record, dict):
        event_id = record.get("eventID")
    where = origins[index] if origins is not None else origin
    at: int | None = None if origins is not None else index
    return RecordFailure(
        where, at, event_id if isinstance(event_id, str) else None, field_name, reason
    )
