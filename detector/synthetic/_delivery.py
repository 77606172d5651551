"""How records reach readers: CloudTrail's log files, and EventBridge's event stream.

Pure planning, no I/O (the writers serialise what is planned here):

- :func:`plan_log_files` groups records the way CloudTrail delivers them: one account and
  region per file, about five minutes of events per file, named by the delivery time (a few
  minutes after the events), with some records arriving late (in a later file, up to ~15
  minutes after their event time) and records in a file in arrival order, not event order;
- :func:`plan_envelopes` wraps each record in an EventBridge envelope and releases envelopes in
  arrival order (seconds after the event, slightly out of order).

Both stream: they hold only the records whose delivery window is still open, so they work on
an iterator of millions of records. Input should be roughly in event-time order (as
:func:`iter_records` yields it); more disordered input is still delivered, in extra files.

Imports: the standard library and this package's :mod:`._formats` and :mod:`._identity`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from random import Random
from typing import Final

from detector.synthetic._formats import alnum, parse_iso_time, uuid4
from detector.synthetic._identity import Record

FILE_WINDOW: Final = 300  # CloudTrail delivers about every five minutes
DEFAULT_MAX_RECORDS_PER_FILE: Final = 5_000
DEFAULT_LATE_SHARE: Final = 0.03
_USUAL_DELAY: Final = (30, 240)  # seconds from event to delivery
_LATE_DELAY: Final = (300, 900)
_FLUSH_MARGIN: Final = 1_800  # input disorder tolerated before a window is closed
_ENVELOPE_DELAY_MEAN: Final = 8.0
_ENVELOPE_DELAY_MAX: Final = 90
DETAIL_TYPES: Final = {
    "AwsApiCall": "AWS API Call via CloudTrail",
    "AwsConsoleSignIn": "AWS Console Sign In via CloudTrail",
    "AwsServiceEvent": "AWS Service Event via CloudTrail",
}


@dataclass(frozen=True, slots=True)
class LogFile:
    """One archive file as CloudTrail would deliver it."""

    account_id: str
    region: str
    delivered_at: int  # epoch seconds; the file name's timestamp
    suffix: str  # the 16 random characters ending the file name
    records: tuple[Record, ...]
    oldest_event: int
    newest_event: int


@dataclass(slots=True)
class _Window:
    entries: list[tuple[int, int, int, Record]]  # (delivery, sequence, event time, record)


def plan_log_files(
    records: Iterable[Record],
    *,
    seed: int = 0,
    max_records_per_file: int = DEFAULT_MAX_RECORDS_PER_FILE,
    late_share: float = DEFAULT_LATE_SHARE,
) -> Iterator[LogFile]:
    """Group ``records`` into delivered files, in delivery order."""
    rng = Random(f"{seed}/delivery")
    windows: dict[tuple[int, str, str], _Window] = {}
    watermark = -1
    next_flush = -1
    for sequence, record in enumerate(records):
        t = parse_iso_time(record["eventTime"])
        low, high = _LATE_DELAY if rng.random() < late_share else _USUAL_DELAY
        delivery = t + rng.randrange(low, high)
        key = (delivery // FILE_WINDOW, record["recipientAccountId"], record["awsRegion"])
        window = windows.get(key)
        if window is None:
            window = windows[key] = _Window([])
        window.entries.append((delivery, sequence, t, record))
        if t > watermark:
            watermark = t
        if watermark >= next_flush:
            yield from _close(windows, watermark - _FLUSH_MARGIN, rng, max_records_per_file)
            next_flush = watermark + FILE_WINDOW
    yield from _close(windows, None, rng, max_records_per_file)


def _close(
    windows: dict[tuple[int, str, str], _Window],
    before: int | None,
    rng: Random,
    max_records: int,
) -> Iterator[LogFile]:
    """Deliver (and forget) every window that ends before ``before`` (all when None)."""
    ready = sorted(key for key in windows if before is None or (key[0] + 1) * FILE_WINDOW <= before)
    for key in ready:
        entries = windows.pop(key).entries
        entries.sort(key=lambda entry: (entry[0], entry[1]))  # arrival order
        slot, account, region = key
        for first in range(0, len(entries), max_records):
            chunk = entries[first : first + max_records]
            times = [entry[2] for entry in chunk]
            yield LogFile(
                account_id=account,
                region=region,
                delivered_at=(slot + 1) * FILE_WINDOW + rng.randrange(0, 60),
                suffix=alnum(rng, 16),
                records=tuple(entry[3] for entry in chunk),
                oldest_event=min(times),
                newest_event=max(times),
            )


def envelope(record: Record, envelope_id: str) -> Record:
    """The EventBridge envelope of one CloudTrail record."""
    service = str(record.get("eventSource", "")).split(".", 1)[0]
    return {
        "version": "0",
        "id": envelope_id,
        "detail-type": DETAIL_TYPES.get(str(record.get("eventType")), DETAIL_TYPES["AwsApiCall"]),
        "source": f"aws.{service}",
        "account": record.get("recipientAccountId"),
        "time": record.get("eventTime"),
        "region": record.get("awsRegion"),
        "resources": [],
        "detail": record,
    }


def plan_envelopes(records: Iterable[Record], *, seed: int = 0) -> Iterator[Record]:
    """EventBridge envelopes in arrival order: seconds after each event, slightly shuffled."""
    rng = Random(f"{seed}/eventbridge")
    pending: list[tuple[int, int, Record]] = []
    for sequence, record in enumerate(records):
        t = parse_iso_time(record["eventTime"])
        delay = min(int(rng.expovariate(1 / _ENVELOPE_DELAY_MEAN)), _ENVELOPE_DELAY_MAX)
        heapq.heappush(pending, (t + delay, sequence, envelope(record, uuid4(rng))))
        while pending and pending[0][0] <= t:
            yield heapq.heappop(pending)[2]
    while pending:
        yield heapq.heappop(pending)[2]
