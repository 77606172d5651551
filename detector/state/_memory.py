"""In-memory state store: the fake the tests and single-shot replays use.

Imports: polars and this package. One writer by construction: no conflicts to detect.
"""

from __future__ import annotations

from detector.state._local import check_frame_names
from detector.state._snapshot import Snapshot

__all__ = ["InMemoryStateStore"]


class InMemoryStateStore:
    """Keeps the last saved snapshot (and the one before) in memory.

    Frames are cloned on the way in and out, so a caller mutating what it saved or loaded
    cannot change what the store holds (polars frames are immutable values; cloning is cheap).
    """

    def __init__(self) -> None:
        self._current: Snapshot | None = None
        self.previous: Snapshot | None = None
        self.saves = 0

    def load(self) -> Snapshot | None:
        return None if self._current is None else _copy(self._current)

    def save(self, snapshot: Snapshot) -> None:
        check_frame_names(snapshot)  # what a real store refuses, the fake refuses too
        self.previous = self._current
        self._current = _copy(snapshot)
        self.saves += 1


def _copy(snapshot: Snapshot) -> Snapshot:
    return Snapshot(
        {name: frame.clone() for name, frame in snapshot.frames.items()}, dict(snapshot.meta)
    )
