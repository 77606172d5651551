"""Decoding archive files in batches gives exactly what decoding them one by one gives.

:func:`archives_to_events` types many files' records in one polars call and
:func:`decode_objects` filters a whole batch at once; both must agree, file by file, with
:func:`archive_to_events` and :func:`decode_object`, including on the inputs that make the
batch fall back to one file at a time (a bad record, an eventID in two files).
"""

from __future__ import annotations

import gzip
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.archive import (
    ArchiveFilter,
    ArchiveObject,
    DecodedObject,
    EnvelopeJsonlSource,
    decode_object,
    decode_objects,
)
from detector.events import ParseResult, archive_to_events
from detector.events._archive import ArchiveFile, archives_to_events
from tests.unit.test_archive_source import (
    ACCOUNTS,
    ARCHIVE,
    REGIONS,
    START,
    record,
    trail_file,
    write_envelopes,
)


def keys(n: int | None = None) -> list[str]:
    logs = sorted(k for k in ARCHIVE.files if "/CloudTrail/" in k)
    return logs[:n] if n is not None else logs


def assert_same_result(batched: ParseResult, alone: ParseResult) -> None:
    assert batched.events.equals(alone.events)
    assert batched.failures == alone.failures
    assert batched.duplicate_event_ids == alone.duplicate_event_ids
    assert batched.skipped == alone.skipped


def with_record(key: str, extra: dict[str, Any]) -> bytes:
    records = orjson.loads(gzip.decompress(ARCHIVE.files[key]))["Records"]
    return trail_file([*records, extra])


def test_a_batch_of_good_files_types_like_each_file_alone() -> None:
    files = [ArchiveFile(ARCHIVE.files[k], k) for k in keys(12)]
    batched = archives_to_events(files)
    assert len(batched) == len(files)
    for result, file in zip(batched, files, strict=True):
        assert_same_result(result, archive_to_events(file.data, file.key))
        assert result.events.height > 0


def test_bad_records_digests_and_unreadable_files_in_a_batch_are_reported_per_file() -> None:
    good = keys(6)
    bad_record = dict(record(START, "bad-1", ACCOUNTS[0], REGIONS[0]), eventName=7)
    digest = next(k for k in ARCHIVE.files if "CloudTrail-Digest" in k)
    # The same eventID in two files: each file alone holds it once, so neither reports it.
    repeated = orjson.loads(gzip.decompress(ARCHIVE.files[good[0]]))["Records"][0]
    files = [
        ArchiveFile(ARCHIVE.files[good[0]], good[0]),
        ArchiveFile(with_record(good[1], bad_record), good[1]),
        ArchiveFile(ARCHIVE.files[digest], digest),
        ArchiveFile(b"not gzip, not json", good[2]),
        ArchiveFile(with_record(good[3], repeated), good[3]),
        ArchiveFile(ARCHIVE.files[good[4]], good[4], received_time=START),
    ]
    batched = archives_to_events(files)
    for result, file in zip(batched, files, strict=True):
        alone = archive_to_events(file.data, file.key, received_time=file.received_time)
        assert_same_result(result, alone)
    assert [f.index for f in batched[1].failures] == [len(batched[1].events)]
    assert batched[2].skipped == 1
    assert batched[3].failures[0].index is None
    assert batched[3].failures[0].origin == good[2]
    assert not batched[0].duplicate_event_ids
    assert not batched[4].duplicate_event_ids


def test_a_file_of_several_gzip_members_is_read_whole() -> None:
    key = keys(1)[0]
    records = orjson.loads(gzip.decompress(ARCHIVE.files[key]))["Records"]
    text = orjson.dumps({"Records": records})
    two_members = gzip.compress(text[:100]) + gzip.compress(text[100:])
    assert_same_result(archive_to_events(two_members, key), archive_to_events(text, key))
    truncated = archive_to_events(ARCHIVE.files[key][:-20], key)
    assert len(truncated.failures) == 1
    assert "not a readable gzip file" in truncated.failures[0].reason


def assert_same_decoded(batched: DecodedObject, alone: DecodedObject) -> None:
    assert batched.events.equals(alone.events)
    assert (batched.order.times == alone.order.times).all()
    assert (batched.order.rows == alone.order.rows).all()
    assert (batched.failures, batched.progress) == (alone.failures, alone.progress)
    assert batched.duplicate_events == alone.duplicate_events
    assert batched.filtered_events == alone.filtered_events
    assert batched.skipped == alone.skipped


@pytest.mark.parametrize(
    "filter",
    [
        ArchiveFilter(),
        ArchiveFilter(since=START + timedelta(minutes=30), until=START + timedelta(hours=2)),
        ArchiveFilter(accounts=[ACCOUNTS[0]], regions=[REGIONS[1]]),
    ],
)
def test_decoding_a_batch_of_objects_is_decoding_each(filter: ArchiveFilter) -> None:
    objects = [ArchiveObject.of_key(k, len(ARCHIVE.files[k])) for k in keys(10)]
    drop = START + timedelta(minutes=40)
    items = [(o, ARCHIVE.files[o.key], drop if i % 3 == 0 else None) for i, o in enumerate(objects)]
    batch = decode_objects(items, filter)
    decoded = batch.objects()
    assert [o for o, _ in decoded] == objects
    for (_, got), (obj, data, drop_before) in zip(decoded, items, strict=True):
        assert_same_decoded(got, decode_object(obj, data, filter, drop_before))
    assert batch.events.height == sum(d.events.height for _, d in decoded)


async def test_a_batch_may_mix_envelope_chunks_and_trail_files(tmp_path: Path) -> None:
    other = [record(START, f"env-{i}", ACCOUNTS[1], REGIONS[0]) for i in range(5)]
    path = write_envelopes(other, tmp_path / "live.jsonl")
    source = EnvelopeJsonlSource(path, lines_per_chunk=5)
    (chunk,) = [o async for o in source.list_objects(ArchiveFilter())]
    trail = ArchiveObject.of_key(keys(1)[0], 0)
    filter = ArchiveFilter(accounts=[ACCOUNTS[0]])
    items = [(trail, ARCHIVE.files[trail.key], None), (chunk, await source.read(chunk), None)]
    for (_, got), (obj, data, _) in zip(
        decode_objects(items, filter).objects(), items, strict=True
    ):
        assert_same_decoded(got, decode_object(obj, data, filter))
    assert decode_object(chunk, items[1][1], filter).filtered_events == 5
