"""``S3Source`` against a real moto S3 server: the source contract, and replay through it.

The archive is the hand-built one of the unit tests (``build_archive``), uploaded under a
trail prefix; its events read from S3 must equal those read from the in-memory fake, and a
filtered replay must download fewer objects (counted with :class:`RecordingSource`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import NoCredentialsError

from detector.archive import (
    ArchiveFilter,
    ArchiveObject,
    ArchiveReadError,
    InMemorySource,
    RecordingSource,
    S3Source,
    trail_key,
)
from detector.errors import ConfigError
from tests.integration.moto_support import REGION, TEST_CREDENTIALS, MotoServer, aws_client
from tests.unit.test_archive_source import (
    ACCOUNTS,
    ORG,
    REGIONS,
    START,
    build_archive,
    expected_ids,
    ids_of,
    listed,
    replay,
)

BUCKET = "trail-archive"
PREFIX = "org-trail"
ARCHIVE = build_archive(prefix=PREFIX)
CREDENTIALS = TEST_CREDENTIALS


def s3_source(endpoint_url: str, **options: Any) -> S3Source:
    return S3Source(
        BUCKET,
        PREFIX,
        endpoint_url=endpoint_url,
        region_name=REGION,
        credentials=CREDENTIALS,
        **options,
    )


async def upload(endpoint_url: str) -> None:
    async with aws_client("s3", endpoint_url) as client:
        await client.create_bucket(Bucket=BUCKET)
        semaphore = asyncio.Semaphore(16)

        async def put(key: str, data: bytes) -> None:
            async with semaphore:
                await client.put_object(Bucket=BUCKET, Key=key, Body=data)

        await asyncio.gather(*(put(k, v) for k, v in ARCHIVE.files.items()))
        await client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/notes.txt", Body=b"stray")


@pytest.fixture(scope="module")
def bucket(moto_server: MotoServer) -> str:
    """ARCHIVE in a fresh bucket, uploaded once for this module (whose tests only read it and
    never reset the server); returns the endpoint URL."""
    moto_server.reset()
    asyncio.run(upload(moto_server.endpoint_url))
    return moto_server.endpoint_url


@pytest.fixture
async def source(bucket: str) -> AsyncIterator[S3Source]:
    async with s3_source(bucket) as opened:
        yield opened


async def test_contract_listing_is_ordered_complete_and_reads_return_the_bytes(
    source: S3Source,
) -> None:
    objects = await listed(source)
    assert [o.position for o in objects] == sorted(o.position for o in objects)
    trail = {o.key for o in objects if o.kind == "trail"}
    assert trail == {k for k in ARCHIVE.files if ArchiveObject.of_key(k, 0).kind == "trail"}
    assert not any(o.kind == "digest" for o in objects)  # digest folders are never listed
    for obj in objects[::23]:
        data = await source.read(obj)
        assert data == ARCHIVE.files[obj.key]
        assert obj.size == len(data)
    middle = objects[len(objects) // 2].position
    after = [o async for o in source.list_objects(ArchiveFilter(), start_after=middle)]
    assert after == [o for o in objects if o.position > middle]


async def test_contract_reading_a_missing_object_is_an_archive_read_error(
    source: S3Source,
) -> None:
    ghost = ArchiveObject.of_key(
        trail_key(ACCOUNTS[0], REGIONS[0], START, organization=ORG, prefix=PREFIX), 1
    )
    with pytest.raises(ArchiveReadError, match="NoSuchKey"):
        await source.read(ghost)


async def test_s3_gives_the_same_events_as_the_fake(source: S3Source) -> None:
    from_s3 = await replay(source, chunk_events=50)
    from_memory = await replay(InMemorySource(ARCHIVE.files, root=PREFIX), chunk_events=50)
    assert ids_of(from_s3) == ids_of(from_memory)
    assert set(ids_of(from_s3)) == expected_ids(ARCHIVE)
    assert sum(c.counts.other_files for c in from_s3) == 1  # the README in a day folder


async def test_a_filtered_replay_downloads_fewer_objects(source: S3Source) -> None:
    everything = RecordingSource(source)
    await replay(everything)
    f = ArchiveFilter(
        accounts=[ACCOUNTS[1]],
        regions=["us-east-1"],
        since=datetime(2024, 5, 2, 0, 0, tzinfo=UTC),
        until=datetime(2024, 5, 2, 0, 30, tzinfo=UTC),
    )
    filtered = RecordingSource(source)
    chunks = await replay(filtered, f)
    assert set(ids_of(chunks)) == expected_ids(ARCHIVE, f)
    assert len(filtered.reads) < len(everything.reads) / 4
    assert all(f"/{ACCOUNTS[1]}/CloudTrail/us-east-1/" in k for k in filtered.reads)


async def test_a_small_read_concurrency_still_reads_everything(bucket: str) -> None:
    async with s3_source(bucket, max_concurrency=1) as one_at_a_time:
        chunks = await replay(one_at_a_time, read_ahead=2)
    assert set(ids_of(chunks)) == expected_ids(ARCHIVE)


async def test_a_missing_bucket_is_a_config_error(bucket: str) -> None:
    missing = S3Source(
        "no-such-bucket", endpoint_url=bucket, region_name=REGION, credentials=CREDENTIALS
    )
    with pytest.raises(ConfigError, match=r"no-such-bucket.*does not exist"):
        async with missing:
            pass  # pragma: no cover


async def test_an_unreachable_endpoint_is_a_config_error() -> None:
    unreachable = S3Source(
        BUCKET,
        endpoint_url="http://127.0.0.1:9",
        region_name=REGION,
        credentials=CREDENTIALS,
        max_attempts=1,
    )
    with pytest.raises(ConfigError, match="cannot connect"):
        async with unreachable:
            pass  # pragma: no cover


def test_missing_credentials_are_named_in_the_config_error() -> None:
    error = S3Source(BUCKET)._config_error(NoCredentialsError(), "opening the bucket")
    assert "no AWS credentials" in str(error)
    assert f"s3://{BUCKET}" in str(error)


async def test_an_unopened_source_says_how_to_open_it() -> None:
    with pytest.raises(RuntimeError, match="async with"):
        await listed(S3Source(BUCKET))
