"""Where CloudTrail events enter: the message-queue port, its SQS adapter and its fake.

- :class:`MessageQueue`: the port (receive, delete, change_visibility, send, close), every
  call batched by 10 and by SQS's 256 KiB batch limit;
- :class:`SqsQueue` + :class:`SqsConfig`: the adapter over aiobotocore, with retries
  (:class:`RetryPolicy`) on throttling, 5xx and network errors;
- :class:`KinesisStream` (``detector route`` puts to it) and :class:`KinesisShardQueue` (the
  port over the shards one consumer owns, with the :class:`PositionedSource` seam: positions
  saved in the checkpoint); the Kinesis rules are pure functions in ``_shards``;
- :class:`InMemoryQueue`: the fake, with SQS's visibility, redrive and FIFO semantics and an
  injectable clock (:class:`ManualClock`).

Message bodies go on to :func:`detector.events.envelopes_to_events`. A message that failed to
delete is *data* in a :class:`BatchOutcome`; :class:`QueueError` is for a queue unusable as a
whole. Errors::

    DetectorError
    ├── ConfigError                the queue is missing or unreachable at start-up
    └── QueueError                 the queue as a whole refused a call
        └── QueueUnavailableError  transient failures outlasted the retry policy

Imports: the standard library and :mod:`detector.aws`; aiobotocore, botocore and aiohttp in the
SQS adapter only.
"""

from detector.aws import StaticCredentials
from detector.ingest._clock import Clock, ManualClock, utc_now
from detector.ingest._errors import QueueError, QueueUnavailableError
from detector.ingest._kinesis import (
    KinesisConfig,
    KinesisShardQueue,
    KinesisStream,
    kinesis_stream_name,
)
from detector.ingest._limits import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, MAX_MESSAGE_BYTES
from detector.ingest._memory import InMemoryQueue, QueueCounts
from detector.ingest._model import BatchFailure, BatchOutcome, OutgoingMessage, QueueMessage
from detector.ingest._port import MessageQueue, PositionedSource
from detector.ingest._retry import DEFAULT_RETRY_POLICY, RetryPolicy, Sleep
from detector.ingest._shards import (
    OutgoingRecord,
    owned_shards,
    partition_key_of,
    put_batches,
    safe_position,
)
from detector.ingest._sqs import SqsConfig, SqsQueue

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_ENTRIES",
    "MAX_MESSAGE_BYTES",
    "BatchFailure",
    "BatchOutcome",
    "Clock",
    "InMemoryQueue",
    "KinesisConfig",
    "KinesisShardQueue",
    "KinesisStream",
    "ManualClock",
    "MessageQueue",
    "OutgoingMessage",
    "OutgoingRecord",
    "PositionedSource",
    "QueueCounts",
    "QueueError",
    "QueueMessage",
    "QueueUnavailableError",
    "RetryPolicy",
    "Sleep",
    "SqsConfig",
    "SqsQueue",
    "StaticCredentials",
    "kinesis_stream_name",
    "owned_shards",
    "partition_key_of",
    "put_batches",
    "safe_position",
    "utc_now",
]
