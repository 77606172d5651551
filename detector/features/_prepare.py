"""Events frame -> the slim per-event frame the window stage works on.

Keeps the columns the features read, assigns each event its tumbling window, and turns the
per-event predicates (write, error, denied, KMS decrypt, console sign-in outcome, TLS rank)
into flags once, so open windows can keep their events compactly in the state.

Imports: polars, the event schema and this package's config.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from detector.events import SourceIpKind
from detector.features._config import FeatureConfig

__all__ = [
    "KMS_DECRYPT_EVENT_NAMES",
    "PENDING_SCHEMA",
    "TLS_RANKS",
    "empty_pending",
    "prepare_events",
]

UTC_MS: Final = pl.Datetime("ms", "UTC")

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
_DENIED_PATTERN: Final = r"AccessDenied|UnauthorizedOperation|UnauthorizedAccess"
_CONSOLE_FAILURE: Final = '"ConsoleLogin":"Failure"'

PENDING_SCHEMA: Final = pl.Schema(
    {
        "event_id": pl.String(),
        "event_time": UTC_MS,
        "window_start": UTC_MS,
        "principal_key": pl.String(),
        "principal_type": pl.String(),
        "principal_arn": pl.String(),
        "account_id": pl.String(),
        "region": pl.String(),
        "event_source": pl.String(),
        "event_name": pl.String(),
        "source_ip": pl.String(),
        "source_ip_kind": SourceIpKind,
        "source_ip_address": pl.String(),
        "user_agent": pl.String(),
        "vpc_endpoint_id": pl.String(),
        "access_key_id": pl.String(),
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


def _window_start(config: FeatureConfig) -> pl.Expr:
    # Integer floor: exact, and cheaper than dt.truncate.
    ms = pl.col("event_time").cast(pl.Int64)
    return ((ms // config.window_ms) * config.window_ms).cast(UTC_MS).alias("window_start")


def prepare_events(events: pl.LazyFrame, config: FeatureConfig) -> pl.LazyFrame:
    """Project a :data:`~detector.events.EVENT_SCHEMA` frame to :data:`PENDING_SCHEMA`."""
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
        & ~pl.col("principal_key").is_in(sorted(config.kms_excluded_principals))
    )
    tls = pl.col("tls_version")
    return events.select(
        "event_id",
        "event_time",
        _window_start(config),
        "principal_key",
        "principal_type",
        "principal_arn",
        "account_id",
        "region",
        "event_source",
        "event_name",
        "source_ip",
        "source_ip_kind",
        "source_ip_address",
        "user_agent",
        "vpc_endpoint_id",
        "access_key_id",
        (pl.col("read_only") == False).fill_null(False).alias("is_write"),  # noqa: E712
        error.is_not_null().alias("is_error"),
        error.str.contains(_DENIED_PATTERN).fill_null(False).alias("is_denied"),
        direct.alias("is_direct"),
        (
            pl.col("vpc_endpoint_account_id").is_not_null()
            & (pl.col("vpc_endpoint_account_id") != pl.col("account_id")).fill_null(True)
        ).alias("is_foreign_vpce"),
        kms_decrypt.alias("is_kms_decrypt"),
        tls.is_not_null().alias("tls_present"),
        tls.replace_strict(TLS_RANKS, default=0, return_dtype=pl.UInt8)
        .fill_null(0)
        .alias("tls_rank"),
        login.alias("is_console_login"),
        (login & ~failed & (pl.col("mfa_authenticated") != True).fill_null(True)).alias(  # noqa: E712
            "is_console_login_without_mfa"
        ),
        failed.alias("is_console_login_failure"),
    )


def empty_pending() -> pl.DataFrame:
    return pl.DataFrame(schema=PENDING_SCHEMA)
