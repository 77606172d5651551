"""Replay's reading side: archived CloudTrail in, event-time-ordered chunks of events out.

An archive is a local folder or an S3 bucket in CloudTrail's layout, or a JSONL file of
EventBridge envelopes. Every source implements one small port, :class:`ArchiveSource` (list
objects in replay order, read one), with :class:`InMemorySource` as its fake. Then::

    async with S3Source.from_url("s3://trail-bucket/org", endpoint_url=...) as source:
        async with aclosing(read_events(source, ArchiveFilter(regions=["eu-west-1"]))) as chunks:
            async for chunk in chunks:
                ...  # chunk.events: EVENT_SCHEMA, sorted by event_time; then checkpoint chunk.cursor

- :class:`ArchiveFilter` selects accounts, regions and a window, on keys (nothing outside it is
  downloaded) and then exactly on events;
- :func:`read_events` reads ahead concurrently with bounded memory, parses with
  :mod:`detector.events` (the service's parser) and merges files into event-time order within
  ``lateness`` (the guarantee is in its docstring and in :mod:`detector.archive._merge`);
- :class:`ArchiveCursor` says exactly which events were emitted, so a replay resumes after it.

Imports: the standard library, polars, orjson (via events), aiobotocore, :mod:`detector.events`,
:mod:`detector.aws` and :mod:`detector.errors`. Nothing here reads the environment except S3
credentials, on open.
"""

from detector.archive._cursor import ArchiveCursor
from detector.archive._decode import (
    DecodedBatch,
    DecodedObject,
    DecodeLimits,
    decode_object,
    decode_objects,
)
from detector.archive._filter import EARLY_DELIVERY_SLACK, LATE_DELIVERY_MARGIN, ArchiveFilter
from detector.archive._jsonl import DEFAULT_LINES_PER_CHUNK, EnvelopeJsonlSource
from detector.archive._layout import trail_key
from detector.archive._local import LocalFolderSource
from detector.archive._merge import EventMerger
from detector.archive._object import ArchiveObject, FilePosition, ObjectKind
from detector.archive._read import (
    DEFAULT_CHUNK_EVENTS,
    DEFAULT_CHUNK_FILES,
    DEFAULT_DECODE_BATCH,
    DEFAULT_LATENESS,
    DEFAULT_READ_AHEAD,
    ChunkCounts,
    EventChunk,
    read_events,
)
from detector.archive._s3 import DEFAULT_S3_CONCURRENCY, S3Source
from detector.archive._source import (
    ArchiveReadError,
    ArchiveSource,
    InMemorySource,
    RecordingSource,
)
from detector.archive._spec import source_for
from detector.archive._tuning import decode_process_pool, replay_gc

__all__ = [
    "DEFAULT_CHUNK_EVENTS",
    "DEFAULT_CHUNK_FILES",
    "DEFAULT_DECODE_BATCH",
    "DEFAULT_LATENESS",
    "DEFAULT_LINES_PER_CHUNK",
    "DEFAULT_READ_AHEAD",
    "DEFAULT_S3_CONCURRENCY",
    "EARLY_DELIVERY_SLACK",
    "LATE_DELIVERY_MARGIN",
    "ArchiveCursor",
    "ArchiveFilter",
    "ArchiveObject",
    "ArchiveReadError",
    "ArchiveSource",
    "ChunkCounts",
    "DecodeLimits",
    "DecodedBatch",
    "DecodedObject",
    "EnvelopeJsonlSource",
    "EventChunk",
    "EventMerger",
    "FilePosition",
    "InMemorySource",
    "LocalFolderSource",
    "ObjectKind",
    "RecordingSource",
    "S3Source",
    "decode_object",
    "decode_objects",
    "decode_process_pool",
    "read_events",
    "replay_gc",
    "source_for",
    "trail_key",
]
