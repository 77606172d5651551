"""The model registry over an :class:`~detector.registry.ObjectStore` (see the package
docstring for the layout).

A version is published data files first and ``manifest.json`` last, so a half-written upload
is never listed (a version is listed when its manifest exists). Fetching downloads a version's
files into a local folder; :meth:`ModelRegistry.load` then runs the verification of
:func:`~detector.scoring.load_artifact` (hashes, feature schema, trusted types, signature) and
checks that the manifest names the version it was fetched as.

Imports: the standard library, detector.errors, detector.scoring and this package.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from detector.errors import ConfigError, ModelError
from detector.registry._pointer import POINTER_NAME, Pointer, promote, revision_of, rollback
from detector.registry._store import LocalObjectStore, ObjectStore, S3ObjectStore
from detector.scoring import ModelArtifact, ModelSigning, load_artifact

__all__ = [
    "QUALITY_FILE",
    "ModelRegistry",
    "VersionInfo",
    "open_registry",
    "quality_report",
    "split_model_url",
]

QUALITY_FILE: Final = "quality.json"
MANIFEST: Final = "manifest.json"
VERSION_ID: Final = re.compile(r"^[A-Za-z0-9._-]+@[0-9a-f]{12}$")


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One published version, as ``detector models list`` shows it."""

    version: str
    since: str | None
    until: str | None
    events: int | None
    principals: int | None
    threshold: float | None
    findings_per_1000_principal_days: float | None


