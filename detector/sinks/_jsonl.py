"""A findings sink that appends one JSON line per finding to a local file.

Each ``send`` writes its findings in one ``write``, then flushes and fsyncs before returning, so
a finding the service has acknowledged survives a crash. The blocking file calls run in a
worker thread. A line cut short by an earlier crash is ended before new lines are appended.

Imports: orjson and this package's port.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import orjson

from detector.sinks._port import FindingMessage, SinkError

__all__ = ["JsonlFindingSink"]


def _line(finding: FindingMessage) -> bytes:
    try:
        document = orjson.loads(finding.body)
    except orjson.JSONDecodeError as err:
        raise SinkError(
            f"finding {finding.finding_id}: body is not JSON ({err})", [finding.finding_id]
        ) from None
    body = finding.body.strip()
    if b"\n" in body or b"\r" in body:
        body = orjson.dumps(document)  # JSON Lines: one document per line
    return body + b"\n"


class JsonlFindingSink:
    """Appends findings to ``path`` (created if missing; its folder must exist)."""

    def __init__(self, path: Path | str, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._file: BinaryIO | None = None
        self._closed = False
        self._lock = asyncio.Lock()  # one batch at a time: lines of two batches never interleave

    async def send(self, findings: Sequence[FindingMessage]) -> None:
        if self._closed:
            raise SinkError(f"JSONL sink {self.path} is closed", [f.finding_id for f in findings])
        if not findings:
            return
        data = b"".join(_line(finding) for finding in findings)
        try:
            async with self._lock:
                await asyncio.to_thread(self._append, data)
        except OSError as err:
            raise SinkError(
                f"cannot append to {self.path}: {err}", [f.finding_id for f in findings]
            ) from err

    async def close(self) -> None:
        self._closed = True
        async with self._lock:
            file, self._file = self._file, None
            if file is not None:
                await asyncio.to_thread(file.close)

    def _append(self, data: bytes) -> None:
        file = self._file
        if file is None:
            file = self._file = self.path.open("ab")
            if file.tell() > 0 and not _ends_with_newline(self.path):
                data = b"\n" + data
        file.write(data)
        file.flush()
        if self._fsync:
            os.fsync(file.fileno())


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as file:
        file.seek(-1, os.SEEK_END)
        return file.read(1) == b"\n"
