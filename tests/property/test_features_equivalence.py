"""Feeding events whole, split anywhere, or shuffled within the allowed lateness gives the
same window rows (exactly, sorted by principal and window)."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from detector.features import FeatureConfig, empty_state, flush, update
from tests.unit.test_features_factory import events, record

LATENESS_MINUTES = 15
WHO = ("alice", "bob", "carol")
IPS = ("203.0.113.5", "203.0.113.9", "198.51.100.7", "10.0.0.4", "2001:db8:1:2::7", "AWS Internal")
CALLS = (
    ("iam", "ListUsers", {}),
    ("iam", "CreateUser", {"readOnly": False}),
    ("kms", "Decrypt", {}),
    ("s3", "GetObject", {"vpcEndpointId": "vpce-1", "vpcEndpointAccountId": "111122223333"}),
    ("sts", "GetCallerIdentity", {"errorCode": "AccessDenied"}),
    ("ec2", "DescribeInstances", {"tlsDetails": {"tlsVersion": "TLSv1.2"}}),
)
AGENTS = ("aws-cli/2.15.0 Python/3.11", "Boto3/1.34.0 md/Botocore#1.34.0", "Mozilla/5.0 (X11)")


@st.composite
def event_streams(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[int]]:
    """Records in arrival order (each at most LATENESS behind the latest seen), and cut points."""
    n = draw(st.integers(min_value=1, max_value=60))
    rows = []
    minute = 0.0
    for i in range(n):
        minute += draw(st.sampled_from([0.0, 0.3, 1.0, 2.5, 7.0, 40.0]))
        source, name, extra = draw(st.sampled_from(CALLS))
        rec = record(
            i,
            minute,
            who=draw(st.sampled_from(WHO)),
            ip=draw(st.sampled_from(IPS)),
            source=source,
            name=name,
            region=draw(st.sampled_from(["us-east-1", "eu-west-1"])),
            user_agent=draw(st.sampled_from(AGENTS)),
            **extra,
        )
        delay = draw(st.floats(min_value=0, max_value=LATENESS_MINUTES))
        rows.append((minute + delay, i, rec))
        if draw(st.integers(0, 9)) == 0:  # a redelivery, also within the lateness
            rows.append((minute + draw(st.floats(0, LATENESS_MINUTES)), i, dict(rec)))
    arrival = [rec for _, _, rec in sorted(rows, key=lambda r: (r[0], r[1]))]
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(arrival) - 1)), max_size=5)))
    return arrival, cuts


def _feed(batches: list[list[dict[str, Any]]], config: FeatureConfig) -> pl.DataFrame:
    state = empty_state()
    out = []
    for batch in batches:
        state, rows, report = update(state, _frame(batch), config)
        assert report.late_events == 0
        out.append(rows)
    state, rows, _ = flush(state, config)
    out.append(rows)
    return pl.concat(out).sort("principal_key", "window_start", "late_correction")


def _frame(batch: list[dict[str, Any]]) -> pl.DataFrame:
    # One parse per record keeps in-batch redeliveries for the update to drop.
    return pl.concat([events([rec]) for rec in batch]) if batch else events([])


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(stream=event_streams(), ttl_minutes=st.sampled_from([30, 60 * 24 * 90]))
def test_any_split_gives_the_same_rows(
    stream: tuple[list[dict[str, Any]], list[int]], ttl_minutes: int
) -> None:
    records, cuts = stream
    config = FeatureConfig(
        allowed_lateness=timedelta(minutes=LATENESS_MINUTES),
        profile_ttl=timedelta(minutes=ttl_minutes),
        habit_min_calls=3,
    )
    whole = _feed([records], config)
    bounds = [0, *cuts, len(records)]
    split = _feed([records[a:b] for a, b in itertools.pairwise(bounds)], config)
    assert_frame_equal(whole, split, check_exact=True)
    in_time_order = sorted(records, key=lambda r: (r["eventTime"], r["eventID"]))
    assert_frame_equal(whole, _feed([in_time_order], config), check_exact=True)
