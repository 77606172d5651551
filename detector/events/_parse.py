"""Decoded CloudTrail records -> the normalized events frame, column-wise.

Each record becomes a row tuple through the one row builder (:mod:`detector.events._row`; this
module's :func:`dict_row` is the way in for a decoded dict), ``zip(*rows)`` turns rows into columns, and polars builds and types the columns in bulk:
timestamps are parsed vectorised. A record that cannot be read becomes a
:class:`RecordFailure` naming the record and the field; the rest of the batch goes on.

Imports: msgspec, orjson, polars, and this package's schema and row builder.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec
import orjson
import polars as pl

from detector.events._row import REQUIRED_FIELDS, ROW_COLUMNS, FieldError, Record, record_row
from detector.events._schema import EVENT_COLUMNS, EVENT_SCHEMA, UTC_MS

__all__ = [
    "CLOUDTRAIL_BEGAN",
    "FUTURE_TOLERANCE",
    "ParseResult",
    "RecordFailure",
    "dict_row",
    "empty_events",
    "printable",
    "records_to_events",
    "rows_of",
    "rows_to_events",
    "unexpected",
]


@dataclass(frozen=True, slots=True)
class RecordFailure:
    """One record that could not be normalized: where it came from, which field, and why."""

    origin: str  # SQS message id, archive key, or a caller-chosen batch name
    index: int | None  # position of the record within its origin, when it has one
    event_id: str | None
    field: str
    reason: str

    def __str__(self) -> str:
        """One line, whatever the input held: every part is escaped (:func:`printable`)."""
        origin = printable(self.origin)
        where = origin if self.index is None else f"{origin}[{self.index}]"
        ident = f" (eventID {printable(self.event_id)})" if self.event_id else ""
        return f"{where}{ident}: field '{printable(self.field)}': {printable(self.reason)}"


def printable(text: str) -> str:
    """``text`` with control and other unprintable characters escaped as Python writes them, so
    that a file name or a field holding a newline cannot forge a line of human-readable output."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


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


