"""An S3 state bucket on the moto server, and a store on it, for the state tests.

Use ``s3_state(endpoint_url)`` after ``moto_endpoint`` reset moto: it creates the bucket and
gives the location, a store opener and a raw botocore client for inspection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import botocore.session

from detector.state import S3StateStore, open_state_store
from tests.integration.moto_support import REGION, TEST_CREDENTIALS

BUCKET = "detector-state"


@dataclass
class S3State:
    endpoint_url: str
    client: Any
    location: str

    def open(self, location: str | None = None, **options: Any) -> S3StateStore:
        store = open_state_store(
            location or self.location,
            region=REGION,
            endpoint_url=self.endpoint_url,
            credentials=TEST_CREDENTIALS,
            **options,
        )
        assert isinstance(store, S3StateStore)
        return store

    def keys(self, prefix: str = "") -> list[str]:
        response = self.client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return sorted(str(item["Key"]) for item in response.get("Contents", ()))


@contextmanager
def s3_state(endpoint_url: str, prefix: str = "prod/state") -> Iterator[S3State]:
    client = botocore.session.get_session().create_client(
        "s3",
        region_name=REGION,
        endpoint_url=endpoint_url,
        aws_access_key_id=TEST_CREDENTIALS.access_key_id,
        aws_secret_access_key=TEST_CREDENTIALS.secret_access_key,
    )
    try:
        client.create_bucket(Bucket=BUCKET)
        yield S3State(endpoint_url, client, f"s3://{BUCKET}/{prefix}")
    finally:
        client.close()
