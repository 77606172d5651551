"""Walk CloudTrail's S3 layout folder by folder, listing only what a filter can select.

The layout is ``<prefix>/AWSLogs/[o-<org>/]<account>/CloudTrail/<region>/YYYY/MM/DD/<file>``.
The walk never lists a whole bucket or tree:

- accounts come from the filter when it names them (the ``AWSLogs/`` folder is still listed
  once, to find organization folders); otherwise from listing ``AWSLogs/`` and each org folder;
- regions come from the filter when it names them, otherwise from listing ``<account>/CloudTrail/``;
- days are constructed from ``since``/``until`` when both are given; otherwise the year, month
  and day folders are listed, skipping those outside the window;
- digest folders (``CloudTrail-Digest``) are walked only when asked (local folders do, to
  count digest files; an object store does not, to save requests).

Objects come out day by day, each day's objects sorted by :class:`FilePosition`, which is the
replay order; files at or before ``start_after`` are left out, and earlier days are not listed
at all. Memory holds one day's listing and the month's folder names.

The walk is written against :class:`DirectoryLister` (one call: list one folder), so local
folders, S3 and the in-memory fake share it. Imports: the standard library, :mod:`detector.errors`
and this package's filter and objects.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final, Protocol, TypeVar

from detector.archive._filter import ACCOUNT_ID, ArchiveFilter
from detector.archive._object import ArchiveObject, FilePosition
from detector.errors import ConfigError

__all__ = ["DEFAULT_LISTING_CONCURRENCY", "DirectoryLister", "Listing", "trail_key", "walk_layout"]

DEFAULT_LISTING_CONCURRENCY: Final = 8
LOG_KIND: Final = "CloudTrail"
DIGEST_KIND: Final = "CloudTrail-Digest"
_ORG: Final = re.compile(r"o-[a-z0-9]{10,32}")
_REGION: Final = re.compile(r"[a-z0-9-]+")
T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True, slots=True)
class Listing:
    """One folder's content: sub-folder names (no slash) and files as ``(key, size)``."""

    folders: tuple[str, ...] = ()
    files: tuple[tuple[str, int], ...] = field(default=())


class DirectoryLister(Protocol):
    """List one folder of a key space whose separator is ``/``; a missing folder is empty."""

    async def list_folder(self, prefix: str) -> Listing:
        """``prefix`` is ``""`` or ends with ``/``."""
        ...


@dataclass(frozen=True, slots=True)
class _Base:
    """One ``<account>/<kind>/<region>/`` folder."""

    prefix: str


async def _gather_bounded(
    items: Sequence[T], call: Callable[[T], Awaitable[U]], limit: int
) -> list[U]:
    semaphore = asyncio.Semaphore(limit)

    async def one(item: T) -> U:
        async with semaphore:
            return await call(item)

    return list(await asyncio.gather(*(one(i) for i in items)))


def split_root(prefix: str) -> tuple[str, str | None, str | None]:
    """``(AWSLogs/ folder, org, account)`` for a root given above ``AWSLogs``, at it, or at an
    org or account folder inside it."""
    parts = [p for p in prefix.replace("\\", "/").split("/") if p]
    if "AWSLogs" not in parts:
        return "".join(f"{p}/" for p in parts) + "AWSLogs/", None, None
    at = len(parts) - 1 - parts[::-1].index("AWSLogs")
    head = "".join(f"{p}/" for p in parts[: at + 1])
    inside = parts[at + 1 :]
    org = inside.pop(0) if inside and _ORG.fullmatch(inside[0]) else None
    account = inside.pop(0) if inside and ACCOUNT_ID.fullmatch(inside[0]) else None
    if inside:
        raise ConfigError(
            f"archive root {prefix!r}: give the trail's prefix (above AWSLogs/), AWSLogs/, an "
            "organization or an account folder; select regions and days with the filter"
        )
    return head, org, account


