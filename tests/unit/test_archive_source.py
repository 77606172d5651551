"""Unit tests of replay's reading side: keys, filters, the layout walk, sources, ``read_events``.

The archive is small and hand-built (:func:`build_archive`): two accounts x two regions of an
organization trail, files every five minutes across a midnight, each file holding the events of
the minutes before its delivery, a few events delivered late, digest files, an Insight file and
a stray file. :func:`expected_events` is what a replay must produce from it.

Timeline of one account/region (``d`` = delivery stamp, ``x`` = events in that file)::

    22:00        22:05        22:10   ...   23:55        00:00  ...  01:00
      |  xxxxxxx   d  xxxxxxx   d             xxxxxx  d    xxxxxx  d
            events 9..1 minutes before each delivery; LATE_IDS 40 minutes before
"""

from __future__ import annotations

import gzip
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

import detector.archive as archive
from detector.archive import (
    ArchiveCursor,
    ArchiveFilter,
    ArchiveObject,
    ArchiveSource,
    EnvelopeJsonlSource,
    EventChunk,
    InMemorySource,
    LocalFolderSource,
    RecordingSource,
    S3Source,
    read_events,
    source_for,
    trail_key,
)
from detector.errors import ConfigError, StateError
from detector.events import EVENT_SCHEMA

ORG = "o-abcdefghij"
ACCOUNTS = ("111122223333", "444455556666")
REGIONS = ("eu-west-1", "us-east-1")
START = datetime(2024, 5, 1, 22, 0, tzinfo=UTC)
FILES_PER_STREAM = 36  # 22:05 .. 01:00, every five minutes
EVENTS_PER_FILE = 6
LATE_EVERY = 11  # every 11th file of a stream carries one event 40 minutes old


def record(when: datetime, event_id: str, account: str, region: str) -> dict[str, Any]:
    return {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLE",
            "arn": f"arn:aws:iam::{account}:user/alice",
            "accountId": account,
            "userName": "alice",
        },
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "awsRegion": region,
        "sourceIPAddress": "203.0.113.9",
        "userAgent": "aws-cli/2.15",
        "requestParameters": {"bucketName": "reports", "key": event_id},
        "responseElements": None,
        "eventID": event_id,
        "readOnly": True,
        "eventType": "AwsApiCall",
        "managementEvent": False,
        "recipientAccountId": account,
        "eventCategory": "Data",
    }


def trail_file(records: Sequence[dict[str, Any]]) -> bytes:
    return gzip.compress(orjson.dumps({"Records": list(records)}), mtime=0)


@dataclass(frozen=True)
class Archive:
    files: dict[str, bytes]  # key -> bytes, in CloudTrail's layout
    records: list[dict[str, Any]]  # every record in the trail files
    late_ids: frozenset[str]  # delivered more than the default lateness after they happened


def build_archive(*, organization: str | None = ORG, prefix: str = "") -> Archive:
    files: dict[str, bytes] = {}
    records: list[dict[str, Any]] = []
    late: set[str] = set()
    for account in ACCOUNTS:
        for region in REGIONS:
            for n in range(1, FILES_PER_STREAM + 1):
                delivered = START + timedelta(minutes=5 * n, seconds=40)
                batch = [
                    record(
                        delivered - timedelta(minutes=1 + (n * 7 + k * 5) % 9, seconds=k),
                        f"{account}-{region}-{n}-{k}",
                        account,
                        region,
                    )
                    for k in range(EVENTS_PER_FILE)
                ]
                if n % LATE_EVERY == 0:
                    late_id = f"{account}-{region}-{n}-late"
                    batch.append(
                        record(delivered - timedelta(minutes=40), late_id, account, region)
                    )
                    late.add(late_id)
                key = trail_key(
                    account,
                    region,
                    delivered,
                    organization=organization,
                    prefix=prefix,
                    unique=f"F{n:03d}{account[:4]}{region[:2]}",
                )
                files[key] = trail_file(batch)
                records.extend(batch)
            digest_time = START + timedelta(hours=1, minutes=3)
            digest = trail_key(
                account, region, digest_time, organization=organization, prefix=prefix
            ).replace("CloudTrail", "CloudTrail-Digest")
            files[digest] = gzip.compress(b'{"digestStartTime": "2024-05-01T22:00:00Z"}')
    first = trail_key(ACCOUNTS[0], REGIONS[0], START, organization=organization, prefix=prefix)
    files[first.rsplit("/", 1)[0] + "/README.txt"] = b"not a log"
    insight = trail_key(ACCOUNTS[0], REGIONS[0], START, organization=organization, prefix=prefix)
    files[insight.replace("/CloudTrail/", "/CloudTrail-Insight/")] = trail_file([])
    return Archive(files, records, frozenset(late))


