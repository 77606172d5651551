"""The columns of a closed window row, written down once for training and serving.

A window row is *context* (who, when, samples and the new items by name, for findings) followed
by *features* (numbers, in :data:`FEATURE_COLUMNS` order, for models). Feature names follow
``<what>_<stat>_by_principal_<window>``; the window suffix comes from the configured window, so
a model trained on 5-minute windows refuses 10-minute ones (different names, different hash).

Imports: polars, hashlib and this package's config.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Final

import polars as pl

from detector.events import UTC_MS
from detector.features._config import DEFAULT_WINDOW, window_suffix

__all__ = [
    "FEATURE_COLUMNS",
    "FEATURE_DOCS",
    "FEATURE_DTYPES",
    "ITEM_KINDS",
    "NEW_ITEM_COLUMNS",
    "SERVICE_FAMILIES",
    "ItemKind",
    "ServiceFamily",
    "closed_window_schema",
    "context_schema",
    "feature_columns",
    "feature_dtypes",
    "feature_schema_hash",
]

_COUNT: Final = pl.UInt32()
_REAL: Final = pl.Float64()

# Service families for the per-family call counts; "logging" covers the services an attacker
# silences to hide: cloudtrail, logs, config, guardduty, securityhub.
SERVICE_FAMILIES: Final = (
    "iam",
    "sts",
    "kms",
    "sqs",
    "s3",
    "ec2",
    "logging",
    "secretsmanager",
    "other",
)
ServiceFamily: Final = pl.Enum(list(SERVICE_FAMILIES))

# What a profile remembers per principal; each kind has a novelty feature and a list of the
# new values (``new_<plural>``) in the context columns.
ITEM_KINDS: Final = (
    "public_ip",  # public source address (IPv4 or IPv6)
    "public_network",  # its /24 (IPv4) or /48 (IPv6)
    "region",  # awsRegion
    "user_agent",  # user-agent family without version: aws-cli, boto3, console, ...
    "vpc_endpoint",  # vpcEndpointId
    "event_name",  # "<service>:<eventName>", e.g. "iam:CreateUser"
    "access_key",  # long-term access key id (AKIA...); session keys are new every session
)
ItemKind: Final = pl.Enum(list(ITEM_KINDS))
NEW_ITEM_COLUMNS: Final = {kind: f"new_{kind}s" for kind in ITEM_KINDS}

_FEATURES: Final[tuple[tuple[str, pl.DataType, str], ...]] = (
    ("calls_count", _COUNT, "events in the window"),
    ("write_calls_count", _COUNT, "events with readOnly = false"),
    ("event_names_distinct_count", _COUNT, "distinct <service>:<eventName>"),
    ("services_distinct_count", _COUNT, "distinct eventSource"),
    *((f"{f}_calls_count", _COUNT, f"events of the {f} service family") for f in SERVICE_FAMILIES),
    ("calls_rate_ratio", _REAL, "(calls + 1) / (usual calls per window this hour of week + 1)"),
    ("error_calls_share", _REAL, "share of events with an errorCode"),
    ("access_denied_calls_count", _COUNT, "AccessDenied* / *UnauthorizedOperation errors"),
    ("public_ips_distinct_count", _COUNT, "distinct public source addresses"),
    ("private_ip_calls_count", _COUNT, "events from a private address (VPC, on-premises)"),
    ("aws_service_calls_count", _COUNT, "events whose source is an AWS service or AWS Internal"),
    ("new_public_ips_count", _COUNT, "public addresses the profile does not know"),
    ("new_public_networks_count", _COUNT, "/24 or /48 networks the profile does not know"),
    ("new_regions_count", _COUNT, "regions the profile does not know"),
    ("new_user_agents_count", _COUNT, "user-agent families the profile does not know"),
    ("new_vpc_endpoints_count", _COUNT, "VPC endpoints the profile does not know"),
    ("new_event_names_count", _COUNT, "event names the profile does not know"),
    ("new_access_keys_count", _COUNT, "first use of a long-term access key"),
    ("off_vpce_calls_count", _COUNT, "direct calls without a VPC endpoint by a VPCE-habitual"),
    ("off_vpce_calls_share", _REAL, "the same as a share of direct calls"),
    ("foreign_vpce_calls_count", _COUNT, "calls through a VPC endpoint of another account"),
    ("kms_decrypt_calls_count", _COUNT, "own Decrypt/GenerateDataKey* calls (not invokedBy)"),
    ("kms_decrypt_rate_ratio", _REAL, "(kms decrypts + 1) / (usual per window this hour + 1)"),
    ("tls_below_usual_calls_count", _COUNT, "calls with a TLS version below the profile's best"),
    ("tls_missing_calls_count", _COUNT, "direct calls without TLS details by a TLS-habitual"),
    ("console_logins_count", _COUNT, "ConsoleLogin events"),
    ("console_logins_without_mfa_count", _COUNT, "successful ConsoleLogin without MFA"),
    ("console_login_failures_count", _COUNT, "failed ConsoleLogin"),
    ("profile_age_hours", _REAL, "hours since the profile first saw the principal (0 if new)"),
)
FEATURE_STEMS: Final = tuple(stem for stem, _, _ in _FEATURES)


def feature_columns(window: timedelta = DEFAULT_WINDOW) -> tuple[str, ...]:
    """The ordered feature names for one window length."""
    suffix = window_suffix(window)
    return tuple(f"{stem}_by_principal_{suffix}" for stem in FEATURE_STEMS)


def feature_dtypes(window: timedelta = DEFAULT_WINDOW) -> dict[str, pl.DataType]:
    return {
        name: dtype for name, (_, dtype, _) in zip(feature_columns(window), _FEATURES, strict=True)
    }


FEATURE_COLUMNS: Final = feature_columns()
FEATURE_DTYPES: Final = feature_dtypes()
FEATURE_DOCS: Final = {
    name: doc for name, (_, _, doc) in zip(FEATURE_COLUMNS, _FEATURES, strict=True)
}


def feature_schema_hash(window: timedelta = DEFAULT_WINDOW) -> str:
    """A stable fingerprint of the feature names, order and dtypes (sha256, hex)."""
    text = "\n".join(f"{name}:{dtype}" for name, dtype in feature_dtypes(window).items())
    return hashlib.sha256(text.encode()).hexdigest()


def context_schema() -> pl.Schema:
    """Columns before the features: identity, time span, samples and new items by name."""
    return pl.Schema(
        {
            "principal_key": pl.String(),
            "window_start": UTC_MS,
            "window_end": UTC_MS,
            "late_correction": pl.Boolean(),
            "principal_type": pl.String(),
            "principal_arn": pl.String(),  # most recent ARN seen (the session ARN for roles)
            "account_id": pl.String(),
            "region": pl.String(),  # most frequent region
            "first_seen": UTC_MS,
            "last_seen": UTC_MS,
            # earliest ones (ties in time: by the id's code), capped
            "event_ids": pl.List(pl.String()),
            "source_ips": pl.List(
                pl.String()
            ),  # distinct sourceIPAddress, first seen first, capped
            **{column: pl.List(pl.String()) for column in NEW_ITEM_COLUMNS.values()},
        }
    )


def closed_window_schema(window: timedelta = DEFAULT_WINDOW) -> pl.Schema:
    return pl.Schema({**context_schema(), **feature_dtypes(window)})
