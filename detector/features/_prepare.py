"""Events frame -> the slim per-event frame the window stage works on.

Keeps the columns the features read, assigns each event its tumbling window, normalises the
item values (:mod:`detector.features._items`) and turns the per-event predicates (write, error,
denied, source kind, KMS decrypt, console sign-in outcome, TLS rank) into flags once, so open
windows keep their events compactly in the state.

Then :func:`with_codes` adds 64-bit codes: of the event id (deduplication), the principal,
the principal's window, each item value, and the *combination* of all of them. The window stage
groups on these single integer columns instead of long ARN strings: most of its work is one
group-by of the events on the combination code, which folds the events of a window that touched
the same items into one row (a busy workload repeats the same calls from the same places).
Codes are 64-bit hashes (collisions: about ``n**2 / 2**65`` for ``n`` keys, i.e. never), and
stable only within one polars version, so a snapshot keeps :data:`PENDING_SCHEMA` (text) and
restore recomputes them.

Imports: polars and this package.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Final

import polars as pl

from detector.events import UTC_MS
from detector.features._columns import ServiceFamily
from detector.features._config import FeatureConfig
from detector.features._items import (
    EVENT_ITEM_KINDS,
    event_item_exprs,
    hash_column,
    value_column,
    value_hash,
)

__all__ = [
    "CODES_SCHEMA",
    "COMBINED_FLAGS",
    "FAMILY_OF_SOURCE",
    "KMS_DECRYPT_EVENT_NAMES",
    "PENDING_SCHEMA",
    "TLS_RANKS",
    "empty_pending",
    "prepare_events",
    "service_family",
    "with_codes",
]


# KMS calls that hand out plaintext key material: the ones a data thief makes.
KMS_DECRYPT_EVENT_NAMES: Final = (
    "Decrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
)
# Ordinal of tlsDetails.tlsVersion; 0 = absent or unrecognised.
TLS_RANKS: Final = {"TLSv1": 1, "TLSv1.1": 2, "TLSv1.2": 3, "TLSv1.3": 4}
_DENIED_CODES: Final = ("AccessDenied", "UnauthorizedOperation", "UnauthorizedAccess")
_CONSOLE_FAILURE: Final = '"ConsoleLogin":"Failure"'
FAMILY_OF_SOURCE: Final = {
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

# What an open window keeps of each event (and what a snapshot stores of it).
PENDING_SCHEMA: Final = pl.Schema(
    {
        "event_id": pl.String(),
        "event_time": UTC_MS,
        "window_start": UTC_MS,
        "principal_key": pl.String(),
        "principal_type": pl.String(),
        "principal_arn": pl.String(),
        "account_id": pl.String(),
        "event_source": pl.String(),
        "source_ip": pl.String(),
        "user_agent": pl.String(),  # raw: families are derived when windows close
        **{value_column(kind): pl.String() for kind in EVENT_ITEM_KINDS},
        "is_private_ip": pl.Boolean(),
        "is_aws_service_ip": pl.Boolean(),
        "is_write": pl.Boolean(),
        "is_error": pl.Boolean(),
        "is_denied": pl.Boolean(),
        "is_direct": pl.Boolean(),  # not made by an AWS service on the principal's behalf
        "is_foreign_vpce": pl.Boolean(),
        "is_kms_decrypt": pl.Boolean(),
        "tls_present": pl.Boolean(),
        "tls_rank": pl.UInt8(),
        "is_console_login": pl.Boolean(),
        "is_console_login_without_mfa": pl.Boolean(),
        "is_console_login_failure": pl.Boolean(),
    }
)
# Per-event flags that are part of the combination code: events alike share them, so the window
# stage counts them per folded row instead of summing them per event.
COMBINED_FLAGS: Final = tuple(name for name in PENDING_SCHEMA if name.startswith(("is_", "tls_")))
# The codes with_codes adds (kept in the state, never in snapshots).
CODES_SCHEMA: Final = pl.Schema(
    {
        "event_hash": pl.UInt64(),
        "principal_hash": pl.UInt64(),
        "window_hash": pl.UInt64(),  # (principal, window start)
        "source_hash": pl.UInt64(),
        "user_agent_hash": pl.UInt64(),
        **{hash_column(kind): pl.UInt64() for kind in EVENT_ITEM_KINDS},
        "combination_hash": pl.UInt64(),  # window, source, agent, items, flags: events alike
    }
)


def _window_start(config: FeatureConfig) -> pl.Expr:
    # Integer floor: exact, and cheaper than dt.truncate.
    ms = pl.col("event_time").cast(pl.Int64)
    return ((ms // config.window_ms) * config.window_ms).cast(UTC_MS).alias("window_start")


def _lookup(
    column: pl.Expr, mapping: Mapping[str, object], default: object, dtype: pl.DataType
) -> pl.Expr:
    """``mapping[column]`` or ``default``, as nested when/then: replace_strict has a fixed cost
    per call that dominates micro-batches."""
    result = pl.lit(default, dtype)
    for key, value in reversed(list(mapping.items())):
        result = pl.when(column == key).then(pl.lit(value, dtype)).otherwise(result)
    return result


@functools.cache
def service_family(column: str) -> pl.Expr:
    """The :data:`~detector.features._columns.ServiceFamily` of an ``event_source`` column."""
    return _lookup(pl.col(column), FAMILY_OF_SOURCE, "other", ServiceFamily)


def prepare_events(events: pl.LazyFrame, config: FeatureConfig) -> pl.LazyFrame:
    """Project a :data:`~detector.events.EVENT_SCHEMA` frame to :data:`PENDING_SCHEMA`."""
    return events.select(_prepare_exprs(config))


# Expressions are values: built once per configuration (building them costs about as much as
# running them on a micro-batch).
@functools.lru_cache(maxsize=8)
def _prepare_exprs(config: FeatureConfig) -> tuple[pl.Expr, ...]:
    error = pl.col("error_code")
    direct = pl.col("invoked_by").is_null()
    login = pl.col("event_name") == "ConsoleLogin"
    failed = login & (
        pl.col("response_elements").str.contains(_CONSOLE_FAILURE, literal=True).fill_null(False)
        | pl.col("error_message").is_not_null()
    )
    kms_decrypt = (
        (pl.col("event_source") == "kms.amazonaws.com")
        & pl.col("event_name").is_in(KMS_DECRYPT_EVENT_NAMES)
        & direct
    )
    if config.kms_excluded_principals:
        kms_decrypt &= ~pl.col("principal_key").is_in(sorted(config.kms_excluded_principals))
    kind = pl.col("source_ip_kind")
    identity = ("principal_key", "principal_type", "principal_arn", "account_id")
    return (
        pl.col("event_id"),
        pl.col("event_time"),
        _window_start(config),
        *(pl.col(name) for name in identity),
        pl.col("event_source"),
        pl.col("source_ip"),
        pl.col("user_agent"),
        *event_item_exprs(),
        (kind == "private").fill_null(False).alias("is_private_ip"),
        kind.is_in(["aws_service", "aws_internal"]).fill_null(False).alias("is_aws_service_ip"),
        (pl.col("read_only") == False).fill_null(False).alias("is_write"),  # noqa: E712
        error.is_not_null().alias("is_error"),
        # contains_any (Aho-Corasick) is several times cheaper than the same regex alternation
        error.str.contains_any(list(_DENIED_CODES)).fill_null(False).alias("is_denied"),
        direct.alias("is_direct"),
        (
            pl.col("vpc_endpoint_account_id").is_not_null()
            & (pl.col("vpc_endpoint_account_id") != pl.col("account_id")).fill_null(True)
        ).alias("is_foreign_vpce"),
        kms_decrypt.alias("is_kms_decrypt"),
        pl.col("tls_version").is_not_null().alias("tls_present"),
        _lookup(pl.col("tls_version"), TLS_RANKS, 0, pl.UInt8()).alias("tls_rank"),
        login.alias("is_console_login"),
        (login & ~failed & (pl.col("mfa_authenticated") != True).fill_null(True)).alias(  # noqa: E712
            "is_console_login_without_mfa"
        ),
        failed.alias("is_console_login_failure"),
    )


def with_codes(pending: pl.LazyFrame) -> pl.LazyFrame:
    """Add :data:`CODES_SCHEMA` to a :data:`PENDING_SCHEMA` frame."""
    for stage in _code_stages():
        pending = pending.with_columns(stage)
    return pending


@functools.cache
def _code_stages() -> tuple[tuple[pl.Expr, ...], ...]:
    items = [hash_column(kind) for kind in EVENT_ITEM_KINDS]
    return (
        (
            pl.col("event_id").hash().alias("event_hash"),
            pl.col("principal_key").hash().alias("principal_hash"),
            pl.col("event_source").hash().alias("source_hash"),
            pl.col("user_agent").hash().alias("user_agent_hash"),
            *(value_hash(pl.col(value_column(k))).alias(hash_column(k)) for k in EVENT_ITEM_KINDS),
        ),
        (pl.struct("principal_hash", "window_start").hash().alias("window_hash"),),
        (
            # The flags packed into one integer first: one column hashes cheaper than 13.
            pl.struct("window_hash", "source_hash", "user_agent_hash", *items, _packed_flags())
            .hash()
            .alias("combination_hash"),
        ),
    )


def _packed_flags() -> pl.Expr:
    """The combined flags as one integer: a bit per boolean, ``tls_rank`` above them."""
    bits = [pl.col(flag).cast(pl.UInt32) for flag in COMBINED_FLAGS if flag != "tls_rank"]
    packed = pl.sum_horizontal(bit * (1 << i) for i, bit in enumerate(bits))
    return (packed + pl.col("tls_rank").cast(pl.UInt32) * (1 << len(bits))).alias("flags")


def empty_pending() -> pl.DataFrame:
    """No open window: :data:`PENDING_SCHEMA` then :data:`CODES_SCHEMA`, no rows."""
    return pl.DataFrame(schema=pl.Schema({**PENDING_SCHEMA, **CODES_SCHEMA}))
