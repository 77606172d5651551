"""Closed windows -> feature rows, judged against the profiles as they were before each window.

One call handles every window that closes together (many windows of one principal included):
items are marked new when neither the stored profile nor an *earlier* window of the same call
knows them (``shift().over(..., order_by=window_start)``), and the hour-of-week rates and
habits (VPC endpoint, TLS) add running sums of earlier windows to the stored totals. So a
window's row is the same whether its predecessors closed in this call or in earlier ones.

How: the events are read twice. Once grouped on their combination code (window, service,
user agent, every item value and every flag, see :mod:`detector.features._prepare`), which
folds events alike into one row with a count and a time span; every count, distinct count and
item of a window is then computed from those rows, far fewer than events (a busy workload
repeats the same calls from the same places). And once grouped by window for what depends on
order (the latest identity, the earliest event ids, source addresses in order of first use),
ordered by an *order key* (:func:`_order_key`): the event time, ties broken by the event id's
64-bit code. CloudTrail times are whole seconds, so most events of a window tie on time; the
code (not the id text) decides among them, so the sample ids are a deterministic pick among
the events of the first second, the same for any batching or arrival order (two ids of one
millisecond sharing the code's top 42 bits, odds 2**-42 per pair, would tie: accepted, like
code collisions). Only a group's picked rows are sorted and gathered, never the whole frame.
Everything is keyed on 64-bit codes; text is carried only for the row's
context and the items' names. Expressions are built once per configuration and cached: on a
micro-batch, building them would cost as much as running them.

Rates: the usual rate of a principal at hour-of-week ``h`` is its calls summed over bucket
``h`` divided by the windows of bucket ``h`` that elapsed since the principal was first seen;
ratios are Laplace-smoothed, ``(now + 1) / (usual + 1)``, so 1.0 means "as usual" and a
principal with no history gets ``now + 1``.

Imports: polars and this package.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import polars as pl

from detector.engine import ENGINE
from detector.events import UTC_MS
from detector.features._columns import (
    ITEM_KINDS,
    NEW_ITEM_COLUMNS,
    SERVICE_FAMILIES,
    closed_window_schema,
    context_schema,
    feature_columns,
)
from detector.features._config import FeatureConfig
from detector.features._items import (
    DERIVED_ITEM_KINDS,
    EVENT_ITEM_KINDS,
    ITEMS_SCHEMA,
    derived_item_exprs,
    hash_column,
    value_column,
    value_hash,
)
from detector.features._prepare import COMBINED_FLAGS, service_family
from detector.features._profile import TOTALS_SCHEMA, VALUES_SCHEMA, Profiles

__all__ = ["ClosedWindows", "close_windows", "empty_closed_windows"]

WINDOW: Final = "window_hash"  # one code per (principal, window start)
_HOUR_MS: Final = 3_600_000
_WEEK_MS: Final = 168 * _HOUR_MS
_MONDAY_SHIFT_MS: Final = 72 * _HOUR_MS  # 1970-01-01 was a Thursday
_TLS_LEVELS: Final = (1, 2, 3, 4)
# The order key's low bits: milliseconds into a window, which is at most an hour (< 2**22 ms).
_OFFSET_BITS: Final = 22
# Per-event flags summed per window (column in the pending frame -> total's name).
_FLAG_SUMS: Final = {
    "is_write": "write_calls",
    "is_error": "error_calls",
    "is_denied": "denied_calls",
    "is_private_ip": "private_ip_calls",
    "is_aws_service_ip": "aws_service_calls",
    "is_direct": "direct_calls",
    "is_foreign_vpce": "foreign_vpce_calls",
    "is_kms_decrypt": "kms_decrypts",
    "is_console_login": "console_logins",
    "is_console_login_without_mfa": "console_logins_without_mfa",
    "is_console_login_failure": "console_login_failures",
}


@dataclass(frozen=True, slots=True)
class ClosedWindows:
    rows: pl.DataFrame  # closed_window_schema(config.window)
    items: pl.DataFrame  # what the windows touched, for learning (ITEMS_SCHEMA)
    values: pl.DataFrame  # the items' texts, one row per value code (VALUES_SCHEMA)
    totals: pl.DataFrame  # what the principal rows learn (TOTALS_SCHEMA)


def empty_closed_windows(config: FeatureConfig) -> ClosedWindows:
    return _empty_closed_windows(config.window)


@functools.lru_cache(maxsize=8)
def _empty_closed_windows(window: timedelta) -> ClosedWindows:
    # Built once per window length: most updates close nothing, and building the 56-column
    # schema costs more than the rest of such an update.
    return ClosedWindows(
        pl.DataFrame(schema=closed_window_schema(window)),
        pl.DataFrame(schema=ITEMS_SCHEMA),
        pl.DataFrame(schema=VALUES_SCHEMA),
        pl.DataFrame(schema=TOTALS_SCHEMA),
    )


def _order_key(config: FeatureConfig) -> pl.Expr:
    """One integer that orders the events of a window: milliseconds into the window in the high
    bits, the top bits of the id's hash below them (events of one second tie on time)."""
    assert config.window_ms < 1 << _OFFSET_BITS  # a window divides one hour
    offset = (pl.col("event_time").cast(pl.Int64) - pl.col("window_start").cast(pl.Int64)).cast(
        pl.UInt64
    )
    id_bits = pl.col("event_hash") // (1 << _OFFSET_BITS)
    return (offset * (1 << (64 - _OFFSET_BITS)) + id_bits).alias("order_key")


