"""What a principal touches, as *items* ``(kind, value)``: the values profiles remember.

The seven item kinds (:data:`~detector.features._columns.ITEM_KINDS`) are what profiles
remember and what novelty is judged on. Values are normalised here: public addresses only
(private, service and "AWS Internal" sources are counted separately, never remembered), their
/24 or /48 network, user-agent *families* without versions, ``<service>:<eventName>``, and
only long-term (``AKIA``) access keys. Five kinds are read off each event when it arrives
(:func:`event_item_exprs`); the two that need Python (user-agent patterns, IPv6 networks) are
derived when windows close (:func:`derived_item_exprs`), once per distinct value of the closing
windows' folded events rather than per event, with their answers remembered.

Each value also gets a 64-bit hash (:func:`value_hash`): windows, profiles and novelty work on
the hashes, and the text is kept only for what a finding shows (new items by name), in one
dictionary shared by all principals, and in snapshots. Two different values sharing a hash
would be judged as one item; among ``n`` values the chance of any such pair is about
``n**2 / 2**65`` (1e-7 for a million values): accepted.

Imports: polars, the standard library and this package's column definitions.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable
from typing import Final

import polars as pl

from detector.events import UTC_MS
from detector.features._columns import ITEM_KINDS, ItemKind

__all__ = [
    "DERIVED_ITEM_KINDS",
    "EVENT_ITEM_KINDS",
    "ITEMS_SCHEMA",
    "derived_item_exprs",
    "event_item_exprs",
    "hash_column",
    "network_of",
    "user_agent_family",
    "value_column",
    "value_hash",
]

EVENT_ITEM_KINDS: Final = ("public_ip", "region", "vpc_endpoint", "event_name", "access_key")
DERIVED_ITEM_KINDS: Final = ("public_network", "user_agent")
assert set(EVENT_ITEM_KINDS) | set(DERIVED_ITEM_KINDS) == set(ITEM_KINDS)

# Per closed window and item: what the window touched (see detector.features._windows).
ITEMS_SCHEMA: Final = pl.Schema(
    {
        "principal_hash": pl.UInt64(),
        "window_start": UTC_MS,
        "kind": ItemKind,
        "value_hash": pl.UInt64(),  # the text travels apart, once per value (VALUES_SCHEMA)
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
_MEMO_SIZE: Final = 1 << 16  # distinct user agents / addresses remembered by the normalisers


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


# Streams repeat the same few hundred agents and addresses batch after batch.
_family_memo: Final = functools.lru_cache(maxsize=_MEMO_SIZE)(user_agent_family)
_network_memo: Final = functools.lru_cache(maxsize=_MEMO_SIZE)(network_of)


def _per_distinct(series: pl.Series, function: Callable[[str], str | None]) -> pl.Series:
    """Apply a str -> str function once per distinct value of a string column."""
    distinct = series.drop_nulls().unique().to_list()
    if not distinct:
        return pl.Series(series.name, [None] * series.len(), dtype=pl.String)
    mapping = pl.DataFrame(
        {"from": distinct, "to": [function(value) for value in distinct]},
        schema={"from": pl.String, "to": pl.String},
    )
    return series.replace_strict(mapping["from"], mapping["to"], default=None)


def value_column(kind: str) -> str:
    return f"value_{kind}"


def hash_column(kind: str) -> str:
    return f"hash_{kind}"


def value_hash(value: pl.Expr) -> pl.Expr:
    """The 64-bit code of an item value (null stays null). Stable within one polars version
    only, so snapshots keep the text and codes are recomputed on restore."""
    return pl.when(value.is_not_null()).then(value.hash())


def event_item_exprs() -> list[pl.Expr]:
    """The :data:`EVENT_ITEM_KINDS` values of each event, named :func:`value_column`, from
    :data:`~detector.events.EVENT_SCHEMA` columns; null where the event has none."""
    public = pl.col("source_ip_kind").is_in(["public_ipv4", "public_ipv6"])
    access_key = pl.col("access_key_id")
    by_kind = {
        "public_ip": pl.when(public).then(pl.col("source_ip_address")),
        "region": pl.col("region"),
        "vpc_endpoint": pl.col("vpc_endpoint_id"),
        "event_name": pl.col("event_source").str.strip_suffix(".amazonaws.com")
        + pl.lit(":")
        + pl.col("event_name"),
        "access_key": pl.when(access_key.str.starts_with("AKIA")).then(access_key),
    }
    return [by_kind[kind].alias(value_column(kind)) for kind in EVENT_ITEM_KINDS]


@functools.cache
def derived_item_exprs() -> tuple[pl.Expr, ...]:
    """The :data:`DERIVED_ITEM_KINDS` values, from ``value_public_ip`` and the raw
    ``user_agent`` column, named :func:`value_column`."""
    public_ip = pl.col(value_column("public_ip"))
    return (
        public_ip.map_batches(lambda s: _per_distinct(s, _network_memo), pl.String).alias(
            value_column("public_network")
        ),
        pl.col("user_agent")
        .map_batches(lambda s: _per_distinct(s, _family_memo), pl.String)
        .alias(value_column("user_agent")),
    )
