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
``advance`` moves the watermark to a given time (never back): the service does so while its
queue is idle, so that windows close at night (:mod:`detector.service._policy`). ``preview``
gives the rows the open windows would have if they closed now, without changing the state:
the early reports of :mod:`detector.timeliness` score them.

Cost: an update that closes no window (most micro-batches: windows of all principals close
together, once per window length of event time) prepares its batch (one collect), looks its ids
up in the remembered ids, appends it to the open windows' events (no copy of what is already
there) and touches nothing else; the window stage and the profiles run only when a window
closes or a late event arrives, and then cost a few milliseconds plus time proportional to
the closing events and to the profiles (learning rewrites the profile frames).

Imports: polars, the standard library and this package.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import polars as pl

from detector.engine import ENGINE
from detector.events import UTC_MS
from detector.features._config import FeatureConfig
from detector.features._prepare import prepare_events, with_codes
from detector.features._profile import learn
from detector.features._state import FeatureState, open_windows_of
from detector.features._windows import close_windows

__all__ = ["UpdateReport", "advance", "flush", "preview", "update"]

# Appending a batch to the open windows' events adds chunks; past this many, rewrite them as one.
_MAX_PENDING_CHUNKS: Final = 64


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


def _any_closed(events: pl.DataFrame, watermark: datetime | None, config: FeatureConfig) -> bool:
    """Whether some event's window ends at or before the watermark (one min, no filter)."""
    if watermark is None or events.height == 0:
        return False
    earliest = events.get_column("window_start").min()
    return isinstance(earliest, datetime) and earliest + config.window <= watermark


