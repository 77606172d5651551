"""Hand-made CloudTrail records for the feature tests (no tests here, only the factory).

Kept in a ``test_features*`` module so the unit and property tests share one way of writing
an event: ``record(i, at_minute, who=..., ip=..., name=...)``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from detector.events import records_to_events

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)  # a Monday: hour-of-week bucket 9
ACCOUNT = "111122223333"


def user_key(who: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{who}"


def record(
    i: int | str,
    minute: float,
    *,
    who: str = "alice",
    ip: str = "203.0.113.5",
    name: str = "ListUsers",
    source: str = "iam",
    region: str = "us-east-1",
    user_agent: str = "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64",
    read_only: bool = True,
    tls: str | None = "TLSv1.3",
    access_key: str = "AKIAEXAMPLEKEY000001",
    **extra: Any,
) -> dict[str, Any]:
    """One IAM-user API call ``minute`` minutes after :data:`T0`; ``extra`` overrides fields."""
    at = T0 + timedelta(minutes=minute)
    rec: dict[str, Any] = {
        "eventVersion": "1.08",
        "eventID": f"e{i}",
        "eventTime": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z",
        "eventSource": f"{source}.amazonaws.com",
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": ip,
        "userAgent": user_agent,
        "userIdentity": {
            "type": "IAMUser",
            "arn": user_key(who),
            "accountId": ACCOUNT,
            "principalId": "AIDAEXAMPLE",
            "accessKeyId": access_key,
            "userName": who,
        },
        "recipientAccountId": ACCOUNT,
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "eventCategory": "Management",
    }
    if tls is not None:
        rec["tlsDetails"] = {"tlsVersion": tls, "cipherSuite": "TLS_AES_128_GCM_SHA256"}
    rec.update(extra)
    return rec


def events(records: list[dict[str, Any]]) -> pl.DataFrame:
    result = records_to_events(records, origin="test")
    assert not result.failures, result.failures
    return result.events
