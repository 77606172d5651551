"""When each finding's first event reached the detector: the ``received_at`` stamp.

Events carry ``received_time`` (SQS ``SentTimestamp`` on the live path, the archive file's
delivery stamp in a replay). A signature occurrence's events are all in the batch that found
them; a model window's events arrived over several batches, so the earliest receipt of each
open window is kept here, per (principal, window start), until the window closes.

The earliest receipt is a minimum, so it does not depend on how events are batched or ordered;
it does depend on the path (a stream and a replay of the same events stamp different receipt
times, like ``created_at``).

Imports: polars, the standard library, the detector's events and findings packages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import polars as pl

from detector.events import UTC_MS
from detector.findings import Finding

__all__ = ["RECEIPTS_SCHEMA", "Receipts", "stamp_batch", "stamp_windows"]

RECEIPTS_SCHEMA: Final = pl.Schema(
    {"principal_key": pl.String(), "window_start": UTC_MS, "received_at": UTC_MS}
)
_KEYS: Final = ("principal_key", "window_start")


@dataclass(frozen=True, slots=True)
class Receipts:
    """The earliest receipt time of each open window's events (:data:`RECEIPTS_SCHEMA`)."""

    frame: pl.DataFrame = dataclasses.field(
        default_factory=lambda: pl.DataFrame(schema=RECEIPTS_SCHEMA)
    )

    def note(self, events: pl.DataFrame, window: timedelta) -> Receipts:
        """Fold in a batch of events (:data:`~detector.events.EVENT_SCHEMA`); events without a
        receipt time are skipped."""
        if events.height == 0:
            return self
        batch = (
            events.lazy()
            .filter(pl.col("received_time").is_not_null())
            .group_by(
                pl.col("principal_key"),
                pl.col("event_time").dt.truncate(window).alias("window_start"),
            )
            .agg(pl.col("received_time").min().alias("received_at"))
            .collect()
        )
        if batch.height == 0:
            return self
        if self.frame.height == 0:
            return Receipts(batch.cast(RECEIPTS_SCHEMA))
        merged = (
            pl.concat([self.frame, batch.cast(RECEIPTS_SCHEMA)])
            .group_by(*_KEYS)
            .agg(pl.col("received_at").min())
        )
        return Receipts(merged)

    def forget_closed(self, watermark: datetime | None, window: timedelta) -> Receipts:
        """Drop the windows ending at or before ``watermark`` (closed: their rows were scored)."""
        if watermark is None or self.frame.height == 0:
            return self
        still_open = pl.col("window_start") + window > pl.lit(watermark, dtype=UTC_MS)
        return Receipts(self.frame.filter(still_open))

    def snapshot(self) -> pl.DataFrame:
        return self.frame.sort(*_KEYS)

    @staticmethod
    def restore(frame: pl.DataFrame | None) -> Receipts:
        """From a :meth:`snapshot` (None: a snapshot from before receipts; start with none)."""
        if frame is None:
            return Receipts()
        if dict(frame.schema) != dict(RECEIPTS_SCHEMA):
            raise ValueError(f"receipts frame has columns {dict(frame.schema)}")
        return Receipts(frame)


def stamp_windows(findings: Sequence[Finding], receipts: Receipts) -> list[Finding]:
    """Model occurrences (one per window) stamped with their window's earliest receipt."""
    if not findings or receipts.frame.height == 0:
        return list(findings)
    wanted = pl.DataFrame(
        {
            "principal_key": [f.principal for f in findings],
            "window_start": [f.window_start for f in findings],
        },
        schema={"principal_key": pl.String(), "window_start": UTC_MS},
    )
    found = wanted.join(receipts.frame, on=list(_KEYS), how="left")
    times = found.get_column("received_at").to_list()
    return [
        dataclasses.replace(f, received_at=t) if t is not None else f
        for f, t in zip(findings, times, strict=True)
    ]


def stamp_batch(findings: Sequence[Finding], events: pl.DataFrame) -> list[Finding]:
    """Signature occurrences (their events are all in ``events``) stamped with the earliest
    receipt among their sampled events, which are their first ones."""
    if not findings or events.height == 0:
        return list(findings)
    ids = sorted({i for f in findings for i in f.event_ids})
    rows = (
        events.filter(pl.col("event_id").is_in(ids) & pl.col("received_time").is_not_null())
        .group_by("event_id")
        .agg(pl.col("received_time").min())
    )
    received = dict(zip(rows.get_column("event_id"), rows.get_column("received_time"), strict=True))
    out = []
    for finding in findings:
        times = [received[i] for i in finding.event_ids if i in received]
        out.append(dataclasses.replace(finding, received_at=min(times)) if times else finding)
    return out