ARCHIVE = build_archive()
SINGLE = build_archive(organization=None, prefix="trails")


def event_time(rec: dict[str, Any]) -> datetime:
    return datetime.strptime(rec["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def expected_ids(data: Archive, filter: ArchiveFilter | None = None) -> set[str]:
    f = filter or ArchiveFilter()
    return {
        r["eventID"]
        for r in data.records
        if f.admits_account(r["recipientAccountId"])
        and f.admits_region(r["awsRegion"])
        and (f.since is None or event_time(r) >= f.since)
        and (f.until is None or event_time(r) < f.until)
    }


async def replay(
    source: ArchiveSource, filter: ArchiveFilter | None = None, **options: Any
) -> list[EventChunk]:
    async with aclosing(read_events(source, filter, **options)) as chunks:
        return [chunk async for chunk in chunks]


def ids_of(chunks: Sequence[EventChunk]) -> list[str]:
    return [i for c in chunks for i in c.events.get_column("event_id").to_list()]


def write_folder(files: dict[str, bytes], root: Path) -> Path:
    for key, data in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


async def listed(source: ArchiveSource, filter: ArchiveFilter | None = None) -> list[ArchiveObject]:
    return [o async for o in source.list_objects(filter or ArchiveFilter())]


# --- keys, objects, filters -------------------------------------------------------------------


def test_public_names_are_the_intended_ones() -> None:
    assert sorted(archive.__all__) == sorted(
        [
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
    )
    for name in archive.__all__:
        assert getattr(archive, name) is not None


def test_objects_are_classified_by_key() -> None:
    log = trail_key(ACCOUNTS[0], REGIONS[0], START, organization=ORG)
    obj = ArchiveObject.of_key(log, 10)
    assert (obj.kind, obj.delivered, obj.trail and obj.trail.organization) == ("trail", START, ORG)
    digest = log.replace("CloudTrail", "CloudTrail-Digest")
    assert ArchiveObject.of_key(digest, 1).kind == "digest"
    assert ArchiveObject.of_key(log.replace("/CloudTrail/", "/CloudTrail-Insight/"), 1).kind == (
        "other"
    )
    assert ArchiveObject.of_key(log.rsplit("/", 1)[0] + "/README.txt", 1).kind == "other"
    assert ArchiveObject.of_key("notes/today.json.gz", 1).kind == "other"


def test_positions_order_by_day_then_delivery_then_key() -> None:
    a = ArchiveObject.of_key(trail_key(ACCOUNTS[1], REGIONS[1], START), 1)
    b = ArchiveObject.of_key(trail_key(ACCOUNTS[0], REGIONS[0], START + timedelta(minutes=5)), 1)
    c = ArchiveObject.of_key(trail_key(ACCOUNTS[0], REGIONS[0], START + timedelta(hours=3)), 1)
    assert a.position < b.position < c.position  # c is on the next day
    assert c.position.day == date(2024, 5, 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"since": datetime(2024, 5, 1)}, "since"),  # noqa: DTZ001 - the point of the test
        ({"since": START, "until": START}, "before until"),
        ({"accounts": ["12345"]}, "accounts"),
        ({"accounts": []}, "empty selection"),
        ({"regions": ["Europe"]}, "regions"),
    ],
)
def test_a_bad_filter_is_a_config_error_naming_the_field(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        ArchiveFilter(**kwargs)


def test_a_single_account_or_region_may_be_given_as_a_string() -> None:
    f = ArchiveFilter(accounts=ACCOUNTS[0], regions="eu-west-1")
    assert (f.accounts, f.regions) == (frozenset({ACCOUNTS[0]}), frozenset({"eu-west-1"}))


@pytest.mark.parametrize(
    ("delivered", "admitted"),
    [
        (datetime(2024, 5, 9, 22, 59, tzinfo=UTC), False),  # more than an hour before since
        (datetime(2024, 5, 10, 0, 0, tzinfo=UTC) - timedelta(minutes=59), True),  # slack
        (datetime(2024, 5, 10, 0, 5, tzinfo=UTC), True),
        (datetime(2024, 5, 11, 0, 0, tzinfo=UTC), True),  # late deliveries after until
        (datetime(2024, 5, 11, 12, 0, tzinfo=UTC) - timedelta(minutes=1), True),
        (datetime(2024, 5, 11, 12, 0, tzinfo=UTC), False),  # a day after until
    ],
)
def test_keys_are_judged_with_margins_at_both_edges(delivered: datetime, admitted: bool) -> None:
    f = ArchiveFilter(
        since=datetime(2024, 5, 10, tzinfo=UTC), until=datetime(2024, 5, 10, 12, tzinfo=UTC)
    )
    obj = ArchiveObject.of_key(trail_key(ACCOUNTS[0], REGIONS[0], delivered), 1)
    assert f.admits_object(obj) is admitted
    assert (f.first_day, f.last_day) == (date(2024, 5, 9), date(2024, 5, 11))


def test_keys_of_unselected_accounts_regions_and_days_are_rejected() -> None:
    f = ArchiveFilter(accounts=[ACCOUNTS[0]], regions=["eu-west-1"], until=START)
    key = trail_key(ACCOUNTS[0], "eu-west-1", START - timedelta(minutes=5))
    assert f.admits_object(ArchiveObject.of_key(key, 1))
    assert not f.admits_object(ArchiveObject.of_key(key.replace(ACCOUNTS[0], ACCOUNTS[1]), 1))
    assert not f.admits_object(ArchiveObject.of_key(key.replace("eu-west-1", "us-east-1"), 1))
    assert not f.admits_object(
        ArchiveObject.of_key(trail_key(ACCOUNTS[0], "eu-west-1", START + timedelta(days=2)), 1)
    )


# --- the layout walk --------------------------------------------------------------------------


@pytest.mark.parametrize("data", [ARCHIVE, SINGLE], ids=["organization", "single-account"])
async def test_the_layout_is_listed_in_position_order_with_digests_and_strays(
    data: Archive,
) -> None:
    source = InMemorySource(data.files, root="trails" if data is SINGLE else "")
    objects = await listed(source)
    positions = [o.position for o in objects]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)
    kinds = [o.kind for o in objects]
    assert kinds.count("trail") == len(ACCOUNTS) * len(REGIONS) * FILES_PER_STREAM
    assert kinds.count("digest") == len(ACCOUNTS) * len(REGIONS)
    assert kinds.count("other") == 1  # the README in a day folder; Insight folders are not walked
    assert not any("CloudTrail-Insight" in p for p in source.listed)


