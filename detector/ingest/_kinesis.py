"""The Amazon Kinesis Data Streams adapters, over aiobotocore.

- :class:`KinesisStream`: one client for one stream: ``shard_ids()`` (ListShards) and
  ``put(records)`` (PutRecords in batches within Kinesis' limits, retrying only the records
  that failed, with the same :class:`RetryPolicy` as the SQS adapter); used by ``detector
  route``.
- :class:`KinesisShardQueue`: the :class:`~detector.ingest.MessageQueue` port over the shards
  one consumer owns, plus the :class:`~detector.ingest.PositionedSource` seam, for ``detector
  run --source kinesis://STREAM``. A record is a message whose receipt handle is
  ``shard/sequence/attempt``. Nothing is deleted from a stream: ``delete`` marks the records
  whose events a saved checkpoint holds, and the shard positions go into that checkpoint
  (:meth:`~KinesisShardQueue.positions`), so a restart resumes exactly where its state is.
  Visibility does not exist either: heartbeats and releases succeed and do nothing (a restart
  reads again from the checkpoint). A record the consumer hands back (poison, a failed step)
  is read again at the next receive, up to ``max_attempts`` times, then given up and logged:
  a stream has no dead-letter queue, and ``detector route`` only puts records that decode.

Reads are ``GetRecords`` per owned shard, each shard at most every ``poll_seconds`` when it
has nothing new (Kinesis allows 5 reads a second per shard); records leave the queue in order
of arrival across the shards it owns (each shard's own order is kept).

Imports: aiobotocore, botocore, and this package.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final

import orjson
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from detector.aws import StaticCredentials, client_credentials
from detector.errors import ConfigError, StateError
from detector.ingest._errors import QueueError, QueueUnavailableError
from detector.ingest._model import BatchFailure, BatchOutcome, OutgoingMessage, QueueMessage
from detector.ingest._retry import (
    DEFAULT_RETRY_POLICY,
    ErrorKind,
    RetryPolicy,
    Sleep,
    retry_entries,
)
from detector.ingest._shards import (
    MAX_RECORD_BYTES,
    OutgoingRecord,
    owned_shards,
    put_batches,
    record_size,
    safe_position,
)
from detector.ingest._sqs import DEFAULT_REGION, _classify, _describe

__all__ = ["KinesisConfig", "KinesisShardQueue", "KinesisStream", "kinesis_stream_name"]

KINESIS_SCHEME: Final = "kinesis://"
META_STREAM: Final = "kinesis_stream"
META_SHARDS: Final = "kinesis_shards"  # every shard of the stream when the state was written
META_ASSIGNMENT: Final = "kinesis_assignment"  # "ordinal/count"
META_POSITIONS: Final = "kinesis_positions"  # {shard id: last sequence number in the state}
_GET_RECORDS_LIMIT: Final = 1000
_MISSING_STREAM: Final = frozenset({"ResourceNotFoundException"})
_EXPIRED_ITERATOR: Final = "ExpiredIteratorException"
# Kinesis' own throttling answers (400s): retried like SQS's, never a reason to stop.
_THROTTLED: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "KMSThrottlingException",
    }
)
_MIN_READ_INTERVAL: Final = 0.2  # GetRecords: at most 5 calls a second per shard

_log = logging.getLogger("detector.ingest")


def _classify_kinesis(err: Exception) -> ErrorKind:
    if _describe(err)[0] in _THROTTLED:
        return "transient"
    return _classify(err)


def kinesis_stream_name(source: str) -> str | None:
    """``kinesis://NAME`` -> NAME; None for anything else (an SQS queue URL)."""
    if not source.startswith(KINESIS_SCHEME):
        return None
    name = source[len(KINESIS_SCHEME) :].strip("/")
    if not name or "/" in name:
        raise ConfigError(f"{source!r}: expected kinesis://STREAM_NAME")
    return name


