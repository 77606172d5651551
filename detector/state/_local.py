"""Local-files state store: a directory of Parquet snapshots, switched atomically.

Layout::

    <root>/MANIFEST.json           which snapshot is current, and the one before
    <root>/snapshot-00000042/      one Parquet file per frame of the current snapshot
    <root>/snapshot-00000041/      the previous snapshot, kept as a fallback

A save writes the frames into a temporary directory (each file fsynced), renames it into
place, then replaces ``MANIFEST.json`` through a fsynced temporary file and ``os.replace``.
The manifest names each file with its SHA-256 and row count and carries a format version, so a
reader never sees half a snapshot: it sees the old manifest or the new one. Snapshots older
than the previous one are deleted after the switch. When the current snapshot fails its
checksum, :meth:`LocalStateStore.load` falls back to the previous one and logs a warning.

Two writers: a save holds an exclusive ``flock`` on ``<root>/.lock`` and commits only if the
manifest still names the generation this store last loaded or saved (a compare-and-swap, as
the S3 store's ``If-Match``); otherwise it raises :class:`~detector.errors.StateConflictError`
and writes nothing. ``flock`` holds between processes on one host and on NFSv4/EFS mounts.

Imports: polars, the standard library, :mod:`detector.errors` and this package.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import polars as pl

from detector.errors import StateConflictError, StateError
from detector.state._snapshot import Snapshot

__all__ = [
    "MANIFEST_NAME",
    "STORE_FORMAT_VERSION",
    "LocalStateStore",
    "check_frame_names",
    "commit_id",
    "parse_manifest",
    "read_current_or_previous",
    "read_frame",
    "write_frame",
]

STORE_FORMAT_VERSION: Final = 1
MANIFEST_NAME: Final = "MANIFEST.json"
_LOCK_NAME: Final = ".lock"
_FRAME_NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_log = logging.getLogger(__name__)


# -- the manifest and frame format, shared with the S3 store ---------------------------------


def check_frame_names(snapshot: Snapshot) -> None:
    for name in snapshot.frames:
        if not _FRAME_NAME.match(name):
            raise StateError(f"frame name {name!r}: use lower-case letters, digits and _")


def parse_manifest(text: str | bytes, where: str) -> dict[str, Any]:
    """The manifest document, or a :class:`StateError` naming ``where``."""
    try:
        manifest = json.loads(text)
    except ValueError as err:
        raise StateError(f"{where}: not valid JSON: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT_VERSION:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise StateError(
            f"{where}: format {found!r}, this build reads format {STORE_FORMAT_VERSION}"
        )
    return manifest


def commit_id(manifest: dict[str, Any] | None) -> str | None:
    """What identifies the committed generation (manifests written before commit ids existed
    are identified by their sequence number and folder)."""
    if manifest is None:
        return None
    current = manifest.get("current") or {}
    return str(current.get("id") or f"{current.get('seq')}:{current.get('dir')}")


def write_frame(frame: pl.DataFrame) -> tuple[bytes, dict[str, Any]]:
    """The Parquet bytes of ``frame`` and its manifest entry (without the file name)."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    data = buffer.getvalue()
    return data, {"sha256": hashlib.sha256(data).hexdigest(), "rows": frame.height}


def read_frame(data: bytes, spec: dict[str, Any], where: str) -> pl.DataFrame:
    """A frame from its bytes, checked against its manifest entry."""
    if hashlib.sha256(data).hexdigest() != spec["sha256"]:
        raise StateError(f"{where}: checksum does not match the manifest")
    frame = pl.read_parquet(io.BytesIO(data))
    if frame.height != spec["rows"]:
        raise StateError(f"{where}: {frame.height} rows, manifest says {spec['rows']}")
    return frame


