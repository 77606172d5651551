"""The in-memory fake of the findings sink.

Imports: this package's port only.
"""

from __future__ import annotations

from collections.abc import Sequence

from detector.sinks._port import FindingMessage, SinkError

__all__ = ["MemoryFindingSink"]


class MemoryFindingSink:
    """Keeps every finding it is sent, in order; for tests and the demo."""

    def __init__(self) -> None:
        self.findings: list[FindingMessage] = []
        self.send_calls = 0
        self.closed = False

    async def send(self, findings: Sequence[FindingMessage]) -> None:
        if self.closed:
            raise SinkError("the memory sink is closed", [f.finding_id for f in findings])
        self.send_calls += 1
        self.findings.extend(findings)

    async def close(self) -> None:
        self.closed = True

    @property
    def finding_ids(self) -> list[str]:
        return [finding.finding_id for finding in self.findings]
