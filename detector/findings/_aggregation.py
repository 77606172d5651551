"""Repeats become one finding: occurrences of one kind for one principal within an aggregation
period update a single finding, like GuardDuty's aggregation.

An *occurrence* is what a producer reports: a scored window of the model, or one detection's
matches for a principal within its dedup hour. Occurrences are keyed by ``(kind, principal,
period)``, the period being the ``config.period``-long slice of time (aligned to the epoch,
six hours by default) holding the occurrence's ``window_start``. The aggregated finding has

- ``finding_id`` = :func:`finding_id_of` ``(kind, principal, period start)``, and
  ``window_start`` / ``window_end`` = the period's bounds;
- ``count`` = distinct occurrences (by their own id, so a re-scored window or a duplicate
  delivery is not counted twice), ``event_count`` their events, ``first_seen`` / ``last_seen``
  the earliest and latest event of any of them;
- ``severity``, ``score``, ``title``, ``explanation``, ``signals``, ``evidence``, region and
  ARN of the most severe occurrence (then highest score, then smallest id);
- ``event_ids``: the first ``config.max_sample`` ids in (occurrence first_seen, event id)
  order; ``source_ips``: the smallest ``config.max_sample`` of all addresses.

When it is sent (each send carries the whole aggregate so far):

1. the first occurrence of a key: at once;
2. a later occurrence that raises the severity above the last sent one: at once;
3. other later occurrences only update the state;
4. the period closes when the event-time watermark passes its end by ``config.close_after``
   (so that late model windows of the period are in); if the count grew since the last send,
   a final summary is sent; the key is then forgotten;
5. :func:`flush_aggregates` (end of a replay, shutdown) sends every aggregate whose count
   grew since its last send, and keeps them open, so a resumed replay keeps counting.

Everything is a function of the occurrences and of event time, and the merge is order-free
(max, min, sums over distinct ids, top-k samples), so a replay, a stream, any batch split and a
restart from a snapshot end with the same ids and counts. An occurrence arriving after its
period was closed opens it again under the same id, with its count starting anew.

Imports: the standard library and this package's record and JSON form.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeAlias

from detector.findings._finding import Finding, finding_id_of, isoformat_ms
from detector.findings._json import finding_from_dict, finding_to_dict

__all__ = [
    "DEFAULT_AGGREGATION_PERIOD",
    "DEFAULT_CLOSE_AFTER",
    "Aggregate",
    "AggregationConfig",
    "AggregationState",
    "aggregate_findings",
    "first_report",
    "flush_aggregates",
]

DEFAULT_AGGREGATION_PERIOD: Final = timedelta(hours=6)  # GuardDuty's default
# Past the feature window (5 min) and allowed lateness (15 min): the period's windows are in.
DEFAULT_CLOSE_AFTER: Final = timedelta(minutes=30)
DEFAULT_MAX_SAMPLE: Final = 10
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SNAPSHOT_VERSION: Final = 1

AggregateKey: TypeAlias = tuple[str, str, datetime]  # kind, principal, period start


@dataclass(frozen=True, slots=True)
class AggregationConfig:
    """``period`` is the aggregation period (a whole number of seconds dividing a day keeps the
    periods on the clock: 6 h gives 00-06, 06-12, ... UTC)."""

    period: timedelta = DEFAULT_AGGREGATION_PERIOD
    close_after: timedelta = DEFAULT_CLOSE_AFTER
    max_sample: int = DEFAULT_MAX_SAMPLE

    def __post_init__(self) -> None:
        if self.period <= timedelta(0) or self.period.total_seconds() % 1:
            raise ValueError(
                f"aggregation period must be a positive whole number of seconds: {self.period}"
            )
        if self.close_after < timedelta(0):
            raise ValueError(f"close_after must not be negative: {self.close_after}")
        if self.max_sample < 1:
            raise ValueError(f"max_sample must be at least 1: {self.max_sample}")

    def period_start(self, moment: datetime) -> datetime:
        return moment - (moment - _EPOCH) % self.period


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One open aggregate: the finding as it stands, what makes it up, and what was sent."""

    finding: Finding
    occurrence_ids: frozenset[str]
    representative: str  # id of the occurrence whose details the finding carries
    samples: tuple[tuple[str, str], ...]  # (occurrence first_seen, event id), sorted, capped
    sent_severity: float
    sent_count: int


