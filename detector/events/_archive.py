"""Archived trail files -> normalized events, and CloudTrail's S3 key layout.

CloudTrail writes gzipped ``{"Records": [...]}`` files under

- ``AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<id>.json.gz``
- ``AWSLogs/o-<org>/<account>/CloudTrail/...`` for organization trails,

and beside them digest files (``CloudTrail-Digest``) that prove integrity but hold no events:
those are recognised and skipped. The key's timestamp is the delivery time, which becomes
``received_time``. Decoding is pure (bytes in, events out); reading files is the caller's edge.

Imports: the standard library, orjson, and this package's parser.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final

import orjson

from detector.events._parse import ParseResult, RecordFailure, empty_events, records_to_events

__all__ = ["TrailKey", "archive_to_events", "parse_trail_key"]

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


def _decompress(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def archive_to_events(
    data: bytes, key: str, *, received_time: datetime | None = None
) -> ParseResult:
    """Normalize one archive file's bytes (gzipped or not). ``key`` names it in failures.

    Digest files are skipped (``skipped == 1``). A file that is not a CloudTrail log at all
    yields one failure naming the file; a bad record yields a failure naming its index.
    """
    trail_key = parse_trail_key(key)
    if trail_key is not None and trail_key.is_digest:
        return ParseResult(empty_events(), skipped=1)
    if received_time is None and trail_key is not None:
        received_time = trail_key.delivered
    try:
        doc = orjson.loads(_decompress(data))
    except (OSError, EOFError, zlib.error) as err:
        return _whole_file_failure(key, "<file>", f"not a readable gzip file ({err})")
    except orjson.JSONDecodeError as err:
        return _whole_file_failure(key, "<file>", f"not valid JSON ({err})")
    if not isinstance(doc, dict) or not isinstance(doc.get("Records"), list):
        if isinstance(doc, dict) and "digestStartTime" in doc:
            return ParseResult(empty_events(), skipped=1)
        return _whole_file_failure(key, "Records", "missing or not a list")
    return records_to_events(doc["Records"], origin=key, received_time=received_time)


def _whole_file_failure(key: str, field: str, reason: str) -> ParseResult:
    return ParseResult(empty_events(), (RecordFailure(key, None, None, field, reason),))
