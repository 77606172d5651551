"""Sigma rules read from an ``s3://`` prefix on a real moto S3 server: the same rules as from a
folder, only the ``.yml``/``.yaml`` files under the prefix, and a clear error for a missing
bucket or an empty prefix."""

from __future__ import annotations

import pytest
from aiobotocore.session import get_session

from detector.errors import ConfigError
from detector.sigma import load_rules
from tests.integration.moto_support import REGION

BUCKET = "team-rules"
RULE = """
title: Trail stopped (test {n})
id: 3c1d2e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5{n}
logsource: {{product: aws, service: cloudtrail}}
detection:
    selection:
        eventSource: cloudtrail.amazonaws.com
        eventName: StopLogging
    condition: selection
level: high
"""


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader reads credentials the standard way (botocore's default chain)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


async def upload(endpoint_url: str, objects: dict[str, str]) -> None:
    async with get_session().create_client(
        "s3", region_name=REGION, endpoint_url=endpoint_url
    ) as client:
        await client.create_bucket(Bucket=BUCKET)
        for key, text in objects.items():
            await client.put_object(Bucket=BUCKET, Key=key, Body=text.encode())


async def test_rules_under_an_s3_prefix_load_like_a_folder(moto_endpoint: str) -> None:
    await upload(
        moto_endpoint,
        {
            "sigma/aws/a.yml": RULE.format(n=1),
            "sigma/aws/deeper/b.yaml": RULE.format(n=2),
            "sigma/README.md": "not a rule",
            "elsewhere/c.yml": RULE.format(n=3),
        },
    )
    rules = await load_rules([f"s3://{BUCKET}/sigma/"], endpoint_url=moto_endpoint)
    assert not rules.refused
    assert sorted(rules.sources.values()) == [
        f"s3://{BUCKET}/sigma/aws/a.yml",
        f"s3://{BUCKET}/sigma/aws/deeper/b.yaml",
    ]
    assert [d.title for d in rules.detections] == [
        "Trail stopped (test 1)",
        "Trail stopped (test 2)",
    ]


async def test_a_missing_bucket_or_an_empty_prefix_is_a_clear_error(moto_endpoint: str) -> None:
    with pytest.raises(ConfigError, match="the bucket does not exist"):
        await load_rules([f"s3://{BUCKET}/sigma/"], endpoint_url=moto_endpoint)
    await upload(moto_endpoint, {"other/a.yml": RULE.format(n=1)})
    with pytest.raises(ConfigError, match=r"no \.yml or \.yaml file"):
        await load_rules([f"s3://{BUCKET}/sigma/"], endpoint_url=moto_endpoint)


async def test_the_endpoint_may_come_from_the_standard_aws_variable(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in `detector run`, which passes no endpoint: botocore reads AWS_ENDPOINT_URL_S3."""
    await upload(moto_endpoint, {"sigma/a.yml": RULE.format(n=1)})
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    rules = await load_rules([f"s3://{BUCKET}/sigma"])
    assert len(rules.detections) == 1
