"""Property: the parser's fast path gives the reference parser's answer, or declines.

The reference is the dict parser (:func:`records_to_events`, and the body and archive readers
as they were before the fast path, written out below); the fast path is msgspec's structs
(:mod:`detector.events._fast`), which every body and archive file now tries first.
"""

from __future__ import annotations

import gzip
import itertools
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from detector.events import (
    ArchiveFile,
    ParseResult,
    RecordFailure,
    archive_to_events,
    archives_to_events,
    envelopes_to_events,
    records_to_events,
)
from detector.events._envelope import _BodyError, _loads, _record_of
from detector.events._fast import Declined, body_row, struct_row
from detector.events._parse import dict_row
from detector.events._row import FieldError, Record
from detector.synthetic import SyntheticConfig, envelope, iter_records
from tests.property.test_events_properties import plausible_records, records

_RECORD = msgspec.json.Decoder(Record)

# Records shaped as AWS writes them, so that the fast path takes most of them: every field the
# row reads, nested values with the text orjson would and would not write back as it came.
texts = st.text(max_size=12) | st.sampled_from(["", "a b", "x\ny", "é", 'q"uote', "1,2.5"])
nested = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["keyId", "MFAUsed", "a", "b c"]), inner, max_size=3)
    ),
    max_leaves=8,
)
optional_text = st.none() | texts
wellformed = st.fixed_dictionaries(
    {
        "eventID": st.text(min_size=1, max_size=8),
        "eventTime": st.sampled_from(
            ["2024-03-04T00:00:00Z", "2024-03-04 00:00:01.5", "not a time"]
        ),
        "eventSource": st.sampled_from(
            ["kms.amazonaws.com", "sqs.amazonaws.com", "signin.amazonaws.com"]
        ),
        "eventName": st.sampled_from(["Decrypt", "ConsoleLogin", "SendMessage"]),
    },
    optional={
        "recipientAccountId": optional_text,
        "readOnly": st.none() | st.booleans() | st.sampled_from(["true", "false"]),
        "sessionCredentialFromConsole": st.none() | st.booleans() | st.sampled_from(["true", "no"]),
        "userIdentity": st.none()
        | st.fixed_dictionaries(
            {},
            optional={
                "type": st.sampled_from(
                    [
                        "AssumedRole",
                        "IAMUser",
                        "Root",
                        "AWSService",
                        "IdentityCenterUser",
                        "SAMLUser",
                        "FederatedUser",
                    ]
                ),
                "arn": st.sampled_from(
                    [
                        "arn:aws:sts::1:assumed-role/r/s",
                        "arn:aws:sts::1:assumed-role/r/a@b.c",
                        "arn:aws:iam::1:user/u",
                        "",
                    ]
                ),
                "accountId": optional_text,
                "principalId": optional_text,
                "accessKeyId": optional_text,
                "userName": optional_text,
                "invokedBy": optional_text,
                "identityProvider": optional_text,
                "onBehalfOf": st.none()
                | st.fixed_dictionaries(
                    {}, optional={"userId": optional_text, "identityStoreArn": optional_text}
                ),
                "sessionContext": st.none()
                | st.fixed_dictionaries(
                    {},
                    optional={
                        "sessionIssuer": st.none()
                        | st.fixed_dictionaries(
                            {},
                            optional={
                                "arn": st.sampled_from(
                                    [
                                        "arn:aws:iam::1:role/r",
                                        "arn:aws:iam::1:role/AWSReservedSSO_x",
                                        "",
                                    ]
                                ),
                                "type": texts,
                            },
                        ),
                        "sourceIdentity": optional_text,
                        "attributes": st.none()
                        | st.fixed_dictionaries(
                            {},
                            optional={
                                "creationDate": st.sampled_from(["2024-03-03T18:45:17Z", "junk"]),
                                "mfaAuthenticated": st.sampled_from(["true", "false", True, None]),
                            },
                        ),
                        "ec2RoleDelivery": optional_text,
                    },
                ),
            },
        ),
        "sourceIPAddress": st.none()
        | st.sampled_from(
            ["203.0.113.9", "10.0.0.1", "AWS Internal", "ec2.amazonaws.com", "2001:db8::1", "x"]
        ),
        "tlsDetails": st.none()
        | st.dictionaries(
            st.sampled_from(["tlsVersion", "cipherSuite"]), optional_text, max_size=2
        ),
        "resources": st.none()
        | st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "ARN": optional_text,
                    "type": st.sampled_from(["AWS::KMS::Key", "AWS::S3::Bucket"]) | texts,
                },
            ),
            max_size=3,
        ),
        "requestParameters": nested,
        "responseElements": nested,
        "additionalEventData": nested,
        "errorCode": optional_text,
        "userAgent": optional_text,
        "vpcEndpointId": optional_text,
    },
)
KEY = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/04/111122223333_CloudTrail_us-east-1_20240304T0005Z_x.json.gz"


