"""Time to detect: how long after its first event reached the detector a finding was sent.

Imports: the standard library and the detector's findings and scoring packages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal, TypeAlias

from detector.findings import Finding
from detector.scoring import MODEL_KIND

__all__ = ["FAMILIES", "Family", "detect_seconds", "family_of"]

Family: TypeAlias = Literal["model", "detection"]
FAMILIES: Final[tuple[Family, ...]] = ("model", "detection")


def family_of(kind: str) -> Family:
    return "model" if kind == MODEL_KIND else "detection"


def detect_seconds(findings: Sequence[Finding]) -> tuple[tuple[Family, float], ...]:
    """``created_at - received_at`` of each finding that has a receipt time, by family (a
    receipt stamped after the detector's clock counts as 0: the two clocks differ)."""
    return tuple(
        (family_of(f.kind), max(0.0, (f.created_at - f.received_at).total_seconds()))
        for f in findings
        if f.received_at is not None
    )
