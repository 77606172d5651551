"""Property: nested and oversized JSON never escapes either parser. Every body or record is a
row or a failure of its own, the fast path (msgspec) and the fallback (orjson, the same row
builder) agree, and a record nested too deep for one field fails naming that field."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.events import archive_to_events, envelopes_to_events, records_to_events
from detector.events._fast import Declined, body_row
from detector.events._parse import dict_row
from tests.hostile.conftest import record

RECEIVED = datetime(2024, 3, 4, 0, 5, tzinfo=UTC)
EVENT = "2024-03-04T00:00:00Z"
KEY = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/04/111122223333_CloudTrail_us-east-1_20240304T0005Z_x.json.gz"
FIELDS = ("requestParameters", "responseElements", "additionalEventData", "userIdentity")
# orjson refuses input nested deeper than this: the whole body or file is then one failure.
ORJSON_DEPTH = 1024


@st.composite
def hostile_values(draw: st.DrawFn) -> bytes:
    """JSON text: objects and arrays nested up to 3,000 deep, or a long string or array."""
    kind = draw(st.sampled_from(["nested", "long string", "long array"]))
    if kind == "long string":
        return orjson.dumps("x" * draw(st.integers(0, 300_000)))
    if kind == "long array":
        return orjson.dumps([0] * draw(st.integers(0, 50_000)))
    depth = draw(st.integers(1, 3_000))
    opens = draw(st.lists(st.sampled_from([b'{"k":', b"["]), min_size=depth, max_size=depth))
    closes = [b"}" if o.startswith(b"{") else b"]" for o in reversed(opens)]
    return b"".join(opens) + b"1" + b"".join(closes)


def depth_of(text: bytes) -> int:
    return text.count(b"[") + text.count(b"{")


def hostile_record(field: str, value: bytes, event_id: str = "h") -> bytes:
    text = orjson.dumps(record(event_id, EVENT, **{field: None}))
    return text.replace(f'"{field}":null'.encode(), f'"{field}":'.encode() + value)


hostile = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@hostile
@given(st.sampled_from(FIELDS), hostile_values(), st.booleans())
def test_a_hostile_body_is_a_row_or_its_own_failure(field: str, value: bytes, wrap: bool) -> None:
    inner = hostile_record(field, value)
    body = (
        b'{"detail-type":"AWS API Call via CloudTrail","detail":' + inner + b"}" if wrap else inner
    )
    good = orjson.dumps(
        {"detail-type": "AWS API Call via CloudTrail", "detail": record("g", EVENT)}
    )
    result = envelopes_to_events(
        [good, body], message_ids=["good", "bad"], received_times=[RECEIVED] * 2
    )
    assert "g" in result.events.get_column("event_id").to_list()
    assert result.events.height + len(result.failures) == 2
    for failure in result.failures:
        assert failure.origin == "bad"
        if depth_of(value) < ORJSON_DEPTH - 5:
            assert failure.field == field, failure
    try:
        fast: tuple[Any, ...] | None = body_row(body)
    except Declined:
        fast = None
    if fast is not None:  # the fast path took it: the fallback gives the same row
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError:
            # The fast path parses the field on its own, one or two levels shallower than the
            # whole body: a value just under orjson's limit passes there and not whole. And it
            # writes userIdentity into no JSON column (it reads a few keys), so a deeper
            # subtree there is still a row, where orjson refuses the whole body.
            assert depth_of(value) >= ORJSON_DEPTH - 3
            assert depth_of(value) < ORJSON_DEPTH or field == "userIdentity"
        else:
            assert dict_row(decoded["detail"] if wrap else decoded) == fast


@hostile
@given(st.sampled_from(FIELDS), hostile_values())
def test_a_hostile_record_in_an_archive_file_fails_alone(field: str, value: bytes) -> None:
    text = (
        b'{"Records":['
        + orjson.dumps(record("g", EVENT))
        + b","
        + hostile_record(field, value)
        + b"]}"
    )
    result = archive_to_events(gzip.compress(text), KEY)
    if any(f.index is None for f in result.failures):  # too deep for orjson: the whole file
        assert depth_of(value) >= ORJSON_DEPTH - 5
        assert [(f.index, f.field) for f in result.failures] == [(None, "<file>")]
    else:
        assert result.events.get_column("event_id").to_list()[:1] == ["g"]
        assert result.events.height + len(result.failures) == 2
        assert all(f.index == 1 and f.field == field for f in result.failures)


@hostile
@given(st.sampled_from(FIELDS), hostile_values())
def test_the_fallback_on_decoded_records_never_raises(field: str, value: bytes) -> None:
    if depth_of(value) >= ORJSON_DEPTH - 5:
        return  # orjson cannot decode it: no record to hand over
    hostile_dict = orjson.loads(hostile_record(field, value))
    result = records_to_events(
        [record("g", EVENT), hostile_dict], origin="t", received_time=RECEIVED
    )
    assert result.events.height + len(result.failures) == 2
    assert [f.field for f in result.failures] in ([], [field])
