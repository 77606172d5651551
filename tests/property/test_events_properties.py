"""Property: any JSON in gives rows of exactly the schema or per-record failures, never a crash."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.events import EVENT_SCHEMA, archive_to_events, envelopes_to_events, records_to_events

# orjson reads and writes 64-bit integers only, as does any JSON that reaches us.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
)
any_json = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
iso_times = st.datetimes(timezones=st.none()).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"))
identities = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(
            ["Root", "IAMUser", "AssumedRole", "AWSService", "FederatedUser", "Unknown", "SAMLUser"]
        )
        | st.text(max_size=5),
        "arn": st.text(max_size=40) | st.just("arn:aws:sts::1:assumed-role/r/s"),
        "accountId": st.text(max_size=12),
        "invokedBy": st.text(max_size=20),
        "sessionContext": any_json,
        "onBehalfOf": any_json,
    },
)
# Records that look like CloudTrail, with any field possibly replaced by junk.
plausible_records = st.fixed_dictionaries(
    {
        "eventID": st.text(min_size=1, max_size=12),
        "eventTime": iso_times,
        "eventSource": st.sampled_from(["kms.amazonaws.com", "sqs.amazonaws.com"]),
        "eventName": st.text(min_size=1, max_size=10),
    },
    optional={
        "userIdentity": identities | any_json,
        "sourceIPAddress": st.ip_addresses().map(str) | st.text(max_size=20) | any_json,
        "readOnly": st.booleans() | any_json,
        "userAgent": st.text(max_size=20) | any_json,
        "tlsDetails": any_json,
        "resources": any_json,
        "requestParameters": any_json,
        "additionalEventData": any_json,
        "vpcEndpointId": st.text(max_size=10) | any_json,
        "errorCode": st.text(max_size=10) | any_json,
        "recipientAccountId": st.text(max_size=12) | any_json,
    },
)
records = plausible_records | any_json


def check(result: Any, inputs: int) -> None:
    assert result.events.schema == EVENT_SCHEMA
    assert result.events.height + len(result.failures) <= inputs
    assert result.events.get_column("event_id").is_duplicated().sum() == 0
    assert result.events.get_column("event_time").null_count() == 0
    assert result.events.get_column("principal_key").null_count() == 0
    for failure in result.failures:
        assert failure.field
        assert failure.reason


@settings(max_examples=150, deadline=None)
@given(st.lists(records, max_size=8))
def test_records_never_crash(batch: list[Any]) -> None:
    check(records_to_events(batch, origin="prop"), len(batch))


@settings(max_examples=60, deadline=None)
@given(st.lists(records | st.binary(max_size=20), max_size=6))
def test_bodies_never_crash(batch: list[Any]) -> None:
    bodies = [
        b
        if isinstance(b, bytes)
        else orjson.dumps({"detail-type": "AWS API Call via CloudTrail", "detail": b})
        for b in batch
    ]
    result = envelopes_to_events(bodies)
    check(result, len(bodies))
    # Each body holds one record: it becomes one row, one failure, or a repeat of a row's id.
    accounted = result.events.height + len(result.failures) + result.skipped
    ids = set(result.events.get_column("event_id").to_list())
    assert set(result.duplicate_event_ids) <= ids
    if result.duplicate_event_ids:
        assert accounted < len(bodies)
    else:
        assert accounted == len(bodies)


@settings(max_examples=60, deadline=None)
@given(any_json | st.lists(records, max_size=5).map(lambda r: {"Records": r}))
def test_archive_files_never_crash(doc: Any) -> None:
    result = archive_to_events(gzip.compress(orjson.dumps(doc)), "AWSLogs/x.json.gz")
    inputs = (
        len(doc["Records"]) if isinstance(doc, dict) and isinstance(doc.get("Records"), list) else 1
    )
    check(result, max(inputs, 1))
