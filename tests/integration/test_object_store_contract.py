"""One contract for the registry's ObjectStore port, run against the in-memory fake, a local
folder and S3 on a real moto server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiobotocore.session import AioSession

from detector.registry import LocalObjectStore, MemoryObjectStore, ObjectStore, S3ObjectStore
from tests.integration.moto_support import REGION, TEST_CREDENTIALS


@pytest.fixture(params=["memory", "folder", "s3"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ObjectStore]:
    if request.param == "memory":
        yield MemoryObjectStore()
        return
    if request.param == "folder":
        yield LocalObjectStore(tmp_path / "registry")
        return
    endpoint: str = request.getfixturevalue("moto_endpoint")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_CREDENTIALS.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_CREDENTIALS.secret_access_key)
    async with AioSession().create_client(
        "s3", region_name=REGION, endpoint_url=endpoint
    ) as client:
        await client.create_bucket(Bucket="models")
        await client.put_object(Bucket="models", Key="elsewhere/x", Body=b"not ours")
    async with S3ObjectStore("models", "org/models", endpoint_url=endpoint, region=REGION) as s3:
        yield s3


async def test_a_missing_key_reads_as_none(store: ObjectStore) -> None:
    assert await store.get("current") is None
    assert await store.list("") == []


async def test_put_get_overwrite_and_list_under_a_prefix(store: ObjectStore) -> None:
    await store.put("org@0123456789ab/manifest.json", b"{}")
    await store.put("org@0123456789ab/model.skops", b"\x00\x01")
    await store.put("current", b"first")
    await store.put("current", b"second")
    assert await store.get("current") == b"second"
    assert await store.get("org@0123456789ab/model.skops") == b"\x00\x01"
    assert await store.list("org@") == [
        "org@0123456789ab/manifest.json",
        "org@0123456789ab/model.skops",
    ]
    assert await store.list("") == [
        "current",
        "org@0123456789ab/manifest.json",
        "org@0123456789ab/model.skops",
    ]
