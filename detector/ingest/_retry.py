"""Exponential backoff with full jitter, and the loop that retries only a batch's failed entries.

The loop is independent of botocore: it takes the call as a function, so the same policy serves
the SQS adapter and the SQS sink, and its behaviour is testable with plain functions.

Imports: the standard library and this package's message values.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias, TypeVar

from detector.ingest._model import BatchFailure

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "ErrorKind",
    "RetryPolicy",
    "Sleep",
    "retry_entries",
]

E = TypeVar("E")
Sleep: TypeAlias = Callable[[float], Awaitable[None]]

ErrorKind: TypeAlias = Literal["transient", "fatal", "entries"]
"""How a call's exception is handled: retried, raised, or recorded against every entry."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry throttling, 5xx and network errors.

    Attempt ``n`` (0-based) is followed by a pause drawn uniformly from
    ``[0, min(max_delay_seconds, base_delay_seconds * 2**n)]`` ("full jitter"), so consumers
    that failed together do not retry together. ``receipt_handle_retries`` bounds the retries of
    an entry refused as ``ReceiptHandleIsInvalid``: moto reports that spuriously under
    concurrent consumers, while on SQS it is final and costs one wasted call.
    """

    max_attempts: int = 6
    base_delay_seconds: float = 0.05
    max_delay_seconds: float = 2.0
    receipt_handle_retries: int = 1

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")
        if self.base_delay_seconds < 0 or self.max_delay_seconds < self.base_delay_seconds:
            raise ValueError("RetryPolicy delays must satisfy 0 <= base <= max")

    def delay(self, retry: int, rng: random.Random) -> float:
        """The pause before retry number ``retry`` (0 = the first retry)."""
        ceiling = min(self.max_delay_seconds, self.base_delay_seconds * 2.0 ** min(retry, 32))
        return rng.uniform(0.0, ceiling)


DEFAULT_RETRY_POLICY: Final = RetryPolicy()

_RECEIPT_HANDLE_INVALID: Final = "ReceiptHandleIsInvalid"


async def retry_entries(
    entries: Mapping[str, E],
    call: Callable[[Mapping[str, E]], Awaitable[tuple[list[str], list[BatchFailure]]]],
    *,
    classify: Callable[[Exception], ErrorKind],
    describe: Callable[[Exception], tuple[str, str]],
    policy: RetryPolicy,
    rng: random.Random,
    sleep: Sleep = asyncio.sleep,
) -> tuple[list[str], list[BatchFailure]]:
    """Run ``call`` on ``entries`` (keyed by batch entry id), then again on the entries that
    failed retryably, until none is left or the attempts run out.

    ``call`` returns the ids that succeeded and the failures. An exception it raises is
    ``classify``-ed: "transient" retries the whole pending set, "entries" fails every pending
    entry with ``describe(err)`` = (code, message), and "fatal" propagates.
    """
    pending = dict(entries)
    handle_refusals: dict[str, int] = {}
    succeeded: list[str] = []
    final: list[BatchFailure] = []
    for attempt in range(policy.max_attempts):
        last = attempt == policy.max_attempts - 1
        try:
            ok, failed = await call(pending)
        except Exception as err:
            kind = classify(err)
            if kind == "fatal":
                raise
            if kind == "entries" or last:
                code, message = describe(err)
                final.extend(
                    BatchFailure(key, code, message, sender_fault=kind == "entries")
                    for key in pending
                )
                return succeeded, final
            await sleep(policy.delay(attempt, rng))
            continue
        succeeded.extend(ok)
        retry: dict[str, E] = {}
        for failure in failed:
            if failure.code == _RECEIPT_HANDLE_INVALID:
                refusals = handle_refusals[failure.id] = handle_refusals.get(failure.id, 0) + 1
                retryable = refusals <= policy.receipt_handle_retries
            else:
                retryable = not failure.sender_fault
            if retryable and not last and failure.id in pending:
                retry[failure.id] = pending[failure.id]
            else:
                final.append(failure)
        pending = retry
        if not pending:
            break
        await sleep(policy.delay(attempt, rng))
    return succeeded, final
