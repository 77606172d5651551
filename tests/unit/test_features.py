"""Windowed features from small hand-made events (timelines drawn where they help)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import polars as pl
import pytest

import detector.features as features
from detector.errors import ConfigError
from detector.features import (
    FEATURE_COLUMNS,
    FEATURE_DTYPES,
    FeatureConfig,
    FeatureState,
    closed_window_schema,
    empty_state,
    feature_columns,
    feature_schema_hash,
    flush,
    network_of,
    update,
    user_agent_family,
)
from tests.unit.test_features_factory import events, record, user_key

CONFIG = FeatureConfig()


def f(stem: str) -> str:
    return f"{stem}_by_principal_5m"


def run(*batches: list[dict[str, Any]], config: FeatureConfig = CONFIG) -> pl.DataFrame:
    """Feed batches in order, flush, return every closed row sorted."""
    state = empty_state()
    out = []
    for batch in batches:
        state, rows, _ = update(state, events(batch), config)
        out.append(rows)
    state, rows, _ = flush(state, config)
    out.append(rows)
    return pl.concat(out).sort("principal_key", "window_start", "late_correction")


def row(frame: pl.DataFrame, minute: int, who: str = "alice") -> dict[str, Any]:
    start = frame.filter(
        (pl.col("principal_key") == user_key(who)) & ~pl.col("late_correction")
    ).filter(pl.col("window_start").dt.minute() == minute)
    assert start.height == 1, start
    return start.row(0, named=True)


def test_public_names_are_the_intended_ones() -> None:
    assert {"update", "flush", "FeatureState", "FeatureConfig", "FEATURE_COLUMNS"} <= set(
        features.__all__
    )
    assert sorted(features.__all__) == sorted(set(features.__all__))
    assert all(hasattr(features, name) for name in features.__all__)


def test_feature_names_explain_themselves_and_match_dtypes() -> None:
    pattern = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)*_by_principal_5m$")
    assert all(pattern.match(name) for name in FEATURE_COLUMNS)
    assert len(set(FEATURE_COLUMNS)) == len(FEATURE_COLUMNS)
    assert tuple(FEATURE_DTYPES) == FEATURE_COLUMNS
    schema = closed_window_schema()
    assert schema.names()[-len(FEATURE_COLUMNS) :] == list(FEATURE_COLUMNS)
    for required in (
        "calls_count_by_principal_5m",
        "new_public_ips_count_by_principal_5m",
        "kms_decrypt_rate_ratio_by_principal_5m",
    ):
        assert required in FEATURE_COLUMNS


def test_schema_hash_is_stable_and_tracks_the_window() -> None:
    assert feature_schema_hash() == feature_schema_hash(timedelta(minutes=5))
    assert feature_schema_hash() != feature_schema_hash(timedelta(minutes=10))
    assert feature_columns(timedelta(hours=1))[0] == "calls_count_by_principal_1h"
    assert re.fullmatch(r"[0-9a-f]{64}", feature_schema_hash())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window": timedelta(minutes=7)},
        {"window": timedelta(0)},
        {"allowed_lateness": timedelta(minutes=-1)},
        {"max_items_per_kind": 0},
        {"habit_share": 0.0},
    ],
)
def test_config_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        FeatureConfig(**kwargs)


def test_rows_have_the_closed_window_schema_and_context() -> None:
    rows = run([record(1, 0.5), record(2, 1, name="GetUser", ip="10.0.0.8")])
    assert rows.schema == closed_window_schema()
    r = row(rows, 0)
    assert r["window_end"] - r["window_start"] == timedelta(minutes=5)
    assert r["principal_type"] == "IAMUser"
    assert r["principal_arn"] == user_key("alice")
    assert r["account_id"] == "111122223333"
    assert r["region"] == "us-east-1"
    assert r["event_ids"] == ["e1", "e2"]
    assert r["source_ips"] == ["203.0.113.5", "10.0.0.8"]  # first seen first
    assert r["late_correction"] is False


def test_volume_errors_and_families() -> None:
    batch = [
        record(1, 0, name="ListUsers"),
        record(2, 1, name="CreateUser", read_only=False),
        record(3, 1, name="AssumeRole", source="sts"),
        record(4, 2, name="StopLogging", source="cloudtrail", read_only=False),
        record(5, 2, name="GetSecretValue", source="secretsmanager"),
        record(
            6, 3, name="DescribeInstances", source="ec2", errorCode="Client.UnauthorizedOperation"
        ),
        record(7, 3, name="ListFunctions", source="lambda", errorCode="AccessDenied"),
        record(8, 4, name="GetObject", source="s3", errorCode="NoSuchKey"),
    ]
    r = row(run(batch), 0)
    assert r[f("calls_count")] == 8
    assert r[f("write_calls_count")] == 2
    assert r[f("event_names_distinct_count")] == 8
    assert r[f("services_distinct_count")] == 7
    assert (r[f("iam_calls_count")], r[f("sts_calls_count")], r[f("logging_calls_count")]) == (
        2,
        1,
        1,
    )
    assert (r[f("ec2_calls_count")], r[f("s3_calls_count")], r[f("other_calls_count")]) == (1, 1, 1)
    assert r[f("secretsmanager_calls_count")] == 1
    assert r[f("error_calls_share")] == pytest.approx(3 / 8)
    assert r[f("access_denied_calls_count")] == 2


def test_source_kinds_are_counted_apart_and_only_public_ips_are_remembered() -> None:
    batch = [
        record(1, 0, ip="203.0.113.5"),
        record(2, 0, ip="10.1.2.3"),
        record(3, 0, ip="AWS Internal"),
        record(4, 0, ip="cloudformation.amazonaws.com"),
        record(5, 0, ip="2001:db8:abcd:12::1"),
    ]
    r = row(run(batch), 0)
    assert r[f("public_ips_distinct_count")] == 2
    assert r[f("private_ip_calls_count")] == 1
    assert r[f("aws_service_calls_count")] == 2
    assert r[f("new_public_ips_count")] == 2
    assert sorted(r["new_public_ips"]) == ["2001:db8:abcd:12::1", "203.0.113.5"]
    assert sorted(r["new_public_networks"]) == ["2001:db8:abcd::/48", "203.0.113.0/24"]


def test_novelty_is_judged_against_the_profile_before_the_window() -> None:
    # minute:  0          5          10
    #          |A ip1     |A ip1 ip2 |A ip2, eu-west-1, boto3, CreateUser
    batch = [
        record(1, 1, ip="198.51.100.1"),
        record(2, 6, ip="198.51.100.1"),
        record(3, 7, ip="198.51.100.2"),
        record(
            4,
            11,
            ip="198.51.100.2",
            region="eu-west-1",
            user_agent="Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 os/linux",
            name="CreateUser",
        ),
    ]
    rows = run(batch)
    first, second, third = row(rows, 0), row(rows, 5), row(rows, 10)
    assert first[f("new_public_ips_count")] == 1
    assert first[f("new_regions_count")] == first[f("new_user_agents_count")] == 1
    assert first[f("new_access_keys_count")] == 1
    assert second[f("new_public_ips_count")] == 1
    assert second["new_public_ips"] == ["198.51.100.2"]
    assert second[f("new_public_networks_count")] == 0
    assert third[f("new_public_ips_count")] == 0
    assert third["new_regions"] == ["eu-west-1"]
    assert third["new_user_agents"] == ["boto3"]
    assert third["new_event_names"] == ["iam:CreateUser"]
    assert third[f("new_access_keys_count")] == 0


def test_items_are_forgotten_after_the_ttl() -> None:
    config = FeatureConfig(profile_ttl=timedelta(minutes=30))
    batch = [
        record(1, 0, ip="198.51.100.1"),
        record(2, 20, ip="198.51.100.1"),
        record(3, 60, ip="198.51.100.1"),
        record(4, 65, ip="198.51.100.9"),
    ]
    rows = run(batch, config=config)
    counts = rows.get_column(f("new_public_ips_count")).to_list()
    assert counts == [1, 0, 1, 1]  # 20: within TTL of 0; 60: 40 min after 20, forgotten
    ages = rows.get_column(f("profile_age_hours")).to_list()
    assert ages == [0.0, pytest.approx(20 / 60), 0.0, pytest.approx(5 / 60)]


def test_user_agent_families_drop_versions() -> None:
    assert user_agent_family("aws-cli/2.15.0 Python/3.11.6 Linux botocore/2.0") == "aws-cli"
    assert user_agent_family("Boto3/1.34.0 md/Botocore#1.34.0") == "boto3"
    assert user_agent_family("aws-sdk-java/1.12.500 Linux/5.10 OpenJDK") == "aws-sdk-java"
    assert (
        user_agent_family("APN/1.0 HashiCorp/1.0 Terraform/1.5.7 aws-sdk-go-v2/1.21") == "terraform"
    )
    assert user_agent_family("console.amazonaws.com") == "console"
    assert user_agent_family("Mozilla/5.0 (Windows NT 10.0; Win64; x64)") == "browser"
    assert user_agent_family("ec2.amazonaws.com") == "aws-service"
    assert user_agent_family("my-tool/0.1") == "other"
    assert user_agent_family("") is None


def test_networks() -> None:
    assert network_of("203.0.113.77") == "203.0.113.0/24"
    assert network_of("2001:db8:1:2::5") == "2001:db8:1::/48"


def test_vpc_endpoint_habit_and_foreign_endpoint() -> None:
    vpce = {"vpcEndpointId": "vpce-0abc", "vpcEndpointAccountId": "111122223333"}
    habitual = [record(i, 0 + i * 0.1, ip="10.0.0.5", **vpce) for i in range(25)]
    later = [
        record(100, 6, ip="10.0.0.5"),
        record(
            101, 6, ip="10.0.0.5", vpcEndpointId="vpce-0new", vpcEndpointAccountId="999988887777"
        ),
    ]
    rows = run(habitual + later, config=FeatureConfig(habit_min_calls=20))
    first, second = row(rows, 0), row(rows, 5)
    assert first[f("off_vpce_calls_count")] == 0  # no habit yet: nothing to be off from
    assert first["new_vpc_endpoints"] == ["vpce-0abc"]
    assert second[f("off_vpce_calls_count")] == 1
    assert second[f("off_vpce_calls_share")] == pytest.approx(0.5)
    assert second[f("foreign_vpce_calls_count")] == 1
    assert second["new_vpc_endpoints"] == ["vpce-0new"]


def test_kms_counts_exclude_service_calls_and_own_consumers() -> None:
    def kms(i: int, minute: float, who: str = "alice", **extra: Any) -> dict[str, Any]:
        return record(i, minute, who=who, name="Decrypt", source="kms", **extra)

    service = record(50, 1, name="GenerateDataKey", source="kms")
    service["userIdentity"]["invokedBy"] = "s3.amazonaws.com"
    batch = [kms(1, 0), kms(2, 1), service, kms(3, 1, who="detector"), kms(4, 1, who="detector")]
    config = FeatureConfig(kms_excluded_principals=frozenset({user_key("detector")}))
    rows = run(batch, config=config)
    alice, own = row(rows, 0), row(rows, 0, who="detector")
    assert alice[f("kms_calls_count")] == 3
    assert alice[f("kms_decrypt_calls_count")] == 2
    assert alice[f("kms_decrypt_rate_ratio")] == pytest.approx(3.0)  # no history: (2+1)/(0+1)
    assert own[f("kms_decrypt_calls_count")] == 0


def test_kms_rate_ratio_compares_with_the_same_hour_of_week() -> None:
    # Week 1: 2 decrypts per window during 09:00-10:00; week 2, same hour: 20 in one window.
    week = 7 * 24 * 60
    usual = [
        record(f"{w}", w * 5 + 1, name="Decrypt", source="kms") for w in range(12) for _ in (0,)
    ]
    usual += [record(f"b{w}", w * 5 + 2, name="Decrypt", source="kms") for w in range(12)]
    burst = [record(f"x{i}", week + 1 + i * 0.1, name="Decrypt", source="kms") for i in range(20)]
    rows = run(usual, burst)
    last = rows.row(rows.height - 1, named=True)
    # usual = 24 decrypts over the 12 windows of Monday 09h seen so far + week 2's first ones
    windows_of_bucket = 12  # Monday 09:00-10:00 of week 1; week 2's window is the one judged
    expected = (20 + 1) / (24 / windows_of_bucket + 1)
    assert last[f("kms_decrypt_rate_ratio")] == pytest.approx(expected)
    assert last[f("calls_rate_ratio")] == pytest.approx(expected)


def test_tls_below_usual_and_missing() -> None:
    usual = [record(i, i * 0.1, tls="TLSv1.3") for i in range(25)]
    odd = [record(100, 6, tls="TLSv1.2"), record(101, 6, tls=None), record(102, 6, tls="TLSv1.3")]
    rows = run(usual + odd)
    first, second = row(rows, 0), row(rows, 5)
    assert first[f("tls_below_usual_calls_count")] == 0
    assert second[f("tls_below_usual_calls_count")] == 1
    assert second[f("tls_missing_calls_count")] == 1


def test_console_sign_ins() -> None:
    def login(i: int, outcome: str, mfa: str) -> dict[str, Any]:
        return record(
            i,
            1,
            name="ConsoleLogin",
            source="signin",
            eventType="AwsConsoleSignIn",
            responseElements={"ConsoleLogin": outcome},
            additionalEventData={"MFAUsed": mfa},
            **({"errorMessage": "Failed authentication"} if outcome == "Failure" else {}),
        )

    batch = [login(1, "Success", "Yes"), login(2, "Success", "No"), login(3, "Failure", "No")]
    r = row(run(batch), 0)
    assert r[f("console_logins_count")] == 3
    assert r[f("console_logins_without_mfa_count")] == 1
    assert r[f("console_login_failures_count")] == 1


def test_windows_close_on_the_watermark_not_on_arrival() -> None:
    # lateness 15 min: an event at 09:21 closes windows ending at or before 09:06.
    state = empty_state()
    state, rows, report = update(state, events([record(1, 1), record(2, 4)]), CONFIG)
    assert rows.height == 0
    assert report.open_windows == 1
    state, rows, report = update(state, events([record(3, 21)]), CONFIG)
    assert rows.height == 1
    assert rows.item(0, f("calls_count")) == 2
    assert report.watermark is not None
    assert report.watermark.minute == 6
    assert report.pending_events == 1
    assert report.windows_closed == 1


def test_out_of_order_within_lateness_lands_in_its_window() -> None:
    state = empty_state()
    state, _, _ = update(state, events([record(1, 12)]), CONFIG)
    state, _, report = update(state, events([record(2, 1)]), CONFIG)  # 11 min behind: on time
    assert report.late_events == 0
    state, rows, _ = flush(state, CONFIG)
    assert rows.get_column(f("calls_count")).to_list() == [1, 1]


def test_late_events_become_correction_rows_and_are_learned() -> None:
    #  window [09:00, 09:05) closes when the watermark passes 09:05 (event at 09:30),
    #  then two events of 09:02 arrive: late.
    state = empty_state()
    state, rows, _ = update(state, events([record(1, 1), record(2, 30)]), CONFIG)
    assert rows.height == 1
    late = [record(3, 2, ip="198.51.100.77"), record(4, 2.5, ip="198.51.100.77")]
    state, rows, report = update(state, events(late), CONFIG)
    assert report.late_events == 2
    assert report.late_corrections == 1
    correction = rows.row(0, named=True)
    assert correction["late_correction"] is True
    assert correction[f("calls_count")] == 2
    assert correction["new_public_ips"] == ["198.51.100.77"]
    items = state.profiles.items.filter(pl.col("kind") == "public_ip")
    assert "198.51.100.77" in items.get_column("value").to_list()


def test_duplicates_count_once_within_the_horizon() -> None:
    state = empty_state()
    twice = pl.concat([events([record(1, 1)]), events([record(1, 1), record(2, 2)])])
    state, _, report = update(state, twice, CONFIG)
    assert report.duplicates == 1
    assert report.pending_events == 2
    state, closed, report = update(state, events([record(1, 1), record(9, 25)]), CONFIG)
    assert report.duplicates == 1
    assert report.late_events == 0
    state, _, report = update(state, events([record(2, 2)]), CONFIG)  # window closed, id known
    assert report.duplicates == 1
    assert report.late_events == 0
    state, rows, _ = flush(state, CONFIG)
    assert pl.concat([closed, rows]).get_column(f("calls_count")).sum() == 3


def test_flush_closes_everything_and_later_events_are_late() -> None:
    state, rows, report = update(empty_state(), events([record(1, 1), record(2, 7)]), CONFIG)
    assert rows.height == 0
    state, rows, report = flush(state, CONFIG)
    assert rows.height == 2
    assert report.open_windows == 0
    assert report.pending_events == 0
    state, rows, report = update(state, events([record(3, 8)]), CONFIG)
    assert report.late_events == 1
    assert rows.get_column("late_correction").to_list() == [True]


def test_update_does_not_change_the_state_it_was_given() -> None:
    state = empty_state()
    before = state.snapshot(CONFIG)
    update(state, events([record(1, 1), record(2, 30)]), CONFIG)
    assert state.snapshot(CONFIG).equals(before)
    assert isinstance(state, FeatureState)


def test_sample_lists_are_capped() -> None:
    config = FeatureConfig(sample_event_ids=3, sample_source_ips=2, sample_new_items=2)
    batch = [record(i, 1 + i * 0.01, ip=f"198.51.100.{i}") for i in range(10, 20)]
    r = row(run(batch, config=config), 0)
    assert r["event_ids"] == ["e10", "e11", "e12"]
    assert len(r["source_ips"]) == 2
    assert r["new_public_ips"] == ["198.51.100.10", "198.51.100.11"]
    assert r[f("new_public_ips_count")] == 10


def test_events_of_one_second_are_sampled_by_id_code_whatever_the_arrival() -> None:
    # CloudTrail times are whole seconds: most events of a window tie on time. The id's code
    # breaks the tie, so the sample is the same for any order or split of the batch.
    config = FeatureConfig(sample_event_ids=3, sample_source_ips=3)
    tied = [record(i, 1, ip=f"198.51.100.{i}") for i in range(20)]
    later = [record(99, 2, ip="198.51.100.99")]
    by_code = sorted(tied, key=lambda r: pl.Series([r["eventID"]]).hash().item())
    expected = [r["eventID"] for r in by_code[:3]]
    for batches in ([tied + later], [later + tied[::-1]], [tied[7:], tied[:7] + later]):
        r = row(run(*batches, config=config), 0)
        assert r["event_ids"] == expected
        assert r["source_ips"] == [r2["sourceIPAddress"] for r2 in by_code[:3]]
        assert r["principal_arn"] == user_key("alice")