def _folded(events: pl.LazyFrame) -> pl.LazyFrame:
    """Events alike (same combination code: window, service, user agent, every item and every
    flag) folded into one row, in order of first appearance (see :func:`_shared`)."""
    return events.group_by("combination_hash", maintain_order=True).agg(
        pl.col("event_time").min().alias("first_time"),
        pl.col("event_time").max().alias("last_time"),
        pl.len().cast(pl.UInt32).alias("n"),
    )


def _shared(events: pl.LazyFrame) -> pl.LazyFrame:
    """What the events of each folded row share, read off the first of them: rows line up
    with :func:`_folded`'s. (A filter is much cheaper than a ``first()`` per column.)"""
    return events.filter(pl.col("combination_hash").is_first_distinct()).select(
        WINDOW,
        "principal_hash",
        "window_start",
        "source_hash",
        "event_source",
        "user_agent",
        *(hash_column(k) for k in EVENT_ITEM_KINDS),
        *(value_column(k) for k in EVENT_ITEM_KINDS),
        *COMBINED_FLAGS,
    )


def _combinations(folded: pl.DataFrame, shared: pl.DataFrame) -> pl.DataFrame:
    """Folded rows with what their events share, the derived items and the service family."""
    return (
        folded.hstack(shared)
        .lazy()
        .with_columns(service_family("event_source").alias("family"), *derived_item_exprs())
        .with_columns(
            value_hash(pl.col(value_column(k))).alias(hash_column(k)) for k in DERIVED_ITEM_KINDS
        )
        .collect(engine=ENGINE)
    )


def _in_order(events: pl.LazyFrame, config: FeatureConfig) -> pl.LazyFrame:
    """Per window, what depends on event order (:func:`_order_key` decides, so the result is
    the same whatever order the events arrived in): the latest identity, the earliest ids, the
    distinct source addresses in order of first use. A sort within each group, not of the
    whole frame: only the picked rows are gathered."""
    key = pl.col("order_key")
    return events.group_by(WINDOW).agg(
        pl.col("principal_key").first(),
        pl.col("principal_type", "principal_arn", "account_id").get(key.arg_max()),
        pl.col("event_id").sort_by(key).head(config.sample_event_ids).alias("event_ids"),
        pl.col("source_ip")
        .sort_by(key)
        .unique(maintain_order=True)
        .drop_nulls()
        .head(config.sample_source_ips)
        .alias("source_ips"),
    )


def _window_totals(combinations: pl.LazyFrame) -> pl.LazyFrame:
    masked, aggs = _totals_exprs()
    return combinations.with_columns(masked).group_by(WINDOW).agg(aggs)


