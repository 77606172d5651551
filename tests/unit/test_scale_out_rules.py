"""The scale-out rules, pure: shard ownership, PutRecords batching, the position a checkpoint
records per shard, and the router's decisions (decode, settle, cut) on a timeline.

Timeline of one router, visibility 60 s, expiry margin 10 s (a receipt is given up when a
retry could not start before 50 s)::

    t=0    receive m1 m2 m3            put ─► m1 ok, m2 refused, m3 ok
    t=0    delete m1 m3                 retry m2 at 0.2 s
    t=0.2  put m2 ─► refused            retry at 0.6 s (the delay doubles)
    ...
    t=49   put m2 ─► refused            no retry can start before 50 s: m2 is left to SQS
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from detector.errors import ConfigError
from detector.events import principal_of
from detector.ingest import OutgoingRecord, QueueMessage, owned_shards, put_batches, safe_position
from detector.ingest._shards import MAX_PUT_BYTES, MAX_PUT_RECORDS, partition_key_of
from detector.route import (
    Pending,
    RouterConfig,
    batch_due,
    resolve_route_settings,
    route_messages,
    settle,
)

T0 = datetime(2024, 3, 8, 7, 44, tzinfo=UTC)
CONFIG = RouterConfig(visibility_timeout=60, expiry_margin_seconds=10, retry_base_seconds=0.2)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def message(message_id: str, body: bytes) -> QueueMessage:
    return QueueMessage(message_id, f"handle-{message_id}", body, T0, 1)


def envelope(user: dict[str, object], event_id: str = "e1") -> bytes:
    record = {
        "eventVersion": "1.08",
        "eventID": event_id,
        "eventTime": "2024-03-08T07:44:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "ListBuckets",
        "awsRegion": "us-east-1",
        "recipientAccountId": "111122223333",
        "userIdentity": user,
    }
    return orjson.dumps(
        {"version": "0", "detail-type": "AWS API Call via CloudTrail", "detail": record}
    )


ALICE = {
    "type": "IAMUser",
    "arn": "arn:aws:iam::111122223333:user/alice",
    "accountId": "111122223333",
}
APP_SESSION = {
    "type": "AssumedRole",
    "arn": "arn:aws:sts::111122223333:assumed-role/app/i-0abc",
    "accountId": "111122223333",
    "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::111122223333:role/app"}},
}


# -- shards ---------------------------------------------------------------------------------


def test_consumers_own_disjoint_shards_covering_the_stream() -> None:
    shards = [f"shardId-{i:012d}" for i in range(7)]
    owned = [owned_shards(list(reversed(shards)), i, 3) for i in range(3)]
    assert owned[0] == [shards[0], shards[3], shards[6]]
    assert sorted(s for group in owned for s in group) == shards


def test_an_ordinal_outside_the_count_is_refused() -> None:
    with pytest.raises(ValueError, match=r"0\.\.2"):
        owned_shards(["a"], 3, 3)


def test_put_batches_keep_order_within_500_records_and_5_mib() -> None:
    small = [OutgoingRecord(str(i), "k", b"x") for i in range(1201)]
    batches = put_batches(small)
    assert [len(b) for b in batches] == [MAX_PUT_RECORDS, MAX_PUT_RECORDS, 201]
    assert [r.id for b in batches for r in b] == [r.id for r in small]
    big = [OutgoingRecord(str(i), "k", b"x" * (1024 * 1024 - 1)) for i in range(6)]
    sized = put_batches(big)
    assert [len(b) for b in sized] == [5, 1]
    assert all(sum(len(r.data) + 1 for r in b) <= MAX_PUT_BYTES for b in sized)


def test_a_long_principal_key_is_cut_to_kinesis_256_characters() -> None:
    key = "arn:aws:iam::1:role/" + "p/" * 200 + "r#someone@example.com"
    assert len(partition_key_of(key)) == 256
    assert partition_key_of(key) == key[:256]


# -- positions --------------------------------------------------------------------------------


def test_a_position_stops_before_the_first_record_not_in_the_state() -> None:
    # read 10 20 30 40; 10, 20 and 40 are in the checkpoint, 30 is still buffered
    assert safe_position(["10", "20", "30", "40"], {"10", "20", "40"}, None) == "20"


def test_a_position_compares_sequence_numbers_as_numbers() -> None:
    big = "49654218950912344523109982273812683214434343811843457026"
    assert safe_position([big, "9"], {"9", big}, None) == big


def test_nothing_done_keeps_the_previous_position() -> None:
    assert safe_position(["31", "32"], set(), "30") == "30"
    assert safe_position([], set(), None) is None


# -- the router ---------------------------------------------------------------------------------


def test_each_event_is_keyed_by_the_principal_key_the_pipeline_uses() -> None:
    messages = [message("m1", envelope(ALICE)), message("m2", envelope(APP_SESSION))]
    routing = route_messages(messages, T0)
    assert [p.record.partition_key for p in routing.pending] == [
        principal_of(ALICE, "111122223333").key,
        "arn:aws:iam::111122223333:role/app",
    ]
    assert [p.record.data for p in routing.pending] == [m.body for m in messages]
    assert not routing.poison


def test_a_body_that_does_not_decode_is_poison_naming_its_message_and_field() -> None:
    routing = route_messages(
        [message("bad", b"{not json"), message("other", b'{"detail-type": "Scheduled Event"}')],
        T0,
    )
    assert not routing.pending
    assert set(routing.poison) == {"bad", "other"}
    assert "<body>" in routing.poison["bad"]
    assert "detail-type" in routing.poison["other"]


def pending(*ids: str) -> list[Pending]:
    return route_messages([message(i, envelope(ALICE, i)) for i in ids], at(0)).pending


def test_only_messages_whose_records_were_all_accepted_are_deleted() -> None:
    put = pending("m1", "m2", "m3")
    decided = settle(put, {"m2": "ProvisionedThroughputExceededException"}, at(0), CONFIG)
    assert [m.message_id for m in decided.delete] == ["m1", "m3"]
    assert [p.message.message_id for p in decided.retry] == ["m2"]
    assert decided.retry[0].not_before == at(0.2)
    assert not decided.leave


def test_a_refused_record_is_retried_with_a_growing_delay_then_left_before_its_receipt_expires() -> (
    None
):
    (record,) = pending("m2")
    now = 0.0
    delays = []
    while True:
        decided = settle([record], {"m2": "InternalFailure"}, at(now), CONFIG)
        assert not decided.delete
        if decided.leave:
            break
        (record,) = decided.retry
        assert record.not_before is not None
        delays.append((record.not_before - at(now)).total_seconds())
        now = (record.not_before - T0).total_seconds()
    assert delays[:4] == [0.2, 0.4, 0.8, 1.6]
    assert max(delays) == CONFIG.retry_max_seconds
    assert [m.message_id for m in decided.leave] == ["m2"]
    assert now + CONFIG.retry_max_seconds >= 50 > now  # given up only when no retry fits


def test_a_batch_is_cut_when_full_when_its_oldest_waited_or_when_stopping() -> None:
    assert not batch_due(0, None, at(9), CONFIG, draining=True)
    assert batch_due(CONFIG.batch_records, at(0), at(0), CONFIG, draining=False)
    assert not batch_due(3, at(0), at(0.1), CONFIG, draining=False)
    assert batch_due(3, at(0), at(CONFIG.batch_seconds), CONFIG, draining=False)
    assert batch_due(3, at(0), at(0), CONFIG, draining=True)


# -- the router's settings ----------------------------------------------------------------------


QUEUE = "https://sqs.eu-west-1.amazonaws.com/111122223333/detector-input"


def test_router_settings_come_from_flags_then_variables() -> None:
    settings = resolve_route_settings(
        {"queue_url": QUEUE, "stream": None},
        {"DETECTOR_STREAM": "kinesis://events", "AWS_REGION": "eu-west-1"},
    )
    assert (settings.queue_url, settings.stream, settings.region) == (QUEUE, "events", "eu-west-1")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"stream": "events"}, "--queue-url or set DETECTOR_QUEUE_URL"),
        ({"queue_url": QUEUE}, "--stream or set DETECTOR_STREAM"),
        ({"queue_url": QUEUE, "stream": "a/b"}, "--stream='a/b'"),
    ],
)
def test_a_missing_or_bad_router_setting_names_its_flag(
    flags: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_route_settings(flags, {})
