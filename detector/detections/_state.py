"""What the detections remember between batches: which findings they already reported.

A finding is keyed by (detection id, principal key, dedup period start); one is reported per
key. The state is a value: :func:`detector.detections.run_detections` returns a new one, and
:meth:`DetectionState.snapshot` / :meth:`DetectionState.restore` turn it into plain JSON-ready
dicts and back, for checkpoints. Imports: the standard library, detector.errors,
detector.findings (time format).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeAlias

from detector.errors import StateError
from detector.findings import isoformat_ms

__all__ = ["DetectionState", "EmittedKey"]

EmittedKey: TypeAlias = tuple[str, str, datetime]  # detection id, principal key, period start

_SNAPSHOT_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class DetectionState:
    """The (detection, principal, period) keys that already produced a finding."""

    emitted: frozenset[EmittedKey] = frozenset()

    def with_emitted(self, keys: Iterable[EmittedKey]) -> DetectionState:
        return DetectionState(self.emitted | frozenset(keys))

    def forget_before(self, cutoff: datetime) -> DetectionState:
        """Drop periods that started before ``cutoff``: events that old that still arrive may
        report again, under the same finding id."""
        kept = frozenset(key for key in self.emitted if key[2] >= cutoff)
        return self if len(kept) == len(self.emitted) else DetectionState(kept)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready dict, sorted so that equal states give equal snapshots."""
        rows = sorted((d, p, isoformat_ms(t)) for d, p, t in self.emitted)
        return {"version": _SNAPSHOT_VERSION, "emitted": [list(row) for row in rows]}

    @staticmethod
    def restore(snapshot: Mapping[str, Any]) -> DetectionState:
        """The state of a :meth:`snapshot`; :class:`StateError` names what is wrong."""
        version = snapshot.get("version")
        if version != _SNAPSHOT_VERSION:
            raise StateError(f"detection state snapshot version {version!r} is not supported")
        rows = snapshot.get("emitted")
        if not isinstance(rows, list):
            raise StateError("detection state snapshot: 'emitted' is not a list")
        keys: set[EmittedKey] = set()
        for i, row in enumerate(rows):
            if not (
                isinstance(row, list)
                and len(row) == 3
                and all(isinstance(v, str) for v in row)
                and row[2].endswith("Z")
            ):
                raise StateError(
                    f"detection state snapshot: emitted[{i}] is not [detection, principal, time]"
                )
            try:
                start = datetime.fromisoformat(row[2])
            except ValueError as err:
                raise StateError(f"detection state snapshot: emitted[{i}]: {err}") from err
            keys.add((row[0], row[1], start))
        return DetectionState(frozenset(keys))