@functools.cache
def _totals_exprs() -> tuple[tuple[pl.Expr, ...], tuple[pl.Expr, ...]]:
    """Per folded row, its calls under each condition (0 when it does not hold); then the
    window aggregates. Plain sums of masked columns keep group-by on its fast path, which a
    ``filter()`` inside ``agg`` leaves."""
    family = pl.col("family")
    direct = pl.col("is_direct")
    tls_rank = pl.col("tls_rank")
    conditions = {
        **{name: pl.col(flag) for flag, name in _FLAG_SUMS.items()},
        "vpce_calls": direct & pl.col(hash_column("vpc_endpoint")).is_not_null(),
        "tls_calls": direct & pl.col("tls_present"),
        **{f"tls_{level}_calls": tls_rank == level for level in _TLS_LEVELS},
        **{f"{f}_calls": family == f for f in SERVICE_FAMILIES},
    }
    masked = tuple(
        pl.when(condition).then(pl.col("n")).otherwise(0).alias(name)
        for name, condition in conditions.items()
    )
    aggs = (
        pl.col("principal_hash", "window_start").first(),
        pl.col("first_time").min().alias("first_seen"),
        pl.col("last_time").max().alias("last_seen"),
        pl.col("n").sum().cast(pl.UInt32).alias("calls"),
        *(pl.col(name).sum().cast(pl.UInt32) for name in conditions),
        tls_rank.max().alias("tls_max"),
        pl.col(hash_column("public_ip"))
        .drop_nulls()
        .n_unique()
        .cast(pl.UInt32)
        .alias("public_ips"),
        # (service, "<service>:<name>") pairs are exactly the distinct (eventSource, eventName)
        pl.struct("source_hash", hash_column("event_name"))
        .n_unique()
        .cast(pl.UInt32)
        .alias("event_names_distinct"),
        pl.col("source_hash").n_unique().cast(pl.UInt32).alias("services_distinct"),
    )
    return masked, aggs


def _window_items(combinations: pl.LazyFrame) -> pl.LazyFrame:
    """All item kinds of every window, long form (:data:`ITEMS_SCHEMA` plus the window code).

    One group-by per kind on integer keys; the texts come apart (:func:`_item_values`): taking
    a string ``first()`` per item would cost as much as the rest."""
    kind_dtype = ITEMS_SCHEMA["kind"]
    keys = (WINDOW, "principal_hash", "window_start")
    return pl.concat(
        [
            combinations.filter(pl.col(hash_column(kind)).is_not_null())
            .group_by(*keys, hash_column(kind))
            .agg(
                pl.col("first_time").min(),
                pl.col("last_time").max(),
                pl.col("n").sum().cast(pl.UInt32),
            )
            .select(
                *keys,
                pl.lit(kind, kind_dtype).alias("kind"),
                pl.col(hash_column(kind)).alias("value_hash"),
                "first_time",
                "last_time",
                "n",
            )
            for kind in ITEM_KINDS
        ],
        how="vertical",
    )


def _item_values(combinations: pl.LazyFrame) -> pl.LazyFrame:
    """The text of each item code of the windows, once (:data:`VALUES_SCHEMA`)."""
    return pl.concat(
        [
            combinations.select(
                pl.col(hash_column(kind)).alias("value_hash"),
                pl.col(value_column(kind)).alias("value"),
            )
            .drop_nulls("value_hash")
            .unique("value_hash")
            for kind in ITEM_KINDS
        ],
        how="vertical",
    ).unique("value_hash")


def _novelty(
    items: pl.LazyFrame, values: pl.LazyFrame, profiles: Profiles, config: FeatureConfig
) -> pl.LazyFrame:
    """Per window: how many items of each kind are new, and which (capped, by first use)."""
    item_keys = ["principal_hash", "kind", "value_hash"]
    known = profiles.item_codes.lazy().select(*item_keys, pl.col("last_seen").alias("known_until"))
    earlier = pl.col("last_time").shift(1).over(item_keys, order_by="window_start")
    last_seen_before = pl.coalesce(earlier, pl.col("known_until"))
    gap = pl.col("window_start") - last_seen_before
    marked = items.join(known, on=item_keys, how="left").with_columns(
        (last_seen_before.is_null() | (gap > config.profile_ttl)).alias("is_new")
    )
    # Sort the (few) new items once, then take the first few per kind: no sort per group.
    per_kind = (
        marked.filter(pl.col("is_new"))
        .join(values, on="value_hash", how="left")
        .sort(WINDOW, "kind", "first_time", "value")
        .group_by(WINDOW, "kind", maintain_order=True)
        .agg(pl.len().alias("count"), pl.col("value").head(config.sample_new_items))
    )
    return (
        per_kind.with_columns(_novelty_columns())
        .group_by(WINDOW)
        .agg(
            *(pl.col(f"new_{k}s_count").sum() for k in ITEM_KINDS),
            *(pl.col(NEW_ITEM_COLUMNS[k]).first(ignore_nulls=True) for k in ITEM_KINDS),
        )
    )


