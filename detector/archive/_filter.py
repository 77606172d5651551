"""Which part of an archive a replay reads: accounts, regions and a time window.

:class:`ArchiveFilter` is decided twice. First on keys, before anything is downloaded
(:meth:`ArchiveFilter.admits_object`, and the folder-level checks the layout walk uses), with
margins because a file's key only bounds its events loosely:

- a file delivered on day D can hold events of day D-1 (just before midnight), and events
  delivered late; so day folders in ``[since - 1 day, until + 1 day]`` are read;
- a file holds events that happened before it was delivered, so a file whose delivery stamp is
  more than :data:`EARLY_DELIVERY_SLACK` before ``since`` is skipped (the slack covers the
  minute-truncated stamp and clock skew), and so is one delivered :data:`LATE_DELIVERY_MARGIN`
  or more after ``until`` (events delivered later than that are not replayed).

Then exactly, on parsed events (:meth:`ArchiveFilter.event_predicate`): ``since <= event_time <
until``; accounts (``recipient_account_id``) and regions (``region``) are checked on events only
for objects outside the layout (envelope streams), as the key decides them for trail files.

Imports: the standard library, polars, :mod:`detector.errors` and this package's objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

import polars as pl

from detector.archive._object import ArchiveObject
from detector.errors import ConfigError

__all__ = ["ACCOUNT_ID", "EARLY_DELIVERY_SLACK", "LATE_DELIVERY_MARGIN", "ArchiveFilter"]

EARLY_DELIVERY_SLACK: Final = timedelta(hours=1)
LATE_DELIVERY_MARGIN: Final = timedelta(days=1)
_DAY: Final = timedelta(days=1)
ACCOUNT_ID: Final = re.compile(r"\d{12}")  # an AWS account id, as keys and filters write it
_REGION: Final = re.compile(r"[a-z]{2}(-[a-z0-9]+)+-\d+")


def _frozen(
    values: Iterable[str] | None, pattern: re.Pattern[str], what: str
) -> frozenset[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    out = frozenset(v.strip() for v in values)
    bad = sorted(v for v in out if not pattern.fullmatch(v))
    if bad:
        raise ConfigError(f"{what}: {', '.join(map(repr, bad))} is not a valid {what[:-1]}")
    if not out:
        raise ConfigError(f"{what}: an empty selection would read nothing; omit it to read all")
    return out


@dataclass(frozen=True, slots=True, init=False)
class ArchiveFilter:
    """Accounts, regions and a half-open window ``[since, until)``; every part optional.

    >>> from datetime import UTC
    >>> f = ArchiveFilter(regions=["eu-west-1"], since=datetime(2024, 5, 1, tzinfo=UTC))
    >>> f.first_day, f.last_day
    (datetime.date(2024, 4, 30), None)
    """

    accounts: frozenset[str] | None
    regions: frozenset[str] | None
    since: datetime | None
    until: datetime | None

    def __init__(
        self,
        *,
        accounts: Iterable[str] | None = None,
        regions: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> None:
        for name, value in (("since", since), ("until", until)):
            if value is not None and value.utcoffset() is None:
                raise ConfigError(f"{name}: {value.isoformat()} has no time zone (give UTC)")
        if since is not None and until is not None and since >= until:
            raise ConfigError(
                f"since ({since.isoformat()}) must be before until ({until.isoformat()})"
            )
        object.__setattr__(self, "accounts", _frozen(accounts, ACCOUNT_ID, "accounts"))
        object.__setattr__(self, "regions", _frozen(regions, _REGION, "regions"))
        object.__setattr__(self, "since", since)
        object.__setattr__(self, "until", until)

    @property
    def first_day(self) -> date | None:
        """The first day folder that can hold selected events."""
        return None if self.since is None else (self.since - _DAY).date()

    @property
    def last_day(self) -> date | None:
        """The last day folder that can hold selected events."""
        return None if self.until is None else (self.until + _DAY).date()

    def admits_account(self, account: str) -> bool:
        return self.accounts is None or account in self.accounts

    def admits_region(self, region: str) -> bool:
        return self.regions is None or region in self.regions

    def admits_day(self, day: date) -> bool:
        first, last = self.first_day, self.last_day
        return (first is None or day >= first) and (last is None or day <= last)

    def admits_object(self, obj: ArchiveObject) -> bool:
        """Whether a listed object may hold selected events, judged on its key alone."""
        trail = obj.trail
        if trail is None:
            return True  # nothing to judge on: the events decide
        if not (
            self.admits_account(trail.account)
            and self.admits_region(trail.region)
            and self.admits_day(trail.day)
        ):
            return False
        delivered = obj.delivered
        if delivered is None:
            return True
        if self.since is not None and delivered < self.since - EARLY_DELIVERY_SLACK:
            return False
        return self.until is None or delivered < self.until + LATE_DELIVERY_MARGIN

    def event_predicate(self, *, by_account_and_region: bool) -> pl.Expr | None:
        """The exact condition on parsed events, or None when every event passes."""
        terms: list[pl.Expr] = []
        if self.since is not None:
            terms.append(pl.col("event_time") >= self.since)
        if self.until is not None:
            terms.append(pl.col("event_time") < self.until)
        if by_account_and_region and self.accounts is not None:
            terms.append(pl.col("recipient_account_id").is_in(sorted(self.accounts)))
        if by_account_and_region and self.regions is not None:
            terms.append(pl.col("region").is_in(sorted(self.regions)))
        return pl.all_horizontal(terms) if terms else None
