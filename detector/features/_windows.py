"""Closed windows -> feature rows, judged against the profiles as they were before each window.

One call handles every window that closes together (many windows of one principal included):
items are marked new when neither the stored profile nor an *earlier* window of the same call
knows them (``shift().over(..., order_by=window_start)``), and the hour-of-week rates and
habits (VPC endpoint, TLS) add running sums of earlier windows to the stored totals. So a
window's row is the same whether its predecessors closed in this call or in earlier ones.

Rates: the usual rate of a principal at hour-of-week ``h`` is its calls summed over bucket
``h`` divided by the windows of bucket ``h`` that elapsed since the principal was first seen;
ratios are Laplace-smoothed, ``(now + 1) / (usual + 1)``, so 1.0 means "as usual" and a
principal with no history gets ``now + 1``.

Imports: polars and this package.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import polars as pl

from detector.features._columns import (
    ITEM_KINDS,
    NEW_ITEM_COLUMNS,
    SERVICE_FAMILIES,
    ServiceFamily,
    closed_window_schema,
    context_schema,
    feature_columns,
)
from detector.features._config import FeatureConfig
from detector.features._items import ITEMS_SCHEMA, event_name_items, window_items
from detector.features._profile import TOTALS_SCHEMA, Profiles

__all__ = ["ClosedWindows", "close_windows", "empty_closed_windows"]

UTC_MS: Final = pl.Datetime("ms", "UTC")
KEYS: Final = ("principal_key", "window_start")
_HOUR_MS: Final = 3_600_000
_WEEK_MS: Final = 168 * _HOUR_MS
_MONDAY_SHIFT_MS: Final = 72 * _HOUR_MS  # 1970-01-01 was a Thursday
_TLS_LEVELS: Final = (1, 2, 3, 4)
_FAMILY_OF_SOURCE: Final = {
    "iam.amazonaws.com": "iam",
    "sts.amazonaws.com": "sts",
    "kms.amazonaws.com": "kms",
    "sqs.amazonaws.com": "sqs",
    "s3.amazonaws.com": "s3",
    "ec2.amazonaws.com": "ec2",
    "cloudtrail.amazonaws.com": "logging",
    "logs.amazonaws.com": "logging",
    "config.amazonaws.com": "logging",
    "guardduty.amazonaws.com": "logging",
    "securityhub.amazonaws.com": "logging",
    "secretsmanager.amazonaws.com": "secretsmanager",
}


@dataclass(frozen=True, slots=True)
class ClosedWindows:
    rows: pl.DataFrame  # closed_window_schema(config.window)
    items: pl.DataFrame  # what the windows touched, for learning (ITEMS_SCHEMA)
    totals: pl.DataFrame  # what the principal rows learn (TOTALS_SCHEMA)


def empty_closed_windows(config: FeatureConfig) -> ClosedWindows:
    return ClosedWindows(
        pl.DataFrame(schema=closed_window_schema(config.window)),
        pl.DataFrame(schema=ITEMS_SCHEMA),
        pl.DataFrame(schema=TOTALS_SCHEMA),
    )


def _at_latest(column: str) -> pl.Expr:
    """The value of the latest event (events arrive sorted by time, then id: deterministic)."""
    return pl.col(column).last().alias(column)


def _window_totals(events: pl.LazyFrame, config: FeatureConfig) -> pl.LazyFrame:
    kind = pl.col("source_ip_kind")
    direct = pl.col("is_direct")
    public = kind.is_in(["public_ipv4", "public_ipv6"])

    def count(condition: pl.Expr, name: str) -> pl.Expr:
        return condition.sum().cast(pl.UInt32).alias(name)

    return events.group_by(KEYS).agg(
        _at_latest("principal_type"),
        _at_latest("principal_arn"),
        _at_latest("account_id"),
        pl.col("event_time").min().alias("first_seen"),
        pl.col("event_time").max().alias("last_seen"),
        # Events are sorted by (time, id), so heads are the earliest: no sort per group.
        pl.col("event_id").head(config.sample_event_ids).alias("event_ids"),
        pl.col("source_ip")
        .drop_nulls()
        .unique(maintain_order=True)
        .head(config.sample_source_ips)
        .alias("source_ips"),
        pl.len().cast(pl.UInt32).alias("calls"),
        count(pl.col("is_write"), "write_calls"),
        count(pl.col("is_error"), "error_calls"),
        count(pl.col("is_denied"), "denied_calls"),
        pl.col("source_ip_address").filter(public).n_unique().cast(pl.UInt32).alias("public_ips"),
        count(kind == "private", "private_ip_calls"),
        count(kind.is_in(["aws_service", "aws_internal"]), "aws_service_calls"),
        count(direct, "direct_calls"),
        count(direct & pl.col("vpc_endpoint_id").is_not_null(), "vpce_calls"),
        count(pl.col("is_foreign_vpce"), "foreign_vpce_calls"),
        count(direct & pl.col("tls_present"), "tls_calls"),
        pl.col("tls_rank").max().alias("tls_max"),
        *(count(pl.col("tls_rank") == level, f"tls_{level}_calls") for level in _TLS_LEVELS),
        count(pl.col("is_kms_decrypt"), "kms_decrypts"),
        count(pl.col("is_console_login"), "console_logins"),
        count(pl.col("is_console_login_without_mfa"), "console_logins_without_mfa"),
        count(pl.col("is_console_login_failure"), "console_login_failures"),
    )


def _name_counts(by_name: pl.LazyFrame) -> pl.LazyFrame:
    family = pl.col("event_source").replace_strict(
        _FAMILY_OF_SOURCE, default="other", return_dtype=ServiceFamily
    )
    return (
        by_name.with_columns(family.alias("family"))
        .group_by(KEYS)
        .agg(
            pl.len().cast(pl.UInt32).alias("event_names_distinct"),
            pl.col("event_source").n_unique().cast(pl.UInt32).alias("services_distinct"),
            *(
                pl.col("n").filter(pl.col("family") == f).sum().cast(pl.UInt32).alias(f"{f}_calls")
                for f in SERVICE_FAMILIES
            ),
        )
    )


def _novelty(items: pl.LazyFrame, profiles: Profiles, config: FeatureConfig) -> pl.LazyFrame:
    """Per window: how many items of each kind are new, and which (capped, by first use)."""
    item_keys = ["principal_key", "kind", "value"]
    known = profiles.items.lazy().select(*item_keys, pl.col("last_seen").alias("known_until"))
    earlier = pl.col("last_time").shift(1).over(item_keys, order_by="window_start")
    last_seen_before = pl.coalesce(earlier, pl.col("known_until"))
    gap = pl.col("window_start") - last_seen_before
    marked = items.join(known, on=item_keys, how="left").with_columns(
        (last_seen_before.is_null() | (gap > config.profile_ttl)).alias("is_new")
    )
    # Sort the new items once, then take the first few per kind: no sort per group.
    per_kind = (
        marked.filter(pl.col("is_new"))
        .sort(*KEYS, "kind", "first_time", "value")
        .group_by(*KEYS, "kind", maintain_order=True)
        .agg(pl.len().alias("count"), pl.col("value").head(config.sample_new_items))
    )
    kind = pl.col("kind")
    return per_kind.group_by(KEYS).agg(
        *(
            pl.col("count").filter(kind == k).sum().cast(pl.UInt32).alias(f"new_{k}s_count")
            for k in ITEM_KINDS
        ),
        *(pl.col("value").filter(kind == k).first().alias(NEW_ITEM_COLUMNS[k]) for k in ITEM_KINDS),
    )


def _main_region(items: pl.LazyFrame) -> pl.LazyFrame:
    """The most frequent region of each window (ties: the first in name order)."""
    return (
        items.filter(pl.col("kind") == "region")
        .sort(*KEYS, "n", "value", descending=[False, False, True, False])
        .group_by(KEYS, maintain_order=True)
        .agg(pl.col("value").first().alias("region"))
    )


def _windows_of_bucket_before(t_ms: pl.Expr, hour: pl.Expr, window_ms: int) -> pl.Expr:
    """How many windows of hour-of-week ``hour`` start before ``t_ms`` (since the epoch)."""
    shifted = t_ms + _MONDAY_SHIFT_MS
    into_bucket = ((shifted % _WEEK_MS) - hour * _HOUR_MS).clip(0, _HOUR_MS)
    per_hour = _HOUR_MS // window_ms
    return (shifted // _WEEK_MS) * per_hour + (into_bucket + window_ms - 1) // window_ms


def _rates(totals: pl.LazyFrame, profiles: Profiles, config: FeatureConfig) -> pl.LazyFrame:
    """Priors from the profile plus earlier windows of this call, and the features using them."""
    w = config.window_ms
    known = profiles.principals.lazy().select(
        "principal_key", pl.all().exclude("principal_key").name.prefix("known_")
    )
    start = pl.col("window_start")
    start_ms = start.cast(pl.Int64)
    by_principal = ["principal_key"]
    earlier_last = pl.col("last_seen").shift(1).over(by_principal, order_by="window_start")
    prior_last = pl.coalesce(earlier_last, pl.col("known_last_seen"))
    segment = ((start - prior_last) > config.profile_ttl).fill_null(False).cast(pl.UInt32)
    in_segment = ["principal_key", "segment"]
    from_profile = (pl.col("segment") == 0) & pl.col("known_first_seen").is_not_null()

    def prior(column: str, known_value: pl.Expr, over: list[str]) -> pl.Expr:
        value = pl.col(column).cast(pl.Int64)
        before = value.cum_sum().over(over, order_by="window_start") - value
        return pl.when(from_profile).then(known_value.cast(pl.Int64)).otherwise(0) + before

    first_of_segment = pl.col("first_seen").min().over(in_segment)
    prior_first = (
        pl.when(from_profile)
        .then(pl.col("known_first_seen"))
        .when(start > start.min().over(in_segment))
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

    earlier_tls = (
        pl.col("tls_max").cum_max().shift(1, fill_value=0).over(in_segment, order_by="window_start")
    )
    prior_tls = pl.max_horizontal(
        pl.when(from_profile).then(pl.col("known_tls_max")).otherwise(0), earlier_tls
    )
    prior_direct = prior("direct_calls", pl.col("known_direct_calls"), in_segment)

    def habit(column: str) -> pl.Expr:
        share = prior(column, pl.col(f"known_{column}"), in_segment)
        return (prior_direct >= config.habit_min_calls) & (
            share >= config.habit_share * prior_direct
        )

    direct = pl.col("direct_calls").cast(pl.Int64)
    off_vpce = pl.when(habit("vpce_calls")).then(direct - pl.col("vpce_calls")).otherwise(0)
    age_ms = (start - pl.col("prior_first")).dt.total_milliseconds().clip(lower_bound=0)
    return (
        totals.join(known, on="principal_key", how="left")
        .with_columns(
            segment.cum_sum().over(by_principal, order_by="window_start").alias("segment")
        )
        .with_columns(prior_first.alias("prior_first"), hour.alias("hour_of_week"))
        .with_columns(elapsed.alias("elapsed"))
        .with_columns(
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
            off_vpce.cast(pl.UInt32).alias("off_vpce_calls"),
            pl.when(direct > 0)
            .then(off_vpce / direct)
            .otherwise(0.0)
            .cast(pl.Float64)
            .alias("off_vpce_calls_share"),
            # Multiply by the reciprocal: polars divides a column by a scalar that way on some
            # chunk layouts and not others, which would make rows depend on batch boundaries.
            (age_ms.fill_null(0).cast(pl.Float64) * (1.0 / _HOUR_MS)).alias("profile_age_hours"),
        )
    )


def _feature_exprs(config: FeatureConfig) -> list[pl.Expr]:
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
    return [
        by_stem[stem].cast(schema[name]).alias(name)
        for stem, name in zip(by_stem, feature_columns(config.window), strict=True)
    ]


def close_windows(
    events: pl.DataFrame, profiles: Profiles, config: FeatureConfig, *, late: bool
) -> ClosedWindows:
    """Feature rows of the windows of ``events`` (pending-schema events of closed windows).

    ``late=True`` marks the rows as late corrections: they count only the late events.
    """
    if events.height == 0:
        return empty_closed_windows(config)
    # One sort by (time, id) makes every "first"/"last"/"head" below deterministic, whatever
    # order the events arrived in.
    lf = events.sort("event_time", "event_id").lazy()
    by_name = event_name_items(lf)
    totals_lf = _window_totals(lf, config)
    items_lf = window_items(lf, by_name)
    totals, names, items = pl.collect_all([totals_lf, _name_counts(by_name), items_lf])
    novelty = _novelty(items.lazy(), profiles, config)
    rates = _rates(totals.lazy(), profiles, config)
    context = context_schema()
    new_lists = [
        pl.col(c).fill_null(pl.lit([], dtype=context[c])).alias(c)
        for c in NEW_ITEM_COLUMNS.values()
    ]
    window = timedelta(milliseconds=config.window_ms)
    assembled, learned = pl.collect_all(
        [
            rates.join(names.lazy(), on=KEYS, how="left")
            .join(novelty, on=KEYS, how="left")
            .join(_main_region(items.lazy()), on=KEYS, how="left")
            .with_columns(
                (pl.col("window_start") + window).alias("window_end"),
                pl.lit(late).alias("late_correction"),
                *new_lists,
            )
            .select(*(pl.col(c).cast(context[c]) for c in context), *_feature_exprs(config))
            .sort(KEYS),
            rates.select(TOTALS_SCHEMA.names()).cast(TOTALS_SCHEMA),
        ]
    )
    return ClosedWindows(assembled, items, learned)
