"""The findings-sink port, the message it carries, and its error.

A sink takes findings already serialised by :mod:`detector.findings` (the service converts), so
sinks know nothing of the finding record beyond its id, its group and its bytes.

Imports: detector.errors only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from detector.errors import DetectorError

__all__ = ["FindingMessage", "FindingSink", "SinkError"]


class SinkError(DetectorError):
    """Findings could not be delivered (retries exhausted, refused, or the sink is closed).

    ``finding_ids`` names the findings that were not delivered; the others of the same call
    were.
    """

    def __init__(self, message: str, finding_ids: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.finding_ids = tuple(finding_ids)


@dataclass(frozen=True, slots=True)
class FindingMessage:
    """One serialised finding.

    ``finding_id`` is stable across re-deliveries of the same input; ``revision`` tells the
    updates of one aggregated finding apart (its ``count``; FIFO sinks deduplicate on both);
    ``group`` is the principal, the unit of ordering; ``body`` is the finding as one JSON
    document (UTF-8).
    """

    finding_id: str
    group: str
    body: bytes
    revision: int = 1


class FindingSink(Protocol):
    """Where findings go. ``send`` returns once every finding is durably delivered, or raises
    :class:`SinkError`; the service checkpoints and deletes its input only after it returns."""

    async def send(self, findings: Sequence[FindingMessage]) -> None: ...

    async def close(self) -> None:
        """Flush and release; idempotent. ``send`` after ``close`` raises ``SinkError``."""
        ...
