"""The consumer's pure parts: the policy's rules, the ledger's bookkeeping, batch decoding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from detector.errors import ConfigError
from detector.ingest import QueueMessage
from detector.service import ConsumerConfig, Ledger, Phase, decode_batch
from detector.service._policy import (
    DRAINED_POLL_SECONDS,
    HEALTH_TICK_SECONDS,
    batch_due,
    checkpoint_due,
    may_receive,
    queue_drained,
    queue_idle,
    seconds_to_next_decision,
)

T0 = datetime(2024, 3, 8, 12, 0, tzinfo=UTC)


def message(n: int, body: bytes = b"{}", receive_count: int = 1) -> QueueMessage:
    return QueueMessage(f"m{n}", f"h{n}", body, T0, receive_count)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- policy ------------------------------------------------------------------------------------
#
#   received ──────── 2 s ────────► batch due (or 1,000 messages at once)
#   checkpoint ───── 10 s ─────────► checkpoint due (or max held, or drained queue after 1 s)


def test_defaults_are_the_documented_ones() -> None:
    config = ConsumerConfig()
    assert (config.receivers, config.wait_seconds, config.batch_size) == (4, 20, 1000)
    assert (config.batch_seconds, config.checkpoint_seconds) == (2.0, 10.0)
    assert (config.max_batch_size, config.max_held_messages) == (10_000, 20_000)
    assert config.visibility_timeout == 300
    assert config.heartbeat_margin == timedelta(seconds=100)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("receivers", 0),
        ("wait_seconds", 21),
        ("batch_size", 0),
        ("max_held_messages", 10),
        ("max_batch_size", 999),
    ],
)
def test_a_bad_setting_is_a_config_error_naming_it(setting: str, value: int) -> None:
    with pytest.raises(ConfigError, match=setting):
        ConsumerConfig(**{setting: value})


def test_a_batch_is_due_when_full_or_when_its_oldest_message_has_waited() -> None:
    config = ConsumerConfig(batch_size=10, batch_seconds=2.0)
    assert not batch_due(0, None, at(100), config)
    assert not batch_due(9, T0, at(1.9), config)
    assert batch_due(9, T0, at(2.0), config)
    assert batch_due(10, T0, at(0), config)


def test_a_busy_stream_gets_bigger_batches_not_more_of_them() -> None:
    config = ConsumerConfig(
        batch_size=10, max_batch_size=100, batch_seconds=2.0, min_batch_seconds=0.5
    )
    last_cut = at(10)
    assert not batch_due(50, at(10.1), at(10.4), config, last_cut)  # full, but too soon
    assert batch_due(50, at(10.1), at(10.5), config, last_cut)
    assert batch_due(100, at(10.1), at(10.2), config, last_cut)  # max_batch_size buffered
    assert batch_due(5, at(8.0), at(10.1), config, last_cut)  # its oldest waited 2 s
    assert not batch_due(9, at(10.1), at(11), config, last_cut)
    # A drained queue (a long poll is waiting): a full batch would not grow by waiting.
    assert batch_due(50, at(10.1), at(10.2), config, last_cut, queue_drained=True)
    assert not batch_due(9, at(10.1), at(10.2), config, last_cut, queue_drained=True)


def test_a_deep_queue_grows_full_batches_until_their_age_or_the_largest_size() -> None:
    #   cut ── 0.5 s ──► (not yet: receives come back full) ── 2 s from the oldest ──► cut
    config = ConsumerConfig(
        batch_size=10, max_batch_size=100, batch_seconds=2.0, min_batch_seconds=0.5
    )
    last_cut = at(10)
    deep = {"queue_deep": True}
    assert not batch_due(50, at(10.1), at(10.5), config, last_cut, **deep)
    assert not batch_due(99, at(10.1), at(12.0), config, last_cut, **deep)
    assert batch_due(50, at(10.1), at(12.1), config, last_cut, **deep)  # its oldest waited 2 s
    assert batch_due(100, at(10.1), at(10.2), config, last_cut, **deep)  # max_batch_size
    assert batch_due(10, T0, at(0), config, None, **deep)  # the first batch is not held back
    # A long poll waiting says otherwise: the batch would not grow by waiting.
    assert batch_due(50, at(10.1), at(10.2), config, last_cut, queue_drained=True, **deep)


def test_a_checkpoint_is_due_on_its_interval_on_pressure_or_on_a_drained_queue() -> None:
    config = ConsumerConfig(checkpoint_seconds=10, min_checkpoint_seconds=1, max_held_messages=5000)
    base = {"processed": 5, "held": 5, "last_checkpoint": T0, "retry_after": None, "config": config}
    assert not checkpoint_due(**base, now=at(9), queue_idle=False)
    assert checkpoint_due(**base, now=at(10), queue_idle=False)
    assert checkpoint_due(**base | {"held": 5000}, now=at(0.1), queue_idle=False)
    assert not checkpoint_due(**base, now=at(0.5), queue_idle=True)
    assert checkpoint_due(**base, now=at(1), queue_idle=True)
    assert not checkpoint_due(**base | {"processed": 0}, now=at(60), queue_idle=True)
    assert not checkpoint_due(**base | {"retry_after": at(70)}, now=at(60), queue_idle=True)


def test_checkpoints_by_volume_or_on_a_drained_queue_unless_they_take_too_long() -> None:
    config = ConsumerConfig(
        checkpoint_seconds=10, min_checkpoint_seconds=1, checkpoint_messages=5000
    )
    base = {"held": 6000, "last_checkpoint": T0, "retry_after": None, "config": config}
    busy = base | {"queue_idle": False}
    assert not checkpoint_due(**busy, processed=4999, now=at(2))
    assert not checkpoint_due(**busy, processed=5000, now=at(0.9))  # min_checkpoint_seconds
    assert checkpoint_due(**busy, processed=5000, now=at(1))
    # A checkpoint that took 0.5 s: the next by volume waits until it is 10% of the time.
    slow = busy | {"last_checkpoint_seconds": 0.5, "processed": 5000}
    assert not checkpoint_due(**slow, now=at(4.9))
    assert checkpoint_due(**slow, now=at(5))
    idle = base | {"queue_idle": True, "processed": 10, "last_checkpoint_seconds": 0.5}
    assert not checkpoint_due(**idle, now=at(4.9))
    assert checkpoint_due(**idle, now=at(5))


def test_receiving_pauses_when_too_much_is_held_or_scoring_is_behind() -> None:
    config = ConsumerConfig(batch_size=100, max_held_messages=1000, max_batch_size=200)
    assert may_receive(held=999, buffered=199, config=config)
    assert not may_receive(held=1000, buffered=0, config=config)
    assert not may_receive(held=200, buffered=200, config=config)


def test_the_queue_looks_drained_once_a_long_poll_has_waited() -> None:
    #   poll A starts at 10.0 ── 0.25 s ──► drained (nothing visible answered it)
    assert not queue_drained([], 100.0)
    assert not queue_drained([10.0], 10.0 + DRAINED_POLL_SECONDS / 2)
    assert queue_drained([10.2, 10.0], 10.0 + DRAINED_POLL_SECONDS)


def test_the_queue_looks_idle_only_with_an_empty_buffer() -> None:
    assert queue_idle(short_receive=True, fifo=False, drained=False, buffered=0)
    assert queue_idle(short_receive=False, fifo=False, drained=True, buffered=0)
    assert queue_idle(short_receive=False, fifo=True, drained=False, buffered=0)  # FIFO groups
    assert not queue_idle(short_receive=False, fifo=False, drained=False, buffered=0)
    assert not queue_idle(short_receive=True, fifo=True, drained=True, buffered=1)


def test_the_consumer_sleeps_until_its_next_timer() -> None:
    #   0 s: 50 buffered (cut at 0) ─ 0.5 s min_batch_seconds ─ 2 s batch_seconds
    #   checkpoint at 0 ── 1 s min_checkpoint ──── 10 s checkpoint_seconds
    config = ConsumerConfig(
        batch_size=50, min_batch_seconds=0.5, checkpoint_seconds=10, min_checkpoint_seconds=1
    )
    quiet = {
        "config": config,
        "oldest_buffered": None,
        "buffered": 0,
        "last_cut": None,
        "processed": 0,
        "last_checkpoint": T0,
        "last_checkpoint_seconds": 0.0,
    }
    assert seconds_to_next_decision(now=at(0), **quiet) == HEALTH_TICK_SECONDS
    full = quiet | {"oldest_buffered": at(0), "buffered": 50, "last_cut": at(0)}
    assert seconds_to_next_decision(now=at(0.1), **full) == pytest.approx(0.4)
    # A long poll that waits 0.25 s more makes the queue drained: the full batch is due then.
    assert seconds_to_next_decision(now=at(0.1), **full, drained_in=0.25) == pytest.approx(0.25)
    # Timers that have passed wait on something else: no wake-ups every few milliseconds.
    processed = quiet | {"processed": 30}
    assert seconds_to_next_decision(now=at(2), **processed) == HEALTH_TICK_SECONDS
    assert seconds_to_next_decision(now=at(9.5), **processed) == pytest.approx(0.5)
    # A failed checkpoint retries at its time; a slow one pushes the next one back.
    retry = processed | {"retries": [None, at(9.2)]}
    assert seconds_to_next_decision(now=at(9), **retry) == pytest.approx(0.2)
    slow = processed | {"last_checkpoint_seconds": 0.35}
    assert seconds_to_next_decision(now=at(3), **slow) == pytest.approx(0.5)


# -- ledger ------------------------------------------------------------------------------------


def test_the_ledger_moves_receipts_through_their_phases_in_arrival_order() -> None:
    ledger = Ledger()
    ledger.add([message(i) for i in range(5)], T0, 30)
    ledger.add([message(0)], at(1), 30)  # the same receipt again changes nothing
    assert len(ledger) == 5
    assert ledger.oldest_buffered() == T0

    batch = ledger.take_batch(3)
    assert [e.handle for e in batch] == ["h0", "h1", "h2"]
    assert (ledger.count(Phase.BUFFERED), ledger.count(Phase.PROCESSING)) == (2, 3)

    ledger.requeue(batch[1:])  # back at the head, in order
    assert [e.handle for e in ledger.take_batch(10)] == ["h1", "h2", "h3", "h4"]
    ledger.mark(["h0", "h1", "gone"], Phase.PROCESSED)
    assert ledger.count(Phase.PROCESSED) == 2
    ledger.forget(["h0", "h1", "h2", "h3", "h4"])
    assert len(ledger) == 0
    assert all(ledger.count(phase) == 0 for phase in Phase)
    assert ledger.oldest_buffered() is None


def test_entries_in_hand_move_and_go_like_their_handles_and_only_while_held() -> None:
    ledger = Ledger()
    ledger.add([message(i) for i in range(4)], T0, 30)
    batch = ledger.take_batch(4)
    ledger.forget(["h3"])  # e.g. its receipt expired while it was processed
    moved = ledger.mark_entries(batch, Phase.PROCESSED)
    assert [e.handle for e in moved] == ["h0", "h1", "h2"]
    assert (ledger.count(Phase.PROCESSING), ledger.count(Phase.PROCESSED)) == (0, 3)

    ledger.add([message(3)], at(1), 30)  # the same handle held again: a different entry
    assert ledger.mark_entries(batch[3:], Phase.CHECKPOINTED) == []
    assert ledger.forget_entries(batch[2:]) == batch[2:3]
    assert "h3" in ledger
    assert [ledger.count(phase) for phase in Phase] == [1, 0, 2, 0]


def test_only_receipts_close_to_their_deadline_and_not_past_it_are_due_a_heartbeat() -> None:
    ledger = Ledger()
    ledger.add([message(0)], T0, 30)
    ledger.add([message(1)], at(15), 30)
    margin = timedelta(seconds=10)
    assert ledger.due_for_heartbeat(at(19), margin) == []
    assert [e.handle for e in ledger.due_for_heartbeat(at(20), margin)] == ["h0"]
    ledger.extend(["h0"], at(50))
    assert [e.handle for e in ledger.due_for_heartbeat(at(36), margin)] == ["h1"]
    assert [e.handle for e in ledger.due_for_heartbeat(at(46), margin)] == ["h0"]  # h1 expired


# -- decoding ----------------------------------------------------------------------------------


def envelope(event_id: str, **detail: object) -> bytes:
    record = {
        "eventVersion": "1.09",
        "eventID": event_id,
        "eventTime": "2024-03-08T12:00:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "ListBuckets",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/a"},
        "recipientAccountId": "111122223333",
    }
    return orjson.dumps({"detail-type": "AWS API Call via CloudTrail", "detail": record | detail})


def test_decoding_names_each_poison_message_and_keeps_the_rest() -> None:
    messages = [
        message(0, envelope("e0")),
        message(1, b'{"detail-type": "AWS API Call via Cloud'),
        message(2, envelope("e2", eventTime="soon")),
        message(3, envelope("e3") + b" " * 100),
        message(4, envelope("e0")),  # a duplicate within the batch
    ]
    decoded = decode_batch(messages, max_body_bytes=len(envelope("e3")) + 50)

    assert decoded.events.get_column("event_id").to_list() == ["e0"]
    assert set(decoded.poison) == {"h1", "h2", "h3"}
    assert "m1" in decoded.poison["h1"][0]
    assert "not valid JSON" in decoded.poison["h1"][0]
    assert "eventTime" in decoded.poison["h2"][0]
    assert "exceeds" in decoded.poison["h3"][0]
    assert decoded.duplicates_in_batch == 1