def quality_report(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What training saw and what the model will likely raise: written beside the version as
    ``quality.json`` (read by people and ``detector models list``, never by loading)."""
    t = manifest.get("training", {})
    days = t.get("principal_days") or 0
    above = t.get("windows_above_threshold")
    rate = None if not days or above is None else round(1000 * above / days, 3)
    return {
        "version": f"{manifest['name']}@{manifest['model_sha256'][:12]}",
        "threshold": manifest.get("threshold"),
        "alert_budget_per_1000_principal_days": manifest.get(
            "alert_budget_per_1000_principal_days"
        ),
        "training_findings_per_1000_principal_days": rate,
        "score_quantiles": manifest.get("score_quantiles", {}),
        "training": {
            key: t.get(key)
            for key in (
                "source",
                "since",
                "until",
                "warmup_seconds",
                "events",
                "duplicate_events",
                "late_events",
                "principals",
                "windows_fitted",
                "principal_days",
                "windows_above_threshold",
                "by_principal_type",
            )
        },
    }


def _check_version(version: str) -> str:
    if not VERSION_ID.match(version):
        raise ConfigError(f"{version!r} is not a model version (<name>@<12 hex digits>)")
    return version


class ModelRegistry:
    """Versions and the pointer in one store."""

    def __init__(self, store: ObjectStore, pointer: str = POINTER_NAME) -> None:
        self.store = store
        self.pointer_name = pointer

    @property
    def url(self) -> str:
        return self.store.url

    async def publish(self, folder: Path, artifact: ModelArtifact) -> str:
        """Upload a verified model folder (and its quality report); returns its version."""
        version = _check_version(artifact.version)
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        names = {p.name for p in files}
        if MANIFEST not in names:
            raise ModelError(f"{folder}: no {MANIFEST} to publish")
        report = json.dumps(quality_report(artifact.manifest), indent=2).encode()
        await self.store.put(f"{version}/{QUALITY_FILE}", report)
        for path in files:  # the manifest last: a version is listed once it is whole
            if path.name not in (MANIFEST, QUALITY_FILE):
                await self.store.put(f"{version}/{path.name}", path.read_bytes())
        await self.store.put(f"{version}/{MANIFEST}", (folder / MANIFEST).read_bytes())
        return version

    async def versions(self) -> list[VersionInfo]:
        """Every whole version, oldest training period first."""
        keys = await self.store.list("")
        found: list[VersionInfo] = []
        for key in keys:
            version, _, name = key.partition("/")
            if name != MANIFEST or not VERSION_ID.match(version):
                continue
            report = await self.store.get(f"{version}/{QUALITY_FILE}")
            found.append(_info(version, json.loads(report) if report else {}))
        return sorted(found, key=lambda v: (v.until or "", v.version))

    async def pointer(self) -> tuple[Pointer | None, str | None]:
        """The pointer and its revision (None, None before the first promotion)."""
        data = await self.store.get(self.pointer_name)
        if data is None:
            return None, None
        return Pointer.from_bytes(data, f"{self.url}/{self.pointer_name}"), revision_of(data)

    async def promote(self, version: str, now: datetime) -> Pointer:
        """Point at ``version`` (which must be published); the running one is kept for
        :meth:`rollback`."""
        _check_version(version)
        if await self.store.get(f"{version}/{MANIFEST}") is None:
            known = ", ".join(v.version for v in await self.versions()) or "none"
            raise ConfigError(f"{self.url}: no version {version} (published: {known})")
        current, _ = await self.pointer()
        moved = promote(current, version, now)
        await self.store.put(self.pointer_name, moved.to_bytes())
        return moved

    async def rollback(self, now: datetime) -> Pointer:
        current, _ = await self.pointer()
        moved = rollback(current, now)
        await self.store.put(self.pointer_name, moved.to_bytes())
        return moved

    async def fetch(self, version: str, into: Path) -> Path:
        """Download ``version``'s files into ``into/<version>`` (nothing verified yet)."""
        _check_version(version)
        keys = [k for k in await self.store.list(f"{version}/") if k.count("/") == 1]
        if f"{version}/{MANIFEST}" not in keys:
            raise ModelError(f"{self.url}/{version}: no such model version")
        folder = into / version
        folder.mkdir(parents=True, exist_ok=True)
        for key in keys:
            data = await self.store.get(key)
            if data is not None:
                (folder / key.partition("/")[2]).write_bytes(data)
        return folder

    async def load(
        self, version: str, into: Path, signing: ModelSigning | None = None
    ) -> ModelArtifact:
        """Fetch and verify ``version``: a :class:`ModelError` unless every check passes and
        the manifest names this version."""
        folder = await self.fetch(version, into)
        try:
            artifact = await asyncio.to_thread(load_artifact, folder, signing)
        except ModelError as err:
            raise ModelError(f"{self.url}/{version}: {err}") from None
        if artifact.version != version:
            raise ModelError(
                f"{self.url}/{version}: the manifest names {artifact.version}, not the version "
                "it was published as: refusing it"
            )
        return artifact


def _info(version: str, report: Mapping[str, Any]) -> VersionInfo:
    t = report.get("training", {})
    return VersionInfo(
        version=version,
        since=t.get("since"),
        until=t.get("until"),
        events=t.get("events"),
        principals=t.get("principals"),
        threshold=report.get("threshold"),
        findings_per_1000_principal_days=report.get("training_findings_per_1000_principal_days"),
    )


def split_model_url(url: str) -> tuple[str, str]:
    """``s3://b/p/models/current`` -> (``s3://b/p/models``, ``current``): the registry root and
    the pointer (or a version, ``<name>@<hash>``) in it."""
    root, _, name = url.rstrip("/").rpartition("/")
    if not root or not name or root in ("s3:", "s3:/"):
        raise ConfigError(
            f"{url!r}: expected <registry>/<pointer> (e.g. s3://bucket/models/current)"
        )
    return root, name


@contextlib.asynccontextmanager
async def open_registry(
    url: str, *, endpoint_url: str | None = None, pointer: str = POINTER_NAME
) -> AsyncIterator[ModelRegistry]:
    """The registry at ``url`` (``s3://bucket/prefix`` or a folder), open for the block."""
    if url.startswith("s3://"):
        async with S3ObjectStore.from_url(url, endpoint_url=endpoint_url) as store:
            yield ModelRegistry(store, pointer)
        return
    if "://" in url:
        raise ConfigError(f"{url!r}: a model registry is an s3:// URL or a folder")
    yield ModelRegistry(LocalObjectStore(url), pointer)
