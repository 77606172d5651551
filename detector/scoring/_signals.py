"""Explicit signals: named conditions on a window's features that say *why* it is unusual.

The forest says *how* unusual a window is; a signal names a reason a person recognises ("used
from a public IP never seen for this principal", "outside its VPC endpoint", "Decrypt at 40x its
usual rate"). Signals raise a finding's severity by their weight and lead its explanation.
Each is a polars expression over closed-window rows, evaluated for a whole batch at once.

Imports: polars and the feature column names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import polars as pl

from detector.features import DEFAULT_WINDOW, window_suffix

__all__ = ["SIGNALS", "Signal", "signal_frame"]

# Thresholds a person can reason about; they are not fitted to data.
KMS_SPIKE_RATIO: Final = 10.0  # Decrypt calls vs the principal's usual for this hour of week
KMS_SPIKE_MIN_CALLS: Final = 50
ACCESS_DENIED_BURST: Final = 5  # AccessDenied/UnauthorizedOperation errors in one window
RECON_DISTINCT_CALLS: Final = 15
RECON_NEW_CALLS: Final = 5
FAILED_SIGN_INS: Final = 3


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    title: str  # what a responder reads
    weight: float  # severity points added when the signal is present
    stems: tuple[str, ...]  # feature stems the condition reads (shown as evidence)

    def condition(self, f: dict[str, pl.Expr]) -> pl.Expr:
        expr: pl.Expr = _CONDITIONS[self.name](f)
        return expr


def _known(f: dict[str, pl.Expr]) -> pl.Expr:
    # Novelty means little for a principal seen for the first time in this window.
    return f["profile_age_hours"] > 0


_CONDITIONS: Final[dict[str, Callable[[dict[str, pl.Expr]], pl.Expr]]] = {
    "credentials_off_endpoint_from_new_ip": lambda f: (
        (f["new_public_ips_count"] > 0) & (f["off_vpce_calls_count"] > 0)
    ),
    "off_vpc_endpoint": lambda f: f["off_vpce_calls_count"] > 0,
    "new_public_ip": lambda f: (f["new_public_ips_count"] > 0) & _known(f),
    "new_region": lambda f: (f["new_regions_count"] > 0) & _known(f),
    "kms_decrypt_spike": lambda f: (
        (f["kms_decrypt_rate_ratio"] >= KMS_SPIKE_RATIO)
        & (f["kms_decrypt_calls_count"] >= KMS_SPIKE_MIN_CALLS)
    ),
    "access_denied_burst": lambda f: f["access_denied_calls_count"] >= ACCESS_DENIED_BURST,
    "recon_breadth": lambda f: (
        (f["event_names_distinct_count"] >= RECON_DISTINCT_CALLS)
        & (f["new_event_names_count"] >= RECON_NEW_CALLS)
        & _known(f)
    ),
    "tls_downgrade": lambda f: f["tls_below_usual_calls_count"] > 0,
    "new_user_agent": lambda f: (f["new_user_agents_count"] > 0) & _known(f),
    "new_access_key": lambda f: (f["new_access_keys_count"] > 0) & _known(f),
    # Federated sign-ins (role sessions: SSO, SAML) report MFAUsed "No" whatever the identity
    # provider did; only IAM users' and root's own sign-ins say something about MFA.
    "console_login_without_mfa": lambda f: (
        (f["console_logins_without_mfa_count"] > 0) & f["signs_in_with_own_password"]
    ),
    "failed_sign_ins": lambda f: f["console_login_failures_count"] >= FAILED_SIGN_INS,
}

SIGNALS: Final = (
    Signal(
        "credentials_off_endpoint_from_new_ip",
        "credentials used from a new public IP outside the principal's VPC endpoint",
        2.0,
        ("new_public_ips_count", "off_vpce_calls_count"),
    ),
    Signal(
        "off_vpc_endpoint",
        "calls outside the VPC endpoint this principal always uses",
        1.0,
        ("off_vpce_calls_count", "off_vpce_calls_share"),
    ),
    Signal(
        "new_public_ip", "public IP never seen for this principal", 0.5, ("new_public_ips_count",)
    ),
    Signal("new_region", "region never used by this principal", 0.5, ("new_regions_count",)),
    Signal(
        "kms_decrypt_spike",
        "KMS Decrypt far above this principal's usual rate for the hour",
        1.5,
        ("kms_decrypt_calls_count", "kms_decrypt_rate_ratio"),
    ),
    Signal(
        "access_denied_burst",
        "burst of AccessDenied errors (probing permissions)",
        1.0,
        ("access_denied_calls_count",),
    ),
    Signal(
        "recon_breadth",
        "many API calls this principal never made before (reconnaissance)",
        1.0,
        ("event_names_distinct_count", "new_event_names_count"),
    ),
    Signal(
        "tls_downgrade", "TLS older than this principal uses", 0.5, ("tls_below_usual_calls_count",)
    ),
    Signal(
        "new_user_agent",
        "client software never seen for this principal",
        0.3,
        ("new_user_agents_count",),
    ),
    Signal(
        "new_access_key", "first use of a long-term access key", 0.5, ("new_access_keys_count",)
    ),
    Signal(
        "console_login_without_mfa",
        "console sign-in without MFA",
        1.0,
        ("console_logins_without_mfa_count",),
    ),
    Signal(
        "failed_sign_ins",
        "repeated failed console sign-ins",
        1.0,
        ("console_login_failures_count",),
    ),
)


def signal_frame(windows: pl.DataFrame, window: timedelta = DEFAULT_WINDOW) -> pl.DataFrame:
    """One boolean column per signal (named as the signal), a row per window row."""
    suffix = window_suffix(window)
    stems = {stem for s in SIGNALS for stem in s.stems} | {"profile_age_hours"}
    f = {stem: pl.col(f"{stem}_by_principal_{suffix}").fill_null(0) for stem in stems}
    f["signs_in_with_own_password"] = pl.col("principal_type").is_in(["IAMUser", "Root"])
    return windows.select([s.condition(f).fill_null(False).alias(s.name) for s in SIGNALS])
