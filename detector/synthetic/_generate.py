"""Put the actors together: one day at a time, in event-time order, attacks included.

:func:`iter_days` is the engine: for each UTC day it runs every actor's generator, adds the
attack records that fall on that day, sorts by event time, and holds back the few records of
sessions that run past midnight for the next day, so the whole stream is in event-time order.
Memory is bounded by one day of records, which is how a benchmark makes millions of events.

Imports: the standard library and this package's modules.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter

from detector.synthetic._apps import app_day
from detector.synthetic._attacks import plan_attacks
from detector.synthetic._config import DAY, SyntheticConfig
from detector.synthetic._context import DayContext
from detector.synthetic._identity import Record
from detector.synthetic._labels import AttackLabel
from detector.synthetic._legacy import legacy_day
from detector.synthetic._org import Organisation, build_organisation
from detector.synthetic._people import people_day
from detector.synthetic._pipelines import pipeline_day
from detector.synthetic._records import TimedRecord
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


def generate(config: SyntheticConfig | None = None, seed: int = 0) -> SyntheticTrail:
    """The whole trail in memory. For large volumes use :func:`iter_records`."""
    config = config or SyntheticConfig()
    organisation = build_organisation(config, seed)
    records = [record for day in iter_days(config, seed) for record in day]
    labels = plan_attacks(config, organisation, seed)[1]
    return SyntheticTrail(config, seed, organisation, records, labels)


def iter_records(config: SyntheticConfig | None = None, seed: int = 0) -> Iterator[Record]:
    """Every record of the trail, in event-time order, one day in memory at a time."""
    for day in iter_days(config, seed):
        yield from day


def attack_labels(config: SyntheticConfig | None = None, seed: int = 0) -> tuple[AttackLabel, ...]:
    """The labels :func:`generate` would return, without generating the normal traffic."""
    config = config or SyntheticConfig()
    return plan_attacks(config, build_organisation(config, seed), seed)[1]


def iter_days(config: SyntheticConfig | None = None, seed: int = 0) -> Iterator[list[Record]]:
    """One list of records per UTC day, each sorted by event time."""
    config = config or SyntheticConfig()
    organisation = build_organisation(config, seed)
    attacks, _ = plan_attacks(config, organisation, seed)
    attacks_by_day: defaultdict[int, list[TimedRecord]] = defaultdict(list)
    for timed in attacks:
        attacks_by_day[(timed[0] - config.start_epoch) // DAY].append(timed)
    carried: list[TimedRecord] = []
    for day in range(config.days):
        ctx = DayContext(config, organisation, seed, day)
        with _collector_paused():
            batch = carried + _day(ctx) + attacks_by_day.get(day, [])
            batch.sort(key=_BY_TIME)
        cut = _first_at_or_after(batch, min(ctx.end, config.end_epoch))
        carried = batch[cut:] if ctx.end < config.end_epoch else []
        yield [record for _, record in batch[:cut]]


def _day(ctx: DayContext) -> list[TimedRecord]:
    org = ctx.org
    out: list[TimedRecord] = []
    for index in range(len(org.apps)):
        out += app_day(ctx, index)
    for index in range(len(org.people)):
        out += people_day(ctx, index)
    for index in range(len(org.pipelines)):
        out += pipeline_day(ctx, index)
    for index in range(len(org.legacy_users)):
        out += legacy_day(ctx, index)
    out += services_day(ctx)
    return out


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
    """Pause the cyclic garbage collector while a day is built.

    A day is hundreds of thousands of small acyclic dicts; with the collector on, its
    repeated scans of them halve the generation speed. Nothing here creates cycles, and the
    previous state is restored before any record leaves this module.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
