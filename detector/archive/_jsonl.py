"""A JSONL file of EventBridge envelopes (one message body a line), read in chunks of lines.

Each chunk of ``lines_per_chunk`` lines is one :class:`ArchiveObject` whose key is
``<path>#<byte offset, 16 digits>+<bytes>:<first line number>+<lines>``: keys sort in file
order, and a replay resumed after a chunk seeks straight to the byte after it (whatever chunk
size either run used; offsets count uncompressed bytes). Chunks have no delivery stamp, so
the reader advances its watermark on the events' own times (see :mod:`._merge`). The filter
cannot judge chunks by key; accounts, regions and times are applied to the parsed events.

The file is read once, sequentially, by the listing, which hands each chunk's bytes to the
``read`` that follows (a few chunks are kept; a ``read`` of one no longer kept reads it again,
which for a ``.gz`` file means decompressing up to it). ``.gz`` files are read as they are.

Imports: the standard library, :mod:`detector.errors` and this package's objects and port.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import re
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from detector.archive._filter import ArchiveFilter
from detector.archive._object import ArchiveObject, FilePosition
from detector.archive._source import ArchiveReadError
from detector.errors import ConfigError

__all__ = ["DEFAULT_LINES_PER_CHUNK", "EnvelopeJsonlSource", "JsonlChunk"]

DEFAULT_LINES_PER_CHUNK: Final = 10_000
_OFFSET_DIGITS: Final = 16
_KEPT_CHUNKS: Final = 16  # listed chunks kept for their read (read_events reads right away)
_CHUNK_KEY: Final = re.compile(r"(.*)#(\d{16})\+(\d+):(\d+)\+(\d+)")


@dataclass(frozen=True, slots=True)
class JsonlChunk:
    """Where a chunk sits in its file: bytes ``[offset, offset + size)``, lines from ``first_line``."""

    path: str
    offset: int
    size: int
    first_line: int
    lines: int

    @property
    def key(self) -> str:
        return f"{self.path}#{self.offset:0{_OFFSET_DIGITS}d}+{self.size}:{self.first_line}+{self.lines}"

    @classmethod
    def of_key(cls, key: str) -> JsonlChunk:
        """Parse a chunk key; ValueError if it is not one."""
        match = _CHUNK_KEY.fullmatch(key)
        if match is None:
            raise ValueError(f"not a JSONL chunk key: {key!r}")
        path, offset, size, first, lines = match.groups()
        return cls(path, int(offset), int(size), int(first), int(lines))


def _open(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def _next_lines(handle: io.BufferedIOBase, lines: int) -> tuple[bytes, int]:
    """The next ``lines`` lines (fewer at the end) and how many there were."""
    taken = []
    for _ in range(lines):
        line = handle.readline()
        if not line:
            break
        taken.append(line)
    return b"".join(taken), len(taken)


def _read_range(path: Path, offset: int, size: int) -> bytes:
    with _open(path) as handle:
        handle.seek(offset)
        return handle.read(size)


class EnvelopeJsonlSource:
    """Envelopes in a JSONL file, listed as chunks of ``lines_per_chunk`` lines."""

    def __init__(
        self, path: str | os.PathLike[str], *, lines_per_chunk: int = DEFAULT_LINES_PER_CHUNK
    ) -> None:
        if lines_per_chunk < 1:
            raise ConfigError(f"lines_per_chunk must be >= 1, got {lines_per_chunk}")
        self.path = Path(path)
        self.lines_per_chunk = lines_per_chunk
        self._listed: OrderedDict[str, bytes] = OrderedDict()  # chunks listed, not yet read

    async def list_objects(
        self, filter: ArchiveFilter, *, start_after: FilePosition | None = None
    ) -> AsyncIterator[ArchiveObject]:
        del filter  # chunks cannot be judged by key: the events are filtered after parsing
        if not self.path.is_file():
            raise ConfigError(f"envelope file {str(self.path)!r} does not exist")
        name = str(self.path)
        offset, line = 0, 1
        if start_after is not None:
            try:
                done = JsonlChunk.of_key(start_after.key)
            except ValueError:
                raise ConfigError(f"cursor {start_after.key!r} is not of a JSONL file") from None
            if done.path != name:
                raise ConfigError(f"cursor is for {done.path!r}, not {name!r}")
            offset, line = done.offset + done.size, done.first_line + done.lines
        handle = await asyncio.to_thread(_open, self.path)
        try:
            if offset:
                await asyncio.to_thread(handle.seek, offset)
            while True:
                data, count = await asyncio.to_thread(_next_lines, handle, self.lines_per_chunk)
                if count == 0:
                    return
                key = JsonlChunk(name, offset, len(data), line, count).key
                self._listed[key] = data
                while len(self._listed) > _KEPT_CHUNKS:
                    self._listed.popitem(last=False)
                yield ArchiveObject(key, len(data), "envelopes")
                offset += len(data)
                line += count
        finally:
            handle.close()

    async def read(self, obj: ArchiveObject) -> bytes:
        data = self._listed.pop(obj.key, None)
        if data is not None:
            return data
        chunk = JsonlChunk.of_key(obj.key)
        try:
            return await asyncio.to_thread(_read_range, self.path, chunk.offset, chunk.size)
        except OSError as err:
            raise ArchiveReadError(f"{obj.key}: {err.strerror or err}") from None
