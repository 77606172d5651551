"""Fixtures of the hostile-input suite: the service tests' streams and moto server, real
archive folders in CloudTrail's layout, and ``detector`` run as a real process."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from tests.service.conftest import (
    attack_morning,
    moto_endpoint,
    moto_enforcing_auth,
    moto_server,
    pipeline,
    short_stream,
    sqs_admin,
    tamper_stream,
)

__all__ = [
    "attack_morning",
    "moto_endpoint",
    "moto_enforcing_auth",
    "moto_server",
    "pipeline",
    "short_stream",
    "sqs_admin",
    "tamper_stream",
]

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "111122223333"
REGION = "us-east-1"


def trail_key(stamp: datetime, name: str = "x") -> str:
    """An object key in CloudTrail's layout, delivered at ``stamp``."""
    return (
        f"AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/{stamp:%Y/%m/%d}/"
        f"{ACCOUNT}_CloudTrail_{REGION}_{stamp:%Y%m%dT%H%MZ}_{name}.json.gz"
    )


def record(event_id: str, when: datetime | str, **fields: Any) -> dict[str, Any]:
    """A plausible CloudTrail record (an assumed role reading S3)."""
    time = when if isinstance(when, str) else when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "eventVersion": "1.09",
        "eventID": event_id,
        "eventTime": time,
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "awsRegion": REGION,
        "recipientAccountId": ACCOUNT,
        "sourceIPAddress": "203.0.113.9",
        "userAgent": "aws-cli/2",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLE:app",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/app/app",
            "accountId": ACCOUNT,
        },
        **fields,
    }


def write_trail(root: Path, key: str, records: Sequence[dict[str, Any]] | bytes) -> Path:
    """One archive file under ``root`` (gzipped; ``bytes`` are written as they are)."""
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (
        records if isinstance(records, bytes) else gzip.compress(orjson.dumps({"Records": records}))
    )
    path.write_bytes(data)
    return path


def nested(depth: int) -> bytes:
    """JSON text nesting objects ``depth`` levels deep (about 5 bytes a level)."""
    return b'{"a":' * depth + b"1" + b"}" * depth


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str


def detector(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Ran:
    """``detector ARGS`` as a real process (``python -m detector.cli``)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DETECTOR_"))}
    done = subprocess.run(
        [sys.executable, "-m", "detector.cli", *args],
        cwd=REPO,
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)