@dataclass(frozen=True, slots=True)
class AggregationState:
    """Open aggregates by (kind, principal, period start), and the event-time watermark."""

    open: Mapping[AggregateKey, Aggregate] = dataclasses.field(default_factory=dict)
    watermark: datetime | None = None

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready dict, sorted so that equal states give equal snapshots."""
        rows = [
            {
                "finding": finding_to_dict(agg.finding),
                "occurrences": sorted(agg.occurrence_ids),
                "representative": agg.representative,
                "samples": [list(s) for s in agg.samples],
                "sent_severity": agg.sent_severity,
                "sent_count": agg.sent_count,
            }
            for _, agg in sorted(self.open.items())
        ]
        watermark = None if self.watermark is None else isoformat_ms(self.watermark)
        return {"version": _SNAPSHOT_VERSION, "watermark": watermark, "open": rows}

    @staticmethod
    def restore(snapshot: Mapping[str, Any]) -> AggregationState:
        """The state of a :meth:`snapshot`; ``ValueError`` names what is wrong."""
        if snapshot.get("version") != _SNAPSHOT_VERSION:
            raise ValueError(
                f"aggregation snapshot version {snapshot.get('version')!r} is not supported"
            )
        opened: dict[AggregateKey, Aggregate] = {}
        for i, row in enumerate(snapshot.get("open", [])):
            try:
                finding = finding_from_dict(row["finding"])
                agg = Aggregate(
                    finding,
                    frozenset(str(o) for o in row["occurrences"]),
                    str(row["representative"]),
                    tuple((str(a), str(b)) for a, b in row["samples"]),
                    float(row["sent_severity"]),
                    int(row["sent_count"]),
                )
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(f"aggregation snapshot: open[{i}]: {err}") from err
            opened[(finding.kind, finding.principal, finding.window_start)] = agg
        text = snapshot.get("watermark")
        watermark = datetime.fromisoformat(text) if isinstance(text, str) else None
        return AggregationState(opened, watermark)


def _rank(finding: Finding) -> tuple[float, float, str]:
    """Higher is more representative; the id breaks ties so that order does not matter."""
    return (finding.severity, finding.score, _inverse(finding.finding_id))


def _inverse(text: str) -> str:
    # Smallest id wins a tie while the tuple is compared "higher wins".
    return "".join(chr(0x10FFFF - ord(c)) for c in text)


def _samples(occurrence: Finding) -> list[tuple[str, str]]:
    first = isoformat_ms(occurrence.first_seen)
    return [(first, event_id) for event_id in occurrence.event_ids]


def _merge(
    agg: Aggregate | None, occurrence: Finding, key: AggregateKey, config: AggregationConfig
) -> Aggregate:
    if agg is None:
        rep = occurrence
        ids = frozenset({occurrence.finding_id})
        samples = sorted(set(_samples(occurrence)))[: config.max_sample]
        first, last = occurrence.first_seen, occurrence.last_seen
        received = occurrence.received_at
        events, ips = occurrence.event_count, sorted(set(occurrence.source_ips))
        sent_severity, sent_count, rep_id = 0.0, 0, occurrence.finding_id
    else:
        if occurrence.finding_id in agg.occurrence_ids:
            return agg  # a duplicate delivery or a re-score: already counted
        current = agg.finding
        rep_id = agg.representative
        rep = current
        if _rank(occurrence) > (current.severity, current.score, _inverse(rep_id)):
            rep, rep_id = occurrence, occurrence.finding_id
        ids = agg.occurrence_ids | {occurrence.finding_id}
        samples = sorted(set(agg.samples) | set(_samples(occurrence)))[: config.max_sample]
        first = min(current.first_seen, occurrence.first_seen)
        last = max(current.last_seen, occurrence.last_seen)
        received = _earliest(current.received_at, occurrence.received_at)
        events = current.event_count + occurrence.event_count
        ips = sorted(set(current.source_ips) | set(occurrence.source_ips))
        sent_severity, sent_count = agg.sent_severity, agg.sent_count
    kind, principal, start = key
    finding = dataclasses.replace(
        rep,
        finding_id=finding_id_of(kind, principal, start),
        window_start=start,
        window_end=start + config.period,
        first_seen=first,
        last_seen=last,
        count=len(ids),
        created_at=occurrence.created_at,
        received_at=received,
        provisional=False,
        event_ids=tuple(e for _, e in samples),
        event_count=max(events, len(samples)),
        source_ips=tuple(ips[: config.max_sample]),
    )
    return Aggregate(finding, ids, rep_id, tuple(samples), sent_severity, sent_count)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def first_report(state: AggregationState, finding: Finding, config: AggregationConfig) -> bool:
    """Whether ``finding`` (an aggregate about to be sent) was never sent before: its key is
    not open, or open and not sent yet."""
    key = (finding.kind, finding.principal, config.period_start(finding.window_start))
    agg = state.open.get(key)
    return agg is None or agg.sent_count == 0


def _sent(agg: Aggregate) -> Aggregate:
    return dataclasses.replace(
        agg, sent_severity=agg.finding.severity, sent_count=agg.finding.count
    )


def aggregate_findings(
    state: AggregationState,
    occurrences: Sequence[Finding],
    watermark: datetime | None,
    config: AggregationConfig,
    now: datetime,
) -> tuple[AggregationState, list[Finding]]:
    """Fold ``occurrences`` into the open aggregates, advance the event-time ``watermark``,
    close the periods it has passed; the findings to send, each key at most once, in key
    order. ``now`` stamps ``created_at`` of what is sent."""
    opened = dict(state.open)
    touched: set[AggregateKey] = set()
    for occurrence in occurrences:
        key = (
            occurrence.kind,
            occurrence.principal,
            config.period_start(occurrence.window_start),
        )
        opened[key] = _merge(opened.get(key), occurrence, key, config)
        touched.add(key)
    out: list[Finding] = []
    for key in sorted(touched):
        agg = opened[key]
        if agg.sent_count == 0 or agg.finding.severity > agg.sent_severity:
            out.append(dataclasses.replace(agg.finding, created_at=now))
            opened[key] = _sent(agg)
    marks = [m for m in (state.watermark, watermark) if m is not None]
    mark = max(marks) if marks else None
    if mark is not None:
        for key in sorted(opened):
            agg = opened[key]
            if agg.finding.window_end + config.close_after <= mark:
                if agg.finding.count > agg.sent_count:
                    out.append(dataclasses.replace(agg.finding, created_at=now))
                del opened[key]
    return AggregationState(opened, mark), out


def flush_aggregates(
    state: AggregationState, now: datetime
) -> tuple[AggregationState, list[Finding]]:
    """Send every open aggregate that grew since its last send; keep them all open."""
    opened = dict(state.open)
    out: list[Finding] = []
    for key in sorted(opened):
        agg = opened[key]
        if agg.finding.count > agg.sent_count:
            out.append(dataclasses.replace(agg.finding, created_at=now))
            opened[key] = _sent(agg)
    return AggregationState(opened, state.watermark), out
