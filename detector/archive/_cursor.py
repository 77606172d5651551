"""The replay cursor: how far a replay got, as a value that can be stored and resumed from.

Files are processed in :class:`FilePosition` order. Because events are held back for
``lateness`` before they are emitted (see :mod:`._merge`), "the last file read" is not "done":
some of its events may still be waiting. The cursor therefore says exactly which events have
been emitted::

    position order ──────────────────────────────────────────────────────────────▶
    [ files ≤ done_through ][ done_through < files ≤ read_through ][ later files ]
      every event emitted     events with event_time < watermark     nothing read
                              emitted, the others not yet

A replay started with ``start_after=cursor`` lists files after ``done_through`` only, drops
events before ``watermark`` from files up to ``read_through`` (they were emitted already) and
starts its watermark at ``watermark``; it then emits exactly the events the interrupted replay
had not emitted. Checkpoint the cursor together with the state the emitted events produced.

Imports: the standard library, :mod:`detector.errors` and this package's objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from detector.archive._object import FilePosition
from detector.errors import StateError

__all__ = ["ArchiveCursor"]


@dataclass(frozen=True, slots=True)
class ArchiveCursor:
    """Everything up to ``done_through`` is done; up to ``read_through``, events before
    ``watermark`` are. ``watermark`` is None when nothing after ``done_through`` was emitted."""

    done_through: FilePosition | None
    read_through: FilePosition | None
    watermark: datetime | None

    def __post_init__(self) -> None:
        done, read = self.done_through, self.read_through
        if read is None and done is not None:
            raise StateError("cursor: read_through missing while done_through is set")
        if done is not None and read is not None and read < done:
            raise StateError("cursor: read_through is before done_through")

    @property
    def is_complete(self) -> bool:
        """True when no file has events still waiting: nothing is re-read on resume."""
        return self.read_through == self.done_through

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (ISO-8601 texts), the inverse of :meth:`from_dict`."""
        return {
            "done_through": _position_dict(self.done_through),
            "read_through": _position_dict(self.read_through),
            "watermark": None if self.watermark is None else self.watermark.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> ArchiveCursor:
        """Read a stored cursor; raises :class:`StateError` naming the bad field."""
        if not isinstance(data, dict):
            raise StateError("cursor: expected an object")
        watermark = data.get("watermark")
        return cls(
            _position(data.get("done_through"), "done_through"),
            _position(data.get("read_through"), "read_through"),
            None if watermark is None else _datetime(watermark, "watermark"),
        )


def _position_dict(position: FilePosition | None) -> dict[str, str] | None:
    if position is None:
        return None
    return {
        "day": position.day.isoformat(),
        "delivered": position.delivered.isoformat(),
        "key": position.key,
    }


def _position(data: Any, name: str) -> FilePosition | None:
    if data is None:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("key"), str):
        raise StateError(f"cursor field '{name}': expected an object with a 'key'")
    try:
        day = date.fromisoformat(data["day"])
    except (KeyError, TypeError, ValueError):
        raise StateError(f"cursor field '{name}.day': not an ISO date") from None
    return FilePosition(day, _datetime(data.get("delivered"), f"{name}.delivered"), data["key"])


def _datetime(text: Any, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise StateError(f"cursor field '{name}': not an ISO-8601 time") from None
    if value.utcoffset() is None:
        raise StateError(f"cursor field '{name}': time has no time zone")
    return value
