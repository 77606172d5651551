"""The port every archive source implements, and the in-memory fakes shipped for tests.

:class:`ArchiveSource` has two calls: list objects in replay order (:class:`FilePosition`
order, after an optional position), and read one object's bytes. A listing may include objects
the filter will reject, digest files and stray files: the reader decides, counts, and never
reads those. A read that fails for one object only raises :class:`ArchiveReadError`, which the
reader turns into a failure of that file; any other exception stops the replay.

:class:`InMemorySource` walks the same layout code as the real folder and S3 sources over a
dict of keys, and records every folder it lists and every key it reads.
:class:`RecordingSource` wraps any source and records its reads (to count downloads).

Imports: the standard library, :mod:`detector.errors` and this package's layout walk.
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator, Mapping
from typing import Final, Protocol

from detector.archive._filter import ArchiveFilter
from detector.archive._layout import DirectoryLister, Listing, walk_layout
from detector.archive._object import ArchiveObject, FilePosition
from detector.errors import DetectorError

__all__ = ["ArchiveReadError", "ArchiveSource", "InMemorySource", "RecordingSource"]


class ArchiveReadError(DetectorError):
    """One object could not be read (gone, forbidden, truncated); the replay goes on."""


class ArchiveSource(Protocol):
    """Where archived CloudTrail comes from: a folder, a bucket, a file of envelopes, a dict."""

    def list_objects(
        self, filter: ArchiveFilter, *, start_after: FilePosition | None = None
    ) -> AsyncIterator[ArchiveObject]:
        """Objects after ``start_after`` in position order; at least those ``filter`` admits."""
        ...

    async def read(self, obj: ArchiveObject) -> bytes:
        """The object's bytes as stored (gzipped for trail files)."""
        ...


_SEPARATOR: Final = "/"


class _DictLister:
    """List folders of a sorted key list, like S3's ListObjectsV2 with a delimiter."""

    def __init__(self, keys: list[str], sizes: Mapping[str, int], calls: list[str]) -> None:
        self._keys = keys
        self._sizes = sizes
        self._calls = calls

    async def list_folder(self, prefix: str) -> Listing:
        self._calls.append(prefix)
        start = bisect.bisect_left(self._keys, prefix)
        folders: list[str] = []
        files: list[tuple[str, int]] = []
        for key in self._keys[start:]:
            if not key.startswith(prefix):
                break
            rest = key[len(prefix) :]
            head, sep, _ = rest.partition(_SEPARATOR)
            if sep:
                if not folders or folders[-1] != head:
                    folders.append(head)
            else:
                files.append((key, self._sizes[key]))
        return Listing(tuple(folders), tuple(files))


class InMemorySource:
    """A dict ``key -> bytes`` in CloudTrail's layout, walked like a real source.

    ``listed`` holds every folder prefix listed, ``reads`` every key read, in order.
    """

    def __init__(
        self, files: Mapping[str, bytes], *, root: str = "", include_digests: bool = True
    ) -> None:
        self._files = dict(files)
        self._root = root
        self._include_digests = include_digests
        self.listed: list[str] = []
        self.reads: list[str] = []
        sizes = {k: len(v) for k, v in self._files.items()}
        self._lister: DirectoryLister = _DictLister(sorted(self._files), sizes, self.listed)

    async def list_objects(
        self, filter: ArchiveFilter, *, start_after: FilePosition | None = None
    ) -> AsyncIterator[ArchiveObject]:
        async for obj in walk_layout(
            self._lister,
            self._root,
            filter,
            start_after=start_after,
            include_digests=self._include_digests,
        ):
            yield obj

    async def read(self, obj: ArchiveObject) -> bytes:
        self.reads.append(obj.key)
        try:
            return self._files[obj.key]
        except KeyError:
            raise ArchiveReadError(f"{obj.key}: no such object") from None


class RecordingSource:
    """Any source, with every key read recorded in ``reads`` (for counting downloads)."""

    def __init__(self, inner: ArchiveSource) -> None:
        self.inner = inner
        self.reads: list[str] = []

    def list_objects(
        self, filter: ArchiveFilter, *, start_after: FilePosition | None = None
    ) -> AsyncIterator[ArchiveObject]:
        return self.inner.list_objects(filter, start_after=start_after)

    async def read(self, obj: ArchiveObject) -> bytes:
        self.reads.append(obj.key)
        return await self.inner.read(obj)