def _split(
    events: pl.DataFrame, watermark: datetime | None, config: FeatureConfig
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(events of windows closed at ``watermark``, the others)."""
    if not _any_closed(events, watermark, config):
        return events.clear(), events
    closed = _window_end(config) <= pl.lit(watermark, dtype=UTC_MS)
    return events.filter(closed), events.filter(~closed)


def _append(pending: pl.DataFrame, batch: pl.DataFrame) -> pl.DataFrame:
    if batch.height == 0:
        return pending
    if pending.height == 0:
        return batch
    joined = pl.concat([pending, batch], how="vertical", rechunk=False)
    return joined.rechunk() if joined.n_chunks() > _MAX_PENDING_CHUNKS else joined


def _remembered_ids(
    seen: pl.DataFrame, new_ids: pl.DataFrame, watermark: datetime | None, config: FeatureConfig
) -> pl.DataFrame:
    seen = _append(seen, new_ids)
    if watermark is None or seen.height == 0:
        return seen
    horizon = watermark - config.dedup_horizon
    oldest = seen.get_column("event_time").min()
    if isinstance(oldest, datetime) and oldest < horizon:
        return seen.filter(pl.col("event_time") >= horizon).rechunk()
    return seen


def _not_seen_before(
    batch: pl.DataFrame, state: FeatureState, config: FeatureConfig
) -> pl.DataFrame:
    """The batch less the events whose id the state remembers."""
    # Every event enters the recent ids when it arrives, and an open window's events are
    # younger than the dedup horizon whenever the horizon is at least one window: then the
    # recent ids already hold the open windows' ids.
    frames = [state.seen_ids]
    if config.dedup_horizon < config.window:
        frames.append(state.pending)
    known = [frame.lazy().select("event_hash") for frame in frames if frame.height]
    if not known or batch.height == 0:
        return batch
    # Look the (small) batch up in the (large) remembered ids, rather than joining: a join
    # would build a hash table of every remembered id on every call.
    ids = batch.get_column("event_hash").implode()
    again = pl.concat(known).filter(pl.col("event_hash").is_in(ids)).collect(engine=ENGINE)
    if again.height == 0:
        return batch
    return batch.filter(~pl.col("event_hash").is_in(again.get_column("event_hash").implode()))


def _ordered_rows(on_time: pl.DataFrame, corrections: pl.DataFrame) -> pl.DataFrame:
    # Each part is sorted by (principal_key, window_start) already.
    if corrections.height == 0:
        return on_time
    if on_time.height == 0:
        return corrections
    return pl.concat([on_time, corrections], how="vertical").sort(
        "principal_key", "window_start", "late_correction"
    )


def _advance(
    state: FeatureState,
    open_: tuple[pl.DataFrame, pl.DataFrame],
    late: pl.DataFrame,
    watermark: datetime | None,
    new_ids: pl.DataFrame,
    config: FeatureConfig,
    counts: tuple[int, int],
) -> tuple[FeatureState, pl.DataFrame, UpdateReport]:
    pending, windows = open_
    if _any_closed(windows, watermark, config):
        closing, still_open = _split(pending, watermark, config)
        windows = _split(windows, watermark, config)[1]
    else:
        closing, still_open = pending.clear(), pending
    on_time = close_windows(closing, state.profiles, config, late=False)
    corrections = close_windows(late, state.profiles, config, late=True)
    profiles = state.profiles
    if watermark is not None:
        forget_before = watermark - config.window - config.profile_ttl
        profiles = learn(
            profiles, on_time.items, on_time.values, on_time.totals, forget_before, config
        )
        if late.height:
            profiles = learn(
                profiles,
                corrections.items,
                corrections.values,
                corrections.totals,
                forget_before,
                config,
            )
    seen = _remembered_ids(state.seen_ids, new_ids, watermark, config)
    rows = _ordered_rows(on_time.rows, corrections.rows)
    new_state = FeatureState(profiles, still_open, seen, watermark, windows)
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
        profile_items=profiles.item_codes.height,
    )
    return new_state, rows, report


def update(
    state: FeatureState, events: pl.DataFrame, config: FeatureConfig
) -> tuple[FeatureState, pl.DataFrame, UpdateReport]:
    """Add a batch of events (:data:`~detector.events.EVENT_SCHEMA`); emit the windows that close.

    Returns the new state, the closed window rows (:func:`closed_window_schema`, sorted by
    principal, window start, then late corrections after on-time rows) and a report.
    """
    batch = with_codes(prepare_events(events.lazy(), config)).collect(engine=ENGINE)
    # Redeliveries within a batch are rare: find them first, copy the batch only if there are.
    first = batch.select(pl.col("event_hash").is_first_distinct()).to_series()
    if not first.all():
        batch = batch.filter(first)
    fresh_events = _not_seen_before(batch, state, config)
    late, on_time = _split(fresh_events, state.watermark, config)
    watermark = state.watermark
    latest = fresh_events.get_column("event_time").max()
    if isinstance(latest, datetime):
        candidate = latest - config.allowed_lateness
        watermark = candidate if watermark is None else max(watermark, candidate)
    pending = _append(state.pending, on_time)
    windows = state.windows
    if on_time.height:
        windows = open_windows_of(pl.concat([windows, open_windows_of(on_time)]))
    new_ids = fresh_events.select(state.seen_ids.columns)
    counts = (events.height, events.height - fresh_events.height)
    return _advance(state, (pending, windows), late, watermark, new_ids, config, counts)


def flush(
    state: FeatureState, config: FeatureConfig
) -> tuple[FeatureState, pl.DataFrame, UpdateReport]:
    """Close every open window now (end of replay, shutdown); same outputs as :func:`update`."""
    watermark = state.watermark
    last_end = state.windows.select(_window_end(config).max()).item()
    if isinstance(last_end, datetime):
        watermark = last_end if watermark is None else max(watermark, last_end)
    no_events = state.pending.clear()
    open_ = (state.pending, state.windows)
    return _advance(state, open_, no_events, watermark, state.seen_ids.clear(), config, (0, 0))


def advance(
    state: FeatureState, watermark: datetime, config: FeatureConfig
) -> tuple[FeatureState, pl.DataFrame, UpdateReport]:
    """Move the watermark to ``watermark`` (if later) and close the windows it passes; same
    outputs as :func:`update`. Events of those windows arriving afterwards are late."""
    if state.watermark is not None and watermark <= state.watermark:
        watermark = state.watermark
    no_events = state.pending.clear()
    open_ = (state.pending, state.windows)
    return _advance(state, open_, no_events, watermark, state.seen_ids.clear(), config, (0, 0))


def preview(state: FeatureState, config: FeatureConfig) -> pl.DataFrame:
    """The rows of the open windows as they stand (as if they closed now, each judged against
    the profile before it); the state is unchanged and learns nothing."""
    return close_windows(state.pending, state.profiles, config, late=False).rows
