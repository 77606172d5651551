"""The state store port: load the last saved snapshot, save a new one.

Imports: this package's snapshot only.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from detector.state._snapshot import Snapshot

__all__ = ["StateStore"]


@runtime_checkable
class StateStore(Protocol):
    """Where a detector keeps its state between runs.

    ``save`` is all-or-nothing: after it returns, ``load`` gives back an equal snapshot; if it
    raises (or the process dies inside it) ``load`` gives back the previous one. ``load``
    returns ``None`` when nothing was ever saved, and raises
    :class:`~detector.errors.StateError` when what is stored cannot be trusted.
    """

    def load(self) -> Snapshot | None: ...

    def save(self, snapshot: Snapshot) -> None: ...
