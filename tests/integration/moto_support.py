"""Helpers for tests against a moto server: the server handle and an SQS set-up client.

The fixtures that use them are in ``conftest.py`` beside this file.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiobotocore.session import AioSession

from detector.aws import client_credentials
from detector.ingest import SqsConfig, StaticCredentials

REGION = "us-east-1"
TEST_CREDENTIALS = StaticCredentials("testing", "testing")


@dataclass(frozen=True)
class MotoServer:
    endpoint_url: str

    def reset(self) -> None:
        """Forget every resource of every moto backend (POST /moto-api/reset)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def set_auth_after(self, requests: float) -> None:
        """Check credentials after ``requests`` more requests (inf: never, moto's default)."""
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/reset-auth",
            data=str(requests).encode(),
            headers={"Content-Type": "text/plain"},  # a form body would hide it from moto
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


class SqsAdmin:
    """Set-up and inspection of moto's SQS, through a raw aiobotocore client."""

    def __init__(self, client: Any, endpoint_url: str) -> None:
        self.client = client
        self.endpoint_url = endpoint_url

    def config(self, queue_url: str, **overrides: Any) -> SqsConfig:
        settings: dict[str, Any] = {
            "region": REGION,
            "endpoint_url": self.endpoint_url,
            "credentials": TEST_CREDENTIALS,
        }
        return SqsConfig(queue_url=queue_url, **(settings | overrides))

    async def create_queue(
        self,
        name: str,
        *,
        fifo: bool = False,
        content_based_deduplication: bool = False,
        visibility_timeout: int = 30,
        dead_letter_queue_url: str | None = None,
        max_receive_count: int | None = None,
    ) -> str:
        """The URL of a new queue; FIFO names get their ``.fifo`` suffix here."""
        attributes = {"VisibilityTimeout": str(visibility_timeout)}
        if fifo:
            name = name if name.endswith(".fifo") else f"{name}.fifo"
            attributes["FifoQueue"] = "true"
            attributes["ContentBasedDeduplication"] = str(content_based_deduplication).lower()
        if dead_letter_queue_url is not None:
            arn = await self.queue_arn(dead_letter_queue_url)
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": arn, "maxReceiveCount": max_receive_count or 1}
            )
        response = await self.client.create_queue(QueueName=name, Attributes=attributes)
        return str(response["QueueUrl"])

    async def queue_arn(self, queue_url: str) -> str:
        response = await self.client.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"]
        )
        return str(response["Attributes"]["QueueArn"])

    async def depth(self, queue_url: str) -> tuple[int, int]:
        """(visible, in flight) messages."""
        response = await self.client.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )
        attributes = response["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )


@asynccontextmanager
async def aws_client(service: str, endpoint_url: str) -> AsyncIterator[Any]:
    """A raw aiobotocore client of ``service`` on the moto server, with the test credentials."""
    async with AioSession().create_client(
        service,
        region_name=REGION,
        endpoint_url=endpoint_url,
        **client_credentials(TEST_CREDENTIALS),
    ) as client:
        yield client


@asynccontextmanager
async def open_sqs_admin(endpoint_url: str) -> AsyncIterator[SqsAdmin]:
    async with aws_client("sqs", endpoint_url) as client:
        yield SqsAdmin(client, endpoint_url)
