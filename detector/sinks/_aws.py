"""What the AWS findings sinks share: how to reach the service, and one retry loop for batch
calls that can fail in part.

:func:`deliver` sends items in batches; a batch call answers which of its items failed and
whether trying again can help. Failed items are retried alone with the
:class:`~detector.ingest.RetryPolicy` backoff, at most ``max_attempts`` calls each; whatever is
left is named in a :class:`SinkError`, so the service does not checkpoint (nothing is lost:
the input is received again and the same finding ids are sent again).

Imports: the standard library, aiobotocore/botocore, detector.ingest and this package's port.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Final

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import BotoCoreError, ClientError

from detector.aws import StaticCredentials, client_credentials
from detector.ingest import DEFAULT_RETRY_POLICY, RetryPolicy, Sleep
from detector.sinks._port import SinkError

__all__ = ["AwsConfig", "AwsSink", "ItemFailure", "deliver", "open_client"]

_log = logging.getLogger("detector.sinks")
_RETRYABLE_CODES: Final = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "LimitExceededException",
        "InternalException",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


@dataclass(frozen=True, slots=True)
class AwsConfig:
    """Where an AWS service is and how to talk to it (``endpoint_url`` None: AWS itself)."""

    region: str
    endpoint_url: str | None = None
    credentials: StaticCredentials | None = None
    retry: RetryPolicy = DEFAULT_RETRY_POLICY
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 30.0


async def open_client(service: str, config: AwsConfig, stack: AsyncExitStack) -> Any:
    """An aiobotocore client of ``service``, closed with ``stack``. botocore's own retries are
    off: :func:`deliver` is the one retry layer and retries only what failed."""
    client_config = AioConfig(
        retries={"total_max_attempts": 1},
        connect_timeout=config.connect_timeout_seconds,
        read_timeout=config.read_timeout_seconds,
    )
    return await stack.enter_async_context(
        AioSession().create_client(
            service,
            region_name=config.region,
            endpoint_url=config.endpoint_url,
            config=client_config,
            **client_credentials(config.credentials),
        )
    )


@dataclass(frozen=True, slots=True)
class ItemFailure:
    """One item of a batch call that was not delivered."""

    code: str
    message: str
    retryable: bool


def retryable_code(code: str) -> bool:
    return code in _RETRYABLE_CODES or (code.endswith("Exception") and "Internal" in code)


def call_failure(err: Exception) -> ItemFailure:
    """What a whole failed call means for each of its items."""
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return ItemFailure(
            code, str(error.get("Message", "")), retryable_code(code) or status >= 500
        )
    return ItemFailure(type(err).__name__, str(err), True)  # network, timeout: try again


BatchCall = Callable[[Sequence[int]], Awaitable[dict[int, ItemFailure]]]


async def deliver(
    sink: str,
    ids: Sequence[str],
    batches: Sequence[Sequence[int]],
    call: BatchCall,
    *,
    retry: RetryPolicy,
    rng: random.Random,
    sleep: Sleep = asyncio.sleep,
    on_failures: Callable[[int], None] | None = None,
) -> None:
    """Send every batch (lists of positions into ``ids``), retrying failed items alone; raise
    :class:`SinkError` naming the findings still not delivered after ``retry.max_attempts``."""
    given_up: dict[int, ItemFailure] = {}
    for batch in batches:
        pending = list(batch)
        attempt = 0
        while pending:
            try:
                failures = await call(pending)
            except (TimeoutError, ClientError, BotoCoreError, OSError) as err:
                failure = call_failure(err)
                failures = dict.fromkeys(pending, failure)
            for position, failure in failures.items():
                _log.warning(
                    "finding not delivered",
                    extra={  # the service's JSON log lines show "detector_fields"
                        "detector_fields": {
                            "sink": sink,
                            "finding_id": ids[position],
                            "error_code": failure.code,
                            "error": failure.message,
                            "attempt": attempt + 1,
                            "will_retry": failure.retryable and attempt + 1 < retry.max_attempts,
                        }
                    },
                )
            if failures and on_failures is not None:
                on_failures(len(failures))
            attempt += 1
            retry_now = [p for p, f in failures.items() if f.retryable]
            given_up |= {p: f for p, f in failures.items() if not f.retryable}
            if retry_now and attempt >= retry.max_attempts:
                given_up |= {p: failures[p] for p in retry_now}
                retry_now = []
            pending = retry_now
            if pending:
                await sleep(retry.delay(attempt - 1, rng))
    if given_up:
        details = "; ".join(f"{ids[p]}: {f.code} {f.message}".strip() for p, f in given_up.items())
        raise SinkError(
            f"{sink}: {len(given_up)} findings not delivered ({details})",
            [ids[p] for p in given_up],
        )


class AwsSink:
    """What the AWS sinks share: a client, :func:`deliver`'s retry loop with the sink's own
    policy, randomness and sleep (arguments, so tests run without waiting), and closing the
    client's stack once."""

    def __init__(
        self,
        client: Any,
        *,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        on_failures: Callable[[int], None] | None = None,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        stack: AsyncExitStack | None = None,
    ) -> None:
        self.client = client
        self.retry = retry
        self._on_failures = on_failures
        self._rng = rng if rng is not None else random.Random()
        self._sleep = sleep
        self._stack = stack
        self._closed = False

    async def _deliver(
        self, sink: str, ids: Sequence[str], batches: Sequence[Sequence[int]], call: BatchCall
    ) -> None:
        await deliver(
            sink,
            ids,
            batches,
            call,
            retry=self.retry,
            rng=self._rng,
            sleep=self._sleep,
            on_failures=self._on_failures,
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._stack is not None:
            await self._stack.aclose()