async def test_named_accounts_regions_and_window_are_listed_without_discovery() -> None:
    source = InMemorySource(ARCHIVE.files, include_digests=False)
    f = ArchiveFilter(
        accounts=[ACCOUNTS[1]],
        regions=["us-east-1"],
        since=datetime(2024, 5, 2, 0, 30, tzinfo=UTC),
        until=datetime(2024, 5, 2, 0, 40, tzinfo=UTC),
    )
    await listed(source, f)
    base = f"AWSLogs/{ORG}/{ACCOUNTS[1]}/CloudTrail/us-east-1/"
    assert source.listed == [
        "AWSLogs/",  # to find organization folders
        f"{base}2024/05/01/",
        f"{base}2024/05/02/",
        f"{base}2024/05/03/",
    ]


async def test_without_names_accounts_regions_and_days_are_discovered_by_folder() -> None:
    source = InMemorySource(ARCHIVE.files, include_digests=False)
    await listed(source, ArchiveFilter(since=datetime(2024, 5, 2, 0, 30, tzinfo=UTC)))
    region_folders = [p for p in source.listed if p.endswith("/CloudTrail/")]
    assert len(region_folders) == len(ACCOUNTS)
    assert f"AWSLogs/{ORG}/" in source.listed
    days = {p[-11:] for p in source.listed if p.count("/") == 8}
    assert days == {"2024/05/01/", "2024/05/02/"}  # since - 1 day: 05/01 is still read


