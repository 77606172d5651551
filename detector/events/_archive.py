"""Archived trail files -> normalized events, and CloudTrail's S3 key layout.

CloudTrail writes gzipped ``{"Records": [...]}`` files under

- ``AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<id>.json.gz``
- ``AWSLogs/o-<org>/<account>/CloudTrail/...`` for organization trails,

and beside them digest files (``CloudTrail-Digest``) that prove integrity but hold no events:
those are recognised and skipped. The key's timestamp is the delivery time, which becomes
``received_time``. Decoding is pure (bytes in, events out); reading files is the caller's edge.

A file holds ~100-200 records, so a replay that typed each file on its own would pay polars'
fixed cost per call thousands of times: :func:`archives_to_events` types many files' records in
one call and gives each file the result :func:`archive_to_events` would have.

Imports: the standard library, orjson, and this package's parsers.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

import orjson

from detector.events._fast import Declined, struct_row, trail_records
from detector.events._parse import (
    ParseResult,
    RecordFailure,
    empty_events,
    rows_of,
    rows_to_events,
    unexpected,
)

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "ArchiveFile",
    "TrailKey",
    "archive_to_events",
    "archives_to_events",
    "parse_trail_key",
]

_KEY: Final = re.compile(
    r"(?:^|/)AWSLogs/(?:(?P<org>o-[a-z0-9]{10,32})/)?(?P<account>\d{12})/"
    r"(?P<kind>CloudTrail|CloudTrail-Digest|CloudTrail-Insight)/(?P<region>[a-z0-9-]+)/"
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<name>[^/]+)$"
)
_STAMP: Final = re.compile(r"_(\d{8}T\d{4}Z)_")


@dataclass(frozen=True, slots=True)
class TrailKey:
    """What a CloudTrail object key says about its file."""

    account: str
    region: str
    day: date
    kind: str  # "CloudTrail", "CloudTrail-Digest" or "CloudTrail-Insight"
    organization: str | None
    delivered: datetime | None  # from the file name's YYYYMMDDTHHMMZ stamp

    @property
    def is_digest(self) -> bool:
        return self.kind == "CloudTrail-Digest"


def parse_trail_key(key: str) -> TrailKey | None:
    """Parse an S3 key or path in CloudTrail's layout; None when it is not one."""
    match = _KEY.search(key.replace("\\", "/"))
    if match is None:
        return None
    try:
        day = date(int(match["y"]), int(match["m"]), int(match["d"]))
    except ValueError:
        return None
    stamp = _STAMP.search(match["name"])
    delivered = None
    if stamp is not None:
        try:
            delivered = datetime.strptime(stamp[1], "%Y%m%dT%H%MZ").replace(tzinfo=UTC)
        except ValueError:
            delivered = None
    return TrailKey(match["account"], match["region"], day, match["kind"], match["org"], delivered)


# A CloudTrail log file is a few MB at most once decompressed; the cap stops a small gzip file
# that inflates to gigabytes (a "gzip bomb") from taking the process's memory.
DEFAULT_MAX_FILE_BYTES: Final = 256 * 1024 * 1024


class _TooLarge(Exception):
    pass


_PIECE: Final = 1024 * 1024  # inflated at a time, so memory never holds much beyond the limit


def _decompress(data: bytes, limit: int) -> bytes | bytearray:
    """The file's text, never more than ``limit`` bytes of it (:class:`_TooLarge` beyond).

    zlib inflates a piece at a time and checks each gzip member's CRC in C; a file of several
    members is read member by member under the same limit."""
    if data[:2] != b"\x1f\x8b":
        if len(data) > limit:
            raise _TooLarge
        return data
    out = bytearray()
    rest = data
    while rest:
        inflate = zlib.decompressobj(wbits=31)
        pending = rest
        while not inflate.eof:
            piece = inflate.decompress(pending, _PIECE)
            out += piece
            if len(out) > limit:
                raise _TooLarge
            pending = inflate.unconsumed_tail
            if not pending and not piece and not inflate.eof:
                raise EOFError("compressed file ended before the end-of-stream marker was reached")
        rest = inflate.unused_data
        if rest and rest[:2] != b"\x1f\x8b":
            break  # padding after the last member, which gzip readers ignore too
    return out


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """One archive file's bytes (gzipped or not), the key naming it, and, when the caller knows
    better than the key, its delivery time."""

    data: bytes
    key: str
    received_time: datetime | None = None
    max_bytes: int = DEFAULT_MAX_FILE_BYTES  # decompressed size beyond which the file fails


