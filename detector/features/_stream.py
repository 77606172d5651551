"""Events in, closed window rows out: the pure streaming step of the feature stage.

``update(state, events, config) -> (state, closed_windows, report)`` and
``flush(state, config) -> (state, closed_windows, report)``. Time is event time only: no clock
is read, so a replay and the live service produce the same rows.

Windows, watermark, late and duplicate events
---------------------------------------------
Windows are tumbling, per principal, on event time (``window``, default 5 minutes), aligned to
the epoch. The *watermark* is the largest event time seen minus ``allowed_lateness`` (default
15 minutes); it never goes back. A window ``[start, end)`` closes when ``end <= watermark``:
its row is emitted, judged against the principal's profile as it was before that window, and
the profile then learns the window. Until then its events wait in the state, so events that
arrive out of order, or several minutes after later ones, still land in their window. As long
as every event arrives no more than ``allowed_lateness`` behind the latest event seen, the rows
are the same however the events are split into batches or ordered.

An event whose window has already closed (its window end is at or before the watermark) is
*late*. It is not dropped: the late events of one update are grouped by principal and window
into a *correction row* (``late_correction=True``) that counts only those late events, judged
against the profile as it stood at the start of that update; they are then folded into the
profile like any other event, and counted in ``UpdateReport.late_events``. The original row
is never re-emitted; a consumer that wants a window's totals adds its corrections to it.

Duplicates (same ``event_id``) count once. Ids are remembered while the event time is at most
``dedup_horizon`` (default 15 minutes) behind the watermark, and while the event waits in an
open window; a redelivery within that horizon (up to about 30 minutes behind the latest event,
with the defaults) is dropped and counted in ``UpdateReport.duplicates``. A copy redelivered
later than that is treated as a new, late event.

``flush`` closes every open window (end of a replay, shutdown) by moving the watermark to the
end of the last open window; events for those windows arriving afterwards are late.

Imports: polars, the standard library and this package.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import polars as pl

from detector.features._config import FeatureConfig
from detector.features._prepare import prepare_events
from detector.features._profile import learn
from detector.features._state import FeatureState
from detector.features._windows import close_windows

__all__ = ["UpdateReport", "flush", "update"]

UTC_MS: Final = pl.Datetime("ms", "UTC")


@dataclass(frozen=True, slots=True)
class UpdateReport:
    """What one update did, for metrics and logs."""

    events_in: int
    duplicates: int  # dropped: already seen, within the batch or within the dedup horizon
    late_events: int  # arrived after their window closed; counted in correction rows
    windows_closed: int  # on-time window rows emitted
    late_corrections: int  # correction rows emitted
    open_windows: int
    pending_events: int
    watermark: datetime | None
    principals: int  # principals in the profile
    profile_items: int


def _window_end(config: FeatureConfig) -> pl.Expr:
    return pl.col("window_start") + timedelta(milliseconds=config.window_ms)


def _advance(
    state: FeatureState,
    pending: pl.DataFrame,
    late: pl.DataFrame,
    watermark: datetime | None,
    new_ids: pl.DataFrame,
    config: FeatureConfig,
    counts: tuple[int, int],
) -> tuple[FeatureState, pl.DataFrame, UpdateReport]:
    if watermark is None:
        closing, still_open = pending.clear(), pending
    else:
        closes = _window_end(config) <= pl.lit(watermark, dtype=UTC_MS)
        closing, still_open = pending.filter(closes), pending.filter(~closes)
    on_time = close_windows(closing, state.profiles, config, late=False)
    corrections = close_windows(late, state.profiles, config, late=True)
    profiles = state.profiles
    if watermark is not None:
        forget_before = watermark - config.window - config.profile_ttl
        profiles = learn(profiles, on_time.items, on_time.totals, forget_before, config)
        if late.height:
            profiles = learn(profiles, corrections.items, corrections.totals, forget_before, config)
    seen = pl.concat([state.seen_ids, new_ids], how="vertical")
    if watermark is not None:
        seen = seen.filter(pl.col("event_time") >= watermark - config.dedup_horizon)
    rows = pl.concat([on_time.rows, corrections.rows], how="vertical").sort(
        "principal_key", "window_start", "late_correction"
    )
    new_state = FeatureState(profiles, still_open, seen, watermark)
    events_in, duplicates = counts
    report = UpdateReport(
        events_in=events_in,
        duplicates=duplicates,
        late_events=late.height,
        windows_closed=on_time.rows.height,
        late_corrections=corrections.rows.height,
        open_windows=new_state.open_windows,
        pending_events=still_open.height,
        watermark=watermark,
        principals=profiles.principals.height,
        profile_items=profiles.items.height,
    )
    return new_state, rows, report


def update(
    state: FeatureState, events: pl.DataFrame, config: FeatureConfig
) -> tuple[FeatureState, pl.DataFrame, UpdateReport]:
    """Add a batch of events (:data:`~detector.events.EVENT_SCHEMA`); emit the windows that close.

    Returns the new state, the closed window rows (:func:`closed_window_schema`, sorted by
    principal, window start, then late corrections after on-time rows) and a report.
    """
    known_ids = pl.concat(
        [state.seen_ids.lazy().select("event_id"), state.pending.lazy().select("event_id")]
    )
    fresh = (
        prepare_events(events.lazy(), config)
        .unique("event_id", keep="first", maintain_order=True)
        .join(known_ids, on="event_id", how="anti")
        .collect()
    )
    if state.watermark is None:
        late, on_time = fresh.clear(), fresh
    else:
        is_late = _window_end(config) <= pl.lit(state.watermark, dtype=UTC_MS)
        late, on_time = fresh.filter(is_late), fresh.filter(~is_late)
    watermark = state.watermark
    latest = fresh.get_column("event_time").max()
    if isinstance(latest, datetime):
        candidate = latest - config.allowed_lateness
        watermark = candidate if watermark is None else max(watermark, candidate)
    pending = pl.concat([state.pending, on_time], how="vertical")
    new_ids = fresh.select("event_id", "event_time")
    counts = (events.height, events.height - fresh.height)
    return _advance(state, pending, late, watermark, new_ids, config, counts)


def flush(
    state: FeatureState, config: FeatureConfig
) -> tuple[FeatureState, pl.DataFrame, UpdateReport]:
    """Close every open window now (end of replay, shutdown); same outputs as :func:`update`."""
    watermark = state.watermark
    last_end = state.pending.select(_window_end(config).max()).item()
    if isinstance(last_end, datetime):
        watermark = last_end if watermark is None else max(watermark, last_end)
    no_events = state.pending.clear()
    return _advance(
        state, state.pending, no_events, watermark, state.seen_ids.clear(), config, (0, 0)
    )
