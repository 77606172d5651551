"""Principal profiles: what is known about each principal, as three polars frames.

Items are long form, one row per remembered thing; :attr:`Profiles.items` shows them as::

    principal_key | kind (ItemKind) | value | first_seen | last_seen | count

but they are kept as codes (:attr:`Profiles.item_codes`: principal and value as 64-bit hashes,
see :mod:`detector.features._items`) plus one shared dictionary of value texts
(:attr:`Profiles.values`): a region, an event name or a NAT address is stored once however
many principals know it, and novelty joins compare integers instead of ARNs. Profile memory:
about 40 bytes per item plus ~1.5 KB per principal row (the hour-of-week buckets).

``principals`` is one row per principal: first/last seen, call totals (all, direct, through a
VPC endpoint, with TLS details), the best TLS version seen, and calls / KMS decrypts summed per
hour-of-week bucket (two ``Array(UInt32, 168)`` columns; Monday 00:00 UTC is bucket 0). The
buckets are dense arrays rather than long rows because a busy principal fills all 168 of them
and a long row repeats the principal key: 4 bytes a bucket instead of ~60.

Forgetting: an item (and a whole principal) not seen for ``profile_ttl`` is forgotten, i.e.
judged new again; the stored frames drop it once no window that can still close could know it.
Cap: at most ``max_items_per_kind`` items per principal and kind, the most recently seen kept,
so an address-spraying principal cannot grow its profile without bound.

Profiles learn a window when it closes (:func:`learn`), never before, so a window is always
judged against what was known before it. Snapshots hold the text form
(:data:`PROFILE_ITEMS_SCHEMA`, :data:`PRINCIPALS_SCHEMA`); :func:`encode_profiles` recomputes
the codes on restore. Imports: polars, numpy and this package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import numpy as np
import polars as pl

from detector.engine import ENGINE
from detector.events import UTC_MS
from detector.features._columns import ItemKind
from detector.features._config import FeatureConfig

__all__ = [
    "HOURS_OF_WEEK",
    "ITEM_CODES_SCHEMA",
    "PRINCIPALS_SCHEMA",
    "PROFILE_ITEMS_SCHEMA",
    "TOTALS_SCHEMA",
    "VALUES_SCHEMA",
    "Profiles",
    "empty_profiles",
    "encode_profiles",
    "learn",
]

HOURS_OF_WEEK: Final = 168
BUCKETS: Final = pl.Array(pl.UInt32(), HOURS_OF_WEEK)
_ITEM_KEYS: Final = ("principal_hash", "kind", "value_hash")
_COUNT_MAX: Final = 2**32 - 1

PROFILE_ITEMS_SCHEMA: Final = pl.Schema(
    {
        "principal_key": pl.String(),
        "kind": ItemKind,
        "value": pl.String(),
        "first_seen": UTC_MS,
        "last_seen": UTC_MS,
        "count": pl.UInt32(),
    }
)
PRINCIPALS_SCHEMA: Final = pl.Schema(
    {
        "principal_key": pl.String(),
        "first_seen": UTC_MS,
        "last_seen": UTC_MS,
        "calls": pl.UInt64(),
        "direct_calls": pl.UInt64(),  # not invokedBy an AWS service
        "vpce_calls": pl.UInt64(),  # direct calls through a VPC endpoint
        "tls_calls": pl.UInt64(),  # direct calls with TLS details
        "tls_max": pl.UInt8(),  # best TLS rank seen (see detector.features._prepare.TLS_RANKS)
        "calls_by_hour_of_week": BUCKETS,
        "kms_decrypts_by_hour_of_week": BUCKETS,
    }
)
ITEM_CODES_SCHEMA: Final = pl.Schema(
    {
        "principal_hash": pl.UInt64(),
        "kind": ItemKind,
        "value_hash": pl.UInt64(),
        "first_seen": UTC_MS,
        "last_seen": UTC_MS,
        "count": pl.UInt32(),
    }
)
VALUES_SCHEMA: Final = pl.Schema({"value_hash": pl.UInt64(), "value": pl.String()})
_PRINCIPALS_IN_STATE: Final = pl.Schema({"principal_hash": pl.UInt64(), **PRINCIPALS_SCHEMA})
# Per closed window, what the principal row learns (produced by the window stage).
TOTALS_SCHEMA: Final = pl.Schema(
    {
        "principal_hash": pl.UInt64(),
        "principal_key": pl.String(),
        "window_start": UTC_MS,
        "segment": pl.UInt32(),  # bumps when the principal was forgotten before this window
        "hour_of_week": pl.Int64(),
        "first_seen": UTC_MS,
        "last_seen": UTC_MS,
        "calls": pl.UInt32(),
        "direct_calls": pl.UInt32(),
        "vpce_calls": pl.UInt32(),
        "tls_calls": pl.UInt32(),
        "tls_max": pl.UInt8(),
        "kms_decrypts": pl.UInt32(),
    }
)


@dataclass(frozen=True, slots=True)
class Profiles:
    """Principal profiles: item codes, the value texts they point to, one row per principal."""

    item_codes: pl.DataFrame  # ITEM_CODES_SCHEMA
    values: pl.DataFrame  # VALUES_SCHEMA, one row per value_hash of item_codes
    principals: pl.DataFrame  # principal_hash, then PRINCIPALS_SCHEMA
    _oldest: datetime | None = field(init=False, repr=False, compare=False)
    _items: pl.DataFrame | None = field(init=False, repr=False, compare=False, default=None)

    @property
    def items(self) -> pl.DataFrame:
        """The items as text (:data:`PROFILE_ITEMS_SCHEMA`), in storage order.

        Decoded on first use and remembered: a value is immutable, and updates that learn
        nothing hand the same value on, so a caller reading this per batch decodes once per
        learning step, not once per batch."""
        if self._items is None:
            keys = self.principals.select("principal_hash", "principal_key")
            decoded = (
                self.item_codes.lazy()
                .join(keys.lazy(), on="principal_hash", how="left", maintain_order="left")
                .join(self.values.lazy(), on="value_hash", how="left", maintain_order="left")
                .select(PROFILE_ITEMS_SCHEMA.names())
                .collect(engine=ENGINE)
            )
            object.__setattr__(self, "_items", decoded)
        assert self._items is not None
        return self._items

    def oldest_seen(self) -> datetime | None:
        """The earliest ``last_seen`` of any item or principal: nothing to forget before it."""
        return self._oldest

    def __post_init__(self) -> None:
        # Computed once per value: updates that close nothing ask for it, and must stay cheap
        # however large the profiles are.
        oldest = [
            frame.get_column("last_seen").min() for frame in (self.item_codes, self.principals)
        ]
        known = [value for value in oldest if isinstance(value, datetime)]
        object.__setattr__(self, "_oldest", min(known) if known else None)

    def estimated_size(self) -> int:
        return int(
            self.item_codes.estimated_size()
            + self.values.estimated_size()
            + self.principals.estimated_size()
        )


def empty_profiles() -> Profiles:
    return Profiles(
        pl.DataFrame(schema=ITEM_CODES_SCHEMA),
        pl.DataFrame(schema=VALUES_SCHEMA),
        pl.DataFrame(schema=_PRINCIPALS_IN_STATE),
    )


def encode_profiles(items: pl.DataFrame, principals: pl.DataFrame) -> Profiles:
    """Profiles from their text form (a snapshot's :data:`PROFILE_ITEMS_SCHEMA` and
    :data:`PRINCIPALS_SCHEMA` frames), rows kept in order."""
    coded = items.lazy().with_columns(
        pl.col("principal_key").hash().alias("principal_hash"),
        pl.col("value").hash().alias("value_hash"),
    )
    codes, values, rows = pl.collect_all(
        [
            coded.select(ITEM_CODES_SCHEMA.names()),
            coded.select(VALUES_SCHEMA.names()).unique("value_hash", maintain_order=True),
            principals.lazy().select(
                pl.col("principal_key").hash().alias("principal_hash"), pl.all()
            ),
        ],
        engine=ENGINE,
    )
    return Profiles(codes, values, rows)


def _learn_items(known: pl.LazyFrame, items: pl.LazyFrame) -> pl.LazyFrame:
    seen = items.group_by(_ITEM_KEYS).agg(
        pl.col("first_time").min().alias("first_seen"),
        pl.col("last_time").max().alias("last_seen"),
        pl.col("n").sum().alias("count"),
    )
    return known.join(
        seen, on=_ITEM_KEYS, how="full", coalesce=True, suffix="_new", maintain_order="left"
    ).select(
        *_ITEM_KEYS,
        pl.min_horizontal("first_seen", "first_seen_new").alias("first_seen"),
        pl.max_horizontal("last_seen", "last_seen_new").alias("last_seen"),
        (
            pl.col("count").cast(pl.UInt64).fill_null(0)
            + pl.col("count_new").cast(pl.UInt64).fill_null(0)
        )
        .clip(upper_bound=_COUNT_MAX)
        .cast(pl.UInt32)
        .alias("count"),
    )


def _cap_items(items: pl.DataFrame, values: pl.DataFrame, cap: int) -> pl.DataFrame:
    """Keep the ``cap`` most recently seen items of each principal and kind (ties: by text)."""
    crowded = items.group_by("principal_hash", "kind").len().filter(pl.col("len") > cap)
    if crowded.height == 0:
        return items
    groups = crowded.select("principal_hash", "kind")
    over = items.join(groups, on=["principal_hash", "kind"], how="semi")
    kept = (
        over.join(values, on="value_hash", how="left")
        .sort(
            ["principal_hash", "kind", "last_seen", "value"],
            descending=[False, False, True, False],
        )
        .group_by("principal_hash", "kind", maintain_order=True)
        .head(cap)
    )
    rest = items.join(groups, on=["principal_hash", "kind"], how="anti")
    return pl.concat([rest, kept.select(rest.columns)], how="vertical")


def _hour_buckets(totals: pl.DataFrame, keys: pl.Series) -> list[pl.Series]:
    """Dense per-principal hour-of-week sums of calls and KMS decrypts, rows in ``keys`` order."""
    index = pl.DataFrame({"principal_hash": keys}).with_row_index("row")
    located = totals.join(index, on="principal_hash").select(
        (pl.col("row").cast(pl.Int64) * HOURS_OF_WEEK + pl.col("hour_of_week")).alias("slot"),
        pl.col("calls", "kms_decrypts").cast(pl.Float64),
    )
    slots = located.get_column("slot").to_numpy()
    buckets = []
    for column in ("calls", "kms_decrypts"):
        sums = np.bincount(
            slots,
            weights=located.get_column(column).to_numpy(),
            minlength=keys.len() * HOURS_OF_WEEK,
        )
        dense = np.minimum(sums, _COUNT_MAX).astype(np.uint32).reshape(-1, HOURS_OF_WEEK)
        buckets.append(pl.Series(f"{column}_by_hour_of_week", dense, dtype=BUCKETS))
    return buckets


def _learn_principals(known: pl.LazyFrame, totals: pl.DataFrame) -> pl.LazyFrame:
    # Only the last segment counts: a principal forgotten before a later window starts anew.
    recent = totals.filter(pl.col("segment") == pl.col("segment").max().over("principal_hash"))
    learned = recent.group_by("principal_hash").agg(
        pl.col("principal_key").first(),
        pl.col("first_seen").min(),
        pl.col("last_seen").max(),
        *(pl.col(c).cast(pl.UInt64).sum() for c in ("calls", "direct_calls", "vpce_calls")),
        pl.col("tls_calls").cast(pl.UInt64).sum(),
        pl.col("tls_max").max(),
        (pl.col("segment").max() > 0).alias("restarted"),
    )
    learned = learned.with_columns(_hour_buckets(recent, learned.get_column("principal_hash")))
    restarted = learned.lazy().filter(pl.col("restarted")).select("principal_hash")
    prior = known.join(restarted, on="principal_hash", how="anti")
    zeros = pl.lit([0] * HOURS_OF_WEEK, dtype=BUCKETS)
    return prior.join(
        learned.lazy().drop("restarted"),
        on="principal_hash",
        how="full",
        coalesce=True,
        suffix="_new",
        maintain_order="left",
    ).select(
        "principal_hash",
        pl.coalesce("principal_key", "principal_key_new").alias("principal_key"),
        pl.min_horizontal("first_seen", "first_seen_new").alias("first_seen"),
        pl.max_horizontal("last_seen", "last_seen_new").alias("last_seen"),
        *(
            (pl.col(c).fill_null(0) + pl.col(f"{c}_new").fill_null(0)).alias(c)
            for c in ("calls", "direct_calls", "vpce_calls", "tls_calls")
        ),
        pl.max_horizontal("tls_max", "tls_max_new").alias("tls_max"),
        *(
            (pl.col(c).fill_null(zeros) + pl.col(f"{c}_new").fill_null(zeros)).alias(c)
            for c in ("calls_by_hour_of_week", "kms_decrypts_by_hour_of_week")
        ),
    )


def learn(
    profiles: Profiles,
    items: pl.DataFrame,
    values: pl.DataFrame,
    totals: pl.DataFrame,
    forget_before: datetime,
    config: FeatureConfig,
) -> Profiles:
    """Fold closed windows into the profiles, then forget and cap.

    ``items`` are window items (:data:`~detector.features._items.ITEMS_SCHEMA`), ``values``
    their texts (:data:`VALUES_SCHEMA`, one row per code), ``totals`` window totals
    (:data:`TOTALS_SCHEMA`). Anything last seen before ``forget_before`` (the
    watermark minus window minus TTL: no window that can still close would know it) is dropped.
    Returns ``profiles`` itself when there is nothing to learn or forget.
    """
    oldest = profiles.oldest_seen()
    if not items.height and not totals.height and (oldest is None or oldest >= forget_before):
        return profiles
    cutoff = pl.lit(forget_before, dtype=UTC_MS)
    codes = profiles.item_codes.lazy()
    known_values = profiles.values.lazy()
    if items.height:
        codes = _learn_items(codes, items.lazy())
        known_values = pl.concat(
            [known_values, values.lazy().select(VALUES_SCHEMA.names())]
        ).unique("value_hash", keep="first", maintain_order=True)
    principals = profiles.principals.lazy()
    if totals.height:
        principals = _learn_principals(principals, totals)
    learned_codes, all_values, kept_principals = pl.collect_all(
        [
            codes.cast(ITEM_CODES_SCHEMA),
            known_values,
            principals.filter(pl.col("last_seen") >= cutoff)
            .select(_PRINCIPALS_IN_STATE.names())
            .cast(_PRINCIPALS_IN_STATE),
        ],
        engine=ENGINE,
    )
    kept_codes = learned_codes.filter(pl.col("last_seen") >= cutoff)
    capped = _cap_items(kept_codes, all_values, config.max_items_per_kind)
    if capped.height < learned_codes.height:
        # Some items were forgotten or capped: drop the texts no item points to any more.
        used = capped.select("value_hash")
        all_values = all_values.join(used, on="value_hash", how="semi", maintain_order="left")
    return Profiles(capped.select(ITEM_CODES_SCHEMA.names()), all_values, kept_principals)
