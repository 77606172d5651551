"""A long-term access key used from a second network.

Machine keys (a CI server's, an on-premises job's) call AWS from one place: the same /24 every
day. When the principal profile knows a principal that has only ever called from one public
network, a call with its long-term key (``AKIA…``) from another public network is the key in
a second pair of hands, however few calls it makes (stolen keys are often used sparingly, to
stay under volume alarms). Principals seen on two or more networks (people who travel, keys on
laptops) are the model's: one more network says little about them. Without a profile, or for
a principal it has known for less than ``learning_period``, nothing fires. IPv4 only: an IPv6 /48 says less about who
holds the key.

Imports: polars, this package's vocabulary and examples.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import polars as pl

from detector.detections._detection import (
    KNOWN_ITEMS_SCHEMA,
    PRINCIPAL_HISTORY_SCHEMA,
    Detection,
    DetectionConfig,
    DetectionContext,
)
from detector.detections._examples import ACCOUNT, api_call, iam_user
from detector.detections._expressions import evidence, only_with_rows

__all__ = ["ACCESS_KEY_USED_FROM_SECOND_NETWORK"]

_LONG_TERM_KEY: Final = pl.col("access_key_id").str.starts_with("AKIA").fill_null(False)
_DIRECT_PUBLIC_V4: Final = (
    (pl.col("source_ip_kind") == "public_ipv4")
    & pl.col("invoked_by").is_null()
    & pl.col("vpc_endpoint_id").is_null()
)
# The profile's network of an IPv4 address (detector.features: its /24).
_NETWORK: Final = pl.col("source_ip_address").str.replace(r"\.\d+$", ".0/24")


def _second_network(
    events: pl.LazyFrame, config: DetectionConfig, context: DetectionContext
) -> pl.LazyFrame:
    networks = context.known("public_network")
    mature = context.mature(config.learning_period)
    if networks is None or mature is None:
        return events.filter(pl.lit(False)).with_columns(evidence())
    # Only the principals of this batch's candidate calls: the profile may hold millions of
    # items, and a few rows need a handful of them.
    callers = events.select("principal_key").unique()
    single = (
        networks.join(callers, on="principal_key", how="semi")
        .group_by("principal_key")
        .agg(usual_network=pl.col("value").unique())
        .filter(pl.col("usual_network").list.len() == 1)
        .with_columns(pl.col("usual_network").list.first())
    )
    return (
        events.with_columns(network=_NETWORK)
        .join(single, on="principal_key", how="inner")
        .join(mature, on="principal_key", how="inner")
        .filter(
            (pl.col("network") != pl.col("usual_network"))
            & (pl.col("event_time") >= pl.col("known_since"))
        )
        .with_columns(
            evidence(
                access_key=pl.col("access_key_id"),
                network=pl.col("network"),
                usual_network=pl.col("usual_network"),
                call=pl.col("event_name"),
                user_agent=pl.col("user_agent"),
            )
        )
        .drop("network", "usual_network", "known_since")
    )


_CI_USER: Final = f"arn:aws:iam::{ACCOUNT}:user/ci-legacy"
_EXAMPLE_HISTORY: Final = pl.DataFrame(
    [
        (f"arn:aws:iam::{ACCOUNT}:user/{user}", datetime(2024, 4, 1, tzinfo=UTC), 900, 0, None)
        for user in ("ci-legacy", "alice")
    ]
    + [(f"arn:aws:iam::{ACCOUNT}:user/new-ci", datetime(2024, 5, 1, 9, tzinfo=UTC), 40, 0, None)],
    schema=PRINCIPAL_HISTORY_SCHEMA,
    orient="row",
)
_EXAMPLE_PROFILE: Final = pl.DataFrame(
    [
        (_CI_USER, "public_network", "198.51.100.0/24"),
        (_CI_USER, "access_key", "AKIAEXAMPLEKEYID"),
        (f"arn:aws:iam::{ACCOUNT}:user/alice", "public_network", "198.51.100.0/24"),
        (f"arn:aws:iam::{ACCOUNT}:user/alice", "public_network", "192.0.2.0/24"),
        (f"arn:aws:iam::{ACCOUNT}:user/new-ci", "public_network", "198.51.100.0/24"),
    ],
    schema=KNOWN_ITEMS_SCHEMA,
    orient="row",
)


def _ci_call(ip: str, user: str = "ci-legacy") -> dict[str, object]:
    return api_call(
        "s3.amazonaws.com",
        "ListBuckets",
        identity=iam_user(user),
        source_ip=ip,
        read_only=True,
    )


ACCESS_KEY_USED_FROM_SECOND_NETWORK = Detection(
    id="access_key_used_from_second_network",
    title="Long-term access key used from a second network",
    description="A long-term access key (AKIA) of a principal the profile has only ever seen "
    "on one public network was used from another public network, directly (not through a "
    "service or VPC endpoint): the key has a second holder, even if it makes few calls.",
    severity=5.0,
    mitre=("T1078.004",),
    selects=pl.col("principal_type").eq_missing("IAMUser") & _LONG_TERM_KEY & _DIRECT_PUBLIC_V4,
    matches=only_with_rows(_second_network),
    positives=((_ci_call("203.0.113.10"),),),
    negatives=(
        (_ci_call("198.51.100.77"),),  # its usual network
        (_ci_call("203.0.113.10", "alice"),),  # seen on two networks already: the model's
        (_ci_call("203.0.113.10", "mallory"),),  # not in the profile yet
        (_ci_call("203.0.113.10", "new-ci"),),  # known for 3 hours: still learning
    ),
    anchors=(
        "GuardDuty: CredentialAccess:IAMUser/AnomalousBehavior (closest)",
        "Panther: none found",
        "Sigma: none found",
    ),
    example_context=DetectionContext(
        known_items=_EXAMPLE_PROFILE, principal_history=_EXAMPLE_HISTORY
    ),
)