def reference_bodies(bodies: list[bytes], received: datetime) -> ParseResult:
    """``envelopes_to_events`` as the dict parser alone does it."""
    ids = [f"m{i}" for i in range(len(bodies))]
    kept: list[Any] = []
    origins: list[str] = []
    failures: list[RecordFailure] = []
    for i, body in enumerate(bodies):
        try:
            kept.append(_record_of(_loads(body, "<body>")))
            origins.append(ids[i])
        except _BodyError as err:
            failures.append(RecordFailure(ids[i], None, None, err.field, err.reason))
    result = records_to_events(
        kept, origin="sqs", origins=origins, received_times=[received] * len(kept)
    )
    return ParseResult(result.events, tuple(failures) + result.failures, result.duplicate_event_ids)


def reference_archive(data: bytes, key: str) -> ParseResult:
    """``archive_to_events`` of a valid ``{"Records": [...]}`` file, by the dict parser alone."""
    doc = orjson.loads(gzip.decompress(data))
    return records_to_events(
        doc["Records"], origin=key, received_time=datetime(2024, 3, 4, 0, 5, tzinfo=UTC)
    )


def assert_same(ours: ParseResult, reference: ParseResult) -> None:
    assert_frame_equal(ours.events, reference.events)
    assert ours.failures == reference.failures
    assert ours.duplicate_event_ids == reference.duplicate_event_ids
    assert ours.skipped == reference.skipped


@settings(max_examples=300, deadline=None)
@given(wellformed | plausible_records | records)
def test_a_struct_row_is_the_reference_row_or_declines(record: Any) -> None:
    """Checked on the row itself: the fast path may accept only what gives the same row."""
    try:
        expected: tuple[Any, ...] | None = dict_row(record)
    except FieldError:
        expected = None
    try:
        ours = struct_row(_RECORD.decode(orjson.dumps(record)))
    except (Declined, msgspec.ValidationError):
        return  # declined: the reference parser reads it
    assert expected is not None, "the fast path accepted what the reference refuses"
    assert ours == expected


@settings(max_examples=150, deadline=None)
@given(st.lists(wellformed | records | st.binary(max_size=20), max_size=6), st.booleans())
def test_bodies_give_the_reference_answer(batch: list[Any], wrapped: bool) -> None:
    bodies = [
        b
        if isinstance(b, bytes)
        else orjson.dumps(envelope(b, f"e{i}") if wrapped and isinstance(b, dict) else b)
        for i, b in enumerate(batch)
    ]
    received = datetime(2024, 3, 4, tzinfo=UTC)
    ours = envelopes_to_events(
        bodies,
        message_ids=[f"m{i}" for i in range(len(bodies))],
        received_times=[received] * len(bodies),
    )
    assert_same(ours, reference_bodies(bodies, received))


@settings(max_examples=100, deadline=None)
@given(st.lists(wellformed | records, max_size=6))
def test_archive_files_give_the_reference_answer(batch: list[Any]) -> None:
    data = gzip.compress(orjson.dumps({"Records": batch}))
    assert_same(archive_to_events(data, KEY), reference_archive(data, KEY))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(wellformed | plausible_records, max_size=4), min_size=2, max_size=4))
def test_several_files_typed_together_give_each_file_its_reference_answer(
    files: list[list[Any]],
) -> None:
    datas = [gzip.compress(orjson.dumps({"Records": f})) for f in files]
    ours = archives_to_events([ArchiveFile(d, KEY) for d in datas])
    for result, data in zip(ours, datas, strict=True):
        assert_same(result, reference_archive(data, KEY))


def test_the_fast_path_takes_what_aws_writes() -> None:
    """The properties are not vacuous: well-formed records take the fast path, and so does
    every record and envelope of a synthetic organisation's records and envelopes all take the fast path,
    and give the reference's rows."""
    config = SyntheticConfig().with_events_per_day(50_000)
    sample = list(itertools.islice(iter_records(config, seed=3), 2_000))
    for i, record in enumerate(sample):
        assert struct_row(_RECORD.decode(orjson.dumps(record))) == dict_row(record)
        assert body_row(orjson.dumps(envelope(record, f"e{i}"))) == dict_row(record)
    data = gzip.compress(orjson.dumps({"Records": sample}))
    assert_same(archive_to_events(data, KEY), reference_archive(data, KEY))


_BASE = {"eventID": "a", "eventTime": "2024-03-04T00:00:00Z", "eventSource": "s", "eventName": "n"}


# orjson will not write an integer beyond 64 bits: one is spliced into the text.
_BEYOND_64_BITS = orjson.dumps({**_BASE, "requestParameters": {"n": 0}}).replace(
    b'"n":0', b'"n":' + str(2**70).encode()
)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(orjson.dumps({k: v for k, v in _BASE.items() if k != "eventID"}), id="no eventID"),
        pytest.param(orjson.dumps({k: v for k, v in _BASE.items() if k != "eventTime"}), id="no eventTime"),
        pytest.param(orjson.dumps({**_BASE, "eventVersion": 1}), id="a number for text"),
        pytest.param(orjson.dumps({**_BASE, "readOnly": "maybe"}), id="not a boolean"),
        pytest.param(orjson.dumps({**_BASE, "userIdentity": {"sessionContext": 3}}), id="a bad session"),
        pytest.param(_BEYOND_64_BITS, id="beyond 64 bits"),
    ],
)  # fmt: skip
def test_the_fast_path_declines_what_the_reference_must_name(text: bytes) -> None:
    with pytest.raises((Declined, msgspec.ValidationError)):
        struct_row(_RECORD.decode(text))