@functools.cache
def _novelty_columns() -> tuple[pl.Expr, ...]:
    # One row per window and kind: spread each kind into its own columns (a pivot).
    kind = pl.col("kind")
    return (
        *(
            pl.when(kind == k)
            .then(pl.col("count"))
            .otherwise(0)
            .cast(pl.UInt32)
            .alias(f"new_{k}s_count")
            for k in ITEM_KINDS
        ),
        *(pl.when(kind == k).then(pl.col("value")).alias(NEW_ITEM_COLUMNS[k]) for k in ITEM_KINDS),
    )


def _main_region(items: pl.LazyFrame, values: pl.LazyFrame) -> pl.LazyFrame:
    """The most frequent region of each window (ties: the first in name order)."""
    return (
        items.filter(pl.col("kind") == "region")
        .join(values, on="value_hash", how="left")
        .sort(WINDOW, "n", "value", descending=[False, True, False])
        .group_by(WINDOW, maintain_order=True)
        .agg(pl.col("value").first().alias("region"))
    )


def _windows_of_bucket_before(t_ms: pl.Expr, hour: pl.Expr, window_ms: int) -> pl.Expr:
    """How many windows of hour-of-week ``hour`` start before ``t_ms`` (since the epoch)."""
    shifted = t_ms + _MONDAY_SHIFT_MS
    into_bucket = ((shifted % _WEEK_MS) - hour * _HOUR_MS).clip(0, _HOUR_MS)
    per_hour = _HOUR_MS // window_ms
    return (shifted // _WEEK_MS) * per_hour + (into_bucket + window_ms - 1) // window_ms


@dataclass(frozen=True, slots=True)
class _Running:
    """Aggregates over a principal's earlier windows of this call, in window order.

    When every principal closes a single window (the usual micro-batch: all windows end at the
    same instant), each group is that row alone and the aggregates reduce to plain expressions,
    with no window function to plan and evaluate.
    """

    single: bool

    def sum_through(self, value: pl.Expr, over: list[str]) -> pl.Expr:
        """Sum of this and earlier windows."""
        return value if self.single else value.cum_sum().over(over, order_by="window_start")

    def sum_before(self, value: pl.Expr, over: list[str]) -> pl.Expr:
        """Sum of earlier windows (Int64)."""
        if self.single:
            return pl.lit(0, pl.Int64)
        return value.cum_sum().over(over, order_by="window_start") - value

    def previous_time(self, value: pl.Expr, over: list[str]) -> pl.Expr:
        if self.single:
            return pl.lit(None, UTC_MS)
        return value.shift(1).over(over, order_by="window_start")

    def max_before(self, value: pl.Expr, over: list[str]) -> pl.Expr:
        """Largest of earlier windows, 0 if none (UInt8)."""
        if self.single:
            return pl.lit(0, pl.UInt8)
        return value.cum_max().shift(1, fill_value=0).over(over, order_by="window_start")

    def group_min(self, value: pl.Expr, over: list[str]) -> pl.Expr:
        return value if self.single else value.min().over(over)

    def after_first(self, value: pl.Expr, over: list[str]) -> pl.Expr:
        """Whether an earlier row of the group has a smaller value."""
        return pl.lit(False) if self.single else value > value.min().over(over)


def _rates(totals: pl.DataFrame, profiles: Profiles, config: FeatureConfig) -> pl.LazyFrame:
    """Priors from the profile plus earlier windows of this call, and the features using them."""
    principal = totals.get_column("principal_hash")
    known = profiles.principals.lazy().select(
        "principal_hash",
        pl.all().exclude("principal_hash", "principal_key").name.prefix("known_"),
    )
    rates = totals.lazy().join(known, on="principal_hash", how="left")
    for stage in _rates_stages(config, single=principal.n_unique() == principal.len()):
        rates = rates.with_columns(stage)
    return rates


@functools.lru_cache(maxsize=16)
def _rates_stages(config: FeatureConfig, *, single: bool) -> tuple[tuple[pl.Expr, ...], ...]:
    w = config.window_ms
    running = _Running(single)
    start = pl.col("window_start")
    start_ms = start.cast(pl.Int64)
    by_principal = ["principal_hash"]
    earlier_last = running.previous_time(pl.col("last_seen"), by_principal)
    prior_last = pl.coalesce(earlier_last, pl.col("known_last_seen"))
    segment = ((start - prior_last) > config.profile_ttl).fill_null(False).cast(pl.UInt32)
    in_segment = ["principal_hash", "segment"]
    # Subexpressions several features share become columns of an earlier stage: a plan with
    # fewer expression nodes costs less to optimise and run, on a few rows per micro-batch.
    is_from_profile = (pl.col("segment") == 0) & pl.col("known_first_seen").is_not_null()
    from_profile = pl.col("from_profile")

    def prior(column: str, known_value: pl.Expr, over: list[str]) -> pl.Expr:
        value = pl.col(column).cast(pl.Int64)
        before = running.sum_before(value, over)
        return pl.when(from_profile).then(known_value.cast(pl.Int64)).otherwise(0) + before

    first_of_segment = running.group_min(pl.col("first_seen"), in_segment)
    prior_first = (
        pl.when(is_from_profile)
        .then(pl.col("known_first_seen"))
        .when(running.after_first(start, in_segment))
        .then(first_of_segment)
    )
    hour = ((start_ms // _HOUR_MS) + 72) % 168
    first_window_ms = (pl.col("prior_first").cast(pl.Int64) // w) * w
    elapsed = _windows_of_bucket_before(start_ms, hour, w) - _windows_of_bucket_before(
        first_window_ms, hour, w
    )
    in_bucket = [*in_segment, "hour_of_week"]

    def ratio(now: str, known_buckets: str) -> pl.Expr:
        usual_sum = prior(
            now, pl.col(known_buckets).arr.get(pl.col("hour_of_week"), null_on_oob=True), in_bucket
        )
        usual = pl.when(pl.col("elapsed") > 0).then(usual_sum / pl.col("elapsed")).otherwise(0.0)
        return (pl.col(now).cast(pl.Float64) + 1.0) / (usual + 1.0)

    earlier_tls = running.max_before(pl.col("tls_max"), in_segment)
    prior_tls = pl.max_horizontal(
        pl.when(from_profile).then(pl.col("known_tls_max")).otherwise(0), earlier_tls
    )
    prior_direct = pl.col("prior_direct")

    def habit(column: str) -> pl.Expr:
        share = prior(column, pl.col(f"known_{column}"), in_segment)
        return (prior_direct >= config.habit_min_calls) & (
            share >= config.habit_share * prior_direct
        )

    direct = pl.col("direct_calls").cast(pl.Int64)
    off_vpce = pl.col("off_vpce")
    age_ms = (start - pl.col("prior_first")).dt.total_milliseconds().clip(lower_bound=0)
    return (
        (running.sum_through(segment, by_principal).alias("segment"),),
        (
            is_from_profile.alias("from_profile"),
            prior_first.alias("prior_first"),
            hour.alias("hour_of_week"),
        ),
        (
            elapsed.alias("elapsed"),
            prior("direct_calls", pl.col("known_direct_calls"), in_segment).alias("prior_direct"),
        ),
        (
            ratio("calls", "known_calls_by_hour_of_week").alias("calls_rate_ratio"),
            ratio("kms_decrypts", "known_kms_decrypts_by_hour_of_week").alias(
                "kms_decrypt_rate_ratio"
            ),
            pl.sum_horizontal(
                pl.when(prior_tls > level).then(pl.col(f"tls_{level}_calls")).otherwise(0)
                for level in _TLS_LEVELS
            )
            .cast(pl.UInt32)
            .alias("tls_below_usual_calls"),
            pl.when(habit("tls_calls"))
            .then(direct - pl.col("tls_calls"))
            .otherwise(0)
            .cast(pl.UInt32)
            .alias("tls_missing_calls"),
            pl.when(habit("vpce_calls"))
            .then(direct - pl.col("vpce_calls"))
            .otherwise(0)
            .alias("off_vpce"),
            # Multiply by the reciprocal: polars divides a column by a scalar that way on some
            # chunk layouts and not others, which would make rows depend on batch boundaries.
            (age_ms.fill_null(0).cast(pl.Float64) * (1.0 / _HOUR_MS)).alias("profile_age_hours"),
        ),
        (
            off_vpce.cast(pl.UInt32).alias("off_vpce_calls"),
            pl.when(direct > 0)
            .then(off_vpce / direct)
            .otherwise(0.0)
            .cast(pl.Float64)
            .alias("off_vpce_calls_share"),
        ),
    )


@functools.lru_cache(maxsize=8)
def _feature_exprs(config: FeatureConfig) -> tuple[pl.Expr, ...]:
    """Every feature, in FEATURE_COLUMNS order, from the assembled per-window columns."""
    calls = pl.col("calls")
    by_stem: dict[str, pl.Expr] = {
        "calls_count": calls,
        "write_calls_count": pl.col("write_calls"),
        "event_names_distinct_count": pl.col("event_names_distinct"),
        "services_distinct_count": pl.col("services_distinct"),
        **{f"{f}_calls_count": pl.col(f"{f}_calls") for f in SERVICE_FAMILIES},
        "calls_rate_ratio": pl.col("calls_rate_ratio"),
        "error_calls_share": pl.col("error_calls") / calls,
        "access_denied_calls_count": pl.col("denied_calls"),
        "public_ips_distinct_count": pl.col("public_ips"),
        "private_ip_calls_count": pl.col("private_ip_calls"),
        "aws_service_calls_count": pl.col("aws_service_calls"),
        **{f"new_{k}s_count": pl.col(f"new_{k}s_count").fill_null(0) for k in ITEM_KINDS},
        "off_vpce_calls_count": pl.col("off_vpce_calls"),
        "off_vpce_calls_share": pl.col("off_vpce_calls_share"),
        "foreign_vpce_calls_count": pl.col("foreign_vpce_calls"),
        "kms_decrypt_calls_count": pl.col("kms_decrypts"),
        "kms_decrypt_rate_ratio": pl.col("kms_decrypt_rate_ratio"),
        "tls_below_usual_calls_count": pl.col("tls_below_usual_calls"),
        "tls_missing_calls_count": pl.col("tls_missing_calls"),
        "console_logins_count": pl.col("console_logins"),
        "console_logins_without_mfa_count": pl.col("console_logins_without_mfa"),
        "console_login_failures_count": pl.col("console_login_failures"),
        "profile_age_hours": pl.col("profile_age_hours"),
    }
    schema = closed_window_schema(config.window)
    return tuple(
        by_stem[stem].cast(schema[name]).alias(name)
        for stem, name in zip(by_stem, feature_columns(config.window), strict=True)
    )


@functools.lru_cache(maxsize=16)
def _row_exprs(
    config: FeatureConfig, *, late: bool
) -> tuple[tuple[pl.Expr, ...], tuple[pl.Expr, ...]]:
    """The columns a row adds to the joined parts, then its columns in schema order."""
    context = context_schema()
    window = timedelta(milliseconds=config.window_ms)
    added = (
        (pl.col("window_start") + window).alias("window_end"),
        pl.lit(late).alias("late_correction"),
        *(
            pl.col(c).fill_null(pl.lit([], dtype=context[c])).alias(c)
            for c in NEW_ITEM_COLUMNS.values()
        ),
    )
    return added, (*(pl.col(c).cast(context[c]) for c in context), *_feature_exprs(config))


def close_windows(
    events: pl.DataFrame, profiles: Profiles, config: FeatureConfig, *, late: bool
) -> ClosedWindows:
    """Feature rows of the windows of ``events`` (pending events with codes, closed windows).

    ``late=True`` marks the rows as late corrections: they count only the late events.
    """
    if events.height == 0:
        return empty_closed_windows(config)
    lf = events.lazy().with_columns(_order_key(config))
    folded, shared, in_order = pl.collect_all(
        [
            _folded(lf),
            _shared(lf),
            _in_order(lf, config),
        ],
        engine=ENGINE,
    )
    combinations = _combinations(folded, shared)
    totals, items, values = pl.collect_all(
        [
            _window_totals(combinations.lazy()).join(in_order.lazy(), on=WINDOW, how="left"),
            _window_items(combinations.lazy()),
            _item_values(combinations.lazy()),
        ],
        engine=ENGINE,
    )
    rates = _rates(totals, profiles, config).collect(engine=ENGINE)
    assembled_lf = (
        rates.lazy()
        .join(_novelty(items.lazy(), values.lazy(), profiles, config), on=WINDOW, how="left")
        .join(_main_region(items.lazy(), values.lazy()), on=WINDOW, how="left")
    )
    added, selected = _row_exprs(config, late=late)
    return ClosedWindows(
        assembled_lf.with_columns(added)
        .select(selected)
        .sort("principal_key", "window_start")
        .collect(engine=ENGINE),
        items.select(ITEMS_SCHEMA.names()),
        values,
        rates.select(TOTALS_SCHEMA.names()).cast(TOTALS_SCHEMA),
    )