@dataclass(frozen=True, slots=True)
class KinesisConfig:
    """Where the stream is and how to talk to it; a value, read from nowhere."""

    stream: str
    region: str = DEFAULT_REGION
    endpoint_url: str | None = None
    retry: RetryPolicy = DEFAULT_RETRY_POLICY
    credentials: StaticCredentials | None = field(default=None, repr=False)
    poll_seconds: float = 0.25
    max_attempts: int = 3  # reads of one record the consumer handed back before it is dropped
    max_pool_connections: int = 10


class KinesisStream:
    """A client of one stream (see the module docstring); ``async with`` or :meth:`open`."""

    def __init__(
        self,
        config: KinesisConfig,
        *,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.config = config
        self._rng = rng if rng is not None else random.Random()
        self._sleep = sleep
        self._stack: AsyncExitStack | None = None
        self._client: Any = None

    @classmethod
    async def open(cls, config: KinesisConfig, **kwargs: Any) -> KinesisStream:
        stream = cls(config, **kwargs)
        await stream._start()
        return stream

    async def __aenter__(self) -> KinesisStream:
        await self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    @property
    def client(self) -> Any:
        if self._client is None:
            raise QueueError(f"Kinesis stream {self.config.stream} is not open")
        return self._client

    async def _start(self) -> None:
        if self._client is not None:
            return
        config = self.config
        stack = AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(
                AioSession().create_client(
                    "kinesis",
                    region_name=config.region,
                    endpoint_url=config.endpoint_url,
                    config=AioConfig(
                        retries={"total_max_attempts": 1},  # RetryPolicy is the only retry layer
                        max_pool_connections=config.max_pool_connections,
                    ),
                    **client_credentials(config.credentials),
                )
            )
            self._stack = stack
            await self.shard_ids()  # the stream exists and answers
        except BaseException:
            self._client = self._stack = None
            await stack.aclose()
            raise

    async def shard_ids(self) -> list[str]:
        """Every shard of the stream (open or closed), by id; ConfigError if it cannot be read."""
        shards: list[str] = []
        request: dict[str, Any] = {"StreamName": self.config.stream}
        while True:
            try:
                response = await self._call("ListShards", self.client.list_shards, request)
            except QueueError as err:
                raise ConfigError(str(err)) from None
            shards += [str(s["ShardId"]) for s in response.get("Shards", ())]
            token = response.get("NextToken")
            if not token:
                return sorted(shards)
            request = {"NextToken": token}

    async def put(self, records: Sequence[OutgoingRecord]) -> BatchOutcome:
        """Put ``records`` (ids are the caller's); a record over 1 MiB fails alone, others that
        still fail after the retries are in ``failed`` (``sender_fault`` False: try later)."""
        refused = [
            BatchFailure(r.id, "RecordTooLarge", f"{record_size(r):,} bytes > 1 MiB", True)
            for r in records
            if record_size(r) > MAX_RECORD_BYTES
        ]
        fits = [r for r in records if record_size(r) <= MAX_RECORD_BYTES]
        outcomes = [BatchOutcome(failed=tuple(refused))]
        for batch in put_batches(fits):
            outcomes.append(await self._put_batch(batch))
        return BatchOutcome.combine(outcomes)

    async def _put_batch(self, batch: Sequence[OutgoingRecord]) -> BatchOutcome:
        client = self.client
        stream = self.config.stream

        async def call(
            pending: Mapping[str, OutgoingRecord],
        ) -> tuple[list[str], list[BatchFailure]]:
            keys = list(pending)
            response = await client.put_records(
                StreamName=stream,
                Records=[
                    {"Data": pending[k].data, "PartitionKey": pending[k].partition_key}
                    for k in keys
                ],
            )
            ok: list[str] = []
            failed: list[BatchFailure] = []
            for key, result in zip(keys, response["Records"], strict=True):
                code = result.get("ErrorCode")
                if code:
                    failed.append(
                        BatchFailure(key, str(code), str(result.get("ErrorMessage", "")), False)
                    )
                else:
                    ok.append(key)
            return ok, failed

        entries = {str(i): record for i, record in enumerate(batch)}
        try:
            succeeded, failed = await retry_entries(
                entries,
                call,
                classify=_classify_kinesis,
                describe=_describe,
                policy=self.config.retry,
                rng=self._rng,
                sleep=self._sleep,
            )
        except Exception as err:
            code, message = _describe(err)
            raise QueueError(
                f"PutRecords on Kinesis stream {stream} failed: {code}: {message}"
            ) from err
        return BatchOutcome(
            tuple(entries[k].id for k in succeeded),
            tuple(
                BatchFailure(entries[f.id].id, f.code, f.message, f.sender_fault) for f in failed
            ),
        )

    async def _call(self, operation: str, method: Any, request: Mapping[str, Any]) -> Any:
        """One call with the retry policy on transient errors; QueueError otherwise."""
        policy = self.config.retry
        for attempt in range(policy.max_attempts):
            try:
                return await method(**request)
            except Exception as err:
                kind = _classify_kinesis(err)
                code, message = _describe(err)
                where = f"{operation} on Kinesis stream {self.config.stream}"
                if code in _MISSING_STREAM:
                    raise QueueError(f"{where}: the stream does not exist ({message})") from err
                if kind != "transient" or code == _EXPIRED_ITERATOR:
                    raise QueueError(f"{where} failed: {code}: {message}") from err
                if attempt == policy.max_attempts - 1:
                    raise QueueUnavailableError(
                        f"{where} still failing after {policy.max_attempts} attempts: "
                        f"{code}: {message}"
                    ) from err
                await self._sleep(policy.delay(attempt, self._rng))
        raise AssertionError("unreachable: the loop returns or raises")


@dataclass(slots=True)
class _Shard:
    """What the queue knows of one owned shard."""

    shard_id: str
    position: str | None = None  # last sequence number in the saved state (None: from the start)
    last_read: str | None = None  # where the next iterator starts after
    iterator: str | None = None
    closed: bool = False  # read to its end (a parent after a reshard)
    next_poll: float = 0.0
    buffer: deque[QueueMessage] = field(default_factory=deque)
    outstanding: list[str] = field(default_factory=list)  # read, not yet settled, in order
    settled: set[str] = field(default_factory=set)  # checkpointed or given up


def _parse_handle(handle: str) -> tuple[str, str, int]:
    shard, sequence, attempt = handle.rsplit("/", 2)
    return shard, sequence, int(attempt)


class KinesisShardQueue:
    """The queue port over the shards consumer ``ordinal`` of ``count`` owns (see the module
    docstring). ``monotonic`` paces the polls; pass a fake clock in tests."""

    def __init__(
        self,
        stream: KinesisStream,
        ordinal: int,
        count: int,
        *,
        monotonic: Any = None,
    ) -> None:
        self.stream = stream
        self.ordinal = ordinal
        self.count = count
        self._loop_time = monotonic
        self._all_shards: list[str] = []
        self._shards: dict[str, _Shard] = {}
        self._order: list[str] = []
        self._redeliver: deque[QueueMessage] = deque()
        self._given_up = 0
        self._lock = asyncio.Lock()

    @property
    def fifo(self) -> bool:
        return True  # a shard is read in order: an empty buffer means nothing more is due

    @property
    def shards(self) -> list[str]:
        return list(self._order)

    @property
    def given_up(self) -> int:
        return self._given_up

    async def open(self) -> KinesisShardQueue:
        """Read the stream's shards and take this consumer's (ConfigError if it owns none)."""
        self._all_shards = await self.stream.shard_ids()
        self._order = owned_shards(self._all_shards, self.ordinal, self.count)
        if not self._order:
            raise ConfigError(
                f"consumer {self.ordinal} of {self.count} owns no shard of Kinesis stream "
                f"{self.stream.config.stream} ({len(self._all_shards)} shards): run at most as "
                "many consumers as the stream has shards"
            )
        self._shards = {s: _Shard(s) for s in self._order}
        return self

    # -- the positioned-source seam ----------------------------------------------------------

    def resume(self, meta: Mapping[str, str]) -> None:
        """Start after the positions a restored snapshot holds ({}: a fresh state, from the
        oldest record). Refuses (StateError) a snapshot written over other shards."""
        if META_POSITIONS not in meta:
            if meta:  # a state from the SQS path, or from `detector replay`: no shard read yet
                _log.info("the restored state holds no Kinesis positions: reading from the start")
            return
        stream = meta.get(META_STREAM)
        assignment = meta.get(META_ASSIGNMENT)
        written_over = orjson.loads(meta.get(META_SHARDS, "[]"))
        if stream != self.stream.config.stream:
            raise StateError(
                f"the state was written from Kinesis stream {stream!r}, not "
                f"{self.stream.config.stream!r}: give each stream its own state location"
            )
        if written_over != self._all_shards or assignment != f"{self.ordinal}/{self.count}":
            raise StateError(
                f"the state was written by consumer {assignment} over shards {written_over}; "
                f"this is consumer {self.ordinal}/{self.count} and the stream now has shards "
                f"{self._all_shards}. A consumer's state is not split or merged between "
                "consumers yet: run the layout the state was written for, or start this layout "
                "on an empty state location (principals learn again; see docs/scale-out.md)"
            )
        positions = orjson.loads(meta[META_POSITIONS])
        for shard_id, state in self._shards.items():
            position = positions.get(shard_id)
            state.position = state.last_read = position

    def positions(self, checkpointed: Sequence[QueueMessage]) -> dict[str, str]:
        """The snapshot metadata for a checkpoint holding ``checkpointed`` (and what earlier
        checkpoints held): per shard, :func:`safe_position`."""
        done: dict[str, set[str]] = {}
        for message in checkpointed:
            shard_id, sequence, _ = _parse_handle(message.receipt_handle)
            done.setdefault(shard_id, set()).add(sequence)
        positions: dict[str, str] = {}
        for shard_id, shard in self._shards.items():
            position = safe_position(
                shard.outstanding, shard.settled | done.get(shard_id, set()), shard.position
            )
            if position is not None:
                positions[shard_id] = position
        return {
            META_STREAM: self.stream.config.stream,
            META_SHARDS: orjson.dumps(self._all_shards).decode(),
            META_ASSIGNMENT: f"{self.ordinal}/{self.count}",
            META_POSITIONS: orjson.dumps(positions).decode(),
        }

    def hand_back(self, messages: Sequence[QueueMessage]) -> list[QueueMessage]:
        """Read these again at the next receive; those read ``max_attempts`` times are given up
        (settled: the position moves past them). Returns the ones given up."""
        dropped = []
        for message in messages:
            if message.receive_count >= self.stream.config.max_attempts:
                shard, sequence, _ = _parse_handle(message.receipt_handle)
                self._settle(shard, sequence)
                dropped.append(message)
                continue
            shard, sequence, attempt = _parse_handle(message.receipt_handle)
            self._redeliver.append(
                message._replace(
                    receipt_handle=f"{shard}/{sequence}/{attempt + 1}",
                    receive_count=message.receive_count + 1,
                )
            )
        self._given_up += len(dropped)
        return dropped

    def _settle(self, shard_id: str, sequence: str) -> None:
        shard = self._shards.get(shard_id)
        if shard is None:
            return
        shard.settled.add(sequence)
        # Drop the settled prefix: the list stays as long as what is in flight.
        position = safe_position(shard.outstanding, shard.settled, shard.position)
        if position is not None and position != shard.position:
            cut = shard.outstanding.index(position) + 1
            for done in shard.outstanding[:cut]:
                shard.settled.discard(done)
            del shard.outstanding[:cut]
            shard.position = position

    # -- the queue port ----------------------------------------------------------------------

    async def receive(
        self,
        max_messages: int = 10,
        wait_seconds: int = 20,
        visibility_timeout: int | None = None,
    ) -> list[QueueMessage]:
        loop = asyncio.get_running_loop()
        now = self._loop_time or loop.time
        deadline = now() + wait_seconds
        while True:
            taken = self._take(max_messages)
            if taken:
                return taken
            async with self._lock:
                fetched = await self._fetch_due(now())
            if fetched:
                continue
            left = deadline - now()
            if left <= 0:
                return []
            await asyncio.sleep(min(left, self.stream.config.poll_seconds))

    def _take(self, limit: int) -> list[QueueMessage]:
        """Redeliveries first, then the buffered records in order of arrival on the stream,
        across shards: a consumer catching up on a backlog sees its shards' events about in
        the order the routers put them, so the watermark does not run ahead on one shard."""
        taken: list[QueueMessage] = []
        while self._redeliver and len(taken) < limit:
            taken.append(self._redeliver.popleft())
        buffers = [s.buffer for s in self._shards.values() if s.buffer]
        while buffers and len(taken) < limit:
            first = min(buffers, key=lambda b: b[0].sent_time)
            taken.append(first.popleft())
            if not first:
                buffers.remove(first)
        return taken

    async def _fetch_due(self, now: float) -> int:
        """One GetRecords on each shard that is due and has nothing buffered."""
        fetched = 0
        for shard_id in self._order:
            shard = self._shards[shard_id]
            if shard.closed or shard.buffer or now < shard.next_poll:
                continue
            records = await self._get_records(shard)
            pause = _MIN_READ_INTERVAL if records else self.stream.config.poll_seconds
            shard.next_poll = now + max(pause, _MIN_READ_INTERVAL)
            fetched += len(records)
        return fetched

    async def _get_records(self, shard: _Shard) -> list[QueueMessage]:
        client = self.stream.client
        if shard.iterator is None:
            request: dict[str, Any] = {
                "StreamName": self.stream.config.stream,
                "ShardId": shard.shard_id,
                "ShardIteratorType": "TRIM_HORIZON",
            }
            if shard.last_read is not None:
                request["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
                request["StartingSequenceNumber"] = shard.last_read
            response = await self.stream._call(
                "GetShardIterator", client.get_shard_iterator, request
            )
            shard.iterator = response.get("ShardIterator")
        try:
            response = await self.stream._call(
                "GetRecords",
                client.get_records,
                {"ShardIterator": shard.iterator, "Limit": _GET_RECORDS_LIMIT},
            )
        except QueueError as err:
            if _EXPIRED_ITERATOR in str(err):  # idle for 5 minutes: start again after last_read
                shard.iterator = None
                return []
            raise
        shard.iterator = response.get("NextShardIterator")
        raw = response.get("Records", ())
        if shard.iterator is None and not raw:
            shard.closed = True
        messages = [self._message(shard.shard_id, record) for record in raw]
        if messages:
            sequences = [str(r["SequenceNumber"]) for r in raw]
            shard.last_read = sequences[-1]
            shard.outstanding.extend(sequences)
            shard.buffer.extend(messages)
        return messages

    @staticmethod
    def _message(shard_id: str, record: Mapping[str, Any]) -> QueueMessage:
        sequence = str(record["SequenceNumber"])
        arrived = record.get("ApproximateArrivalTimestamp")
        if not isinstance(arrived, datetime):
            arrived = datetime.now(UTC)
        return QueueMessage(
            message_id=f"{shard_id}/{sequence}",
            receipt_handle=f"{shard_id}/{sequence}/1",
            body=bytes(record["Data"]),
            sent_time=arrived.astimezone(UTC),
            receive_count=1,
            message_group_id=str(record.get("PartitionKey", "")) or None,
        )

    async def delete(self, messages: Sequence[QueueMessage]) -> BatchOutcome:
        """The records are in a saved checkpoint: the position may move past them."""
        for message in messages:
            shard, sequence, _ = _parse_handle(message.receipt_handle)
            self._settle(shard, sequence)
        return BatchOutcome(tuple(m.message_id for m in messages))

    async def change_visibility(
        self, messages: Sequence[QueueMessage], timeout_seconds: int
    ) -> BatchOutcome:
        return BatchOutcome(tuple(m.message_id for m in messages))

    async def send(self, messages: Sequence[OutgoingMessage]) -> BatchOutcome:
        raise QueueError("the Kinesis source is read-only: `detector route` writes to it")

    async def close(self) -> None:
        await self.stream.close()
