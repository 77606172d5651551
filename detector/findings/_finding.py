"""The finding record: one immutable value, whoever produced it (the model or a detection).

Imports: the standard library only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal, TypeAlias

__all__ = [
    "FINDING_SCHEMA_VERSION",
    "MAX_SEVERITY",
    "MIN_SEVERITY",
    "ExplanationItem",
    "Finding",
    "JsonScalar",
    "JsonValue",
    "SeverityLabel",
    "finding_id_of",
    "isoformat_ms",
    "severity_label",
]

# 2: ``count``; a finding aggregates the repeats of one kind for one principal within an
# aggregation period (window_start/window_end are the period's bounds).
# 3: ``received_at`` (when its first event reached the detector) and ``provisional`` (an early
# report of a model window still open). Version 2 documents still read (as final, unstamped).
FINDING_SCHEMA_VERSION: Final = 3

# GuardDuty's scale: low 1.0-3.9, medium 4.0-6.9, high 7.0-8.9.
MIN_SEVERITY: Final = 1.0
MAX_SEVERITY: Final = 8.9
_MEDIUM_FROM: Final = 4.0
_HIGH_FROM: Final = 7.0

SeverityLabel: TypeAlias = Literal["low", "medium", "high"]
JsonScalar: TypeAlias = str | int | float | bool | None
JsonValue: TypeAlias = "JsonScalar | list[JsonValue] | dict[str, JsonValue]"


def severity_label(severity: float) -> SeverityLabel:
    """GuardDuty's label for a severity on its 1.0-8.9 scale."""
    if not MIN_SEVERITY <= severity <= MAX_SEVERITY:
        raise ValueError(f"severity {severity} is outside {MIN_SEVERITY}-{MAX_SEVERITY}")
    if severity >= _HIGH_FROM:
        return "high"
    if severity >= _MEDIUM_FROM:
        return "medium"
    return "low"


def isoformat_ms(moment: datetime) -> str:
    """``2024-05-01T12:00:00.000Z``: UTC, millisecond precision, ``Z``; the one time format of
    findings (naive datetimes are refused: they are a bug upstream, not a time zone)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: findings carry UTC times only")
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def finding_id_of(kind: str, principal: str, window_start: datetime) -> str:
    """The deterministic id of a finding: the same kind, principal and window give the same id,
    so a re-score or a duplicate delivery is recognisable downstream (32 hex digits, like
    GuardDuty's ids)."""
    text = "\x1f".join((kind, principal, isoformat_ms(window_start)))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class ExplanationItem:
    """One reason for a finding.

    Shaped for both producers: the model says which feature stood out (``what`` = feature name,
    ``value`` = this window's value, ``baseline`` = the principal's usual value, ``contribution``
    = its share of the score); a detection says what it matched (``what`` = evidence name,
    ``value`` = what the event said). An item with only ``what`` and ``detail`` is a plain
    line of text.
    """

    what: str
    value: JsonScalar = None
    baseline: JsonScalar = None
    detail: str = ""
    contribution: float | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """Something a responder should look at: who, when, how bad, why, and the events behind it.

    ``kind`` is ``"model_anomaly"`` for the model or a detection id. ``score`` is the model's
    anomaly score (higher = more anomalous); detections always say ``1.0`` (a signature either
    matched or not: rank them by ``severity``). ``event_ids`` and ``source_ips`` are samples,
    capped by whoever builds the finding; ``event_count`` says how many events there were.
    ``evidence`` is a small JSON object (treat it as read-only). Times are UTC. ``count`` is
    how many occurrences (model windows, detection matches per hour) the finding aggregates
    over its period (:mod:`detector.findings._aggregation`). ``received_at`` is when the
    earliest of its events reached the detector (SQS ``SentTimestamp``, or the archive file's
    delivery stamp; None when the source gave none): ``created_at - received_at`` is the time to
    detect. ``provisional`` marks an early report of a model window that has not closed yet: a
    later send of the same ``finding_id`` supersedes it (docs/latency.md).
    """

    finding_id: str
    kind: str
    title: str
    severity: float
    principal: str
    principal_arn: str | None
    principal_type: str
    account_id: str | None
    region: str | None
    window_start: datetime
    window_end: datetime
    first_seen: datetime
    last_seen: datetime
    created_at: datetime
    score: float
    count: int = 1
    signals: tuple[str, ...] = ()
    explanation: tuple[ExplanationItem, ...] = ()
    event_ids: tuple[str, ...] = ()
    event_count: int = 0
    source_ips: tuple[str, ...] = ()
    model_version: str | None = None
    mitre: tuple[str, ...] = ()
    evidence: Mapping[str, JsonValue] = field(default_factory=dict)
    received_at: datetime | None = None
    provisional: bool = False
    schema_version: int = FINDING_SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.schema_version != FINDING_SCHEMA_VERSION:
            raise ValueError(f"unsupported finding schema_version {self.schema_version}")
        if not self.finding_id or not self.kind:
            raise ValueError("a finding needs a finding_id and a kind")
        severity_label(self.severity)  # range check
        for name in ("window_start", "window_end", "first_seen", "last_seen", "created_at"):
            isoformat_ms(getattr(self, name))  # refuses naive datetimes
        if self.received_at is not None:
            isoformat_ms(self.received_at)
        if self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        if self.last_seen < self.first_seen:
            raise ValueError("last_seen is before first_seen")
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if self.event_count < len(self.event_ids):
            raise ValueError("event_count is smaller than the number of event_ids")

    def __hash__(self) -> int:
        # The evidence dict makes the generated hash fail; equal findings share their id.
        return hash(self.finding_id)

    @property
    def severity_label(self) -> SeverityLabel:
        return severity_label(self.severity)