def read_current_or_previous(
    manifest: dict[str, Any], read: Callable[[Any], Snapshot], where: str
) -> Snapshot:
    """The manifest's current generation, or its previous one when the current cannot be read
    (a checksum that does not match, a frame gone): both stores keep two for this."""
    unusable = (StateError, KeyError, TypeError, pl.exceptions.PolarsError)
    try:
        return read(manifest["current"])
    except unusable as err:
        previous = manifest.get("previous")
        if not previous:
            raise StateError(f"{where}: current snapshot unusable: {err}") from err
        _log.warning("%s: current snapshot unusable (%s); loading the previous one", where, err)
        try:
            return read(previous)
        except unusable as err2:
            raise StateError(f"{where}: no usable snapshot: {err}; {err2}") from err2


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class LocalStateStore:
    """A :class:`~detector.state.StateStore` on a local (or mounted) directory."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._observed = False  # has this store read (or written) the manifest yet?
        self._expected: str | None = None  # the commit it read or wrote last
        self._expected_seq = 0

    def __repr__(self) -> str:
        return f"LocalStateStore({str(self.root)!r})"

    # -- reading ---------------------------------------------------------------------------

    def _manifest(self) -> dict[str, Any] | None:
        path = self.root / MANIFEST_NAME
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StateError(f"{path}: cannot read the manifest: {err}") from err
        return parse_manifest(text, str(path))

    def _observe(self, manifest: dict[str, Any] | None) -> None:
        self._observed = True
        self._expected = commit_id(manifest)
        self._expected_seq = int(manifest["current"]["seq"]) if manifest else 0

    def _read(self, entry: dict[str, Any]) -> Snapshot:
        folder = self.root / str(entry["dir"])
        frames: dict[str, pl.DataFrame] = {}
        for name, spec in dict(entry["files"]).items():
            path = folder / str(spec["file"])
            try:
                data = path.read_bytes()
            except OSError as err:
                raise StateError(f"{path}: cannot read snapshot file: {err}") from err
            frames[name] = read_frame(data, spec, str(path))
        return Snapshot(frames, {str(k): str(v) for k, v in dict(entry["meta"]).items()})

    def load(self) -> Snapshot | None:
        manifest = self._manifest()
        self._observe(manifest)
        if manifest is None:
            return None
        return read_current_or_previous(manifest, self._read, str(self.root))

    # -- writing ---------------------------------------------------------------------------

    def save(self, snapshot: Snapshot) -> None:
        """Commit ``snapshot`` as the next generation; :class:`StateConflictError` if another
        writer committed since this store last loaded or saved (a first save without a load
        takes the state as it finds it)."""
        check_frame_names(snapshot)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with self._locked():
                manifest = self._manifest()
                if not self._observed:
                    self._observe(manifest)
                if commit_id(manifest) != self._expected:
                    raise StateConflictError(
                        f"{self.root}: another writer committed state generation "
                        f"{manifest['current']['seq'] if manifest else 'none'} after this store "
                        f"read generation {self._expected_seq or 'none'}; refusing to overwrite "
                        "it (is a second detector writing the same state?)"
                    )
                current = manifest["current"] if manifest else None
                seq = int(current["seq"]) + 1 if current else 1
                entry = self._write_snapshot(snapshot, seq)
                new_manifest = {
                    "format": STORE_FORMAT_VERSION,
                    "current": entry,
                    "previous": current,
                }
                tmp = self.root / f"{MANIFEST_NAME}.tmp"
                _write_synced(tmp, json.dumps(new_manifest, indent=1, sort_keys=True).encode())
                os.replace(tmp, self.root / MANIFEST_NAME)
                _fsync_dir(self.root)
                self._observe(new_manifest)
                self._prune(keep={entry["dir"], current["dir"] if current else ""})
        except OSError as err:
            raise StateError(f"{self.root}: cannot save the snapshot: {err}") from err

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Held for the whole save: a writer's leftovers are never another live writer's files.
        fd = os.open(self.root / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _write_snapshot(self, snapshot: Snapshot, seq: int) -> dict[str, Any]:
        final = self.root / f"snapshot-{seq:08d}"
        staging = self.root / f".snapshot-{seq:08d}.tmp"
        for leftover in (staging, final):  # from a save that died before its manifest switch
            if leftover.exists():
                shutil.rmtree(leftover)
        staging.mkdir()
        files: dict[str, dict[str, Any]] = {}
        for name, frame in snapshot.frames.items():
            data, spec = write_frame(frame)
            _write_synced(staging / f"{name}.parquet", data)
            files[name] = {"file": f"{name}.parquet", **spec}
        _fsync_dir(staging)
        os.replace(staging, final)
        _fsync_dir(self.root)
        return {
            "seq": seq,
            "id": secrets.token_hex(8),
            "dir": final.name,
            "meta": dict(snapshot.meta),
            "files": files,
        }

    def _prune(self, keep: set[str]) -> None:
        for path in self.root.glob("snapshot-*"):
            if path.is_dir() and path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)
