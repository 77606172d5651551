"""What a source lists: one archive object, where it sits in the replay order, and what it holds.

Every source lists :class:`ArchiveObject` values in one total order, :class:`FilePosition`
``(day, delivered, key)``: the day folder of CloudTrail's layout, then the delivery stamp of the
file name, then the key. Day folders are the delivery day, so within the layout this is delivery
order; sources that have no days or stamps (a JSONL file read in chunks) use fixed sentinels
and order by key alone. A replay cursor is a pair of such positions (see :mod:`._cursor`).

Imports: the standard library and :mod:`detector.events` (for the key layout).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Final, Literal

from detector.events import TrailKey, parse_trail_key

__all__ = ["NO_DAY", "NO_TIME", "ArchiveObject", "FilePosition", "ObjectKind"]

# What an object holds; only "trail" and "envelopes" are ever read.
ObjectKind = Literal["trail", "envelopes", "digest", "other"]

NO_DAY: Final = date(1970, 1, 1)  # position of objects that have no day folder
NO_TIME: Final = datetime(1970, 1, 1, tzinfo=UTC)  # ... and no delivery stamp

_LOG_NAME: Final = re.compile(r"\.json(\.gz)?$")


@dataclass(frozen=True, slots=True, order=True)
class FilePosition:
    """A place in the replay order: ``(day, delivered, key)``, compared field by field."""

    day: date
    delivered: datetime
    key: str


@dataclass(frozen=True, slots=True)
class ArchiveObject:
    """One listed object: its key, size in bytes, delivery stamp and kind.

    ``trail`` is what the key says in CloudTrail's layout (None for objects outside it, such as
    chunks of a JSONL file). Build objects of a layout key with :meth:`of_key`.
    """

    key: str
    size: int
    kind: ObjectKind
    delivered: datetime | None = None
    trail: TrailKey | None = None

    @classmethod
    def of_key(cls, key: str, size: int) -> ArchiveObject:
        """Classify a key of CloudTrail's layout: log file, digest file, or anything else."""
        trail = parse_trail_key(key)
        if trail is None:
            return cls(key, size, "other")
        kind: ObjectKind = "other"
        if trail.is_digest:
            kind = "digest"
        elif trail.kind == "CloudTrail" and _LOG_NAME.search(key):
            kind = "trail"
        return cls(key, size, kind, trail.delivered, trail)

    @property
    def position(self) -> FilePosition:
        day = self.trail.day if self.trail is not None else NO_DAY
        if self.delivered is not None:
            delivered = self.delivered
        elif self.trail is not None:
            delivered = datetime.combine(day, time(), UTC)
        else:
            delivered = NO_TIME
        return FilePosition(day, delivered, self.key)