async def test_resuming_lists_no_earlier_day_folder() -> None:
    source = InMemorySource(ARCHIVE.files)
    objects = await listed(source)
    after = next(o for o in objects if o.position.day == date(2024, 5, 2)).position
    source.listed.clear()
    rest = [o async for o in source.list_objects(ArchiveFilter(), start_after=after)]
    assert [o.position for o in rest] == [o.position for o in objects if o.position > after]
    assert not any(p.endswith("/01/") for p in source.listed)


def test_a_root_deeper_than_an_account_is_refused() -> None:
    with pytest.raises(ConfigError, match="AWSLogs"):
        archive._layout.split_root(f"AWSLogs/{ACCOUNTS[0]}/CloudTrail/eu-west-1/")


# --- read_events ------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [ARCHIVE, SINGLE], ids=["organization", "single-account"])
async def test_every_event_comes_out_once_in_event_time_order_within_lateness(
    data: Archive,
) -> None:
    source = InMemorySource(data.files, root="trails" if data is SINGLE else "")
    chunks = await replay(source, chunk_events=40)
    ids = ids_of(chunks)
    assert len(ids) == len(set(ids)) == len(data.records)
    assert set(ids) == expected_ids(data)
    emitted_before = datetime.min.replace(tzinfo=UTC)
    late = set()
    for chunk in chunks:
        assert chunk.events.schema == EVENT_SCHEMA
        times = chunk.events.get_column("event_time")
        assert times.is_sorted()
        for event_id, when in chunk.events.select("event_id", "event_time").iter_rows():
            if when < emitted_before:
                late.add(event_id)
        if chunk.events.height:
            newest: datetime = times[-1]
            emitted_before = max(emitted_before, newest)
    assert late <= data.late_ids  # only events delivered later than lateness are out of order
    assert late  # and this archive has some
    assert sum(c.counts.late_events for c in chunks) == len(data.late_ids)
    totals = sum((c.counts for c in chunks), archive.ChunkCounts())
    assert (totals.digest_files, totals.other_files, totals.failed_files) == (4, 1, 0)
    assert totals.files_read == len(ACCOUNTS) * len(REGIONS) * FILES_PER_STREAM
    assert chunks[-1].cursor.is_complete


async def test_decoding_in_a_process_pool_gives_the_same_chunks() -> None:
    in_thread = await replay(InMemorySource(ARCHIVE.files), chunk_events=100)
    with archive.decode_process_pool(2) as pool:
        in_pool = await replay(
            InMemorySource(ARCHIVE.files), chunk_events=100, decode_executor=pool
        )
    assert [c.events.to_dicts() for c in in_pool] == [c.events.to_dicts() for c in in_thread]
    assert [c.cursor for c in in_pool] == [c.cursor for c in in_thread]


async def test_a_longer_lateness_makes_late_events_on_time() -> None:
    chunks = await replay(InMemorySource(ARCHIVE.files), lateness=timedelta(minutes=45))
    assert sum(c.counts.late_events for c in chunks) == 0
    times = pl.concat([c.events for c in chunks]).get_column("event_time")
    assert times.is_sorted()


async def test_filters_skip_files_without_reading_them_and_cut_events_exactly() -> None:
    source = InMemorySource(ARCHIVE.files)
    f = ArchiveFilter(
        accounts=[ACCOUNTS[0]],
        regions=["eu-west-1"],
        since=datetime(2024, 5, 1, 23, 50, tzinfo=UTC),
        until=datetime(2024, 5, 2, 0, 20, 30, tzinfo=UTC),
    )
    chunks = await replay(source, f)
    assert set(ids_of(chunks)) == expected_ids(ARCHIVE, f)
    assert expected_ids(ARCHIVE, f)
    assert all(f.admits_object(ArchiveObject.of_key(k, 1)) for k in source.reads)
    # Files delivered from 22:50 (since - an hour of slack) to the end of the stream are read.
    stream = [
        ArchiveObject.of_key(k, 1)
        for k in ARCHIVE.files
        if f"/{ACCOUNTS[0]}/CloudTrail/eu-west-1/" in k
    ]
    first = datetime(2024, 5, 1, 22, 50, tzinfo=UTC)
    assert sorted(source.reads) == sorted(
        o.key for o in stream if o.kind == "trail" and o.delivered and o.delivered >= first
    )
    assert len(source.reads) == FILES_PER_STREAM - 9
    totals = sum((c.counts for c in chunks), archive.ChunkCounts())
    assert totals.filtered_files == 9
    read_records = [r for k in source.reads for r in _records_of(ARCHIVE.files[k])]
    assert totals.filtered_events == len(read_records) - len(expected_ids(ARCHIVE, f))


