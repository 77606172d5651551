"""Early reports: a model window already anomalous before it closes is reported at once, as a
provisional update of its finding; the window's final occurrence follows when it closes.

A window closes when the watermark (newest event time minus the allowed lateness) passes its
end, so a finding would wait the window's length plus the lateness. Instead, every ``every``
of event time (a *tick*: the newest event crosses a multiple of ``every``), the open windows are
scored as they stand, against the same profiles, baselines and live threshold, without the
state learning anything. Timeline (5-minute windows, 2 minutes of lateness, 30 s ticks)::

    event time   12:00      12:01      12:02     ...     12:05            12:07
    window       [──────────────────────────────────────────)
    ticks          :30  │    :30  │     :30                 │               │
    sent                ▲ provisional: the events so far score above the threshold
                                  ▲ again only if its severity rose
                                                                watermark ─►▲ final: the closed
                                                                              window's occurrence

An early report is the aggregate as it would be with the open window folded in (same
``finding_id``, ``count`` and severity may rise), sent only when the aggregation rules would
send it (a new key, or a severity above the last sent) and the window was not early-reported
at that severity or above. It is marked ``provisional``. The aggregation state itself never
sees early reports, so the final sends are exactly those of a run without them: a stream and
a replay end with the same findings, and the early reports are extra updates in between.
A window that scored above the threshold early and not once closed leaves its provisional
report standing until its period's summary (docs/latency.md).

Everything here is a function of its arguments: event time decides the ticks, ``now`` only
stamps ``created_at``.

Imports: the standard library and the detector's findings package.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from detector.findings import (
    AggregationConfig,
    AggregationState,
    Finding,
    aggregate_findings,
    finding_id_of,
    first_report,
)

__all__ = ["DEFAULT_EARLY_EVERY", "EarlyConfig", "EarlyState", "early_reports", "first_reports"]

DEFAULT_EARLY_EVERY: Final = timedelta(seconds=30)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SNAPSHOT_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class EarlyConfig:
    """``every``: how much event time passes between two scorings of the open windows."""

    every: timedelta = DEFAULT_EARLY_EVERY

    def __post_init__(self) -> None:
        if self.every <= timedelta(0):
            raise ValueError(f"early reports: every must be positive, got {self.every}")

    def tick_of(self, moment: datetime) -> datetime:
        return moment - (moment - _EPOCH) % self.every


@dataclass(frozen=True, slots=True)
class EarlyState:
    """The last tick; per open window early-reported, the severity sent and its end; per
    aggregate early-reported, when its period closes (so the first report is known)."""

    tick: datetime | None = None
    sent: Mapping[str, tuple[float, datetime]] = dataclasses.field(default_factory=dict)
    reported: Mapping[str, datetime] = dataclasses.field(default_factory=dict)

    def due(self, newest: datetime | None, config: EarlyConfig) -> datetime | None:
        """The tick the newest event reached, if it is past the last one (else None)."""
        if newest is None:
            return None
        tick = config.tick_of(newest)
        return tick if self.tick is None or tick > self.tick else None

    def forget_closed(
        self, watermark: datetime | None, aggregation_mark: datetime | None
    ) -> EarlyState:
        """Windows ending at or before ``watermark`` have had their final word; aggregates
        whose period closed at ``aggregation_mark`` are forgotten."""
        sent = self.sent
        if watermark is not None:
            sent = {k: v for k, v in sent.items() if v[1] > watermark}
        reported = self.reported
        if aggregation_mark is not None:
            reported = {k: v for k, v in reported.items() if v > aggregation_mark}
        return EarlyState(self.tick, sent, reported)

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": _SNAPSHOT_VERSION,
            "tick": None if self.tick is None else self.tick.isoformat(),
            "sent": [[k, s, end.isoformat()] for k, (s, end) in sorted(self.sent.items())],
            "reported": [[k, end.isoformat()] for k, end in sorted(self.reported.items())],
        }

    @staticmethod
    def restore(snapshot: Mapping[str, Any] | None) -> EarlyState:
        """From a :meth:`snapshot` (None: a snapshot from before early reports)."""
        if snapshot is None:
            return EarlyState()
        if snapshot.get("version") != _SNAPSHOT_VERSION:
            raise ValueError(f"early reports snapshot version {snapshot.get('version')!r}")
        tick = snapshot.get("tick")
        return EarlyState(
            datetime.fromisoformat(tick) if isinstance(tick, str) else None,
            {str(k): (float(s), datetime.fromisoformat(e)) for k, s, e in snapshot["sent"]},
            {str(k): datetime.fromisoformat(e) for k, e in snapshot["reported"]},
        )


def early_reports(
    state: EarlyState,
    occurrences: Sequence[Finding],
    aggregation: AggregationState,
    config: AggregationConfig,
    tick: datetime,
    now: datetime,
) -> tuple[EarlyState, list[Finding]]:
    """The provisional findings to send for ``occurrences`` (the open windows above the
    threshold at ``tick``), given the aggregation state after this step's final occurrences;
    the aggregation state is not changed."""
    fresh = [
        o
        for o in occurrences
        if o.finding_id not in state.sent or o.severity > state.sent[o.finding_id][0]
    ]
    if not fresh:
        return EarlyState(tick, state.sent, state.reported), []
    # The aggregation's own rules, on a copy with every open window folded in.
    _, would_send = aggregate_findings(aggregation, occurrences, None, config, now)
    keys = {
        finding_id_of(o.kind, o.principal, config.period_start(o.window_start)): o for o in fresh
    }
    out = [dataclasses.replace(f, provisional=True) for f in would_send if f.finding_id in keys]
    sent = dict(state.sent)
    sent.update({o.finding_id: (o.severity, o.window_end) for o in fresh})
    reported = dict(state.reported)
    reported.update({f.finding_id: f.window_end + config.close_after for f in out})
    return EarlyState(tick, sent, reported), out


def first_reports(
    findings: Sequence[Finding],
    aggregation: AggregationState,
    early: EarlyState,
    config: AggregationConfig,
) -> list[Finding]:
    """Those of ``findings`` (about to be sent; ``aggregation`` and ``early`` as they were
    before) that report their finding for the first time (once per id)."""
    seen: set[str] = set()
    out = []
    for f in findings:
        if f.finding_id in seen:
            continue
        seen.add(f.finding_id)
        if f.finding_id not in early.reported and first_report(aggregation, f, config):
            out.append(f)
    return out
