"""CloudTrail archived in S3 (or an S3-compatible store), read with aiobotocore.

Listing walks the layout with ``ListObjectsV2`` and a ``/`` delimiter (see :mod:`._layout`), so
only the folders a filter selects are listed; digest folders are not listed at all. Objects are
downloaded with ``GetObject``, at most ``max_concurrency`` at a time.

The client is opened by ``async with S3Source(...) as source`` (not in the constructor: nothing
here reads the environment until then), which also checks that the bucket can be listed, so a
missing bucket, missing credentials or an unreachable endpoint fail at once with a
:class:`~detector.errors.ConfigError` that says which. A missing or unreadable single object is
an :class:`ArchiveReadError` (a failure of that file only).

Imports: the standard library, aiobotocore/botocore, :mod:`detector.errors` and this package.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self
from urllib.parse import urlparse

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ResponseStreamingError,
)

from detector.archive._filter import ArchiveFilter
from detector.archive._layout import DEFAULT_LISTING_CONCURRENCY, Listing, walk_layout
from detector.archive._object import ArchiveObject, FilePosition
from detector.archive._source import ArchiveReadError
from detector.aws import StaticCredentials, client_credentials
from detector.errors import ConfigError

if TYPE_CHECKING:
    # aiobotocore itself is imported on opening a source: importing this package (as replay's
    # decode worker processes do) does not pay for it.
    from aiobotocore.session import AioSession

__all__ = ["DEFAULT_S3_CONCURRENCY", "S3Source"]

DEFAULT_S3_CONCURRENCY: Final = 16
DEFAULT_S3_ATTEMPTS: Final = 5  # botocore's "standard" retries: throttling, 5xx, connection errors
_READ_ATTEMPTS: Final = 3  # a body cut off mid-stream is retried; botocore retries the rest


def _error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


class _S3Lister:
    def __init__(self, source: S3Source) -> None:
        self._source = source

    async def list_folder(self, prefix: str) -> Listing:
        client = self._source._require_client()
        folders: list[str] = []
        files: list[tuple[str, int]] = []
        paginator = client.get_paginator("list_objects_v2")
        try:
            async for page in paginator.paginate(
                Bucket=self._source.bucket, Prefix=prefix, Delimiter="/"
            ):
                for common in page.get("CommonPrefixes", ()):
                    folders.append(common["Prefix"][len(prefix) :].rstrip("/"))
                for item in page.get("Contents", ()):
                    if item["Key"] != prefix:  # a "folder marker" object
                        files.append((item["Key"], int(item["Size"])))
        except (ClientError, BotoCoreError) as err:
            raise self._source._config_error(err, f"listing {prefix!r}") from None
        return Listing(tuple(folders), tuple(files))


class S3Source:
    """``s3://bucket/prefix`` where ``prefix`` is the trail's prefix or a folder inside AWSLogs."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        credentials: StaticCredentials | None = None,
        max_concurrency: int = DEFAULT_S3_CONCURRENCY,
        max_attempts: int = DEFAULT_S3_ATTEMPTS,
        path_style: bool | None = None,
        session: AioSession | None = None,
    ) -> None:
        if not bucket:
            raise ConfigError("S3 source: the bucket name is empty")
        if max_concurrency < 1:
            raise ConfigError(f"S3 source: max_concurrency must be >= 1, got {max_concurrency}")
        self.bucket = bucket
        self.prefix = prefix.lstrip("/")
        self.endpoint_url = endpoint_url
        self.region_name = region_name
        self.max_concurrency = max_concurrency
        self.max_attempts = max_attempts
        self._credentials = credentials
        self._path_style = endpoint_url is not None if path_style is None else path_style
        self._session = session
        self._client: Any = None
        self._stack: AsyncExitStack | None = None
        self._semaphore = asyncio.Semaphore(max_concurrency)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> S3Source:
        """``S3Source.from_url("s3://bucket/prefix", endpoint_url=...)``."""
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ConfigError(f"not an S3 URL (s3://bucket/prefix): {url!r}")
        return cls(parsed.netloc, parsed.path.lstrip("/"), **options)

    def __repr__(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"S3Source(s3://{self.bucket}/{self.prefix}{where})"

    async def __aenter__(self) -> Self:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        stack = AsyncExitStack()
        session = self._session or get_session()
        config = AioConfig(
            max_pool_connections=self.max_concurrency + DEFAULT_LISTING_CONCURRENCY,
            retries={"mode": "standard", "max_attempts": self.max_attempts},
            s3={"addressing_style": "path" if self._path_style else "auto"},
        )
        try:
            self._client = await stack.enter_async_context(
                session.create_client(
                    "s3",
                    region_name=self.region_name,
                    endpoint_url=self.endpoint_url,
                    config=config,
                    **client_credentials(self._credentials),
                )
            )
            await self._client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as err:
            await stack.aclose()
            self._client = None
            raise self._config_error(err, "opening the bucket") from None
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

    def _require_client(self) -> Any:
        if self._client is None:
            raise RuntimeError(f"{self!r} is not open: use 'async with S3Source(...) as source'")
        return self._client

    def _config_error(self, err: Exception, doing: str) -> ConfigError:
        where = f"s3://{self.bucket}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")
        if isinstance(err, NoCredentialsError | PartialCredentialsError):
            why = "no AWS credentials found (set a profile, environment or pass credentials)"
        elif isinstance(err, EndpointConnectionError):
            why = f"cannot connect to the endpoint ({err})"
        elif isinstance(err, ClientError):
            code = _error_code(err)
            if code in ("404", "NoSuchBucket"):
                why = "the bucket does not exist"
            elif code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                why = f"access denied ({code}): check the credentials and s3:ListBucket"
            else:
                why = f"{code}: {err}"
        else:
            why = str(err)
        return ConfigError(f"{where}: {doing}: {why}")

    async def list_objects(
        self, filter: ArchiveFilter, *, start_after: FilePosition | None = None
    ) -> AsyncIterator[ArchiveObject]:
        self._require_client()
        async for obj in walk_layout(
            _S3Lister(self), self.prefix, filter, start_after=start_after, include_digests=False
        ):
            yield obj

    async def list_keys(self) -> list[str]:
        """Every object key under the prefix, sorted (for small folders of files such as rules,
        not for archives: those are walked by :meth:`list_objects`)."""
        client = self._require_client()
        keys: list[str] = []
        try:
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                keys.extend(item["Key"] for item in page.get("Contents", ()))
        except (ClientError, BotoCoreError) as err:
            raise self._config_error(err, f"listing {self.prefix!r}") from None
        return sorted(keys)

    async def read(self, obj: ArchiveObject) -> bytes:
        client = self._require_client()
        async with self._semaphore:
            for attempt in range(1, _READ_ATTEMPTS + 1):
                try:
                    response = await client.get_object(Bucket=self.bucket, Key=obj.key)
                    async with response["Body"] as body:
                        data: bytes = await body.read()
                    return data
                except ResponseStreamingError as err:
                    if attempt == _READ_ATTEMPTS:
                        raise ArchiveReadError(f"{obj.key}: download cut off ({err})") from None
                except ClientError as err:
                    raise ArchiveReadError(f"{obj.key}: {_error_code(err)}: {err}") from None
        raise AssertionError("unreachable")  # pragma: no cover
