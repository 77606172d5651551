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

Imports: polars, the standard library, :mod:`detector.errors` and this package.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any, Final

import polars as pl

from detector.errors import StateError
from detector.state._snapshot import Snapshot

__all__ = ["MANIFEST_NAME", "STORE_FORMAT_VERSION", "LocalStateStore"]

STORE_FORMAT_VERSION: Final = 1
MANIFEST_NAME: Final = "MANIFEST.json"
_FRAME_NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_log = logging.getLogger(__name__)


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
        try:
            manifest = json.loads(text)
        except ValueError as err:
            raise StateError(f"{path}: not valid JSON: {err}") from err
        if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT_VERSION:
            found = manifest.get("format") if isinstance(manifest, dict) else None
            raise StateError(
                f"{path}: format {found!r}, this build reads format {STORE_FORMAT_VERSION}"
            )
        return manifest

    def _read(self, entry: dict[str, Any]) -> Snapshot:
        folder = self.root / str(entry["dir"])
        frames: dict[str, pl.DataFrame] = {}
        for name, spec in dict(entry["files"]).items():
            path = folder / str(spec["file"])
            try:
                data = path.read_bytes()
            except OSError as err:
                raise StateError(f"{path}: cannot read snapshot file: {err}") from err
            if hashlib.sha256(data).hexdigest() != spec["sha256"]:
                raise StateError(f"{path}: checksum does not match the manifest")
            frame = pl.read_parquet(io.BytesIO(data))
            if frame.height != spec["rows"]:
                raise StateError(f"{path}: {frame.height} rows, manifest says {spec['rows']}")
            frames[name] = frame
        return Snapshot(frames, {str(k): str(v) for k, v in dict(entry["meta"]).items()})

    def load(self) -> Snapshot | None:
        manifest = self._manifest()
        if manifest is None:
            return None
        try:
            return self._read(manifest["current"])
        except (StateError, KeyError, TypeError, pl.exceptions.PolarsError) as err:
            previous = manifest.get("previous")
            if not previous:
                raise StateError(f"{self.root}: current snapshot unusable: {err}") from err
            _log.warning("%s: current snapshot unusable (%s); loading the previous one", self, err)
            try:
                return self._read(previous)
            except (StateError, KeyError, TypeError, pl.exceptions.PolarsError) as err2:
                raise StateError(f"{self.root}: no usable snapshot: {err}; {err2}") from err2

    # -- writing ---------------------------------------------------------------------------

    def save(self, snapshot: Snapshot) -> None:
        for name in snapshot.frames:
            if not _FRAME_NAME.match(name):
                raise StateError(f"frame name {name!r}: use lower-case letters, digits and _")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            manifest = self._manifest()
            current = manifest["current"] if manifest else None
            seq = int(current["seq"]) + 1 if current else 1
            entry = self._write_snapshot(snapshot, seq)
            new_manifest = {"format": STORE_FORMAT_VERSION, "current": entry, "previous": current}
            tmp = self.root / f"{MANIFEST_NAME}.tmp"
            _write_synced(tmp, json.dumps(new_manifest, indent=1, sort_keys=True).encode())
            os.replace(tmp, self.root / MANIFEST_NAME)
            _fsync_dir(self.root)
        except OSError as err:
            raise StateError(f"{self.root}: cannot save the snapshot: {err}") from err
        self._prune(keep={entry["dir"], current["dir"] if current else ""})

    def _write_snapshot(self, snapshot: Snapshot, seq: int) -> dict[str, Any]:
        final = self.root / f"snapshot-{seq:08d}"
        staging = self.root / f".snapshot-{seq:08d}.tmp"
        for leftover in (staging, final):  # from a save that died before its manifest switch
            if leftover.exists():
                shutil.rmtree(leftover)
        staging.mkdir()
        files: dict[str, dict[str, Any]] = {}
        for name, frame in snapshot.frames.items():
            buffer = io.BytesIO()
            frame.write_parquet(buffer)
            data = buffer.getvalue()
            _write_synced(staging / f"{name}.parquet", data)
            files[name] = {
                "file": f"{name}.parquet",
                "sha256": hashlib.sha256(data).hexdigest(),
                "rows": frame.height,
            }
        _fsync_dir(staging)
        os.replace(staging, final)
        _fsync_dir(self.root)
        return {"seq": seq, "dir": final.name, "meta": dict(snapshot.meta), "files": files}

    def _prune(self, keep: set[str]) -> None:
        for path in self.root.glob("snapshot-*"):
            if path.is_dir() and path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)
