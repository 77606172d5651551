"""The SQS adapter of the queue port, over aiobotocore.

One :class:`SqsQueue` owns one aiobotocore client for one queue URL. Its lifecycle is explicit:
``async with SqsQueue(config) as queue`` (or ``await SqsQueue.open(config)`` and, later,
``await queue.close()``) creates the client and checks with GetQueueAttributes that the queue
exists and answers, raising :class:`~detector.errors.ConfigError` naming the queue URL if not.

Every call is a batch call (aiobotocore costs milliseconds of CPU per call, whatever its size).
Throttling, 5xx and network errors are retried here with :class:`RetryPolicy` (botocore's own
retries are switched off so there is one policy, with an injectable RNG); a partial batch
failure retries only the failed entries.

Imports: aiobotocore, botocore, aiohttp (for its exception types), and this package.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final, TypeAlias, TypeVar

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore import exceptions as botocore_errors
from botocore.exceptions import ClientError

from detector.aws import StaticCredentials, client_credentials
from detector.errors import ConfigError
from detector.ingest._errors import QueueError, QueueUnavailableError
from detector.ingest._limits import MAX_VISIBILITY_TIMEOUT, check_outgoing, chunk
from detector.ingest._model import BatchFailure, BatchOutcome, OutgoingMessage, QueueMessage
from detector.ingest._retry import (
    DEFAULT_RETRY_POLICY,
    ErrorKind,
    RetryPolicy,
    Sleep,
    retry_entries,
)

__all__ = ["SqsConfig", "SqsQueue"]

E = TypeVar("E")
BatchCall: TypeAlias = Callable[[Mapping[str, E]], Awaitable[tuple[list[str], list[BatchFailure]]]]

DEFAULT_REGION: Final = "us-east-1"
SYSTEM_ATTRIBUTES: Final = ("SentTimestamp", "ApproximateReceiveCount", "MessageGroupId")
LONG_POLL_MAX_SECONDS: Final = 20

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MISSING_QUEUE_CODES: Final = frozenset(
    {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"}
)
_CREDENTIAL_CODES: Final = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSecurity",
        "MissingAuthenticationToken",
        "AccessDenied",
        "AccessDeniedException",
        "KmsAccessDenied",
        "AWS.SimpleQueueService.KmsAccessDenied",
    }
)
_TRANSIENT_CODES: Final = frozenset(
    {
        "RequestThrottled",
        "AWS.SimpleQueueService.RequestThrottled",
        "Throttling",
        "ThrottlingException",
        "KmsThrottled",
        "KMS.ThrottlingException",
        "OverLimit",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


@dataclass(frozen=True, slots=True)
class SqsConfig:
    """Where the queue is and how to talk to it; a value, read from nowhere.

    ``endpoint_url`` None means AWS itself; set it for moto or a VPC endpoint.
    """

    queue_url: str
    region: str = DEFAULT_REGION
    endpoint_url: str | None = None
    retry: RetryPolicy = DEFAULT_RETRY_POLICY
    credentials: StaticCredentials | None = None
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 30.0
    max_pool_connections: int = 10

    def __post_init__(self) -> None:
        if not self.queue_url.startswith(("https://", "http://")):
            raise ConfigError(f"SQS queue URL must be an http(s) URL, got {self.queue_url!r}")
        if not self.region:
            raise ConfigError(f"no AWS region given for SQS queue {self.queue_url}")
        if self.read_timeout_seconds <= LONG_POLL_MAX_SECONDS:
            raise ConfigError(
                f"read_timeout_seconds ({self.read_timeout_seconds}) must exceed the "
                f"{LONG_POLL_MAX_SECONDS} s long poll"
            )


def _error_code(err: Exception) -> str:
    if isinstance(err, ClientError):
        return str(err.response.get("Error", {}).get("Code", "Unknown"))
    return type(err).__name__


def _http_status(err: Exception) -> int:
    if isinstance(err, ClientError):
        return int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 0


def _refused_credentials(err: Exception) -> bool:
    # 401/403 whatever the code: moto, for one, answers a JSON request with an XML error body.
    return _error_code(err) in _CREDENTIAL_CODES or _http_status(err) in (401, 403)


def _describe(err: Exception) -> tuple[str, str]:
    if isinstance(err, ClientError):
        return _error_code(err), str(err.response.get("Error", {}).get("Message", err))
    return type(err).__name__, str(err)


def _classify(err: Exception) -> ErrorKind:
    """Transient errors are retried; fatal ones stop the call; others fail its entries."""
    if isinstance(err, ClientError):
        code = _error_code(err)
        status = _http_status(err)
        if code in _MISSING_QUEUE_CODES or _refused_credentials(err):
            return "fatal"
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            return "transient"
        return "entries"
    if isinstance(
        err,
        botocore_errors.HTTPClientError
        | botocore_errors.ConnectionError
        | aiohttp.ClientError
        | TimeoutError,
    ):
        return "transient"
    return "fatal"


def _batch_result(response: Mapping[str, Any]) -> tuple[list[str], list[BatchFailure]]:
    succeeded = [str(entry["Id"]) for entry in response.get("Successful", ())]
    failed = [
        BatchFailure(
            str(entry["Id"]),
            str(entry.get("Code", "Unknown")),
            str(entry.get("Message", "")),
            bool(entry.get("SenderFault", False)),
        )
        for entry in response.get("Failed", ())
    ]
    return succeeded, failed


class SqsQueue:
    """The queue port over one SQS queue (see the module docstring).

    ``rng`` draws the retry jitter and ``sleep`` waits between retries; pass them to make
    retries deterministic in tests.
    """

    def __init__(
        self,
        config: SqsConfig,
        *,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.config = config
        self._rng = rng if rng is not None else random.Random()
        self._sleep = sleep
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._fifo = config.queue_url.endswith(".fifo")
        self._content_based_deduplication = False
        self._closed = False

    @classmethod
    async def open(
        cls,
        config: SqsConfig,
        *,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> SqsQueue:
        """A connected queue whose existence has been checked; close it with :meth:`close`."""
        queue = cls(config, rng=rng, sleep=sleep)
        await queue._start()
        return queue

    async def __aenter__(self) -> SqsQueue:
        await self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def fifo(self) -> bool:
        return self._fifo

    @property
    def url(self) -> str:
        return self.config.queue_url

    async def close(self) -> None:
        self._closed = True
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    # -- the port -------------------------------------------------------------------------

    async def receive(
        self,
        max_messages: int = 10,
        wait_seconds: int = 20,
        visibility_timeout: int | None = None,
    ) -> list[QueueMessage]:
        if not 1 <= max_messages <= 10:
            raise ValueError("max_messages must be 1..10")
        if not 0 <= wait_seconds <= LONG_POLL_MAX_SECONDS:
            raise ValueError(f"wait_seconds must be 0..{LONG_POLL_MAX_SECONDS}")
        if visibility_timeout is not None and not 0 <= visibility_timeout <= MAX_VISIBILITY_TIMEOUT:
            raise ValueError(f"visibility_timeout must be 0..{MAX_VISIBILITY_TIMEOUT}")
        client = self._open_client()
        request: dict[str, Any] = {
            "QueueUrl": self.url,
            "MaxNumberOfMessages": max_messages,
            "WaitTimeSeconds": wait_seconds,
            "MessageSystemAttributeNames": list(SYSTEM_ATTRIBUTES),
        }
        if visibility_timeout is not None:
            request["VisibilityTimeout"] = visibility_timeout
        policy = self.config.retry
        for attempt in range(policy.max_attempts):
            try:
                response = await client.receive_message(**request)
            except Exception as err:
                if _classify(err) != "transient":
                    raise self._queue_error("ReceiveMessage", err) from err
                if attempt == policy.max_attempts - 1:
                    code, message = _describe(err)
                    raise QueueUnavailableError(
                        f"ReceiveMessage on {self.url} still failing after "
                        f"{policy.max_attempts} attempts: {code}: {message}"
                    ) from err
                await self._sleep(policy.delay(attempt, self._rng))
                continue
            return [self._message_of(raw) for raw in response.get("Messages", ())]
        raise AssertionError("unreachable: the loop returns or raises")

    async def delete(self, messages: Sequence[QueueMessage]) -> BatchOutcome:
        client = self._open_client()

        async def call(
            pending: Mapping[str, QueueMessage],
        ) -> tuple[list[str], list[BatchFailure]]:
            entries = [{"Id": k, "ReceiptHandle": m.receipt_handle} for k, m in pending.items()]
            return _batch_result(
                await client.delete_message_batch(QueueUrl=self.url, Entries=entries)
            )

        outcomes = []
        for group in chunk(messages):
            batch = {str(i): message for i, message in enumerate(group)}
            outcomes.append(await self._run_batch("DeleteMessageBatch", batch, call, _message_id))
        return BatchOutcome.combine(outcomes)

    async def change_visibility(
        self, messages: Sequence[QueueMessage], timeout_seconds: int
    ) -> BatchOutcome:
        if not 0 <= timeout_seconds <= MAX_VISIBILITY_TIMEOUT:
            reason = f"visibility timeout {timeout_seconds} is not 0..{MAX_VISIBILITY_TIMEOUT}"
            return BatchOutcome(
                failed=tuple(
                    BatchFailure(m.message_id, "InvalidParameterValue", reason, sender_fault=True)
                    for m in messages
                )
            )
        client = self._open_client()

        async def call(
            pending: Mapping[str, QueueMessage],
        ) -> tuple[list[str], list[BatchFailure]]:
            entries = [
                {"Id": k, "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": timeout_seconds}
                for k, m in pending.items()
            ]
            return _batch_result(
                await client.change_message_visibility_batch(QueueUrl=self.url, Entries=entries)
            )

        outcomes = []
        for group in chunk(messages):
            batch = {str(i): message for i, message in enumerate(group)}
            outcomes.append(
                await self._run_batch("ChangeMessageVisibilityBatch", batch, call, _message_id)
            )
        return BatchOutcome.combine(outcomes)

    async def send(self, messages: Sequence[OutgoingMessage]) -> BatchOutcome:
        client = self._open_client()
        refused: list[BatchFailure] = []
        accepted: list[tuple[OutgoingMessage, str]] = []
        for message in messages:
            text, failure = check_outgoing(
                message,
                fifo=self._fifo,
                content_based_deduplication=self._content_based_deduplication,
            )
            if failure is None:
                accepted.append((message, text))
            else:
                refused.append(failure)

        async def call(
            pending: Mapping[str, tuple[OutgoingMessage, str]],
        ) -> tuple[list[str], list[BatchFailure]]:
            entries = [_send_entry(k, m, text) for k, (m, text) in pending.items()]
            return _batch_result(
                await client.send_message_batch(QueueUrl=self.url, Entries=entries)
            )

        outcomes = [BatchOutcome(failed=tuple(refused))]
        for group in chunk(accepted, lambda entry: len(entry[0].body)):
            batch = {str(i): entry for i, entry in enumerate(group)}
            outcomes.append(await self._run_batch("SendMessageBatch", batch, call, _outgoing_id))
        return BatchOutcome.combine(outcomes)

    # -- internals --------------------------------------------------------------------------

    async def _start(self) -> None:
        if self._client is not None:
            return
        if self._closed:
            raise QueueError(f"SQS queue {self.url} was closed; make a new SqsQueue")
        config = self.config
        client_config = AioConfig(
            retries={"total_max_attempts": 1},  # RetryPolicy is the only retry layer
            # Requests are built here from typed values; botocore's client-side check of them
            # costs ~5% of the client CPU per message and SQS validates them anyway.
            parameter_validation=False,
            connect_timeout=config.connect_timeout_seconds,
            read_timeout=config.read_timeout_seconds,
            max_pool_connections=config.max_pool_connections,
        )
        stack = AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(
                AioSession().create_client(
                    "sqs",
                    region_name=config.region,
                    endpoint_url=config.endpoint_url,
                    config=client_config,
                    **client_credentials(config.credentials),
                )
            )
            self._stack = stack
            await self._check_queue()
        except BaseException:
            self._client = self._stack = None
            await stack.aclose()
            raise

    async def _check_queue(self) -> None:
        policy = self.config.retry
        for attempt in range(policy.max_attempts):
            try:
                response = await self._client.get_queue_attributes(
                    QueueUrl=self.url, AttributeNames=["All"]
                )
            except Exception as err:
                if _classify(err) == "transient" and attempt < policy.max_attempts - 1:
                    await self._sleep(policy.delay(attempt, self._rng))
                    continue
                raise ConfigError(self._startup_problem(err)) from err
            attributes = response.get("Attributes", {})
            self._fifo = attributes.get("FifoQueue") == "true"
            self._content_based_deduplication = (
                attributes.get("ContentBasedDeduplication") == "true"
            )
            return

    def _startup_problem(self, err: Exception) -> str:
        where = f"SQS queue {self.url} (region {self.config.region}, endpoint " + (
            f"{self.config.endpoint_url})" if self.config.endpoint_url else "AWS)"
        )
        code, message = _describe(err)
        if code in _MISSING_QUEUE_CODES:
            return f"{where} does not exist"
        if _refused_credentials(err):
            return f"{where}: the credentials were refused ({code}: {message})"
        if isinstance(
            err, botocore_errors.NoCredentialsError | botocore_errors.PartialCredentialsError
        ):
            return f"{where}: no usable AWS credentials ({message})"
        if _classify(err) == "transient":
            return f"{where} is unreachable ({code}: {message})"
        return f"{where} cannot be used ({code}: {message})"

    def _open_client(self) -> Any:
        if self._client is None:
            state = "closed" if self._closed else "not open (use async with or SqsQueue.open)"
            raise QueueError(f"SQS queue {self.url} is {state}")
        return self._client

    def _queue_error(self, operation: str, err: Exception) -> QueueError:
        code, message = _describe(err)
        return QueueError(f"{operation} on SQS queue {self.url} failed: {code}: {message}")

    async def _run_batch(
        self,
        operation: str,
        batch: Mapping[str, E],
        call: BatchCall[E],
        caller_id: Callable[[E], str],
    ) -> BatchOutcome:
        """One batch call with retries, its entry ids mapped back to the caller's ids."""
        try:
            succeeded, failed = await retry_entries(
                batch,
                call,
                classify=_classify,
                describe=_describe,
                policy=self.config.retry,
                rng=self._rng,
                sleep=self._sleep,
            )
        except Exception as err:
            raise self._queue_error(operation, err) from err
        return BatchOutcome(
            tuple(caller_id(batch[key]) for key in succeeded),
            tuple(replace(failure, id=caller_id(batch[failure.id])) for failure in failed),
        )

    def _message_of(self, raw: Mapping[str, Any]) -> QueueMessage:
        attributes = raw.get("Attributes", {})
        try:
            sent_ms = int(attributes["SentTimestamp"])
            receive_count = int(attributes["ApproximateReceiveCount"])
        except (KeyError, ValueError) as err:
            raise QueueError(
                f"message {raw.get('MessageId')!r} from {self.url} lacks a valid {err}"
            ) from None
        return QueueMessage(
            message_id=str(raw["MessageId"]),
            receipt_handle=str(raw["ReceiptHandle"]),
            body=str(raw["Body"]).encode("utf-8"),
            sent_time=_EPOCH + timedelta(milliseconds=sent_ms),
            receive_count=receive_count,
            message_group_id=attributes.get("MessageGroupId"),
        )


def _message_id(message: QueueMessage) -> str:
    return message.message_id


def _outgoing_id(entry: tuple[OutgoingMessage, str]) -> str:
    return entry[0].id


def _send_entry(key: str, message: OutgoingMessage, text: str) -> dict[str, str]:
    entry = {"Id": key, "MessageBody": text}
    if message.group_id is not None:
        entry["MessageGroupId"] = message.group_id
    if message.deduplication_id is not None:
        entry["MessageDeduplicationId"] = message.deduplication_id
    return entry