def archive_to_events(
    data: bytes,
    key: str,
    *,
    received_time: datetime | None = None,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
    not_after: datetime | None = None,
) -> ParseResult:
    """Normalize one archive file's bytes (gzipped or not). ``key`` names it in failures.

    Digest files are skipped (``skipped == 1``). A file that is not a CloudTrail log at all
    yields one failure naming the file; a bad record yields a failure naming its index.
    """
    opened = _open(ArchiveFile(data, key, received_time, max_bytes))
    if isinstance(opened, ParseResult):
        return opened
    return opened.events(key, not_after)


def archives_to_events(
    files: Sequence[ArchiveFile], *, not_after: datetime | None = None
) -> list[ParseResult]:
    """:func:`archive_to_events` of each file, typed in one polars call for them all.

    Each result is the one :func:`archive_to_events` gives for its file; its events are a slice
    of one frame. When the files together hold a bad record or an eventID twice, which the
    per-file results report per file, the files are typed one by one instead (rare, and exact).
    """
    opened = [_open(f) for f in files]
    batch = [(i, o) for i, o in enumerate(opened) if not isinstance(o, ParseResult)]
    results = [o if isinstance(o, ParseResult) else None for o in opened]
    if len(batch) > 1 and not any(o.failures for _, o in batch):
        rows: list[tuple[Any, ...]] = []
        received: list[datetime | None] = []
        for _, o in batch:
            rows.extend(o.rows)
            received.extend([o.received_time] * len(o.rows))
        together = rows_to_events(
            rows,
            list(range(len(rows))),
            [],
            origin="<files>",
            received_times=received,
            not_after=not_after,
        )
        if not together.failures and not together.duplicate_event_ids:
            offset = 0
            for i, o in batch:
                results[i] = ParseResult(together.events.slice(offset, len(o.rows)))
                offset += len(o.rows)
            batch = []
    for i, o in batch:
        results[i] = o.events(files[i].key, not_after)
    return [r for r in results if r is not None]


@dataclass(frozen=True, slots=True)
class _Opened:
    """One file's rows (see :func:`detector.events._parse._row`), each row's record index, the
    records that made no row, and the file's delivery time."""

    rows: list[tuple[Any, ...]]
    positions: list[int]
    failures: list[RecordFailure]
    received_time: datetime | None

    def events(self, key: str, not_after: datetime | None) -> ParseResult:
        return rows_to_events(
            self.rows,
            self.positions,
            list(self.failures),
            origin=key,
            received_time=self.received_time,
            not_after=not_after,
        )


def _open(file: ArchiveFile) -> ParseResult | _Opened:
    """:func:`_read_file`, with anything unforeseen one file provokes as that file's failure."""
    try:
        return _read_file(file)
    except Exception as err:
        return _whole_file_failure(file.key, "<file>", unexpected(err))


def _read_file(file: ArchiveFile) -> ParseResult | _Opened:
    """A file's rows and delivery time, or its whole result when it has no records to parse
    (a digest file, or not a readable CloudTrail log).

    The fast path (:mod:`detector.events._fast`) reads a well-formed file; anything else is
    read by the reference parser, which names the bad record and field."""
    key = file.key
    trail_key = parse_trail_key(key)
    if trail_key is not None and trail_key.is_digest:
        return ParseResult(empty_events(), skipped=1)
    received_time = file.received_time
    if received_time is None and trail_key is not None:
        received_time = trail_key.delivered
    try:
        text = _decompress(file.data, file.max_bytes)
    except _TooLarge:
        why = f"larger than {file.max_bytes:,} bytes decompressed (the file size cap)"
        return _whole_file_failure(key, "<file>", why)
    except (OSError, EOFError, zlib.error) as err:
        return _whole_file_failure(key, "<file>", f"not a readable gzip file ({err})")
    try:
        rows = [struct_row(r) for r in trail_records(text)]
        return _Opened(rows, list(range(len(rows))), [], received_time)
    except Declined:
        pass
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as err:
        return _whole_file_failure(key, "<file>", f"not valid JSON ({err})")
    if not isinstance(doc, dict) or not isinstance(doc.get("Records"), list):
        if isinstance(doc, dict) and "digestStartTime" in doc:
            return ParseResult(empty_events(), skipped=1)
        return _whole_file_failure(key, "Records", "missing or not a list")
    return _Opened(*rows_of(doc["Records"], key), received_time)


def _whole_file_failure(key: str, field: str, reason: str) -> ParseResult:
    return ParseResult(empty_events(), (RecordFailure(key, None, None, field, reason),))
