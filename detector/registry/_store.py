"""The registry's port: a flat key -> bytes store, and its adapters.

:class:`ObjectStore` is three calls: ``get`` (None when absent), ``put`` and ``list`` (keys
under a prefix). :class:`MemoryObjectStore` is the fake, :class:`LocalObjectStore` a folder
(keys are relative paths), :class:`S3ObjectStore` a bucket prefix read and written with
aiobotocore (opened with ``async with``; credentials and endpoint from botocore's standard
chain, ``AWS_ENDPOINT_URL_S3`` included, unless given).

Imports: the standard library, aiobotocore/botocore (S3 only) and detector.errors.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import urlparse

from detector.errors import ConfigError

__all__ = ["LocalObjectStore", "MemoryObjectStore", "ObjectStore", "S3ObjectStore"]


class ObjectStore(Protocol):
    """Where registry objects live; keys are ``/``-separated and relative to the root."""

    @property
    def url(self) -> str:
        """The root, for messages (``s3://bucket/prefix`` or a folder)."""
        ...

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, data: bytes) -> None: ...

    async def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` (relative to the root), sorted."""
        ...


class MemoryObjectStore:
    """The in-memory fake."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    @property
    def url(self) -> str:
        return "memory://"

    async def get(self, key: str) -> bytes | None:
        return self.objects.get(key)

    async def put(self, key: str, data: bytes) -> None:
        self.objects[key] = bytes(data)

    async def list(self, prefix: str) -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))


class LocalObjectStore:
    """A folder: each key a file below it, written atomically."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @property
    def url(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise ConfigError(f"{self.root}: key {key!r} leaves the registry")
        return self.root / key

    async def get(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.is_file() else None

    async def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def list(self, prefix: str) -> list[str]:
        if not self.root.is_dir():
            return []
        keys = (
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )
        return sorted(k for k in keys if k.startswith(prefix))


class S3ObjectStore:
    """``s3://bucket/prefix`` as an :class:`ObjectStore` (``async with`` opens the client)."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        if not bucket:
            raise ConfigError("S3 registry: the bucket name is empty")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self._client: Any = None
        self._stack: AsyncExitStack | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> S3ObjectStore:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ConfigError(f"not an S3 URL (s3://bucket/prefix): {url!r}")
        return cls(parsed.netloc, parsed.path, **options)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.url})"

    async def __aenter__(self) -> Self:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        stack = AsyncExitStack()
        config = AioConfig(retries={"mode": "standard", "max_attempts": 5})
        self._client = await stack.enter_async_context(
            get_session().create_client(
                "s3", region_name=self.region, endpoint_url=self.endpoint_url, config=config
            )
        )
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _require(self) -> Any:
        if self._client is None:
            raise RuntimeError(f"{self!r} is not open: use 'async with'")
        return self._client

    def _error(self, err: Exception, doing: str) -> ConfigError:
        code = ""
        response = getattr(err, "response", None)
        if isinstance(response, dict):
            code = str(response.get("Error", {}).get("Code", ""))
        return ConfigError(f"{self.url}: {doing}: {code + ': ' if code else ''}{err}")

    async def get(self, key: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._require()
        try:
            response = await client.get_object(Bucket=self.bucket, Key=self._key(key))
            async with response["Body"] as body:
                data: bytes = await body.read()
        except ClientError as err:
            if str(err.response.get("Error", {}).get("Code")) in ("NoSuchKey", "404"):
                return None
            raise self._error(err, f"reading {key}") from None
        except BotoCoreError as err:
            raise self._error(err, f"reading {key}") from None
        return data

    async def put(self, key: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            await self._require().put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except (ClientError, BotoCoreError) as err:
            raise self._error(err, f"writing {key}") from None

    async def list(self, prefix: str) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._require()
        root = f"{self.prefix}/" if self.prefix else ""
        keys: list[str] = []
        try:
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=root + prefix):
                keys.extend(item["Key"][len(root) :] for item in page.get("Contents", ()))
        except (ClientError, BotoCoreError) as err:
            raise self._error(err, "listing") from None
        return sorted(keys)
