"""Where a suppression file lives: a local path or an ``s3://bucket/key`` object (the I/O edge).

Each source says cheaply whether the file changed (:meth:`RulesSource.version`: the file's
mtime and size, or the object's ETag) so that the service can look between batches and re-read
only when it did.

Imports: the standard library, aiobotocore (S3 only, on first use), detector.errors.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, Final, Protocol

from detector.errors import ConfigError

__all__ = [
    "DEFAULT_S3_CHECK_SECONDS",
    "FileRulesSource",
    "RulesSource",
    "S3RulesSource",
    "rules_source",
]


class RulesSource(Protocol):
    """A suppression file somewhere."""

    name: str
    check_seconds: float  # the least time between two looks (a local stat is free, a HEAD not)

    async def version(self) -> str:
        """A token that changes when the file does; ConfigError if it cannot be reached."""
        ...

    async def read(self) -> str: ...

    async def close(self) -> None: ...


class FileRulesSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self.check_seconds = 0.0

    async def version(self) -> str:
        try:
            stat = await asyncio.to_thread(self.path.stat)
        except OSError as err:
            raise ConfigError(f"suppression rules {self.path}: {err.strerror or err}") from None
        return f"{stat.st_mtime_ns}:{stat.st_size}:{stat.st_ino}"

    async def read(self) -> str:
        try:
            return await asyncio.to_thread(self.path.read_text, encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"suppression rules {self.path}: {err}") from None

    async def close(self) -> None:
        return None


DEFAULT_S3_CHECK_SECONDS: Final = 10.0


class S3RulesSource:
    """``s3://bucket/key``: HeadObject's ETag says whether it changed (looked at most every
    ``check_seconds``)."""

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        check_seconds: float = DEFAULT_S3_CHECK_SECONDS,
    ) -> None:
        bucket, _, key = url.removeprefix("s3://").partition("/")
        if not url.startswith("s3://") or not bucket or not key or key.endswith("/"):
            raise ConfigError(f"suppression rules: expected s3://bucket/key, got {url!r}")
        self.name = url
        self.check_seconds = check_seconds
        self.bucket = bucket
        self.key = key
        self._endpoint_url = endpoint_url
        self._region = region
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def _s3(self) -> Any:
        if self._client is None:
            from aiobotocore.session import AioSession

            self._client = await self._stack.enter_async_context(
                AioSession().create_client(
                    "s3", endpoint_url=self._endpoint_url, region_name=self._region
                )
            )
        return self._client

    async def version(self) -> str:
        try:
            response = await (await self._s3()).head_object(Bucket=self.bucket, Key=self.key)
        except Exception as err:
            raise ConfigError(f"suppression rules {self.name}: {err}") from None
        return str(response.get("ETag", ""))

    async def read(self) -> str:
        try:
            response = await (await self._s3()).get_object(Bucket=self.bucket, Key=self.key)
            async with response["Body"] as body:
                data: bytes = await body.read()
            return data.decode("utf-8")
        except Exception as err:
            raise ConfigError(f"suppression rules {self.name}: {err}") from None

    async def close(self) -> None:
        self._client = None
        await self._stack.aclose()


def rules_source(
    location: str, *, endpoint_url: str | None = None, region: str | None = None
) -> RulesSource:
    """The source of a path or an ``s3://`` URL."""
    if location.startswith("s3://"):
        return S3RulesSource(location, endpoint_url=endpoint_url, region=region)
    return FileRulesSource(Path(location))
