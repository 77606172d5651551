"""CloudTrail records in, one typed columnar form out.

Everything that reads CloudTrail (the SQS consumer, replay, training, tests) goes through these
functions, so every stage downstream sees the same columns (:data:`EVENT_SCHEMA`):

- :func:`envelopes_to_events`: SQS message bodies (EventBridge envelopes or bare records);
- :func:`records_to_events`: already-decoded records;
- :func:`archive_to_events`: one archived ``.json.gz`` trail file (digest files are skipped);
- :func:`parse_trail_key`: what CloudTrail's S3 key layout says about a file.

Bad input never raises: it comes back as :class:`RecordFailure` values in the
:class:`ParseResult`, each naming the record and the field. Hostile input is bounded: a file's
decompressed size (:data:`DEFAULT_MAX_FILE_BYTES`), a body's size (:data:`DEFAULT_MAX_BODY_BYTES`)
and an event's time (after :data:`CLOUDTRAIL_BEGAN`, at most :data:`FUTURE_TOLERANCE` after it
was received); see docs/hostile-input.md.
"""

from detector.events._archive import (
    DEFAULT_MAX_FILE_BYTES,
    ArchiveFile,
    TrailKey,
    archive_to_events,
    archives_to_events,
    parse_trail_key,
)
from detector.events._envelope import (
    DEFAULT_MAX_BODY_BYTES,
    envelopes_to_events,
    record_of_body,
)
from detector.events._parse import (
    CLOUDTRAIL_BEGAN,
    FUTURE_TOLERANCE,
    ParseResult,
    RecordFailure,
    empty_events,
    printable,
    records_to_events,
)
from detector.events._principal import Principal, principal_of
from detector.events._schema import (
    COLUMN_DOCS,
    EVENT_COLUMNS,
    EVENT_SCHEMA,
    SOURCE_IP_KINDS,
    UTC_MS,
    SourceIpKind,
)
from detector.events._source_ip import classify_source_ip

__all__ = [
    "CLOUDTRAIL_BEGAN",
    "COLUMN_DOCS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_FILE_BYTES",
    "EVENT_COLUMNS",
    "EVENT_SCHEMA",
    "FUTURE_TOLERANCE",
    "SOURCE_IP_KINDS",
    "UTC_MS",
    "ArchiveFile",
    "ParseResult",
    "Principal",
    "RecordFailure",
    "SourceIpKind",
    "TrailKey",
    "archive_to_events",
    "archives_to_events",
    "classify_source_ip",
    "empty_events",
    "envelopes_to_events",
    "parse_trail_key",
    "principal_of",
    "printable",
    "record_of_body",
    "records_to_events",
]