_TIME_FORMATS: Final = ("%Y-%m-%dT%H:%M:%S%.fZ", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f%:z")
# msgspec's words for a field of the wrong JSON type: "Expected `str | null`, got `int` - at `$.x`"
_MISTYPED: Final = re.compile(
    r"Expected `(?P<expected>[^`]*)`, got `[^`]*`(?: - at `\$\.?(?P<at>.*)`)?"
)


def _why_not_string(record: dict[str, Any], name: str, reason: str) -> str:
    """The row builder's "missing", with a key that differs only in case pointed out."""
    lower = name.lower()
    near = next((k for k in record if isinstance(k, str) and k.lower() == lower), None)
    return f"missing (found {near!r}: keys are case-sensitive)" if near else reason


def _content_id(record: dict[str, Any]) -> str:
    """An id for a record that lacks ``eventID`` (hand-written samples do; AWS never omits it):
    a hash of its content, so that the same record delivered twice still counts once."""
    try:
        text = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as err:
        raise FieldError("<record>", f"cannot be written as JSON ({err})") from None
    digest = hashlib.blake2b(text, digest_size=16)
    return f"content:{digest.hexdigest()}"


def _mistyped(record: dict[str, Any], err: msgspec.ValidationError) -> FieldError:
    """msgspec's refusal of a field, in the parser's words."""
    match = _MISTYPED.match(str(err))
    if match is None or not match["at"]:
        return FieldError("<record>", str(err))
    name, expected = match["at"], match["expected"]
    value = _shown(record.get(name))
    if name in REQUIRED_FIELDS:
        return FieldError(name, f"not a non-empty string: {value}")
    if expected.startswith("object"):
        return FieldError(name, "expected an object")
    if expected.startswith("bool"):
        return FieldError(name, f"expected a boolean, got {value}")
    return FieldError(name, f"expected a string, got {value}")


def _shown(value: Any) -> str:
    """A short view of a refused value: a scalar's repr, a container's kind and length (the
    repr of a hostile container may be huge or nested too deep to write)."""
    if isinstance(value, dict | list):
        return f"{type(value).__name__} of {len(value)}"
    return f"{value!r:.60}"


def dict_row(record: Any) -> tuple[Any, ...]:
    """The row of one decoded record (a dict): the fallback's way into :func:`record_row`.

    It builds the same :class:`Record` the fast path decodes, gives a record without ``eventID``
    a content id, and words what msgspec and the row builder refuse."""
    if not isinstance(record, dict):
        raise FieldError("<record>", f"expected a JSON object, got {type(record).__name__}")
    try:
        struct = msgspec.convert(record, Record)
    except msgspec.ValidationError as err:
        raise _mistyped(record, err) from None
    if struct.eventID is None:
        struct.eventID = _content_id(record)
    try:
        return record_row(struct)
    except FieldError as err:
        if err.reason == "missing":
            raise FieldError(err.field, _why_not_string(record, err.field, err.reason)) from None
        raise


if sorted(ROW_COLUMNS) != sorted(set(EVENT_COLUMNS) - {"received_time"}):
    raise AssertionError("ROW_COLUMNS must name every event column but received_time, once")

_TIME_COLUMNS: Final = ("event_time", "session_created")
_TEXT_COLUMNS: Final = (*_TIME_COLUMNS, "resource_arns")
_TEXT_TIME_SCHEMA: Final = pl.Schema(
    {n: (pl.String() if n in _TEXT_COLUMNS else EVENT_SCHEMA[n]) for n in ROW_COLUMNS}
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
    columns = dict(zip(ROW_COLUMNS, map(list, zip(*rows, strict=True)), strict=True))
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
    not_after: datetime | None = None,
) -> ParseResult:
    """Normalize decoded CloudTrail records.

    ``origin`` names the batch in failure messages; ``origins``/``received_times`` give one
    value per record instead (e.g. the SQS message each record came in), overriding the batch
    values. Never raises for bad data: bad records come back as failures.

    An event time before CloudTrail existed, or later than its record's received time (else
    ``not_after``) plus :data:`FUTURE_TOLERANCE`, is a failure of ``eventTime``: such a time
    would move the event-time watermark and make every genuine event after it "late".
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
        not_after=not_after,
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
            rows.append(dict_row(record))
            positions.append(i)
        except FieldError as err:
            failures.append(_failure(record, i, err.field, err.reason, origin, origins))
        except Exception as err:  # anything else one record provokes is still its failure alone
            failures.append(_failure(record, i, "<record>", unexpected(err), origin, origins))
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
    not_after: datetime | None = None,
) -> ParseResult:
    """The second half of :func:`records_to_events`, for rows built by :func:`dict_row` or by the
    fast path (:mod:`detector.events._fast`): ``positions[j]`` is row ``j``'s record index and
    ``failures`` those of the records that made no row. Types the columns, reports the rows
    that would not type or carry no valid or plausible time, and drops repeated eventIDs."""
    frame, bad = _build(rows)
    for j, name in sorted(bad.items()):
        i = positions[j]
        failures.append(_failure(None, i, name, "expected a string", origin, origins, rows[j][0]))
    if bad:
        positions = [p for j, p in enumerate(positions) if j not in bad]
    frame = _typed(frame, positions, received_time, received_times)
    faults = frame.select(_time_fault(not_after)).to_series()
    if faults.null_count() < len(faults):
        bad_time = faults.is_not_null()
        for j in bad_time.arg_true().to_list():
            reason = faults[j]
            if reason != _NOT_A_TIME:
                reason = f"{reason} ({frame.item(j, 'event_time'):%Y-%m-%dT%H:%M:%SZ})"
            failures.append(
                _failure(
                    None,
                    positions[j],
                    "eventTime",
                    reason,
                    origin,
                    origins,
                    frame.item(j, "event_id"),
                )
            )
        frame = frame.filter(~bad_time)
    frame, dupes = _dedup(frame)
    return ParseResult(frame, tuple(failures), dupes)


# CloudTrail began recording in November 2013: an earlier event time is forged or corrupt.
CLOUDTRAIL_BEGAN: Final = datetime(2013, 11, 1, tzinfo=UTC)
# How far an event time may be ahead of the time its record was received (clock skew between
# AWS services is seconds; a delivery stamp has minute precision and follows its events).
FUTURE_TOLERANCE: Final = timedelta(hours=1)
_NOT_A_TIME: Final = "not an ISO-8601 UTC timestamp"


def _time_fault(not_after: datetime | None) -> pl.Expr:
    """Why each row's event time is refused, or null: not a time, too early, or in the future
    of its received time (else of ``not_after``; neither known: no upper bound)."""
    time = pl.col("event_time")
    ceiling = pl.col("received_time").fill_null(pl.lit(not_after, dtype=UTC_MS))
    return (
        pl.when(time.is_null())
        .then(pl.lit(_NOT_A_TIME))
        .when(time < CLOUDTRAIL_BEGAN)
        .then(pl.lit("before CloudTrail existed (2013-11-01)"))
        .when(time > ceiling + FUTURE_TOLERANCE)
        .then(pl.lit(f"more than {FUTURE_TOLERANCE} after the record was received"))
        .alias("fault")
    )


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


def unexpected(err: BaseException) -> str:
    """The reason for a failure nothing anticipated (deep nesting, an overflow...)."""
    return f"cannot be read ({type(err).__name__}: {str(err)[:120]})"


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
