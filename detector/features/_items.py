"""What a principal touched in each window, as long rows ``(principal, window, kind, value)``.

The seven item kinds (:data:`~detector.features._columns.ITEM_KINDS`) are what profiles
remember and what novelty is judged on. Values are normalised here: public addresses only
(private, service and "AWS Internal" sources are counted separately, never remembered), their
/24 or /48 network, user-agent *families* without versions, ``<service>:<eventName>``, and only
long-term (``AKIA``) access keys. Normalisation that needs Python (user-agent patterns, IPv6
networks) runs once per distinct value, never per event.

Imports: polars, the standard library and this package's column definitions.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Final

import polars as pl

from detector.features._columns import ItemKind

__all__ = ["ITEMS_SCHEMA", "event_name_items", "network_of", "user_agent_family", "window_items"]

UTC_MS: Final = pl.Datetime("ms", "UTC")
KEYS: Final = ("principal_key", "window_start")

ITEMS_SCHEMA: Final = pl.Schema(
    {
        "principal_key": pl.String(),
        "window_start": UTC_MS,
        "kind": ItemKind,
        "value": pl.String(),
        "first_time": UTC_MS,  # first event of the window with this value
        "last_time": UTC_MS,
        "n": pl.UInt32(),  # events of the window with this value
    }
)

# First match wins: aws-cli and terraform embed an SDK name, so they come before the SDKs.
_USER_AGENT_FAMILIES: Final = tuple(
    (family, re.compile(pattern))
    for family, pattern in (
        ("console", r"^(signin|console)\.amazonaws\.com|^AWS Internal"),
        ("aws-internal", r"^aws-internal/"),
        ("aws-cli", r"aws-cli/"),
        ("terraform", r"(?i)terraform"),
        ("cloudformation", r"(?i)cloudformation"),
        ("powershell", r"AWSPowerShell"),
        ("boto3", r"(?i)boto3/|botocore/"),
        ("aws-sdk-java", r"aws-sdk-java"),
        ("aws-sdk-go", r"aws-sdk-go"),
        ("aws-sdk-js", r"aws-sdk-js|aws-sdk-nodejs"),
        ("aws-sdk-dotnet", r"aws-sdk-dotnet"),
        ("aws-sdk-ruby", r"aws-sdk-ruby"),
        ("aws-sdk-php", r"aws-sdk-php"),
        ("aws-sdk-rust", r"aws-sdk-rust"),
        ("aws-sdk-cpp", r"aws-sdk-cpp"),
        ("aws-service", r"^[a-z0-9.-]+\.amazonaws\.com$"),
        ("browser", r"^Mozilla/"),
        ("curl", r"^curl/"),
        ("python-requests", r"python-requests/"),
    )
)


def user_agent_family(user_agent: str | None) -> str | None:
    """The family of a ``userAgent`` without versions, e.g. ``aws-cli``; ``other`` if unknown."""
    if user_agent is None or not user_agent.strip():
        return None
    for family, pattern in _USER_AGENT_FAMILIES:
        if pattern.search(user_agent):
            return family
    return "other"


def network_of(address: str) -> str:
    """The /24 of a canonical IPv4 address or the /48 of an IPv6 one."""
    if ":" in address:
        return str(ipaddress.IPv6Network(f"{address}/48", strict=False))
    return f"{address.rpartition('.')[0]}.0/24"


def _per_distinct(series: pl.Series, function: Callable[[str], str | None]) -> pl.Series:
    """Apply a str -> str function once per distinct value of a string column."""
    distinct = series.drop_nulls().unique().to_list()
    mapping = {value: function(value) for value in distinct}
    return series.replace_strict(mapping, default=None, return_dtype=pl.String)


def _grouped(frame: pl.LazyFrame, kind: str, value: pl.Expr) -> pl.LazyFrame:
    return (
        frame.with_columns(value.alias("value"))
        .filter(pl.col("value").is_not_null())
        .group_by(*KEYS, "value")
        .agg(
            pl.col("event_time").min().alias("first_time"),
            pl.col("event_time").max().alias("last_time"),
            pl.len().cast(pl.UInt32).alias("n"),
        )
        .select(
            *KEYS, pl.lit(kind, ItemKind).alias("kind"), "value", "first_time", "last_time", "n"
        )
    )


def _regrouped(items: pl.LazyFrame, kind: str, value: pl.Expr) -> pl.LazyFrame:
    """Items of one kind re-keyed by a coarser value (address -> network, UA -> family)."""
    return (
        items.with_columns(value.alias("value"))
        .filter(pl.col("value").is_not_null())
        .group_by(*KEYS, "value")
        .agg(pl.col("first_time").min(), pl.col("last_time").max(), pl.col("n").sum())
        .select(
            *KEYS, pl.lit(kind, ItemKind).alias("kind"), "value", "first_time", "last_time", "n"
        )
    )


def event_name_items(events: pl.LazyFrame) -> pl.LazyFrame:
    """Per window and ``(event_source, event_name)``: first/last time and count.

    Kept with the source so the window stage can also count service families from it.
    """
    return events.group_by(*KEYS, "event_source", "event_name").agg(
        pl.col("event_time").min().alias("first_time"),
        pl.col("event_time").max().alias("last_time"),
        pl.len().cast(pl.UInt32).alias("n"),
    )


def window_items(events: pl.LazyFrame, by_name: pl.LazyFrame) -> pl.LazyFrame:
    """All item kinds of every window, long form (:data:`ITEMS_SCHEMA`)."""
    public = pl.col("source_ip_kind").is_in(["public_ipv4", "public_ipv6"])
    ips = _grouped(events, "public_ip", pl.when(public).then(pl.col("source_ip_address")))
    agents = _grouped(events, "user_agent", pl.col("user_agent"))
    access_key = pl.col("access_key_id")
    names = by_name.select(
        *KEYS,
        pl.lit("event_name", ItemKind).alias("kind"),
        (
            pl.col("event_source").str.strip_suffix(".amazonaws.com")
            + pl.lit(":")
            + pl.col("event_name")
        ).alias("value"),
        "first_time",
        "last_time",
        "n",
    )
    parts = [
        ips,
        _regrouped(
            ips,
            "public_network",
            pl.col("value").map_batches(lambda s: _per_distinct(s, network_of), pl.String),
        ),
        _grouped(events, "region", pl.col("region")),
        _regrouped(
            agents,
            "user_agent",
            pl.col("value").map_batches(lambda s: _per_distinct(s, user_agent_family), pl.String),
        ),
        _grouped(events, "vpc_endpoint", pl.col("vpc_endpoint_id")),
        names,
        _grouped(
            events,
            "access_key",
            pl.when(access_key.str.starts_with("AKIA")).then(access_key),
        ),
    ]
    return pl.concat(parts, how="vertical")
