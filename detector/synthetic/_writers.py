"""Write a synthetic trail to disk: the archive, the EventBridge stream, the labels.

The only module here that touches files. Archive files are gzipped ``{"Records": [...]}`` in
CloudTrail's S3 key layout (optionally an organization trail's), with hourly digest files
beside them; everything is byte-for-byte reproducible for a given input and seed (gzip
headers carry no time, JSON keys keep their order).

Imports: the standard library, orjson, and this package's delivery, formats and labels modules.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import Final, Protocol

import orjson

from detector.synthetic._delivery import (
    DEFAULT_LATE_SHARE,
    DEFAULT_MAX_RECORDS_PER_FILE,
    LogFile,
    plan_envelopes,
    plan_log_files,
)
from detector.synthetic._formats import date_path, hex_string, iso_time, minute_stamp, second_stamp
from detector.synthetic._identity import Record
from detector.synthetic._labels import AttackLabel, labels_from_json, labels_to_json

DEFAULT_TRAIL_NAME: Final = "org-trail"
DEFAULT_BUCKET: Final = "aws-cloudtrail-logs-synthetic"
_DIGEST_EVERY: Final = 3600
_GZIP_LEVEL: Final = 6


@dataclass(frozen=True, slots=True)
class ArchiveSummary:
    """What :func:`write_archive` wrote, relative to the archive root."""

    log_files: tuple[Path, ...]
    digest_files: tuple[Path, ...]
    records: int


@dataclass(frozen=True, slots=True)
class _Written:
    key: str
    account_id: str
    region: str
    delivered_at: int
    sha256: str
    oldest_event: int
    newest_event: int


def log_file_key(log_file: LogFile, organization_id: str | None = None) -> str:
    """The S3 key CloudTrail gives a log file."""
    account, region = log_file.account_id, log_file.region
    name = (
        f"{account}_CloudTrail_{region}_{minute_stamp(log_file.delivered_at)}_{log_file.suffix}"
        ".json.gz"
    )
    return f"{_prefix(account, organization_id)}/CloudTrail/{region}/{date_path(log_file.delivered_at)}/{name}"


def _prefix(account: str, organization_id: str | None) -> str:
    return f"AWSLogs/{organization_id}/{account}" if organization_id else f"AWSLogs/{account}"


def write_archive(
    records: Iterable[Record],
    root: Path | str,
    *,
    seed: int = 0,
    organization_id: str | None = None,
    trail_name: str = DEFAULT_TRAIL_NAME,
    bucket: str = DEFAULT_BUCKET,
    max_records_per_file: int = DEFAULT_MAX_RECORDS_PER_FILE,
    late_share: float = DEFAULT_LATE_SHARE,
    digests: bool = True,
) -> ArchiveSummary:
    """Write ``records`` under ``root`` as CloudTrail delivers them; streams its input.

    ``organization_id`` (``o-...``) gives the organization trail layout
    ``AWSLogs/<org>/<account>/CloudTrail/...``.
    """
    root = Path(root)
    written: list[_Written] = []
    count = 0
    for log_file in plan_log_files(
        records, seed=seed, max_records_per_file=max_records_per_file, late_share=late_share
    ):
        key = log_file_key(log_file, organization_id)
        body = orjson.dumps({"Records": log_file.records})
        _write_bytes(root / key, gzip.compress(body, compresslevel=_GZIP_LEVEL, mtime=0))
        digest = hashlib.sha256(body).hexdigest()
        written.append(
            _Written(key, log_file.account_id, log_file.region, log_file.delivered_at, digest,
                     log_file.oldest_event, log_file.newest_event)
        )  # fmt: skip
        count += len(log_file.records)
    digest_keys = (
        _write_digests(written, root, seed, organization_id, trail_name, bucket) if digests else []
    )
    return ArchiveSummary(
        tuple(Path(w.key) for w in written), tuple(Path(k) for k in digest_keys), count
    )


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write_digests(
    written: list[_Written],
    root: Path,
    seed: int,
    organization_id: str | None,
    trail_name: str,
    bucket: str,
) -> list[str]:
    """One digest per account, region and hour that had log files, chained like CloudTrail's.

    The shape and the log files' SHA-256 are real; signatures and key fingerprints are random
    placeholders (there is no private key), so these digests do not validate.
    """
    rng = Random(f"{seed}/digests")
    groups: dict[tuple[str, str, int], list[_Written]] = {}
    for item in written:
        hour = item.delivered_at // _DIGEST_EVERY
        groups.setdefault((item.account_id, item.region, hour), []).append(item)
    previous: dict[tuple[str, str], tuple[str, str]] = {}  # (key, signature) of the last digest
    keys = []
    for (account, region, hour), items in sorted(groups.items()):
        end = (hour + 1) * _DIGEST_EVERY
        stamp = end + rng.randrange(60, 600)
        name = f"{account}_CloudTrail-Digest_{region}_{trail_name}_{region}_{second_stamp(stamp)}.json.gz"
        key = f"{_prefix(account, organization_id)}/CloudTrail-Digest/{region}/{date_path(stamp)}/{name}"
        last = previous.get((account, region))
        signature = hex_string(rng, 512)
        document = {
            "awsAccountId": account,
            "digestStartTime": iso_time(end - _DIGEST_EVERY),
            "digestEndTime": iso_time(end),
            "digestS3Bucket": bucket,
            "digestS3Object": key,
            "digestPublicKeyFingerprint": hex_string(rng, 32),
            "digestSignatureAlgorithm": "SHA256withRSA",
            "newestEventTime": iso_time(max(i.newest_event for i in items)),
            "oldestEventTime": iso_time(min(i.oldest_event for i in items)),
            "previousDigestS3Bucket": bucket if last else None,
            "previousDigestS3Object": last[0] if last else None,
            "previousDigestHashValue": hashlib.sha256(last[0].encode()).hexdigest() if last else None,
            "previousDigestHashAlgorithm": "SHA-256" if last else None,
            "previousDigestSignature": last[1] if last else None,
            "logFiles": [
                {
                    "s3Bucket": bucket,
                    "s3Object": item.key,
                    "hashValue": item.sha256,
                    "hashAlgorithm": "SHA-256",
                    "newestEventTime": iso_time(item.newest_event),
                    "oldestEventTime": iso_time(item.oldest_event),
                }
                for item in items
            ],
        }  # fmt: skip
        _write_bytes(root / key, gzip.compress(orjson.dumps(document), mtime=0))
        previous[(account, region)] = (key, signature)
        keys.append(key)
    return keys


def write_envelopes(records: Iterable[Record], path: Path | str, *, seed: int = 0) -> int:
    """Write EventBridge envelopes as JSON lines in arrival order; returns how many.

    A path ending in ``.gz`` is gzipped (reproducibly: no time in the header).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as raw:
        if path.suffix != ".gz":
            return _write_lines(plan_envelopes(records, seed=seed), raw)
        with gzip.GzipFile("", "wb", _GZIP_LEVEL, raw, mtime=0) as zipped:
            return _write_lines(plan_envelopes(records, seed=seed), zipped)


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


def _write_lines(items: Iterable[Record], out: _Sink) -> int:
    count = 0
    for item in items:
        out.write(orjson.dumps(item) + b"\n")
        count += 1
    return count


def write_labels(labels: Iterable[AttackLabel], path: Path | str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(labels_to_json(tuple(labels)))


def read_labels(path: Path | str) -> tuple[AttackLabel, ...]:
    return labels_from_json(Path(path).read_bytes())
