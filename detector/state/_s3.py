"""S3 state store: the local store's layout as objects under a prefix, committed by a
conditional put, so that two writers can never both commit.

Layout (``s3://bucket/prefix/``)::

    MANIFEST.json                          which generation is current, and the one before
    snapshot-00000042-<writer token>/      one Parquet object per frame of the current one
    snapshot-00000041-<writer token>/      the previous generation, kept as a fallback

A save uploads the frames under a folder no other writer uses (the token is random), then
replaces ``MANIFEST.json`` with ``If-Match: <the ETag this store last read or wrote>`` (or
``If-None-Match: *`` when there was none): a compare-and-swap. When another writer committed in
between, S3 answers 412 and the save raises :class:`~detector.errors.StateConflictError` after
deleting its own upload; nothing the winner wrote is touched. The manifest names each frame with
its SHA-256 and row count (the local store's format), so :meth:`S3StateStore.load` verifies what
it reads and falls back to the previous generation when the current one fails its checksum.
With a KMS key id every object is written with SSE-KMS under that key. Folders older than the
previous generation are deleted after a commit; on a versioned bucket the lifecycle rule expires
their noncurrent versions (see ``deploy/cloudformation/detector.yaml``).

The client is a plain, synchronous botocore client (the stores are called from a worker
thread), made by :func:`detector.state.open_state_store` or given by the caller.

Imports: polars, the standard library, botocore, :mod:`detector.errors` and this package.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from typing import Any, Final

import polars as pl
from botocore.exceptions import BotoCoreError, ClientError

from detector.errors import StateConflictError, StateError
from detector.state._local import (
    MANIFEST_NAME,
    STORE_FORMAT_VERSION,
    check_frame_names,
    commit_id,
    parse_manifest,
    read_current_or_previous,
    read_frame,
    write_frame,
)
from detector.state._snapshot import Snapshot

__all__ = ["S3StateStore"]

# The token is absent from folders copied from a local state directory (docs/state.md).
_SNAPSHOT_FOLDER: Final = re.compile(r"^snapshot-(\d{8,})(?:-[0-9a-f]+)?/")
_CONFLICT_CODES: Final = frozenset({"PreconditionFailed", "412", "NoSuchKey"})
_BUSY_CODES: Final = frozenset({"ConditionalRequestConflict", "409"})
_COMMIT_ATTEMPTS: Final = 3
_DELETE_BATCH: Final = 1000  # DeleteObjects takes at most 1,000 keys
_log = logging.getLogger(__name__)


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


class S3StateStore:
    """A :class:`~detector.state.StateStore` under ``s3://bucket/prefix``."""

    def __init__(
        self, client: Any, bucket: str, prefix: str = "", *, kms_key_id: str | None = None
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.kms_key_id = kms_key_id
        self._observed = False  # has this store read (or written) the manifest yet?
        self._etag: str | None = None  # the manifest's ETag when it last did
        self._manifest: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"S3StateStore('s3://{self.bucket}/{self.prefix}')"

    def close(self) -> None:
        self.client.close()

    @property
    def _manifest_key(self) -> str:
        return f"{self.prefix}{MANIFEST_NAME}"

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _put_args(self) -> dict[str, str]:
        if self.kms_key_id is None:
            return {}
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}

    # -- reading ---------------------------------------------------------------------------

    def _read_manifest(self) -> tuple[dict[str, Any] | None, str | None]:
        key = self._manifest_key
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            body = response["Body"].read()
        except ClientError as err:
            if _code(err) in {"NoSuchKey", "404"}:
                return None, None
            raise StateError(f"{self._where(key)}: cannot read the manifest: {err}") from err
        except BotoCoreError as err:
            raise StateError(f"{self._where(key)}: cannot read the manifest: {err}") from err
        return parse_manifest(body, self._where(key)), str(response["ETag"])

    def _observe(self, manifest: dict[str, Any] | None, etag: str | None) -> None:
        self._observed = True
        self._manifest = manifest
        self._etag = etag

    def _read(self, entry: dict[str, Any]) -> Snapshot:
        folder = f"{self.prefix}{entry['dir']}/"
        frames: dict[str, pl.DataFrame] = {}
        for name, spec in dict(entry["files"]).items():
            key = f"{folder}{spec['file']}"
            try:
                data = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except (ClientError, BotoCoreError) as err:
                raise StateError(f"{self._where(key)}: cannot read snapshot object: {err}") from err
            frames[name] = read_frame(data, spec, self._where(key))
        return Snapshot(frames, {str(k): str(v) for k, v in dict(entry["meta"]).items()})

    def load(self) -> Snapshot | None:
        manifest, etag = self._read_manifest()
        self._observe(manifest, etag)
        if manifest is None:
            return None
        return read_current_or_previous(manifest, self._read, repr(self))

    # -- writing ---------------------------------------------------------------------------

    def save(self, snapshot: Snapshot) -> None:
        """Commit ``snapshot`` as the next generation; :class:`StateConflictError` if another
        writer committed since this store last loaded or saved (a first save without a load
        takes the state as it finds it)."""
        check_frame_names(snapshot)
        if not self._observed:
            self._observe(*self._read_manifest())
        current = self._manifest["current"] if self._manifest else None
        seq = int(current["seq"]) + 1 if current else 1
        token = secrets.token_hex(8)
        folder = f"snapshot-{seq:08d}-{token}"
        files = self._upload(snapshot, folder)
        entry = {
            "seq": seq,
            "id": token,
            "dir": folder,
            "meta": dict(snapshot.meta),
            "files": files,
        }
        manifest = {"format": STORE_FORMAT_VERSION, "current": entry, "previous": current}
        try:
            etag = self._commit(manifest, token)
        except StateError:
            self._delete_keys([f"{self.prefix}{folder}/{spec['file']}" for spec in files.values()])
            raise
        self._observe(manifest, etag)
        self._prune(seq, keep={folder, current["dir"] if current else ""})

    def _upload(self, snapshot: Snapshot, folder: str) -> dict[str, dict[str, Any]]:
        files: dict[str, dict[str, Any]] = {}
        for name, frame in snapshot.frames.items():
            data, spec = write_frame(frame)
            key = f"{self.prefix}{folder}/{name}.parquet"
            try:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=data,
                    Metadata={"sha256": spec["sha256"]},
                    **self._put_args(),
                )
            except (ClientError, BotoCoreError) as err:
                raise StateError(
                    f"{self._where(key)}: cannot write snapshot object: {err}"
                ) from err
            files[name] = {"file": f"{name}.parquet", **spec}
        return files

    def _commit(self, manifest: dict[str, Any], token: str) -> str:
        """The new manifest's ETag, once swapped in; StateConflictError if another writer's
        manifest is there instead of the one this store last saw."""
        key = self._manifest_key
        body = json.dumps(manifest, indent=1, sort_keys=True).encode()
        condition = {"IfMatch": self._etag} if self._etag else {"IfNoneMatch": "*"}
        for _ in range(_COMMIT_ATTEMPTS):
            try:
                response = self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentType="application/json",
                    **condition,
                    **self._put_args(),
                )
                return str(response["ETag"])
            except ClientError as err:
                code = _code(err)
                if code not in _CONFLICT_CODES | _BUSY_CODES:
                    raise StateError(f"{self._where(key)}: cannot commit: {err}") from err
            except BotoCoreError as err:
                raise StateError(f"{self._where(key)}: cannot commit: {err}") from err
            # Refused: either another writer won, or this very put landed and its answer was
            # lost (a retried request then fails its own condition), or a write was in flight.
            found, etag = self._read_manifest()
            if commit_id(found) == token and etag is not None:
                return etag
            if code in _BUSY_CODES and etag == self._etag:
                continue
            break
        mine = self._manifest["current"]["seq"] if self._manifest else "none"
        theirs = found["current"]["seq"] if found else "none"
        raise StateConflictError(
            f"{self!r}: another writer committed state generation {theirs} after this store "
            f"read generation {mine}; refusing to overwrite it (is a second detector writing "
            "the same state?)"
        )

    def _prune(self, seq: int, keep: set[str]) -> None:
        """Delete folders of generations up to ``seq`` that are neither current nor previous
        (a newer folder may be another writer's upload in progress: left alone)."""
        stale: list[str] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}snapshot-"):
                for item in page.get("Contents", ()):
                    relative = str(item["Key"])[len(self.prefix) :]
                    found = _SNAPSHOT_FOLDER.match(relative)
                    if found and int(found.group(1)) <= seq and relative.split("/")[0] not in keep:
                        stale.append(str(item["Key"]))
        except (ClientError, BotoCoreError) as err:
            _log.warning("%r: old generations not listed for deletion: %s", self, err)
            return
        self._delete_keys(stale)

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            try:
                self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                )
            except (ClientError, BotoCoreError) as err:  # leftovers cost storage, not safety
                _log.warning("%r: %d old objects not deleted: %s", self, len(batch), err)
