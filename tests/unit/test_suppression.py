"""Suppression rules: every condition, wildcards, CIDRs, expiry, files refused with the line
named, the file re-read when it changes, the audit record and the expiry logged once."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.cli import main
from detector.findings import Finding
from detector.sinks import MemoryFindingSink
from detector.suppression import (
    FileRulesSource,
    SuppressionFileError,
    Suppressor,
    matching_rule,
    parse_rules,
    split_findings,
)

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def finding(**overrides: Any) -> Finding:
    values: dict[str, Any] = {
        "finding_id": "f1",
        "kind": "model_anomaly",
        "title": "unusual",
        "severity": 5.0,
        "principal": "arn:aws:iam::111122223333:role/app",
        "principal_arn": "arn:aws:sts::111122223333:assumed-role/app/i-0abc",
        "principal_type": "AssumedRole",
        "account_id": "111122223333",
        "region": "eu-west-1",
        "window_start": T0,
        "window_end": T0 + timedelta(minutes=15),
        "first_seen": T0,
        "last_seen": T0 + timedelta(minutes=10),
        "created_at": T0 + timedelta(minutes=16),
        "score": 0.8,
        "source_ips": ("203.0.113.10",),
        "signals": ("iam:ListUsers",),
        "evidence": {
            "user_agent": "aws-cli/2.15.0 Python/3.11",
            "new_event_names": ["iam:GetUser"],
        },
    }
    return Finding(**(values | overrides))


def rules(match: str, expires: str = "") -> str:
    return (
        "rules:\n  - id: r1\n    reason: known\n    owner: secops\n"
        + (f"    expires: {expires}\n" if expires else "")
        + f"    match: {match}\n"
    )


def suppressed(match: str, f: Finding, expires: str = "") -> bool:
    return matching_rule(parse_rules(rules(match, expires)).rules, f) is not None


@pytest.mark.parametrize(
    ("match", "hit", "miss"),
    [
        ("{kinds: [model_anomaly]}", {}, {"kind": "console_login_without_mfa"}),
        ("{kinds: ['sqs_*']}", {"kind": "sqs_queue_shared"}, {}),
        ("{principals: ['arn:aws:iam::111122223333:role/ap?']}", {}, {"principal": "x"}),
        # the session ARN matches too
        ("{principals: ['arn:aws:sts::*:assumed-role/app/*']}", {}, {"principal_arn": None}),
        ("{accounts: ['1111*']}", {}, {"account_id": "444455556666"}),
        ("{regions: [eu-west-1, us-east-1]}", {}, {"region": "ap-south-1"}),
        ("{severity_below: 5.5}", {}, {"severity": 5.5}),
        ("{source_ips: [203.0.113.0/24]}", {}, {"source_ips": ("198.51.100.1",)}),
        ("{source_ips: [203.0.113.10]}", {}, {"source_ips": ("203.0.113.11",)}),
        ("{source_ips: ['2001:db8::/32']}", {"source_ips": ("2001:db8::5",)}, {}),
        # every address the finding carries must be inside
        ("{source_ips: [203.0.113.0/24]}", {}, {"source_ips": ("203.0.113.1", "198.51.100.1")}),
        ("{source_ips: [203.0.113.0/24]}", {}, {"source_ips": ()}),
        ("{source_ips: [203.0.113.0/24]}", {}, {"source_ips": ("ec2.amazonaws.com",)}),
        ("{user_agents: ['AWS-CLI/*']}", {}, {"evidence": {"user_agent": "Boto3/1.34"}}),
        ("{user_agents: ['aws-cli*']}", {}, {"evidence": {}}),
        ("{user_agents: ['boto3']}", {"evidence": {"new_user_agents": ["boto3"]}}, {}),
        ("{event_names: ['iam:*']}", {}, {"signals": ("s3:GetObject",)}),
        ("{event_names: [ListUsers, GetUser]}", {}, {"signals": ("iam:ListUsers", "iam:Put")}),
        ("{event_names: ['List*']}", {"evidence": {}}, {"signals": (), "evidence": {}}),
    ],
)
def test_each_condition_matches_what_it_names_and_nothing_else(
    match: str, hit: dict[str, Any], miss: dict[str, Any]
) -> None:
    assert suppressed(match, finding(**hit))
    assert not suppressed(match, finding(**miss))


def test_every_condition_of_a_rule_must_hold() -> None:
    match = "{kinds: [model_anomaly], regions: [eu-west-1], severity_below: 4}"
    assert suppressed(match, finding(severity=3.9))
    assert not suppressed(match, finding(severity=4.5))
    assert not suppressed(match, finding(severity=3.9, region="us-east-1"))


def test_an_expired_rule_stops_matching_at_the_findings_event_time() -> None:
    expires = "2024-05-01T12:30:00Z"
    before = finding(last_seen=T0 + timedelta(minutes=29))
    after = finding(last_seen=T0 + timedelta(minutes=30), window_end=T0 + timedelta(minutes=45))
    assert suppressed("{kinds: [model_anomaly]}", before, expires)
    assert not suppressed("{kinds: [model_anomaly]}", after, expires)
    # a date is its midnight UTC
    assert suppressed("{regions: [eu-*]}", finding(), "2024-05-02")
    assert not suppressed("{regions: [eu-*]}", finding(), "2024-05-01")


def test_the_first_matching_rule_in_file_order_names_the_suppression() -> None:
    text = (
        "rules:\n"
        "  - {id: wide, reason: a, owner: o, match: {kinds: [model_anomaly]}}\n"
        "  - {id: narrow, reason: b, owner: o, match: {regions: [eu-west-1]}}\n"
    )
    found = split_findings(parse_rules(text).rules, [finding(), finding(finding_id="f2", kind="k")])
    assert [(f.finding_id, r.id) for f, r in found.suppressed] == [("f1", "wide"), ("f2", "narrow")]
    assert found.kept == ()


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("rules:\n  - id: a\n    reason: r\n    owner: o\n    match: {kinds: [x]}\n    tags: [y]\n",
         6, "unknown field 'tags'"),
        ("rules:\n  - id: a\n    reason: r\n    owner: o\n    match:\n      kind: [x]\n",
         6, "unknown condition 'kind'"),
        ("rules:\n  - id: a\n    reason: r\n    owner: o\n    match:\n      source_ips:\n"
         "        - 10.0.0.0/8\n        - 10.0.0.1/8\n", 8, "not an IP or CIDR"),
        ("rules:\n  - id: a\n    reason: r\n    owner: o\n    match: {}\n", 5, "at least one"),
        ("rules:\n  - id: a\n    reason: r\n    owner: o\n    match:\n", 5, "at least one"),
        ("rules:\n  - id: a\n    reason: r\n    owner: o\n    match: {principals: ['*']}\n",
         5, "would match every finding"),
        ("rules:\n  - id: a\n    reason: r\n    owner: o\n    match:\n      source_ips: "
         "[0.0.0.0/0, '::/0']\n      severity_below: 9\n", 5, "would match every finding"),
        ("rules:\n  - id: a\n    reason: r\n    owner: o\n    match: {regions: []}\n",
         5, "regions is empty"),
        ("rules:\n  - id: a\n    owner: o\n    match: {kinds: [x]}\n", 2, "missing 'reason'"),
        ("rules:\n  - id: a\n    reason: r\n    owner: o\n    expires: soon\n    match: {kinds: [x]}\n",
         5, "expires must be a date"),
        ("rules:\n  - id: a\n    reason: r\n    owner: o\n    match: {accounts: [111122223333]}\n",
         5, "quote account ids"),
        ("rules:\n  - {id: a, reason: r, owner: o, match: {kinds: [x]}}\n"
         "  - {id: a, reason: r, owner: o, match: {kinds: [y]}}\n", 3, "duplicate id"),
        ("rules:\n  - id: a\n    reason: r\n   owner: o\n", 4, "not YAML"),
        ("rule:\n  - {id: a, reason: r, owner: o, match: {kinds: [x]}}\n", 1, "unknown field 'rule'"),
    ],
)  # fmt: skip
def test_an_invalid_file_is_refused_naming_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(SuppressionFileError) as caught:
        parse_rules(text, "rules.yaml")
    assert any(p.line == line and message in p.message for p in caught.value.problems), (
        caught.value.problems
    )
    assert f"rules.yaml:{line}: " in str(caught.value)


def test_every_problem_of_a_file_is_listed_at_once() -> None:
    text = (
        "rules:\n"
        "  - {id: a, reason: r, owner: o, match: {colour: red}}\n"
        "  - {id: b, reason: r, owner: o, match: {source_ips: [300.1.1.1]}}\n"
    )
    with pytest.raises(SuppressionFileError) as caught:
        parse_rules(text)
    assert [p.line for p in caught.value.problems] == [2, 3]


def test_the_documented_example_is_a_valid_file() -> None:
    doc = (ROOT / "docs" / "operator-loop.md").read_text()
    example = re.search(r"```yaml\n(rules:.*?)```", doc, re.S)
    assert example is not None
    parsed = parse_rules(example.group(1), "docs/operator-loop.md")
    assert len(parsed) >= 2
    assert all(rule.reason and rule.owner for rule in parsed.rules)


# -- the suppressor: reading, re-reading, auditing -----------------------------------------


def write(path: Path, text: str, tick: int) -> None:
    """Write and give the file a distinct mtime (a rewrite within the clock's resolution would
    otherwise look unchanged only if the size were also equal)."""
    path.write_text(text)
    os.utime(path, ns=(tick * 1_000_000_000, tick * 1_000_000_000))


async def test_the_file_is_re_read_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    write(path, rules("{kinds: [model_anomaly]}"), 1)
    audit = MemoryFindingSink()
    failures: list[int] = []
    suppressor = Suppressor(
        FileRulesSource(path),
        audit,
        on_reload_failed=lambda: failures.append(1),
    )
    await suppressor.start()
    first = await suppressor.split([finding()])
    assert [r.id for _, r in first.suppressed] == ["r1"]
    await suppressor.write_audit(first)
    suppressor.record(first)

    write(path, rules("{kinds: [other_kind]}").replace("id: r1", "id: r2"), 2)
    second = await suppressor.split([finding(finding_id="f2")])
    assert second.suppressed == ()
    assert [f.finding_id for f in second.kept] == ["f2"]

    write(path, "rules: [oops", 3)  # a broken edit: logged, and the rules in force kept
    third = await suppressor.split([finding(finding_id="f3", kind="other_kind")])
    assert [r.id for _, r in third.suppressed] == ["r2"]
    path.unlink()  # gone: also logged and counted once, however many batches follow
    for _ in range(3):
        await suppressor.split([finding(finding_id="f4")])
    assert failures == [1, 1]
    assert suppressor.counts == {"r1": 1}

    record = orjson.loads(audit.findings[0].body)
    assert record["rule_id"] == "r1"
    assert record["rule"]["reason"] == "known"
    assert record["finding"]["finding_id"] == "f1"


async def test_an_unusable_file_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(rules("{}"))
    with pytest.raises(SuppressionFileError, match=r"rules.yaml:5: "):
        await Suppressor(FileRulesSource(path), MemoryFindingSink()).start()


async def test_an_expired_rule_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(rules("{kinds: [model_anomaly]}", "2024-05-01T13:00:00Z"))
    suppressor = Suppressor(FileRulesSource(path), MemoryFindingSink())
    await suppressor.start()
    late = finding(last_seen=T0 + timedelta(hours=2), window_end=T0 + timedelta(hours=2))
    with caplog.at_level(logging.WARNING, logger="detector.suppression"):
        assert (await suppressor.split([finding()])).suppressed != ()
        for i in range(3):
            later = replace(late, finding_id=f"late{i}", last_seen=late.last_seen + timedelta(i))
            assert (await suppressor.split([later])).suppressed == ()
    expired = [r for r in caplog.records if "expired" in r.getMessage()]
    assert len(expired) == 1


# -- the command line ------------------------------------------------------------------------


def test_check_accepts_a_valid_file_and_lists_its_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(rules("{kinds: [model_anomaly]}", "2020-01-01"))
    assert main(["suppressions", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 rule(s) OK" in out
    assert "r1 (line 2, secops, until 2020-01-01 00:00Z) (EXPIRED" in out


def test_check_refuses_an_invalid_file_naming_each_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(rules("{source_ips: [10.0.0.300], colour: red}"))
    assert main(["suppressions", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:5: rule 'r1': source_ips: '10.0.0.300' is not an IP or CIDR" in err
    assert f"{path}:5: rule 'r1': unknown condition 'colour'" in err


def test_check_names_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["suppressions", "check", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_the_public_names_are_the_intended_ones() -> None:
    import detector.suppression as suppression

    assert all(getattr(suppression, name) is not None for name in suppression.__all__)
    assert {"Suppressor", "parse_rules", "matching_rule", "SuppressionFileError"} <= set(
        suppression.__all__
    )
