"""SQS's limits on batches and message contents, checked before a call is made.

Checking here turns a bad entry into a :class:`BatchFailure` of that entry alone, instead of a
whole-batch error from SQS, and makes the fake reject exactly what SQS rejects.

Imports: the standard library and this package's message values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Final, TypeVar

from detector.ingest._model import BatchFailure, OutgoingMessage

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_ENTRIES",
    "MAX_MESSAGE_BYTES",
    "MAX_VISIBILITY_TIMEOUT",
    "check_outgoing",
    "chunk",
]

MAX_BATCH_ENTRIES: Final = 10
MAX_BATCH_BYTES: Final = 262_144  # all bodies of one SendMessageBatch
MAX_MESSAGE_BYTES: Final = 262_144
MAX_VISIBILITY_TIMEOUT: Final = 43_200  # 12 hours
MAX_TOKEN_CHARS: Final = 128  # MessageGroupId, MessageDeduplicationId

# The characters SQS accepts in a body: #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | astral.
_BAD_BODY_CHAR: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_TOKEN: Final = re.compile(r"[!-~]{1,128}")  # alphanumerics and punctuation, no spaces

T = TypeVar("T")


def chunk(items: Sequence[T], size_of: Callable[[T], int] | None = None) -> Iterator[list[T]]:
    """Consecutive groups of at most 10 items and (with ``size_of``) at most 256 KiB."""
    group: list[T] = []
    group_bytes = 0
    for item in items:
        size = size_of(item) if size_of is not None else 0
        if group and (len(group) == MAX_BATCH_ENTRIES or group_bytes + size > MAX_BATCH_BYTES):
            yield group
            group, group_bytes = [], 0
        group.append(item)
        group_bytes += size
    if group:
        yield group


def _failure(message: OutgoingMessage, code: str, reason: str) -> BatchFailure:
    return BatchFailure(message.id, code, reason, sender_fault=True)


def check_outgoing(
    message: OutgoingMessage, *, fifo: bool, content_based_deduplication: bool
) -> tuple[str, BatchFailure | None]:
    """The body as text, or why SQS would refuse this entry."""
    if len(message.body) > MAX_MESSAGE_BYTES:
        return "", _failure(
            message, "MessageTooLong", f"{len(message.body)} bytes > {MAX_MESSAGE_BYTES}"
        )
    if not message.body:
        return "", _failure(message, "MissingParameter", "the message body is empty")
    try:
        text = message.body.decode("utf-8")
    except UnicodeDecodeError as err:
        return "", _failure(message, "InvalidMessageContents", f"body is not UTF-8 ({err})")
    bad = _BAD_BODY_CHAR.search(text)
    if bad is not None:
        return "", _failure(
            message,
            "InvalidMessageContents",
            f"character {ord(bad.group()):#x} at offset {bad.start()} is not allowed by SQS",
        )
    if fifo:
        if message.group_id is None:
            return "", _failure(message, "MissingParameter", "a FIFO queue needs group_id")
        if message.deduplication_id is None and not content_based_deduplication:
            return "", _failure(
                message,
                "InvalidParameterValue",
                "the FIFO queue has no content-based deduplication: set deduplication_id",
            )
        for name, token in (
            ("group_id", message.group_id),
            ("deduplication_id", message.deduplication_id),
        ):
            if token is not None and _TOKEN.fullmatch(token) is None:
                return "", _failure(
                    message,
                    "InvalidParameterValue",
                    f"{name} must be 1-{MAX_TOKEN_CHARS} printable ASCII characters: {token!r:.60}",
                )
    elif message.group_id is not None or message.deduplication_id is not None:
        return "", _failure(
            message,
            "InvalidParameterValue",
            "group_id and deduplication_id are for FIFO queues only",
        )
    return text, None
