"""Suppression rules read from an ``s3://`` object on a real moto S3 server: loaded like a
file, re-read when the object's ETag changes, and a missing object named at start-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiobotocore.session import get_session

from detector.errors import ConfigError
from detector.findings import Finding
from detector.sinks import MemoryFindingSink
from detector.suppression import S3RulesSource, Suppressor
from tests.integration.moto_support import REGION

BUCKET = "team-suppressions"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RULES = "rules:\n  - {{id: {id}, reason: test, owner: tests, match: {{kinds: [{kind}]}}}}\n"


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


async def put(endpoint_url: str, key: str, text: str, *, create: bool = False) -> None:
    async with get_session().create_client(
        "s3", region_name=REGION, endpoint_url=endpoint_url
    ) as client:
        if create:
            await client.create_bucket(Bucket=BUCKET)
        await client.put_object(Bucket=BUCKET, Key=key, Body=text.encode())


def finding(kind: str) -> Finding:
    return Finding(
        finding_id=f"id-{kind}", kind=kind, title="t", severity=5.0, principal="p",
        principal_arn=None, principal_type="IAMUser", account_id="111122223333",
        region="eu-west-1", window_start=T0, window_end=T0 + timedelta(hours=1),
        first_seen=T0, last_seen=T0, created_at=T0, score=1.0,
    )  # fmt: skip


async def test_an_s3_rules_object_is_read_and_re_read_when_it_changes(moto_endpoint: str) -> None:
    await put(moto_endpoint, "rules/suppress.yaml", RULES.format(id="a", kind="k1"), create=True)
    url = f"s3://{BUCKET}/rules/suppress.yaml"
    source = S3RulesSource(url, endpoint_url=moto_endpoint, check_seconds=0)
    suppressor = Suppressor(source, MemoryFindingSink())
    try:
        await suppressor.start()
        assert [r.id for _, r in (await suppressor.split([finding("k1")])).suppressed] == ["a"]
        assert await suppressor.refresh() is False  # the same ETag: not read again

        await put(moto_endpoint, "rules/suppress.yaml", RULES.format(id="b", kind="k2"))
        split = await suppressor.split([finding("k1"), finding("k2")])
        assert [f.kind for f in split.kept] == ["k1"]
        assert [r.id for _, r in split.suppressed] == ["b"]
    finally:
        await suppressor.close()


async def test_the_s3_object_is_looked_at_no_more_often_than_asked(moto_endpoint: str) -> None:
    await put(moto_endpoint, "rules/slow.yaml", RULES.format(id="a", kind="k1"), create=True)
    url = f"s3://{BUCKET}/rules/slow.yaml"
    ticks = iter([0.0, 5.0, 10.0])  # start, then two looks: 5 s and 10 s after it
    source = S3RulesSource(url, endpoint_url=moto_endpoint, check_seconds=10)
    suppressor = Suppressor(source, MemoryFindingSink(), monotonic=lambda: next(ticks))
    try:
        await suppressor.start()
        await put(moto_endpoint, "rules/slow.yaml", RULES.format(id="b", kind="k1"))
        assert await suppressor.refresh() is False  # too soon to look
        assert await suppressor.refresh() is True
        assert [r.id for r in suppressor.rules.rules] == ["b"]
    finally:
        await suppressor.close()


async def test_a_missing_rules_object_is_named(moto_endpoint: str) -> None:
    await put(moto_endpoint, "other.yaml", "rules: []\n", create=True)
    source = S3RulesSource(f"s3://{BUCKET}/missing.yaml", endpoint_url=moto_endpoint)
    try:
        with pytest.raises(ConfigError, match=f"s3://{BUCKET}/missing.yaml"):
            await Suppressor(source, MemoryFindingSink()).start()
    finally:
        await source.close()
