"""Unit tests of running detections: deduplication, state, context, trusted accounts, evidence.

Timelines are drawn with one column per 10 minutes; ``|`` marks a dedup-period boundary
(default period: 1 hour).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from detector.detections import (
    KNOWN_SOURCE_IPS_SCHEMA,
    Detection,
    DetectionConfig,
    DetectionContext,
    DetectionState,
    default_detections,
    run_detections,
    run_detections_isolated,
)
from detector.detections._examples import (
    ACCOUNT,
    OTHER_ACCOUNT,
    api_call,
    console_sign_in,
    iam_user,
    instance_role_session,
)
from detector.detections._policies import (
    account_of,
    grantee_outside,
    grants_everything,
    outside_grantees,
)
from detector.errors import ConfigError, StateError
from detector.events import empty_events, records_to_events
from detector.findings import Finding

NOW = datetime(2024, 5, 1, 15, 0, tzinfo=UTC)


def stop_logging(at: str, user: str = "alice", trail: str = "org-trail") -> dict[str, Any]:
    return api_call(
        "cloudtrail.amazonaws.com",
        "StopLogging",
        {"name": trail},
        identity=iam_user(user),
        event_time=f"2024-05-01T{at}:00Z",
    )


def run(
    records: list[dict[str, Any]],
    state: DetectionState | None = None,
    config: DetectionConfig | None = None,
    context: DetectionContext | None = None,
    now: datetime = NOW,
) -> tuple[DetectionState, tuple[Finding, ...]]:
    events = records_to_events(records, origin="test").events
    return run_detections(
        events,
        default_detections(),
        state or DetectionState(),
        config or DetectionConfig(),
        now,
        context,
    )


def test_one_finding_per_detection_principal_and_period_within_a_batch() -> None:
    # 12:00 |12:10 12:20 12:50 |13:05       alice: 3 in period 12, 1 in 13; bob: 1 in 12
    records = [stop_logging(t) for t in ("12:10", "12:20", "12:50", "13:05")]
    records.append(stop_logging("12:30", user="bob"))
    _, found = run(records)
    by_key = {(f.principal.rsplit("/", 1)[-1], f.window_start.hour): f for f in found}
    assert sorted(by_key) == [("alice", 12), ("alice", 13), ("bob", 12)]
    alice_12 = by_key[("alice", 12)]
    assert alice_12.event_count == 3
    assert alice_12.first_seen == datetime(2024, 5, 1, 12, 10, tzinfo=UTC)
    assert alice_12.last_seen == datetime(2024, 5, 1, 12, 50, tzinfo=UTC)
    assert alice_12.window_end - alice_12.window_start == timedelta(hours=1)


def test_a_later_batch_adds_nothing_to_an_already_reported_period() -> None:
    state, first = run([stop_logging("12:10")])
    state, second = run([stop_logging("12:40", trail="other")], state)
    assert len(first) == 1
    assert second == ()
    _, third = run([stop_logging("13:01")], state)
    assert [f.window_start.hour for f in third] == [13]


def test_a_replay_without_state_gives_the_same_finding_ids() -> None:
    records = [stop_logging("12:10"), stop_logging("12:20", user="bob")]
    _, first = run(records)
    _, again = run(records, now=NOW + timedelta(days=3))
    assert [f.finding_id for f in first] == [f.finding_id for f in again]
    assert first[0].created_at != again[0].created_at


def test_the_state_snapshot_round_trips_as_plain_data() -> None:
    state, _ = run([stop_logging("12:10"), stop_logging("14:10", user="bob")])
    snapshot = state.snapshot()
    assert snapshot == {
        "version": 1,
        "emitted": [
            [
                "cloudtrail_logging_stopped",
                f"arn:aws:iam::{ACCOUNT}:user/alice",
                "2024-05-01T12:00:00.000Z",
            ],
            [
                "cloudtrail_logging_stopped",
                f"arn:aws:iam::{ACCOUNT}:user/bob",
                "2024-05-01T14:00:00.000Z",
            ],
        ],
    }
    assert DetectionState.restore(snapshot) == state
    _, again = run([stop_logging("12:30")], DetectionState.restore(snapshot))
    assert again == ()


@pytest.mark.parametrize(
    ("snapshot", "message"),
    [
        ({"version": 2, "emitted": []}, "version"),
        ({"version": 1, "emitted": {}}, "not a list"),
        ({"version": 1, "emitted": [["a", "b"]]}, r"emitted\[0\]"),
        ({"version": 1, "emitted": [["a", "b", "yesterday Z"]]}, r"emitted\[0\]"),
    ],
)
def test_a_bad_snapshot_raises_state_error(snapshot: dict[str, Any], message: str) -> None:
    with pytest.raises(StateError, match=message):
        DetectionState.restore(snapshot)


def test_the_state_forgets_periods_older_than_the_retention() -> None:
    state, _ = run([stop_logging("12:10")])
    assert len(state.emitted) == 1
    later, _ = run([], state, now=NOW + timedelta(days=2))
    assert later.emitted == frozenset()


def test_an_empty_batch_changes_nothing() -> None:
    state, _ = run([stop_logging("12:10")])
    after, found = run_detections(
        empty_events(), default_detections(), state, DetectionConfig(), NOW
    )
    assert found == ()
    assert after == state


def test_no_detections_no_findings() -> None:
    events = records_to_events([stop_logging("12:10")], origin="t").events
    _, found = run_detections(events, (), DetectionState(), DetectionConfig(), NOW)
    assert found == ()


@pytest.mark.parametrize("detection", default_detections(), ids=lambda d: d.id)
def test_a_detection_matches_nothing_on_no_rows(detection: Detection) -> None:
    # The runner skips a detection whose selection is empty in a batch: that is only the
    # same as running it if it matches nothing on no rows, with or without a profile.
    for context in (DetectionContext(), detection.example_context or DetectionContext()):
        matched = detection.matches(empty_events().lazy(), DetectionConfig(), context)
        assert matched.collect().height == 0


def test_bad_inputs_are_refused_with_a_reason() -> None:
    events = records_to_events([stop_logging("12:10")], origin="t").events
    detections = default_detections()
    naive = datetime(2024, 5, 1)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="timezone"):
        run_detections(events, detections, DetectionState(), DetectionConfig(), naive)
    with pytest.raises(ValueError, match="event_id"):
        run_detections(
            events.drop("event_id"), detections, DetectionState(), DetectionConfig(), NOW
        )
    with pytest.raises(ValueError, match="more than once"):
        run_detections(events, detections * 2, DetectionState(), DetectionConfig(), NOW)


@pytest.mark.parametrize(
    "settings",
    [
        {"dedup_period": timedelta(0)},
        {"state_retention": timedelta(minutes=5)},
        {"failed_sign_in_threshold": 1},
        {"max_sample": 0},
        {"trusted_account_ids": frozenset({"12345"})},
    ],
)
def test_bad_config_raises_config_error(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        DetectionConfig(**settings)


def test_samples_are_capped_and_the_count_is_kept() -> None:
    records = [stop_logging(f"12:{m:02d}", trail=f"t{m}") for m in range(0, 50, 2)]
    _, (finding,) = run(records, config=DetectionConfig(max_sample=3))
    assert finding.event_count == 25
    assert len(finding.event_ids) == 3
    assert finding.evidence["trail"] == ["t0", "t2", "t4"]


def test_evidence_of_several_events_is_merged_per_key() -> None:
    records = [stop_logging("12:10", trail="a"), stop_logging("12:20", trail="a")]
    _, (finding,) = run(records)
    assert finding.evidence == {"trail": "a"}
    assert finding.signals == ("cloudtrail:StopLogging",)
    assert finding.source_ips == ("203.0.113.10",)
    assert finding.model_version == "detections/1"
    assert finding.score == 1.0


def _share_with_partner() -> dict[str, Any]:
    return api_call(
        "rds.amazonaws.com",
        "ModifyDBSnapshotAttribute",
        {"dBSnapshotIdentifier": "s", "attributeName": "restore", "valuesToAdd": [OTHER_ACCOUNT]},
    )


def test_trusted_accounts_are_not_another_account() -> None:
    _, found = run([_share_with_partner()])
    assert [f.kind for f in found] == ["rds_snapshot_shared"]
    assert found[0].evidence["shared_with"] == [OTHER_ACCOUNT]
    trusting = DetectionConfig(trusted_account_ids=frozenset({OTHER_ACCOUNT}))
    _, none = run([_share_with_partner()], config=trusting)
    assert none == ()


def _instance_call(source_ip: str) -> dict[str, Any]:
    return api_call(
        "ec2.amazonaws.com",
        "DescribeInstances",
        {},
        identity=instance_role_session(),
        source_ip=source_ip,
        read_only=True,
    )


def test_known_source_ips_from_the_profile_silence_instance_credential_findings() -> None:
    _, found = run([_instance_call("198.51.100.77")])
    assert [f.kind for f in found] == ["instance_credentials_used_outside"]
    assert found[0].evidence["source_ip"] == "198.51.100.77"
    known = pl.DataFrame(
        {
            "principal_key": [f"arn:aws:iam::{ACCOUNT}:role/orders-app"],
            "source_ip_address": ["198.51.100.77"],
        },
        schema=KNOWN_SOURCE_IPS_SCHEMA,
    )
    context = DetectionContext(known_source_ips=known)
    _, silent = run([_instance_call("198.51.100.77")], context=context)
    assert silent == ()
    _, other = run([_instance_call("192.0.2.99")], context=context)
    assert [f.kind for f in other] == ["instance_credentials_used_outside"]


def test_the_context_can_be_read_from_the_profile_items() -> None:
    items = pl.DataFrame(
        {
            "principal_key": [f"arn:aws:iam::{ACCOUNT}:role/orders-app"] * 2,
            "kind": pl.Series(["public_ip", "region"], dtype=pl.Enum(["public_ip", "region"])),
            "value": ["198.51.100.77", "eu-west-1"],
            "count": [3, 9],
        }
    )
    context = DetectionContext.from_profile_items(items)
    assert context.known_source_ips is not None
    assert context.known_source_ips.rows() == [
        (f"arn:aws:iam::{ACCOUNT}:role/orders-app", "198.51.100.77")
    ]
    _, silent = run([_instance_call("198.51.100.77")], context=context)
    assert silent == ()


def test_known_source_ips_must_have_the_documented_columns() -> None:
    with pytest.raises(ConfigError, match="known_source_ips"):
        DetectionContext(known_source_ips=pl.DataFrame({"principal": ["x"]}))


def test_failed_sign_ins_are_counted_per_principal_within_the_window() -> None:
    def failure(minute: int, user: str) -> dict[str, Any]:
        return console_sign_in(
            iam_user(user), success=False, event_time=f"2024-05-01T12:{minute:02d}:00Z"
        )

    # carol: 12:00 12:01 12:02 | 12:30 12:31  -> never 5 within 10 min; dave: 5 within 4 min
    records = [failure(m, "carol") for m in (0, 1, 2, 30, 31)]
    records += [failure(m, "dave") for m in (40, 41, 42, 43, 44)]
    _, found = run(records)
    by_user = [f for f in found if f.kind == "console_login_failures_repeated"]
    assert [f.principal.rsplit("/", 1)[-1] for f in by_user] == ["dave"]
    assert by_user[0].event_count == 5
    lenient = DetectionConfig(failed_sign_in_window=timedelta(hours=1))
    _, both = run(records, config=lenient)
    by_user = [f for f in both if f.kind == "console_login_failures_repeated"]
    assert sorted(f.principal.rsplit("/", 1)[-1] for f in by_user) == ["carol", "dave"]


def test_failed_sign_ins_from_one_address_are_one_finding_whichever_users() -> None:
    def failure(minute: int, user: str, ip: str) -> dict[str, Any]:
        return console_sign_in(
            iam_user(user),
            success=False,
            event_time=f"2024-05-01T12:{minute:02d}:00Z",
            source_ip=ip,
        )

    # 198.51.100.9 tries five users in five minutes; 192.0.2.7 tries one user twice.
    records = [failure(m, f"user{m}", "198.51.100.9") for m in range(5)]
    records += [failure(m, "erin", "192.0.2.7") for m in (1, 3)]
    _, found = run(records)
    assert [(f.kind, f.principal) for f in found] == [
        ("console_login_failures_from_one_address", "source-ip:198.51.100.9")
    ]
    assert found[0].evidence["users"] == 5
    assert found[0].event_count == 5


class TestPolicies:
    def test_a_grantee_is_outside_only_when_it_names_an_account_an_org_or_everyone(self) -> None:
        assert grantee_outside("all", ACCOUNT) == "*"
        assert grantee_outside("*", ACCOUNT) == "*"
        assert grantee_outside(OTHER_ACCOUNT, ACCOUNT) == OTHER_ACCOUNT
        assert grantee_outside(f"arn:aws:iam::{OTHER_ACCOUNT}:role/r", ACCOUNT) == OTHER_ACCOUNT
        org = "arn:aws:organizations::444455556666:organization/o-a1b2c3d4"
        assert grantee_outside(org, ACCOUNT) == org
        ou = "arn:aws:organizations::444455556666:ou/o-a1b2c3d4/ou-ab12-cd34ef56"
        assert grantee_outside(ou, ACCOUNT) == ou
        for not_an_account in ("not-all", "bob", "s3.amazonaws.com", "AIDAEXAMPLEUSERID"):
            assert grantee_outside(not_an_account, ACCOUNT) is None
        assert grantee_outside(ACCOUNT, ACCOUNT) is None
        assert grantee_outside(OTHER_ACCOUNT, ACCOUNT, [OTHER_ACCOUNT]) is None

    def test_account_of_reads_ids_and_arns(self) -> None:
        assert account_of("123456789012") == "123456789012"
        assert account_of("arn:aws:iam::123456789012:root") == "123456789012"
        assert account_of("arn:aws-us-gov:sts::123456789012:assumed-role/r/s") == "123456789012"
        assert account_of("arn:aws:iam::*:root") == "*"
        assert account_of("ec2.amazonaws.com") is None

    def test_outside_grantees_accepts_every_shape(self) -> None:
        url_encoded = (
            "%7B%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A"
            "%7B%22AWS%22%3A%22444455556666%22%7D%7D%7D"
        )
        assert outside_grantees(url_encoded, ACCOUNT) == [OTHER_ACCOUNT]
        listed = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": ["*", OTHER_ACCOUNT]}}]}
        assert outside_grantees(listed, ACCOUNT) == ["*", OTHER_ACCOUNT]
        assert outside_grantees(listed, ACCOUNT, [OTHER_ACCOUNT]) == ["*"]
        not_principal = {"Statement": {"Effect": "Allow", "NotPrincipal": {"AWS": ACCOUNT}}}
        assert outside_grantees(not_principal, ACCOUNT) == ["*"]
        deny = {"Statement": {"Effect": "Deny", "Principal": "*"}}
        assert outside_grantees(deny, ACCOUNT) == []
        assert outside_grantees("not json", ACCOUNT) == []
        assert outside_grantees(None, ACCOUNT) == []

    def test_grants_everything_needs_all_actions_on_all_resources(self) -> None:
        assert grants_everything({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}})
        assert grants_everything(
            '{"Statement":[{"Effect":"Allow","Action":["*:*"],"Resource":["*"]}]}'
        )
        assert not grants_everything(
            {"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}
        )
        assert not grants_everything(
            {"Statement": {"Effect": "Deny", "Action": "*", "Resource": "*"}}
        )


def _raises_on_collect(events: pl.LazyFrame, *_: object) -> pl.LazyFrame:
    def boom(name: str) -> str:
        raise RuntimeError(f"a bug this event triggers: {name}")

    return events.with_columns(evidence=pl.col("event_name").map_elements(boom, pl.String))


def _raises_at_once(events: pl.LazyFrame, *_: object) -> pl.LazyFrame:
    raise KeyError("a bug in building the query")


@pytest.mark.parametrize("matcher", [_raises_on_collect, _raises_at_once])
def test_a_detection_that_raises_fails_alone_and_the_others_still_report(
    matcher: Any,
) -> None:
    healthy = default_detections()
    broken = dataclasses.replace(
        healthy[0], id="broken_rule", selects=pl.lit(value=True), matches=matcher
    )
    events = records_to_events([stop_logging("12:10")], origin="test").events
    args = (DetectionState(), DetectionConfig(), NOW)

    run = run_detections_isolated(events, [broken, *healthy], *args)

    assert [f.detection_id for f in run.failures] == ["broken_rule"]
    assert "bug" in run.failures[0].error
    _, alone = run_detections(events, healthy, *args)
    assert run.findings == alone  # the others report exactly what they report without it
    assert alone  # StopLogging is a detection of its own
    with pytest.raises((RuntimeError, KeyError, pl.exceptions.ComputeError)):
        run_detections(events, [broken, *healthy], *args)
