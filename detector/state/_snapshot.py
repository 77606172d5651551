"""A state snapshot: named polars frames plus a few scalars, the unit a state store saves.

The store never interprets the frames; the stage that owns the state turns itself into a
:class:`Snapshot` and back (see :meth:`detector.features.FeatureState.snapshot`). Frames that
hold per-principal data carry a ``principal_key`` column, which is what a store shared by
several replicas partitions on. Imports: polars and the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

__all__ = ["Snapshot"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything needed to resume: frames by name, and text metadata (versions, watermark)."""

    frames: Mapping[str, pl.DataFrame]
    meta: Mapping[str, str] = field(default_factory=dict)

    def equals(self, other: Snapshot) -> bool:
        """Same metadata and, frame by frame, the same schema and rows in the same order."""
        return (
            dict(self.meta) == dict(other.meta)
            and self.frames.keys() == other.frames.keys()
            and all(
                self.frames[name].equals(other.frames[name], null_equal=True)
                and self.frames[name].schema == other.frames[name].schema
                for name in self.frames
            )
        )