async def test_a_corrupt_or_missing_file_is_a_failure_and_the_rest_goes_on() -> None:
    files = dict(ARCHIVE.files)
    logs = sorted(k for k in files if ArchiveObject.of_key(k, 0).kind == "trail")
    files[logs[3]] = b"\x1f\x8bnot gzip at all"
    files[logs[5]] = gzip.compress(b'{"Records": [{"eventID": "x"}]}')

    class Vanishing(InMemorySource):
        async def read(self, obj: ArchiveObject) -> bytes:
            if obj.key == logs[7]:
                raise archive.ArchiveReadError(f"{obj.key}: NoSuchKey")
            return await super().read(obj)

    chunks = await replay(Vanishing(files))
    failures = [f for c in chunks for f in c.failures]
    assert {(f.origin, f.field) for f in failures} == {
        (logs[3], "<file>"),
        (logs[5], "eventTime"),
        (logs[7], "<file>"),
    }
    assert "NoSuchKey" in str(next(f for f in failures if f.origin == logs[7]))
    lost = {
        r["eventID"] for k in (logs[3], logs[5], logs[7]) for r in _records_of(ARCHIVE.files[k])
    }
    assert set(ids_of(chunks)) == expected_ids(ARCHIVE) - lost
    assert sum(c.counts.failed_files for c in chunks) == 2


def _records_of(data: bytes) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = orjson.loads(gzip.decompress(data))["Records"]
    return records


async def test_resuming_from_any_chunk_emits_exactly_the_remaining_events() -> None:
    full = await replay(InMemorySource(ARCHIVE.files), chunk_events=25)
    assert len(full) > 5
    all_ids = ids_of(full)
    emitted = 0
    for chunk in full:
        emitted += chunk.events.height
        stored = orjson.loads(orjson.dumps(chunk.cursor.to_dict()))  # as a checkpoint would
        cursor = ArchiveCursor.from_dict(stored)
        assert cursor == chunk.cursor
        source = InMemorySource(ARCHIVE.files)
        rest = await replay(source, chunk_events=25, start_after=cursor)
        rest_ids = ids_of(rest)
        assert sorted(rest_ids) == sorted(all_ids[emitted:])
        if cursor.done_through is not None:
            assert all(
                ArchiveObject.of_key(k, 0).position > cursor.done_through for k in source.reads
            )


async def test_resuming_an_envelope_stream_emits_exactly_the_remaining_events(
    tmp_path: Path,
) -> None:
    path = write_envelopes(ARCHIVE.records, tmp_path / "stream.jsonl")
    full = await replay(EnvelopeJsonlSource(path, lines_per_chunk=17), chunk_events=30)
    all_ids = ids_of(full)
    assert sorted(all_ids) == sorted(expected_ids(ARCHIVE))
    emitted = full[0].events.height
    rest = await replay(EnvelopeJsonlSource(path, lines_per_chunk=50), start_after=full[0].cursor)
    assert sorted(ids_of(rest)) == sorted(all_ids[emitted:])


def test_a_bad_stored_cursor_is_a_state_error_naming_the_field() -> None:
    good = ArchiveCursor(None, None, None).to_dict()
    assert ArchiveCursor.from_dict(good) == ArchiveCursor(None, None, None)
    with pytest.raises(StateError, match="read_through"):
        ArchiveCursor.from_dict(good | {"read_through": {"key": 3}})
    with pytest.raises(StateError, match="watermark"):
        ArchiveCursor.from_dict(good | {"watermark": "2024-05-01T00:00:00"})


async def test_stopping_early_cancels_the_reads_in_flight() -> None:
    source = InMemorySource(ARCHIVE.files)
    async with aclosing(read_events(source, chunk_events=10, read_ahead=4)) as chunks:
        first = await anext(chunks)
    assert first.events.height >= 10
    assert len(source.reads) < len(ARCHIVE.files) / 2


async def test_a_listing_error_stops_the_replay_with_it() -> None:
    class Broken(InMemorySource):
        async def list_objects(
            self, filter: ArchiveFilter, *, start_after: archive.FilePosition | None = None
        ) -> AsyncIterator[ArchiveObject]:
            async for obj in super().list_objects(filter, start_after=start_after):
                yield obj
            raise ConfigError("bucket gone")

    with pytest.raises(ConfigError, match="bucket gone"):
        await replay(Broken({}))


