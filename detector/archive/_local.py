"""A local folder holding CloudTrail's layout (``aws s3 sync`` of a trail bucket, say).

The folder may be the trail's prefix (it contains ``AWSLogs/``) or a folder inside the layout
(``.../AWSLogs/o-<org>/``, ``.../AWSLogs/<account>/``). Keys are paths relative to the folder
above ``AWSLogs``, with ``/`` separators, so the same archive gives the same keys here and in
S3. Digest folders are walked so that digest files are counted; they are never read. A symlink
(file or folder) that leads out of the folder is skipped with a warning, and never read.
Folder listings and reads run in worker threads.

Imports: the standard library and this package's layout walk and port.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from detector.archive._filter import ArchiveFilter
from detector.archive._layout import Listing, split_root, walk_layout
from detector.archive._object import ArchiveObject, FilePosition
from detector.archive._source import ArchiveReadError
from detector.errors import ConfigError

__all__ = ["LocalFolderSource"]


_log = logging.getLogger(__name__)


def _inside(base: Path, path: Path) -> bool:
    """Whether ``path``, symlinks resolved, stays under ``base`` (already resolved)."""
    return path.resolve().is_relative_to(base)


def _list_folder(base: Path, prefix: str, root: Path) -> Listing:
    """One folder's entries; ``root`` is the folder the user named, resolved."""
    folders: list[str] = []
    files: list[tuple[str, int]] = []
    try:
        with os.scandir(base / prefix if prefix else base) as entries:
            for entry in entries:
                if entry.is_symlink() and not _inside(root, Path(entry.path)):
                    # Whoever can write into the archive must not make a replay read elsewhere.
                    _log.warning(
                        "archive: skipping %r: a symlink leading out of the archive folder %s",
                        prefix + entry.name,
                        str(root),
                    )
                    continue
                if entry.is_dir():
                    folders.append(entry.name)
                elif entry.is_file():
                    files.append((prefix + entry.name, entry.stat().st_size))
    except (FileNotFoundError, NotADirectoryError):
        return Listing()
    folders.sort()
    files.sort()
    return Listing(tuple(folders), tuple(files))


class _FolderLister:
    def __init__(self, base: Path, root: Path) -> None:
        self._base = base
        self._root = root

    async def list_folder(self, prefix: str) -> Listing:
        return await asyncio.to_thread(_list_folder, self._base, prefix, self._root)


class LocalFolderSource:
    """CloudTrail files under a local folder; see the module docstring for what it accepts."""

    def __init__(self, folder: str | os.PathLike[str], *, include_digests: bool = True) -> None:
        self.folder = Path(folder)
        self.include_digests = include_digests
        self._located: tuple[Path, str] | None = None

    def _locate(self) -> tuple[Path, str]:
        """``(folder above AWSLogs, root prefix below it)``, checked once."""
        if self._located is None:
            self._located = self._find_layout()
        return self._located

    def _find_layout(self) -> tuple[Path, str]:
        folder = self.folder.resolve()
        if not folder.is_dir():
            raise ConfigError(f"archive folder {str(self.folder)!r} does not exist")
        parts = folder.parts
        if "AWSLogs" not in parts:
            return folder, ""
        at = len(parts) - 1 - parts[::-1].index("AWSLogs")
        base = Path(*parts[:at])
        root = "/".join(parts[at:]) + "/"
        split_root(root)  # a folder deeper than an account is a ConfigError, raised now
        return base, root

    async def list_objects(
        self, filter: ArchiveFilter, *, start_after: FilePosition | None = None
    ) -> AsyncIterator[ArchiveObject]:
        base, root = self._locate()
        async for obj in walk_layout(
            _FolderLister(base, self.folder.resolve()),
            root,
            filter,
            start_after=start_after,
            include_digests=self.include_digests,
        ):
            yield obj

    async def read(self, obj: ArchiveObject) -> bytes:
        base, _ = self._locate()
        path = base / obj.key
        if not _inside(self.folder.resolve(), path):
            raise ArchiveReadError(f"{obj.key}: leads out of the archive folder: refused")
        try:
            return await asyncio.to_thread(path.read_bytes)
        except OSError as err:
            raise ArchiveReadError(f"{obj.key}: {err.strerror or err}") from None
