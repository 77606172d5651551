"""A principal's calls made with an older TLS than it uses, or without the TLS details its calls
always carry: the credentials are in another client's hands (a stolen session replayed by a
tool, an interception proxy), even when the user agent and address are copied.

Judged against the principal's own TLS history in the profile
(:attr:`DetectionContext.principal_history`): a call with TLS 1.0/1.1 by a principal whose best
TLS is 1.2 or newer, or a direct call with no TLS details by a principal whose every one of at
least ``_ALWAYS_TLS_CALLS`` direct calls carried them. Without a profile, a TLS 1.0/1.1 call
fires on its own: AWS endpoints have required TLS 1.2 since 2024, so such a call is a client
to look at anyway. A principal that has only ever used TLS 1.0/1.1 is its own normal.

Imports: polars, this package's vocabulary and examples.
"""

from __future__ import annotations

from typing import Any, Final

import polars as pl

from detector.detections._detection import Detection, DetectionConfig, DetectionContext
from detector.detections._examples import api_call, role_session
from detector.detections._expressions import evidence, only_with_rows

__all__ = ["TLS_DOWNGRADED"]

# As detector.features ranks TLS versions (1 = TLSv1 ... 4 = TLSv1.3).
_RANK: Final = {"TLSv1": 1, "TLSv1.1": 2, "TLSv1.2": 3, "TLSv1.3": 4}
_MODERN: Final = 3
_ALWAYS_TLS_CALLS: Final = 100  # history before "always carries TLS details" is believed

_DIRECT: Final = pl.col("invoked_by").is_null() & pl.col("event_type").eq_missing("AwsApiCall")
_OLD_TLS: Final = pl.col("tls_version").is_in(["TLSv1", "TLSv1.1"])
_NO_TLS: Final = (
    pl.col("tls_version").is_null()
    & pl.col("source_ip_kind").is_in(["public_ipv4", "public_ipv6"])
    & pl.col("vpc_endpoint_id").is_null()
)


def _downgraded(
    events: pl.LazyFrame, config: DetectionConfig, context: DetectionContext
) -> pl.LazyFrame:
    rank = pl.col("tls_version").replace_strict(_RANK, default=None, return_dtype=pl.UInt8)
    history = context.principal_history
    if history is None:
        frame = events.filter(_OLD_TLS).with_columns(
            tls_max=pl.lit(None, dtype=pl.UInt8), why=pl.lit("deprecated_tls")
        )
    else:
        known = history.lazy().select("principal_key", "direct_calls", "tls_calls", "tls_max")
        always = (pl.col("tls_calls") == pl.col("direct_calls")) & (
            pl.col("direct_calls") >= _ALWAYS_TLS_CALLS
        )
        frame = (
            events.join(known, on="principal_key", how="left")
            .with_columns(
                why=pl.when(
                    _OLD_TLS & (pl.col("tls_max").is_null() | (pl.col("tls_max") >= _MODERN))
                )
                .then(pl.lit("older_tls_than_usual"))
                .when(_NO_TLS & always.fill_null(False))
                .then(pl.lit("tls_details_missing"))
            )
            .filter(pl.col("why").is_not_null())
        )
    return frame.with_columns(
        evidence(
            why=pl.col("why"),
            tls_version=pl.col("tls_version"),
            best_tls_seen=pl.col("tls_max").replace_strict(
                {v: k for k, v in _RANK.items()}, default=None, return_dtype=pl.String
            ),
            event_tls_rank=rank,
            user_agent=pl.col("user_agent"),
        )
    )


def _call(tls: str | None) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if tls is not None:
        extra["tlsDetails"] = {
            "tlsVersion": tls,
            "cipherSuite": "ECDHE-RSA-AES128-SHA",
            "clientProvidedHostHeader": "s3.eu-west-1.amazonaws.com",
        }
    return api_call(
        "s3.amazonaws.com",
        "ListBuckets",
        identity=role_session("AWSReservedSSO_Admin_0a1b2c3d", "alice@example.com"),
        read_only=True,
        **extra,
    )


TLS_DOWNGRADED = Detection(
    id="tls_downgraded",
    title="Call with older TLS than the principal uses, or without its usual TLS details",
    description="A call made with TLS 1.0/1.1 by a principal that uses TLS 1.2 or newer (or, "
    "before the profile knows it, any TLS 1.0/1.1 call), or a direct call from a public "
    "address without TLS details by a principal whose calls always carry them: another "
    "client is using the principal's credentials.",
    severity=5.0,
    mitre=("T1078.004", "T1550.001"),
    selects=_DIRECT & (_OLD_TLS | _NO_TLS),
    matches=only_with_rows(_downgraded),
    positives=((_call("TLSv1"),), (_call("TLSv1.1"),)),
    negatives=((_call("TLSv1.3"),), (_call("TLSv1.2"),), (_call(None),)),
    anchors=(
        "GuardDuty: none",
        "Panther: none found",
        "Sigma: none found",
    ),
)