async def test_an_empty_archive_gives_one_empty_final_chunk() -> None:
    chunks = await replay(InMemorySource({}))
    assert len(chunks) == 1
    assert chunks[0].events.height == 0
    assert chunks[0].cursor == ArchiveCursor(None, None, None)


# --- real sources: the contract shared with the fake ------------------------------------------


def write_envelopes(records: Sequence[dict[str, Any]], path: Path) -> Path:
    lines = [
        orjson.dumps(
            {
                "version": "0",
                "id": f"env-{r['eventID']}",
                "detail-type": "AWS API Call via CloudTrail",
                "source": "aws.s3",
                "account": r["recipientAccountId"],
                "time": r["eventTime"],
                "region": r["awsRegion"],
                "detail": r,
            }
        )
        for r in sorted(records, key=event_time)
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture(params=["memory", "folder"])
def source_and_files(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArchiveSource]:
    if request.param == "memory":
        yield InMemorySource(ARCHIVE.files)
    else:
        yield LocalFolderSource(write_folder(ARCHIVE.files, tmp_path))


async def test_contract_listing_is_ordered_complete_and_reads_return_the_bytes(
    source_and_files: ArchiveSource,
) -> None:
    source = source_and_files
    objects = await listed(source)
    assert [o.position for o in objects] == sorted(o.position for o in objects)
    trail = {o.key for o in objects if o.kind == "trail"}
    assert trail == {k for k in ARCHIVE.files if ArchiveObject.of_key(k, 0).kind == "trail"}
    for obj in objects[::17]:
        data = await source.read(obj)
        assert data == ARCHIVE.files[obj.key]
        assert obj.size == len(data)
    middle = objects[len(objects) // 2].position
    after = [o async for o in source.list_objects(ArchiveFilter(), start_after=middle)]
    assert after == [o for o in objects if o.position > middle]


async def test_contract_reading_a_missing_object_is_an_archive_read_error(
    source_and_files: ArchiveSource,
) -> None:
    ghost = ArchiveObject.of_key(trail_key(ACCOUNTS[0], REGIONS[0], START, organization=ORG), 1)
    with pytest.raises(archive.ArchiveReadError, match=ghost.key):
        await source_and_files.read(ghost)


async def test_a_folder_gives_the_same_events_as_the_fake(tmp_path: Path) -> None:
    folder = write_folder(ARCHIVE.files, tmp_path)
    in_folder = await replay(LocalFolderSource(folder), chunk_events=50)
    in_memory = await replay(InMemorySource(ARCHIVE.files), chunk_events=50)
    assert ids_of(in_folder) == ids_of(in_memory)
    assert pl.concat([c.events for c in in_folder]).equals(pl.concat([c.events for c in in_memory]))


@pytest.mark.parametrize("inside", [f"AWSLogs/{ORG}", f"AWSLogs/{ORG}/{ACCOUNTS[1]}"])
async def test_a_folder_inside_the_layout_reads_that_part(tmp_path: Path, inside: str) -> None:
    write_folder(ARCHIVE.files, tmp_path)
    recording = RecordingSource(LocalFolderSource(tmp_path / inside))
    chunks = await replay(recording)
    accounts = set(ACCOUNTS) if inside.endswith(ORG) else {ACCOUNTS[1]}
    assert set(ids_of(chunks)) == expected_ids(ARCHIVE, ArchiveFilter(accounts=accounts))
    assert all(k.startswith(inside) for k in recording.reads)


async def test_a_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        await listed(LocalFolderSource(tmp_path / "nope"))


async def test_an_envelope_file_is_filtered_on_events_and_names_bad_lines(tmp_path: Path) -> None:
    path = write_envelopes(ARCHIVE.records, tmp_path / "stream.jsonl")
    with path.open("ab") as out:
        out.write(b"\n{not json\n")
    f = ArchiveFilter(accounts=[ACCOUNTS[1]], regions=["eu-west-1"])
    chunks = await replay(EnvelopeJsonlSource(path, lines_per_chunk=40), f, chunk_events=50)
    assert set(ids_of(chunks)) == expected_ids(ARCHIVE, f)
    failures = [x for c in chunks for x in c.failures]
    assert [x.origin for x in failures] == [f"{path}:{len(ARCHIVE.records) + 2}"]
    late = sum(c.counts.late_events for c in chunks)
    assert late == 0  # envelopes in event-time order are never late


def test_source_for_picks_the_source_from_the_text_alone(tmp_path: Path) -> None:
    assert isinstance(source_for("s3://bucket/org/trail"), S3Source)
    s3 = source_for("s3://bucket/org/trail", endpoint_url="http://127.0.0.1:1")
    assert isinstance(s3, S3Source)
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == ("bucket", "org/trail", "http://127.0.0.1:1")
    assert isinstance(source_for(str(tmp_path / "events.jsonl")), EnvelopeJsonlSource)
    assert isinstance(source_for(os.fspath(tmp_path)), LocalFolderSource)
    with pytest.raises(ConfigError, match="only s3"):
        source_for("gs://bucket/x")


# --- the synthetic organisation's archive: late and out-of-order files, digests ---------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    from detector.synthetic import SyntheticConfig, generate, write_archive, write_envelopes

    trail = generate(SyntheticConfig(baseline_days=1, attack_days=1).with_events_per_day(4000), 3)
    root = tmp_path_factory.mktemp("synthetic")
    summary = write_archive(
        trail.records, root / "archive", seed=1, organization_id=trail.organisation.org_id
    )
    write_envelopes(trail.records, root / "envelopes.jsonl", seed=1)
    write_envelopes(trail.records, root / "envelopes.jsonl.gz", seed=1)
    return root, trail, summary


def out_of_order(chunks: Sequence[EventChunk]) -> pl.DataFrame:
    """Events that came after a newer one."""
    events = pl.concat([c.events for c in chunks])
    return events.filter(pl.col("event_time") < pl.col("event_time").cum_max().shift(1))


async def test_a_synthetic_archive_replays_every_record_once_in_order_within_lateness(
    synthetic: tuple[Path, Any, Any],
) -> None:
    root, trail, summary = synthetic
    chunks = await replay(LocalFolderSource(root / "archive"), chunk_events=2_000)
    ids = ids_of(chunks)
    assert sorted(ids) == sorted(r["eventID"] for r in trail.records)
    totals = sum((c.counts for c in chunks), archive.ChunkCounts())
    assert totals.digest_files == len(summary.digest_files)
    assert totals.files_read == len(summary.log_files)
    late = out_of_order(chunks)
    delay = pl.col("received_time") - pl.col("event_time")
    assert late.filter(delay <= archive.DEFAULT_LATENESS).is_empty()
    assert late.height <= totals.late_events

    middle = chunks[len(chunks) // 2]
    emitted = sum(c.events.height for c in chunks[: len(chunks) // 2 + 1])
    rest = await replay(LocalFolderSource(root / "archive"), start_after=middle.cursor)
    assert sorted(ids_of(rest)) == sorted(ids[emitted:])


@pytest.mark.parametrize("name", ["envelopes.jsonl", "envelopes.jsonl.gz"])
async def test_a_synthetic_envelope_stream_replays_every_record_once(
    synthetic: tuple[Path, Any, Any], name: str
) -> None:
    root, trail, _ = synthetic
    source = source_for(str(root / name), lines_per_chunk=500)
    assert isinstance(source, EnvelopeJsonlSource)
    chunks = await replay(source, chunk_events=2_000)
    ids = ids_of(chunks)
    assert sorted(ids) == sorted(r["eventID"] for r in trail.records)
    assert out_of_order(chunks).is_empty()  # envelopes arrive seconds late, not 15 minutes
    emitted = sum(c.events.height for c in chunks[:3])
    rest = await replay(source_for(str(root / name)), start_after=chunks[2].cursor)
    assert sorted(ids_of(rest)) == sorted(ids[emitted:])


async def test_an_envelope_chunk_read_out_of_turn_is_read_from_the_file(tmp_path: Path) -> None:
    path = write_envelopes(ARCHIVE.records, tmp_path / "stream.jsonl")
    source = EnvelopeJsonlSource(path, lines_per_chunk=10)
    objects = await listed(source)  # more than are kept for reading
    assert b"".join([await source.read(o) for o in objects]) == path.read_bytes()