class _Walk:
    def __init__(
        self,
        lister: DirectoryLister,
        root: str,
        filter: ArchiveFilter,
        start_after: FilePosition | None,
        kinds: tuple[str, ...],
        concurrency: int,
    ) -> None:
        self.lister = lister
        self.root = root
        self.filter = filter
        self.start_after = start_after
        self.kinds = kinds
        self.concurrency = concurrency
        first = filter.first_day
        if start_after is not None and (first is None or start_after.day > first):
            first = start_after.day
        self.first = first
        self.last = filter.last_day

    async def folders(self, prefix: str) -> tuple[str, ...]:
        return (await self.lister.list_folder(prefix)).folders

    async def accounts(self) -> list[str]:
        """Account folder prefixes (``.../<account>/``) the filter selects."""
        awslogs, org, account = split_root(self.root)
        if org is not None and account is not None:
            selected = self.filter.admits_account(account)
            return [f"{awslogs}{org}/{account}/"] if selected else []
        if account is not None:
            return [f"{awslogs}{account}/"] if self.filter.admits_account(account) else []
        if org is not None:
            return await self._org_accounts(f"{awslogs}{org}/")
        top = await self.folders(awslogs)
        found = [
            f"{awslogs}{a}/"
            for a in top
            if ACCOUNT_ID.fullmatch(a) and self.filter.admits_account(a)
        ]
        orgs = [f"{awslogs}{o}/" for o in top if _ORG.fullmatch(o)]
        for org_accounts in await _gather_bounded(orgs, self._org_accounts, self.concurrency):
            found.extend(org_accounts)
        return found

    async def _org_accounts(self, org_prefix: str) -> list[str]:
        if self.filter.accounts is not None:
            return [f"{org_prefix}{a}/" for a in sorted(self.filter.accounts)]
        names = await self.folders(org_prefix)
        return [f"{org_prefix}{a}/" for a in names if ACCOUNT_ID.fullmatch(a)]

    async def bases(self) -> list[_Base]:
        kind_prefixes = [f"{a}{k}/" for a in await self.accounts() for k in self.kinds]
        regions = self.filter.regions
        if regions is not None:
            return [_Base(f"{k}{r}/") for k in kind_prefixes for r in sorted(regions)]
        listed = await _gather_bounded(kind_prefixes, self.folders, self.concurrency)
        return [
            _Base(f"{k}{r}/")
            for k, names in zip(kind_prefixes, listed, strict=True)
            for r in names
            if _REGION.fullmatch(r)
        ]

    async def days(self, bases: list[_Base]) -> AsyncIterator[tuple[date, list[_Base]]]:
        """Each day folder in the window, in order, with the bases that have it."""
        first, last = self.first, self.last
        if self.filter.since is not None and first is not None and last is not None:
            day = first
            while day <= last:
                yield day, bases
                day += timedelta(days=1)
            return
        async for item in self._discovered_days(bases):
            yield item

    async def _discovered_days(self, bases: list[_Base]) -> AsyncIterator[tuple[date, list[_Base]]]:
        lo, hi = self.first or date.min, self.last or date.max
        years = await self._numbered(bases, "", 4, lo.year, hi.year)
        for year in sorted(set().union(*years.values())):
            with_year = [b for b in bases if year in years[b]]
            m_lo = lo.month if year == lo.year else 1
            m_hi = hi.month if year == hi.year else 12
            months = await self._numbered(with_year, f"{year:04d}/", 2, m_lo, m_hi)
            for month in sorted(set().union(*months.values())):
                with_month = [b for b in with_year if month in months[b]]
                first_of_month = date(year, month, 1)
                d_lo = lo.day if (year, month) == (lo.year, lo.month) else 1
                d_hi = hi.day if (year, month) == (hi.year, hi.month) else 31
                days = await self._numbered(with_month, f"{year:04d}/{month:02d}/", 2, d_lo, d_hi)
                for day in sorted(set().union(*days.values())):
                    try:
                        when = first_of_month.replace(day=day)
                    except ValueError:
                        continue  # a "31" folder in a 30-day month is not CloudTrail's
                    yield when, [b for b in with_month if day in days[b]]

    async def _numbered(
        self, bases: list[_Base], below: str, width: int, lo: int, hi: int
    ) -> dict[_Base, set[int]]:
        """Numbered sub-folders ``lo..hi`` of ``<base><below>`` for each base."""
        listed = await _gather_bounded(
            bases, lambda b: self.folders(f"{b.prefix}{below}"), self.concurrency
        )
        return {
            b: {int(n) for n in names if len(n) == width and n.isdigit() and lo <= int(n) <= hi}
            for b, names in zip(bases, listed, strict=True)
        }

    async def day_objects(self, day: date, bases: list[_Base]) -> list[ArchiveObject]:
        path = f"{day.year:04d}/{day.month:02d}/{day.day:02d}/"
        listings = await _gather_bounded(
            bases, lambda b: self.lister.list_folder(f"{b.prefix}{path}"), self.concurrency
        )
        objects = [ArchiveObject.of_key(k, s) for listing in listings for k, s in listing.files]
        after = self.start_after
        if after is not None:
            objects = [o for o in objects if o.position > after]
        objects.sort(key=lambda o: o.position)
        return objects


async def walk_layout(
    lister: DirectoryLister,
    root: str,
    filter: ArchiveFilter,
    *,
    start_after: FilePosition | None = None,
    include_digests: bool = False,
    concurrency: int = DEFAULT_LISTING_CONCURRENCY,
) -> AsyncIterator[ArchiveObject]:
    """List the objects under ``root`` that ``filter`` may select, in replay order.

    Objects whose keys the filter rejects within a listed folder are still listed (so that
    the reader can count them); digest and stray files in day folders come out as such.
    """
    kinds = (LOG_KIND, DIGEST_KIND) if include_digests else (LOG_KIND,)
    walk = _Walk(lister, root, filter, start_after, kinds, concurrency)
    bases = await walk.bases()
    if not bases:
        return
    async for day, day_bases in walk.days(bases):
        for obj in await walk.day_objects(day, day_bases):
            yield obj


def trail_key(
    account: str,
    region: str,
    delivered: datetime,
    *,
    organization: str | None = None,
    prefix: str = "",
    unique: str = "AbCdEfGh12345678",
    kind: str = LOG_KIND,
) -> str:
    """The key CloudTrail gives a file delivered at ``delivered`` (the inverse of
    :func:`detector.events.parse_trail_key`), e.g. for writing test archives."""
    when = delivered.astimezone(UTC)
    org = f"{organization}/" if organization else ""
    head = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    name = f"{account}_{kind}_{region}_{when:%Y%m%dT%H%MZ}_{unique}.json.gz"
    return f"{head}AWSLogs/{org}{account}/{kind}/{region}/{when:%Y/%m/%d}/{name}"
