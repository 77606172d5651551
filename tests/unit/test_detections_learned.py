"""Detections that judge an event against what the principal profile knows (new address, new
region, TLS history): what they say with a profile, and that a split batch or a replay through
the pipeline gives the same findings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl

from detector.detections import (
    DetectionConfig,
    DetectionContext,
    DetectionState,
    default_detections,
    run_detections,
)
from detector.detections._detection import KNOWN_ITEMS_SCHEMA, PRINCIPAL_HISTORY_SCHEMA
from detector.detections._examples import (
    ACCOUNT,
    OTHER_ACCOUNT,
    api_call,
    console_sign_in,
    iam_user,
    instance_role_session,
    role_session,
)
from detector.events import records_to_events
from detector.findings import Finding

NOW = datetime(2024, 5, 1, 15, 0, tzinfo=UTC)
CI_KEY = f"arn:aws:iam::{ACCOUNT}:role/ci"
ALICE_KEY = f"arn:aws:iam::{ACCOUNT}:role/AWSReservedSSO_Admin_0a1b#alice@example.com"


def run(records: list[dict[str, Any]], context: DetectionContext | None) -> tuple[Finding, ...]:
    events = records_to_events(records, origin="test").events
    _, found = run_detections(
        events, default_detections(), DetectionState(), DetectionConfig(), NOW, context
    )
    return found


def items(*rows: tuple[str, str, str]) -> DetectionContext:
    frame = pl.DataFrame(rows, schema=KNOWN_ITEMS_SCHEMA, orient="row")
    profile = frame.with_columns(pl.col("kind").cast(pl.Categorical))
    return DetectionContext.from_profile_items(profile)


def refused_stop(ip: str) -> dict[str, Any]:
    return api_call(
        "cloudtrail.amazonaws.com",
        "StopLogging",
        {"name": "org-trail"},
        identity=role_session("ci", "run-1"),
        error_code="AccessDenied",
        source_ip=ip,
    )


def test_a_refused_evasion_from_an_address_new_to_the_principal_is_suspicious() -> None:
    profile = items((CI_KEY, "public_ip", "198.51.100.20"), (CI_KEY, "region", "eu-west-1"))
    known = run([refused_stop("198.51.100.20")], profile)
    assert [f.kind for f in known] == ["defense_evasion_attempt_failed"]
    new = run([refused_stop("192.0.2.55")], profile)
    assert [f.kind for f in new] == ["defense_evasion_attempt_failed_suspicious"]
    assert new[0].evidence["new_address"] is True
    # Without a profile no address is new.
    assert [f.kind for f in run([refused_stop("192.0.2.55")], None)] == [
        "defense_evasion_attempt_failed"
    ]


def launch(region: str, identity: dict[str, Any] | None = None) -> dict[str, Any]:
    return api_call(
        "ec2.amazonaws.com",
        "RunInstances",
        {"instanceType": "t3.small", "instancesSet": {"items": [{"maxCount": 1}]}},
        identity=identity or role_session("ci", "run-1"),
        region=region,
    )


def test_a_launch_in_a_region_new_to_the_principal_or_the_account() -> None:
    profile = items(
        (CI_KEY, "region", "eu-west-1"),
        (f"arn:aws:iam::{ACCOUNT}:role/batch", "region", "us-east-1"),
    )
    assert run([launch("eu-west-1")], profile) == ()
    in_account = run([launch("us-east-1")], profile)
    assert [f.kind for f in in_account] == ["ec2_instances_launched_unusually"]
    assert in_account[0].evidence["reasons"] == ["region_new_to_principal"]
    nowhere = run([launch("ap-southeast-3")], profile)
    assert nowhere[0].evidence["reasons"] == [
        "region_new_to_principal",
        "region_new_to_account",
    ]
    # A principal the profile does not know yet has no "usual" regions; its account does.
    stranger = role_session("new-pipeline", "run-9")
    assert run([launch("eu-west-1", stranger)], profile) == ()
    assert run([launch("sa-east-1", stranger)], profile)[0].evidence["reasons"] == [
        "region_new_to_account"
    ]
    assert run([launch("ap-southeast-3")], None) == ()


def tls_call(tls: str | None) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if tls is not None:
        extra["tlsDetails"] = {"tlsVersion": tls, "cipherSuite": "ECDHE-RSA-AES128-GCM-SHA256"}
    return api_call(
        "s3.amazonaws.com",
        "ListBuckets",
        identity=role_session("AWSReservedSSO_Admin_0a1b", "alice@example.com"),
        read_only=True,
        **extra,
    )


def tls_history(direct: int, with_tls: int, best: int) -> DetectionContext:
    frame = pl.DataFrame(
        [(ALICE_KEY, datetime(2024, 4, 1, tzinfo=UTC), direct, with_tls, best)],
        schema=PRINCIPAL_HISTORY_SCHEMA,
        orient="row",
    )
    return DetectionContext(principal_history=frame)


def test_tls_is_judged_against_the_principal_own_history() -> None:
    modern = tls_history(direct=500, with_tls=500, best=4)
    assert [f.kind for f in run([tls_call("TLSv1")], modern)] == ["tls_downgraded"]
    assert run([tls_call("TLSv1.2")], modern) == ()
    missing = run([tls_call(None)], modern)
    assert [f.evidence["why"] for f in missing] == ["tls_details_missing"]
    # A legacy client that only ever used TLS 1.0 is its own normal; a short or mixed history
    # does not make missing details odd.
    assert run([tls_call("TLSv1")], tls_history(direct=500, with_tls=500, best=1)) == ()
    assert run([tls_call(None)], tls_history(direct=40, with_tls=40, best=4)) == ()
    assert run([tls_call(None)], tls_history(direct=500, with_tls=450, best=4)) == ()


def test_a_split_batch_gives_the_same_findings_as_the_whole() -> None:
    profile = items((CI_KEY, "public_ip", "198.51.100.20"), (CI_KEY, "region", "eu-west-1"))
    records = [
        refused_stop("192.0.2.55"),
        launch("us-west-2"),
        tls_call("TLSv1"),
        refused_stop("198.51.100.20"),
    ]
    events = records_to_events(records, origin="test").events
    config, detections = DetectionConfig(), default_detections()
    _, whole = run_detections(events, detections, DetectionState(), config, NOW, profile)
    state, first = run_detections(events[:2], detections, DetectionState(), config, NOW, profile)
    _, second = run_detections(events[2:], detections, state, config, NOW, profile)
    assert sorted((f.finding_id, f.kind) for f in whole) == sorted(
        (f.finding_id, f.kind) for f in (*first, *second)
    )
    assert {f.kind for f in whole} == {
        "defense_evasion_attempt_failed",
        "defense_evasion_attempt_failed_suspicious",
        "ec2_instances_launched_unusually",
        "tls_downgraded",
    }


def instance_call(
    role: str, ip: str, account: str = ACCOUNT, at: str = "2024-05-01T12:00:00Z"
) -> dict[str, Any]:
    return api_call(
        "s3.amazonaws.com",
        "ListBuckets",
        identity=instance_role_session(role, "i-0abc1234def567890", account),
        source_ip=ip,
        read_only=True,
        event_time=at,
    )


def test_instance_credentials_are_judged_against_the_account_workloads_egress() -> None:
    # orders-app is known to leave through the NAT at 198.51.100.20; a person's address is
    # no workload egress.
    profile = items(
        (f"arn:aws:iam::{ACCOUNT}:role/orders-app", "public_ip", "198.51.100.20"),
        (ALICE_KEY, "public_ip", "192.0.2.80"),
    )
    assert run([instance_call("orders-app", "198.51.100.20")], profile) == ()
    # A new role behind the same NAT is quiet; the same address in another account is not.
    assert run([instance_call("billing-batch", "198.51.100.20")], profile) == ()
    other = run([instance_call("orders-app", "198.51.100.20", OTHER_ACCOUNT)], profile)
    assert [f.kind for f in other] == ["instance_credentials_used_outside"]
    # Stolen credentials used from another (even AWS-hosted) address fire.
    for ip in ("192.0.2.80", "203.0.113.99"):
        found = run([instance_call("orders-app", ip)], profile)
        assert [f.kind for f in found] == ["instance_credentials_used_outside"]


def test_what_the_batch_showed_a_profile_lag_before_counts_as_known() -> None:
    # A replay's batch may span hours from an empty state: a NAT address is new only until a
    # stream's profile would have learnt it (profile_lag after its first use), in any role of
    # the account.
    calls = [
        instance_call("orders-app", "198.51.100.20", at="2024-05-01T12:00:00Z"),
        instance_call("billing-batch", "198.51.100.20", at="2024-05-01T12:10:00Z"),
        instance_call("orders-app", "198.51.100.20", at="2024-05-01T12:30:00Z"),
        instance_call("billing-batch", "198.51.100.20", at="2024-05-01T14:00:00Z"),
    ]
    found = run(calls, None)
    assert sorted((f.principal.rsplit("/", 1)[-1], f.event_count) for f in found) == [
        ("billing-batch", 1),
        ("orders-app", 1),
    ]
    assert all(f.window_start.hour == 12 for f in found)


def test_a_user_signing_in_without_mfa_from_the_same_place_is_reported_once() -> None:
    bob = iam_user("bob")
    daily = [
        console_sign_in(bob, source_ip="198.51.100.23", event_time=f"2024-05-0{day}T09:00:00Z")
        for day in (1, 2, 3)
    ]
    # One batch (a replay) and one batch a day (a stream whose profile learnt day 1) agree.
    assert [f.window_start.day for f in run(daily, None)] == [1]
    learnt = items((f"arn:aws:iam::{ACCOUNT}:user/bob", "public_network", "198.51.100.0/24"))
    assert run(daily[1:], learnt) == ()
    # The same password used from somewhere new is reported again.
    travel = console_sign_in(bob, source_ip="192.0.2.7", event_time="2024-05-03T18:00:00Z")
    found = run([*daily, travel], None)
    assert [(f.window_start.day, f.evidence["network"]) for f in found] == [
        (1, "198.51.100.0/24"),
        (3, "192.0.2.0/24"),
    ]
