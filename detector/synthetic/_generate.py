"""Put the actors together: one day at a time, in event-time order, attacks included.

:func:`iter_records` is the engine: for each UTC day it merges the lazy application streams
(most of the volume) with everyone else's records and the attack records of that day, holding
back the few records of sessions that run past midnight for the next day, so the whole stream
is in event-time order. Only the small actors' day is ever materialised, which is how a
benchmark makes millions of events in little memory.

Imports: the standard library and this package's modules.
"""

from __future__ import annotations

import gc
import heapq
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter

from detector.synthetic._apps import app_streams
from detector.synthetic._attacks import plan_attacks
from detector.synthetic._batch import batch_day
from detector.synthetic._config import SyntheticConfig
from detector.synthetic._context import DayContext
from detector.synthetic._formats import DAY, parse_iso_time
from detector.synthetic._identity import Record
from detector.synthetic._labels import AttackLabel
from detector.synthetic._legacy import legacy_day
from detector.synthetic._novelties import benign_novelties
from detector.synthetic._org import Organisation, build_organisation
from detector.synthetic._people import people_day
from detector.synthetic._pipelines import pipeline_day
from detector.synthetic._records import TimedRecord
from detector.synthetic._scanners import scanner_day
from detector.synthetic._services import services_day

_BY_TIME = itemgetter(0)


@dataclass(frozen=True, slots=True)
class SyntheticTrail:
    """A generated trail: its records (event-time order), labels and organisation."""

    config: SyntheticConfig
    seed: int
    organisation: Organisation
    records: list[Record]
    labels: tuple[AttackLabel, ...]
    novelties: tuple[AttackLabel, ...] = ()  # benign novelties (see ``_novelties``)


def generate(config: SyntheticConfig | None = None, seed: int = 0) -> SyntheticTrail:
    """The whole trail in memory. For large volumes use :func:`iter_records`."""
    config = config or SyntheticConfig()
    organisation = build_organisation(config, seed)
    with _collector_paused():
        records = list(iter_records(config, seed))
    labels = plan_attacks(config, organisation, seed)[1]
    novelties = benign_novelties(config, organisation)
    return SyntheticTrail(config, seed, organisation, records, labels, novelties)


def iter_records(config: SyntheticConfig | None = None, seed: int = 0) -> Iterator[Record]:
    """Every record of the trail, in event-time order.

    Application traffic (most of the volume) is built lazily as it is consumed, so a consumer
    that does not keep the records holds almost nothing, whatever the size.
    """
    config = config or SyntheticConfig()
    organisation = build_organisation(config, seed)
    attacks, _ = plan_attacks(config, organisation, seed)
    attacks_by_day: defaultdict[int, list[TimedRecord]] = defaultdict(list)
    for timed in attacks:
        attacks_by_day[(timed[0] - config.start_epoch) // DAY].append(timed)
    carried: list[TimedRecord] = []
    for day in range(config.days):
        ctx = DayContext(config, organisation, seed, day)
        streams, small = _day(ctx)
        small = carried + small + attacks_by_day.get(day, [])
        small.sort(key=_BY_TIME)
        # Sessions that run past midnight wait for the next day's merge.
        cut = _first_at_or_after(small, min(ctx.end, config.end_epoch))
        carried = small[cut:] if ctx.end < config.end_epoch else []
        for _, record in heapq.merge(small[:cut], *streams, key=_BY_TIME):
            yield record


def iter_days(config: SyntheticConfig | None = None, seed: int = 0) -> Iterator[list[Record]]:
    """The records of :func:`iter_records` grouped by UTC day of ``eventTime``."""
    config = config or SyntheticConfig()
    day_of = config.start_epoch // DAY
    batch: list[Record] = []
    for record in iter_records(config, seed):
        day = parse_iso_time(record["eventTime"]) // DAY
        if day != day_of:
            yield batch
            batch, day_of = [], day
        batch.append(record)
    yield batch


def attack_labels(config: SyntheticConfig | None = None, seed: int = 0) -> tuple[AttackLabel, ...]:
    """The labels :func:`generate` would return, without generating the normal traffic."""
    config = config or SyntheticConfig()
    return plan_attacks(config, build_organisation(config, seed), seed)[1]


def novelty_labels(config: SyntheticConfig | None = None, seed: int = 0) -> tuple[AttackLabel, ...]:
    """The benign novelties :func:`generate` would return, without generating the traffic."""
    config = config or SyntheticConfig()
    return benign_novelties(config, build_organisation(config, seed))


def _day(ctx: DayContext) -> tuple[list[Iterator[TimedRecord]], list[TimedRecord]]:
    """Lazy application streams, and everyone else's (small) day, unsorted."""
    org = ctx.org
    streams: list[Iterator[TimedRecord]] = []
    small: list[TimedRecord] = []
    for index in range(len(org.apps)):
        app_calls, lifecycle = app_streams(ctx, index)
        streams += app_calls
        small += lifecycle
    for index in range(len(org.people)):
        small += people_day(ctx, index)
    for index in range(len(org.pipelines)):
        small += pipeline_day(ctx, index)
    for index in range(len(org.legacy_users)):
        small += legacy_day(ctx, index)
    for index in range(len(org.scanners)):
        small += scanner_day(ctx, index)
    for index in range(len(org.batch_jobs)):
        small += batch_day(ctx, index)
    small += services_day(ctx)
    return streams, small


def _first_at_or_after(batch: list[TimedRecord], t: int) -> int:
    lo, hi = 0, len(batch)
    while lo < hi:
        mid = (lo + hi) // 2
        if batch[mid][0] < t:
            lo = mid + 1
        else:
            hi = mid
    return lo


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a whole trail is collected into a list.

    A trail is millions of small acyclic dicts; with the collector on, its repeated scans of
    them cost more than building them. Nothing here creates cycles, and the previous state is
    restored before :func:`generate` returns.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
