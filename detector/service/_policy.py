"""The consumer's settings and its decisions, as pure functions of counts and times.

When a micro-batch is cut, when state is checkpointed, when receiving pauses and which held
messages get a visibility heartbeat are decided here, from numbers the consumer passes in, so
each rule is testable without a queue::

    receive ──► buffered ──(batch due)──► processed ──(checkpoint due)──► checkpointed ──► deleted
                                   │                           └──(checkpoint fails)── held, heartbeated
                                   ├──(poison: cannot be decoded)──► left for the redrive policy (DLQ)
                                   └──(the step raised: a bug)──► handed back undeleted

The consumer sleeps until the next decision's timer (:func:`seconds_to_next_decision`) or an
event (a receive, a stop) wakes it. While the queue is idle, :func:`idle_watermark` lets the
event-time watermark follow the wall clock, so that windows close at night.

Imports: the standard library and :mod:`detector.errors` only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from detector.errors import ConfigError

__all__ = [
    "CHECKPOINT_TIME_SHARE",
    "DEFAULT_BATCH_SECONDS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CHECKPOINT_MESSAGES",
    "DEFAULT_CHECKPOINT_SECONDS",
    "DEFAULT_DELETE_CONCURRENCY",
    "DEFAULT_GRACE_SECONDS",
    "DEFAULT_IDLE_SECONDS",
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_HELD_MESSAGES",
    "DEFAULT_MIN_BATCH_SECONDS",
    "DEFAULT_MIN_CHECKPOINT_SECONDS",
    "DEFAULT_POISON_RETRY_SECONDS",
    "DEFAULT_RECEIVERS",
    "DEFAULT_VISIBILITY_TIMEOUT",
    "DEFAULT_WAIT_SECONDS",
    "DRAINED_POLL_SECONDS",
    "HEALTH_TICK_SECONDS",
    "ConsumerConfig",
    "batch_due",
    "checkpoint_due",
    "idle_watermark",
    "may_receive",
    "queue_drained",
    "queue_idle",
    "seconds_to_next_decision",
]

DEFAULT_RECEIVERS: Final = 4
DEFAULT_WAIT_SECONDS: Final = 20  # SQS's longest long poll
DEFAULT_VISIBILITY_TIMEOUT: Final = 300  # the deploy's input queue
DEFAULT_BATCH_SIZE: Final = 1000
DEFAULT_BATCH_SECONDS: Final = 2.0
# A step has a fixed cost however small its batch: under a busy stream, batches are cut no
# more often than this (so they grow instead), unless max_batch_size or batch_seconds is reached.
DEFAULT_MIN_BATCH_SECONDS: Final = 0.5
DEFAULT_CHECKPOINT_SECONDS: Final = 10.0
DEFAULT_MIN_CHECKPOINT_SECONDS: Final = 1.0
# Messages processed since the last checkpoint that make the next one due (at most every
# min_checkpoint_seconds, and never spending more than a tenth of the time checkpointing): deletes
# then keep pace with a busy stream instead of coming in bursts every checkpoint_seconds.
DEFAULT_CHECKPOINT_MESSAGES: Final = 5_000
CHECKPOINT_TIME_SHARE: Final = 0.1
# SQS allows 120,000 messages in flight on a standard queue and 20,000 on a FIFO queue.
DEFAULT_MAX_HELD_MESSAGES: Final = 20_000
# Under load, one step takes what is buffered, up to this many: the step's fixed cost is then
# shared by more events.
DEFAULT_MAX_BATCH_SIZE: Final = 10_000
DEFAULT_POISON_RETRY_SECONDS: Final = 30
DEFAULT_MAX_BODY_BYTES: Final = 1_048_576  # SQS's largest message
DEFAULT_DELETE_CONCURRENCY: Final = 4
DEFAULT_GRACE_SECONDS: Final = 50.0  # inside Kubernetes' 60 s terminationGracePeriodSeconds
# A long poll answers at once while the queue has visible messages; one still waiting after
# this long means the queue is drained (for now).
DRAINED_POLL_SECONDS: Final = 0.25
# The longest the consumer sleeps without a timer: it ticks the liveness probe this often.
HEALTH_TICK_SECONDS: Final = 1.0
_SHORTEST_SLEEP_SECONDS: Final = 0.005
# No message for this long: the queue is idle, and the watermark may follow the wall clock.
# A minute: EventBridge delivers within seconds, so a live organisation is never this quiet
# while it works, and at night windows close a minute (plus the lateness) after their end.
DEFAULT_IDLE_SECONDS: Final = 60.0


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """How the consumer batches, checkpoints, paces itself and treats bad input.

    - ``receivers`` long polls (``wait_seconds``, 10 messages each) run at once; each receive
      asks for ``visibility_timeout`` seconds, so the consumer knows every message's deadline.
    - A micro-batch is cut at ``batch_size`` messages (but at most every
      ``min_batch_seconds``, unless ``max_batch_size`` are buffered or the queue is drained,
      so that waiting would not grow it) or when its oldest message has waited
      ``batch_seconds`` (while the queue is deep, a full batch waits for that too); it takes
      everything buffered by then, up to
      ``max_batch_size`` (so a busy or lagging consumer takes bigger, cheaper steps, and a
      quiet one sees small batches within ``batch_seconds``).
    - State is checkpointed every ``checkpoint_seconds``; sooner when ``max_held_messages`` are
      held, or (at most every ``min_checkpoint_seconds``, and only while checkpoints take at
      most :data:`CHECKPOINT_TIME_SHARE` of the time, so a large state is saved less often)
      when the queue looks drained (a receive brought fewer than 10 messages) or
      ``checkpoint_messages`` were processed since the last one. Messages are deleted after
      the checkpoint that includes them. On a
      FIFO queue a group delivers nothing more while a message of it is in flight, so there
      the buffer running empty is enough: deletes are deferred ``min_checkpoint_seconds``.
    - Receiving pauses while ``max_held_messages`` are held, or while scoring is behind: a
      whole ``max_batch_size`` batch (or ``max_held_messages``, if smaller) is buffered.
    - A held message whose invisibility ends within ``heartbeat_margin_seconds`` (default: a
      third of the visibility timeout) is extended by ``visibility_timeout`` again.
    - A poison message is made visible again after ``poison_retry_seconds`` (None: at the end
      of its visibility timeout) and never deleted: after ``max_receive_count`` receives (the
      queue's redrive policy, when known) SQS moves it to the dead-letter queue.
    - After ``idle_seconds`` without a message (0: never), the watermark follows the wall
      clock (:func:`idle_watermark`).
    """

    receivers: int = DEFAULT_RECEIVERS
    wait_seconds: int = DEFAULT_WAIT_SECONDS
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT
    batch_size: int = DEFAULT_BATCH_SIZE
    batch_seconds: float = DEFAULT_BATCH_SECONDS
    min_batch_seconds: float = DEFAULT_MIN_BATCH_SECONDS
    checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS
    min_checkpoint_seconds: float = DEFAULT_MIN_CHECKPOINT_SECONDS
    checkpoint_messages: int = DEFAULT_CHECKPOINT_MESSAGES
    max_held_messages: int = DEFAULT_MAX_HELD_MESSAGES
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    heartbeat_margin_seconds: float | None = None
    poison_retry_seconds: int | None = DEFAULT_POISON_RETRY_SECONDS
    max_receive_count: int | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    delete_concurrency: int = DEFAULT_DELETE_CONCURRENCY
    idle_seconds: float = DEFAULT_IDLE_SECONDS

    def __post_init__(self) -> None:
        checks = (
            ("receivers", self.receivers >= 1, "at least 1"),
            ("wait_seconds", 0 <= self.wait_seconds <= 20, "0..20"),
            ("visibility_timeout", 1 <= self.visibility_timeout <= 43_200, "1..43200"),
            ("batch_size", self.batch_size >= 1, "at least 1"),
            ("batch_seconds", self.batch_seconds > 0, "positive"),
            ("min_batch_seconds", self.min_batch_seconds >= 0, "0 or more"),
            ("checkpoint_seconds", self.checkpoint_seconds > 0, "positive"),
            ("min_checkpoint_seconds", self.min_checkpoint_seconds >= 0, "0 or more"),
            ("checkpoint_messages", self.checkpoint_messages >= 1, "at least 1"),
            (
                "max_held_messages",
                self.max_held_messages >= self.batch_size,
                f"at least batch_size ({self.batch_size})",
            ),
            (
                "max_batch_size",
                self.max_batch_size >= self.batch_size,
                f"at least batch_size ({self.batch_size})",
            ),
            (
                "heartbeat_margin_seconds",
                self.heartbeat_margin_seconds is None
                or 0 < self.heartbeat_margin_seconds < self.visibility_timeout,
                "between 0 and visibility_timeout",
            ),
            (
                "poison_retry_seconds",
                self.poison_retry_seconds is None or 0 <= self.poison_retry_seconds <= 43_200,
                "0..43200 or None",
            ),
            (
                "max_receive_count",
                self.max_receive_count is None or self.max_receive_count >= 1,
                "at least 1 or None",
            ),
            ("max_body_bytes", self.max_body_bytes >= 1, "at least 1"),
            ("delete_concurrency", self.delete_concurrency >= 1, "at least 1"),
            ("idle_seconds", self.idle_seconds >= 0, "0 (never) or more"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(
                    f"consumer setting {name}={getattr(self, name)!r}: must be {expected}"
                )

    @property
    def heartbeat_margin(self) -> timedelta:
        margin = self.heartbeat_margin_seconds
        return timedelta(seconds=self.visibility_timeout / 3 if margin is None else margin)

    @property
    def heartbeat_every_seconds(self) -> float:
        """How often held messages are checked for a heartbeat: well inside the margin."""
        return max(0.05, min(5.0, self.heartbeat_margin.total_seconds() / 4))


def batch_due(
    buffered: int,
    oldest_received: datetime | None,
    now: datetime,
    config: ConsumerConfig,
    last_cut: datetime | None = None,
    *,
    queue_drained: bool = False,
    queue_deep: bool = False,
) -> bool:
    """A micro-batch is cut when its oldest message has waited long enough, or when it is
    full and the previous one was cut at least ``min_batch_seconds`` ago (``last_cut``) or
    the queue is drained (a long poll is waiting: the batch would not grow by waiting).
    While the queue is deep (receives come back full), a full batch grows until its oldest
    message has waited ``batch_seconds`` or ``max_batch_size`` are buffered: the consumer is
    behind, and fewer, larger steps catch up sooner (a step's cost is mostly per batch)."""
    if buffered == 0 or oldest_received is None:
        return False
    if (now - oldest_received).total_seconds() >= config.batch_seconds:
        return True
    if buffered >= config.max_batch_size:
        return True
    if buffered < config.batch_size:
        return False
    if queue_drained or last_cut is None:
        return True
    if queue_deep:
        return False
    return (now - last_cut).total_seconds() >= config.min_batch_seconds


def checkpoint_due(
    *,
    processed: int,
    held: int,
    now: datetime,
    last_checkpoint: datetime,
    retry_after: datetime | None,
    queue_idle: bool,
    config: ConsumerConfig,
    last_checkpoint_seconds: float = 0.0,
) -> bool:
    """Whether to checkpoint the state now (``processed``: messages processed since the last
    checkpoint; ``retry_after``: set after a failed checkpoint, to back off;
    ``last_checkpoint_seconds``: how long the last checkpoint took)."""
    if processed == 0:
        return False
    if retry_after is not None and now < retry_after:
        return False
    elapsed = (now - last_checkpoint).total_seconds()
    if elapsed >= config.checkpoint_seconds or held >= config.max_held_messages:
        return True
    if elapsed < config.min_checkpoint_seconds:
        return False
    if elapsed * CHECKPOINT_TIME_SHARE < last_checkpoint_seconds:
        return False  # a large state: saving it this often would cost more than its share
    return queue_idle or processed >= config.checkpoint_messages


def idle_watermark(
    *,
    now: datetime,
    last_received: datetime,
    watermark: datetime | None,
    open_windows: tuple[datetime, datetime] | None,
    lateness: timedelta,
    idle_seconds: float,
) -> datetime | None:
    """Where the event-time watermark may move while the queue is idle, or None (stay).

    Idle: nothing received for ``idle_seconds`` (``last_received``: the last receive that
    brought messages). The wall clock then stands in for the newest event time: the watermark
    may reach ``now - lateness`` (an event still to come for an earlier window would be later
    than the allowed lateness, as it would be under traffic), bounded by the end of the last
    open window (``open_windows``: the earliest and the latest end of the open windows), so a
    wrong clock can close what is open and no more. It moves only if that closes a window.
    """
    if idle_seconds <= 0 or open_windows is None:
        return None
    if (now - last_received).total_seconds() < idle_seconds:
        return None
    first_end, last_end = open_windows
    target = min(now - lateness, last_end)
    if target < first_end or (watermark is not None and target <= watermark):
        return None
    return target


def may_receive(*, held: int, buffered: int, config: ConsumerConfig) -> bool:
    """Backpressure: no new receive while too much is held or scoring is behind."""
    if held >= config.max_held_messages:
        return False
    return buffered < min(config.max_batch_size, config.max_held_messages)


def queue_drained(poll_starts: Iterable[float], now: float) -> bool:
    """Whether a long poll started at one of ``poll_starts`` (monotonic seconds) is still
    waiting :data:`DRAINED_POLL_SECONDS` later: the queue has nothing visible for now."""
    return any(now - started >= DRAINED_POLL_SECONDS for started in poll_starts)


def queue_idle(*, short_receive: bool, fifo: bool, drained: bool, buffered: int) -> bool:
    """Whether the queue looks idle enough to checkpoint early: nothing is buffered and the
    last receive brought fewer than 10 messages or a long poll waits. A FIFO group delivers
    nothing more while a message of it is held, so there any empty buffer counts."""
    return buffered == 0 and (short_receive or fifo or drained)


def seconds_to_next_decision(
    *,
    now: datetime,
    config: ConsumerConfig,
    oldest_buffered: datetime | None,
    buffered: int,
    last_cut: datetime | None,
    processed: int,
    last_checkpoint: datetime,
    last_checkpoint_seconds: float,
    retries: Iterable[datetime | None] = (),
    drained_in: float | None = None,
) -> float:
    """How long the consumer may sleep before a timer makes a batch or a checkpoint due (or a
    retry after a failure); at most :data:`HEALTH_TICK_SECONDS`.

    ``drained_in``: seconds until the oldest long poll under way makes the queue look drained.
    Only timers still to come count: a timer that has passed waits on something else, which
    wakes the consumer by itself, and waking for it again would only spin."""
    timers: list[float] = []
    if oldest_buffered is not None:
        timers.append(config.batch_seconds - (now - oldest_buffered).total_seconds())
        if last_cut is not None:
            timers.append(config.min_batch_seconds - (now - last_cut).total_seconds())
            if buffered >= config.batch_size and drained_in is not None:
                timers.append(drained_in)
    if processed:
        since = (now - last_checkpoint).total_seconds()
        timers.append(config.checkpoint_seconds - since)
        timers.append(config.min_checkpoint_seconds - since)
        timers.append(last_checkpoint_seconds / CHECKPOINT_TIME_SHARE - since)
        if drained_in is not None:
            timers.append(drained_in)
    timers.extend((retry - now).total_seconds() for retry in retries if retry is not None)
    coming = [t for t in timers if t > 0]
    return max(_SHORTEST_SLEEP_SECONDS, min([HEALTH_TICK_SECONDS, *coming]))
