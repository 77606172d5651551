"""The feature stage's state as one immutable value, with snapshot and restore.

:class:`FeatureState` holds the profiles, the events of windows still open, the ids of recently
seen events (for deduplication) and the watermark. Update functions return a new value; nothing
is mutated, so a caller can keep the previous state, compare states, or snapshot any of them.

In memory the frames carry 64-bit codes (see :mod:`detector.features._prepare`); a snapshot
holds only their text columns, because codes are hashes that another polars version may
compute differently, and :meth:`FeatureState.restore` recomputes them.

Imports: polars, the standard library, :mod:`detector.errors`, :mod:`detector.state` (the
snapshot type) and this package.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import polars as pl

from detector.engine import ENGINE
from detector.errors import StateError
from detector.events import UTC_MS
from detector.features._config import FeatureConfig
from detector.features._prepare import PENDING_SCHEMA, empty_pending, with_codes
from detector.features._profile import (
    PRINCIPALS_SCHEMA,
    PROFILE_ITEMS_SCHEMA,
    Profiles,
    empty_profiles,
    encode_profiles,
)
from detector.state import Snapshot

__all__ = [
    "OPEN_WINDOWS_SCHEMA",
    "SEEN_IDS_SCHEMA",
    "STATE_FORMAT",
    "FeatureState",
    "empty_state",
    "open_windows_of",
]

STATE_FORMAT: Final = "features/2"  # 2: pending events keep normalised item values
SEEN_IDS_SCHEMA: Final = pl.Schema({"event_id": pl.String(), "event_time": UTC_MS})
_SEEN_IN_STATE: Final = pl.Schema({**SEEN_IDS_SCHEMA, "event_hash": pl.UInt64()})
OPEN_WINDOWS_SCHEMA: Final = pl.Schema({"window_hash": pl.UInt64(), "window_start": UTC_MS})
_FRAMES: Final = {
    "profile_items": PROFILE_ITEMS_SCHEMA,
    "profile_principals": PRINCIPALS_SCHEMA,
    "pending_events": PENDING_SCHEMA,
    "seen_event_ids": SEEN_IDS_SCHEMA,
}


@dataclass(frozen=True, slots=True)
class FeatureState:
    """Profiles + open windows' events + recent event ids + watermark."""

    profiles: Profiles
    pending: pl.DataFrame  # events of open windows (PENDING_SCHEMA + CODES_SCHEMA)
    seen_ids: pl.DataFrame  # ids of recent events, for deduplication (SEEN_IDS_SCHEMA + hash)
    watermark: datetime | None  # windows ending at or before it are closed
    # The open windows, one row each (OPEN_WINDOWS_SCHEMA): derived from ``pending``, kept so
    # that an update does not scan the open windows' events to count or find them.
    windows: pl.DataFrame

    @property
    def open_windows(self) -> int:
        return self.windows.height

    def snapshot(self, config: FeatureConfig) -> Snapshot:
        """The state as frames + text metadata, for a :class:`~detector.state.StateStore`."""
        frames = {
            "profile_items": self.profiles.items,
            "profile_principals": self.profiles.principals.select(PRINCIPALS_SCHEMA.names()),
            "pending_events": self.pending.select(PENDING_SCHEMA.names()).rechunk(),
            "seen_event_ids": self.seen_ids.select(SEEN_IDS_SCHEMA.names()).rechunk(),
        }
        meta = {
            "format": STATE_FORMAT,
            "window_ms": str(config.window_ms),
            "watermark": "" if self.watermark is None else self.watermark.isoformat(),
        }
        return Snapshot(frames, meta)

    @staticmethod
    def restore(snapshot: Snapshot, config: FeatureConfig) -> FeatureState:
        """The state a snapshot was taken of; :class:`StateError` if it does not fit."""
        meta = snapshot.meta
        if meta.get("format") != STATE_FORMAT:
            raise StateError(f"snapshot format {meta.get('format')!r}, expected {STATE_FORMAT!r}")
        if meta.get("window_ms") != str(config.window_ms):
            raise StateError(
                f"snapshot was taken with {meta.get('window_ms')} ms windows, "
                f"the configuration says {config.window_ms} ms"
            )
        frames: dict[str, pl.DataFrame] = {}
        for name, schema in _FRAMES.items():
            frame = snapshot.frames.get(name)
            if frame is None:
                raise StateError(f"snapshot has no frame {name!r}")
            if frame.schema != schema:
                raise StateError(f"snapshot frame {name!r}: schema {frame.schema} != {schema}")
            frames[name] = frame
        text = meta.get("watermark", "")
        try:
            watermark = datetime.fromisoformat(text) if text else None
        except ValueError as err:
            raise StateError(f"snapshot watermark {text!r}: {err}") from err
        pending, seen = pl.collect_all(
            [with_codes(frames["pending_events"].lazy()), _with_id_codes(frames["seen_event_ids"])],
            engine=ENGINE,
        )
        return FeatureState(
            encode_profiles(frames["profile_items"], frames["profile_principals"]),
            pending,
            seen,
            watermark,
            open_windows_of(pending),
        )


def open_windows_of(events: pl.DataFrame) -> pl.DataFrame:
    """The windows of pending events, one row each (:data:`OPEN_WINDOWS_SCHEMA`)."""
    return events.select(OPEN_WINDOWS_SCHEMA.names()).unique("window_hash", maintain_order=True)


def _with_id_codes(seen: pl.DataFrame) -> pl.LazyFrame:
    return seen.lazy().with_columns(pl.col("event_id").hash().alias("event_hash"))


def empty_state() -> FeatureState:
    """The state before any event: empty profiles, nothing open, no watermark."""
    return FeatureState(
        empty_profiles(),
        empty_pending(),
        pl.DataFrame(schema=_SEEN_IN_STATE),
        None,
        pl.DataFrame(schema=OPEN_WINDOWS_SCHEMA),
    )
