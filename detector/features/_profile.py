"""Principal profiles: what is known about each principal, as two polars frames.

``items`` is long form, one row per remembered thing::

    principal_key | kind (ItemKind) | value | first_seen | last_seen | count

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
judged against what was known before it. Imports: polars, numpy and this package.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import numpy as np
import polars as pl

from detector.features._columns import ItemKind
from detector.features._config import FeatureConfig

__all__ = [
    "HOURS_OF_WEEK",
    "PRINCIPALS_SCHEMA",
    "PROFILE_ITEMS_SCHEMA",
    "TOTALS_SCHEMA",
    "Profiles",
    "empty_profiles",
    "learn",
]

UTC_MS: Final = pl.Datetime("ms", "UTC")
HOURS_OF_WEEK: Final = 168
BUCKETS: Final = pl.Array(pl.UInt32(), HOURS_OF_WEEK)
_ITEM_KEYS: Final = ("principal_key", "kind", "value")
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
# Per closed window, what the principal row learns (produced by the window stage).
TOTALS_SCHEMA: Final = pl.Schema(
    {
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
    items: pl.DataFrame  # PROFILE_ITEMS_SCHEMA
    principals: pl.DataFrame  # PRINCIPALS_SCHEMA

    def estimated_size(self) -> int:
        return int(self.items.estimated_size() + self.principals.estimated_size())


def empty_profiles() -> Profiles:
    return Profiles(
        pl.DataFrame(schema=PROFILE_ITEMS_SCHEMA), pl.DataFrame(schema=PRINCIPALS_SCHEMA)
    )


def _learn_items(known: pl.DataFrame, items: pl.DataFrame) -> pl.DataFrame:
    seen = items.group_by(_ITEM_KEYS).agg(
        pl.col("first_time").min().alias("first_seen"),
        pl.col("last_time").max().alias("last_seen"),
        pl.col("n").sum().alias("count"),
    )
    return known.join(seen, on=_ITEM_KEYS, how="full", coalesce=True, suffix="_new").select(
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


def _cap_items(items: pl.DataFrame, cap: int) -> pl.DataFrame:
    """Keep the ``cap`` most recently seen items of each principal and kind."""
    crowded = items.group_by("principal_key", "kind").len().filter(pl.col("len") > cap)
    if crowded.height == 0:
        return items
    groups = crowded.select("principal_key", "kind")
    over = items.join(groups, on=["principal_key", "kind"], how="semi")
    kept = (
        over.sort(
            ["principal_key", "kind", "last_seen", "value"], descending=[False, False, True, False]
        )
        .group_by("principal_key", "kind", maintain_order=True)
        .head(cap)
    )
    rest = items.join(groups, on=["principal_key", "kind"], how="anti")
    return pl.concat([rest, kept.select(rest.columns)], how="vertical")


def _hour_buckets(totals: pl.DataFrame, column: str, keys: pl.Series) -> pl.Series:
    """Dense per-principal hour-of-week sums of ``column``, rows in the order of ``keys``."""
    index = pl.DataFrame({"principal_key": keys}).with_row_index("row")
    located = totals.join(index, on="principal_key").select(
        (pl.col("row").cast(pl.Int64) * HOURS_OF_WEEK + pl.col("hour_of_week")).alias("slot"),
        pl.col(column).cast(pl.Float64),
    )
    sums = np.bincount(
        located.get_column("slot").to_numpy(),
        weights=located.get_column(column).to_numpy(),
        minlength=keys.len() * HOURS_OF_WEEK,
    )
    dense = np.minimum(sums, _COUNT_MAX).astype(np.uint32).reshape(-1, HOURS_OF_WEEK)
    return pl.Series(column, dense, dtype=BUCKETS)


def _learn_principals(known: pl.DataFrame, totals: pl.DataFrame) -> pl.DataFrame:
    # Only the last segment counts: a principal forgotten before a later window starts anew.
    recent = totals.filter(pl.col("segment") == pl.col("segment").max().over("principal_key"))
    learned = recent.group_by("principal_key").agg(
        pl.col("first_seen").min(),
        pl.col("last_seen").max(),
        *(pl.col(c).cast(pl.UInt64).sum() for c in ("calls", "direct_calls", "vpce_calls")),
        pl.col("tls_calls").cast(pl.UInt64).sum(),
        pl.col("tls_max").max(),
        (pl.col("segment").max() > 0).alias("restarted"),
    )
    keys = learned.get_column("principal_key")
    learned = learned.with_columns(
        _hour_buckets(recent, "calls", keys).alias("calls_by_hour_of_week"),
        _hour_buckets(recent, "kms_decrypts", keys).alias("kms_decrypts_by_hour_of_week"),
    )
    restarted = learned.filter(pl.col("restarted")).select("principal_key")
    prior = known.join(restarted, on="principal_key", how="anti")
    zeros = pl.lit([0] * HOURS_OF_WEEK, dtype=BUCKETS)
    return prior.join(
        learned.drop("restarted"), on="principal_key", how="full", coalesce=True, suffix="_new"
    ).select(
        "principal_key",
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
    totals: pl.DataFrame,
    forget_before: datetime,
    config: FeatureConfig,
) -> Profiles:
    """Fold closed windows into the profiles, then forget and cap.

    ``items`` are window items (:data:`~detector.features._items.ITEMS_SCHEMA`), ``totals``
    window totals (:data:`TOTALS_SCHEMA`). Anything last seen before ``forget_before`` (the
    watermark minus window minus TTL: no window that can still close would know it) is dropped.
    """
    known_items = profiles.items
    known_principals = profiles.principals
    if items.height:
        known_items = _learn_items(known_items, items)
    if totals.height:
        known_principals = _learn_principals(known_principals, totals)
    cutoff = pl.lit(forget_before, dtype=UTC_MS)
    known_items = _cap_items(
        known_items.filter(pl.col("last_seen") >= cutoff), config.max_items_per_kind
    )
    known_principals = known_principals.filter(pl.col("last_seen") >= cutoff)
    return Profiles(
        known_items.select(PROFILE_ITEMS_SCHEMA.names()).cast(PROFILE_ITEMS_SCHEMA),
        known_principals.select(PRINCIPALS_SCHEMA.names()).cast(PRINCIPALS_SCHEMA),
    )
