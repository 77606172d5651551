"""Sigma rules compiled to detections: Sigma's matching semantics on our event columns, the
examples each compiled rule carries, and refusals that name the rule and the reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from detector.detections import DetectionConfig, DetectionState, run_detections
from detector.events import records_to_events
from detector.sigma import KIND_PREFIX, compile_rules, example_record

NOW = datetime(2024, 5, 1, 13, tzinfo=UTC)
RULE_ID = "0d4a3d2e-6f0b-4a7c-9b59-0a1c2b3d4e5f"


def rule(detection: str, *, level: str = "high", tags: str = "[attack.t1562.008]") -> str:
    return f"""
title: Test rule
id: {RULE_ID}
status: test
description: a rule of the tests
tags: {tags}
logsource:
    product: aws
    service: cloudtrail
detection:
{detection}
level: {level}
"""


def compiled(text: str) -> Any:
    rules = compile_rules([("test.yml", text)])
    assert not rules.refused, rules.refused
    (detection,) = rules.detections
    return detection


def fires(detection: Any, **fields: Any) -> bool:
    assignment = {k.replace("__", "."): (v,) for k, v in fields.items()}
    record = example_record(assignment)
    events = records_to_events([record], origin="test").events
    _, found = run_detections(events, (detection,), DetectionState(), DetectionConfig(), NOW)
    return bool(found)


def test_a_compiled_rule_is_a_detection_with_the_rule_s_kind_title_severity_and_techniques() -> (
    None
):
    detection = compiled(
        rule("    selection:\n        eventName: StopLogging\n    condition: selection")
    )
    assert detection.id == f"{KIND_PREFIX}{RULE_ID}"
    assert (detection.title, detection.severity, detection.mitre) == (
        "Test rule",
        7.5,
        ("T1562.008",),
    )
    events = records_to_events(detection.positives[0], origin="p").events
    _, (finding,) = run_detections(events, (detection,), DetectionState(), DetectionConfig(), NOW)
    assert finding.kind == detection.id
    assert finding.evidence == {"eventName": "StopLogging"}


@pytest.mark.parametrize(
    ("level", "severity"),
    [("informational", 1.0), ("low", 2.5), ("medium", 5.0), ("high", 7.5), ("critical", 8.9)],
)
def test_levels_map_to_our_severity_scale(level: str, severity: float) -> None:
    text = rule("    sel:\n        eventName: X\n    condition: sel", level=level)
    assert compiled(text).severity == severity


def test_strings_match_case_insensitively_unless_cased() -> None:
    plain = compiled(rule("    sel:\n        eventName: stoplogging\n    condition: sel"))
    assert fires(plain, eventName="StopLogging")
    cased = compiled(rule("    sel:\n        eventName|cased: stoplogging\n    condition: sel"))
    assert not fires(cased, eventName="StopLogging")
    assert fires(cased, eventName="stoplogging")


@pytest.mark.parametrize(
    ("modifier", "value", "hit", "miss"),
    [
        ("contains", "Browser", "S3 Browser 9.5", "aws-cli/2"),
        ("startswith", "S3 ", "S3 Browser", "My S3 Browser"),
        ("endswith", "Browser", "S3 Browser", "Browser 9.5"),
        ("re", "^S3 .+ 9\\.5$", "S3 Browser 9.5", "S3 Browser 905"),
        ("contains|all", "['S3', '9.5']", "S3 Browser 9.5", "S3 Browser 9"),
    ],
)
def test_string_modifiers(modifier: str, value: str, hit: str, miss: str) -> None:
    detection = compiled(
        rule(f"    sel:\n        userAgent|{modifier}: {value}\n    condition: sel")
    )
    assert fires(detection, userAgent=hit)
    assert not fires(detection, userAgent=miss)


def test_wildcards_inside_a_value() -> None:
    detection = compiled(rule("    sel:\n        eventName: 'Put*Pol?cy'\n    condition: sel"))
    assert fires(detection, eventName="PutUserPolicy")
    assert not fires(detection, eventName="PutUserPolicies")


def test_null_and_a_missing_field_under_not() -> None:
    detection = compiled(
        rule(
            "    sel:\n        eventName: DeleteBucket\n    failed:\n        errorCode|exists: true\n"
            "    condition: sel and not failed"
        )
    )
    assert fires(detection, eventName="DeleteBucket")
    assert not fires(detection, eventName="DeleteBucket", errorCode="AccessDenied")
    nulls = compiled(rule("    sel:\n        errorCode: null\n    condition: sel"))
    assert fires(nulls)
    assert not fires(nulls, errorCode="AccessDenied")


def test_nested_request_parameters_and_arrays_on_the_way() -> None:
    detection = compiled(
        rule("    sel:\n        requestParameters.containerDefinitions.command|contains: curl\n"
             "    condition: sel")
    )  # fmt: skip
    record = example_record({"eventName": ("RegisterTaskDefinition",)})
    record["requestParameters"] = {
        "containerDefinitions": [{"name": "a", "command": ["sh", "-c", "curl 169.254.170.2"]}]
    }
    events = records_to_events([record], origin="t").events
    _, found = run_detections(events, (detection,), DetectionState(), DetectionConfig(), NOW)
    assert found


def test_whole_object_contains_reads_policy_documents_unescaped() -> None:
    detection = compiled(
        rule("    sel:\n        requestParameters|contains: '\"s3:GetObject\"'\n    condition: sel")
    )
    record = example_record({"eventName": ("PutUserPolicy",)})
    record["requestParameters"] = {"policyDocument": '{"Action":"s3:GetObject"}'}
    events = records_to_events([record], origin="t").events
    _, found = run_detections(events, (detection,), DetectionState(), DetectionConfig(), NOW)
    assert found


def test_field_references_compare_two_fields() -> None:
    detection = compiled(
        rule("    sel:\n        userAgent|fieldref: requestParameters.userName\n    condition: sel")
    )
    assert fires(detection, userAgent="bob", requestParameters__userName="Bob")
    assert not fires(detection, userAgent="bob", requestParameters__userName="alice")


def test_the_issuer_type_is_read_from_the_issuer_arn() -> None:
    detection = compiled(
        rule("    sel:\n        userIdentity.sessionContext.sessionIssuer.type: Role\n"
             "    condition: sel")
    )  # fmt: skip
    assert fires(detection, userIdentity__sessionContext__sessionIssuer__type="Role")
    assert not fires(detection, userIdentity__sessionContext__sessionIssuer__type="IAMUser")


def test_rules_without_attack_tags_compile_with_no_techniques() -> None:
    text = rule("    sel:\n        eventName: X\n    condition: sel", tags="[attack.impact]")
    assert compiled(text).mitre == ()


@pytest.mark.parametrize(
    ("detection", "reason"),
    [
        ("    sel:\n        status: success\n    condition: sel", "field 'status'"),
        ("    keywords:\n        - evil\n    condition: keywords", "keyword search"),
        ("    sel:\n        userAgent|re: '(?=x)y'\n    condition: sel", "regular expression"),
    ],
)
def test_what_we_cannot_compile_is_refused_with_the_rule_id_and_the_reason(
    detection: str, reason: str
) -> None:
    rules = compile_rules([("bad.yml", rule(detection))])
    assert not rules.detections
    (refusal,) = rules.refused
    assert (refusal.source, refusal.rule_id) == ("bad.yml", RULE_ID)
    assert reason.lower() in refusal.reason.lower()


def test_unparseable_files_duplicates_and_other_log_sources() -> None:
    good = rule("    sel:\n        eventName: X\n    condition: sel")
    other = good.replace("service: cloudtrail", "service: guardduty")
    rules = compile_rules(
        [("a.yml", good), ("b.yml", good), ("c.yml", "title: [unclosed"), ("d.yml", other)]
    )
    assert len(rules.detections) == 1
    assert rules.other_logsource == 1
    assert [(r.source, r.rule_id is None) for r in rules.refused] == [
        ("b.yml", False),
        ("c.yml", True),
    ]
    assert "already loaded from a.yml" in rules.refused[0].reason


def test_a_list_of_values_is_any_of_them() -> None:
    detection = compiled(
        rule("    sel:\n        eventName:\n            - StopLogging\n            - 'Delete*'\n"
             "    condition: sel")
    )  # fmt: skip
    assert fires(detection, eventName="StopLogging")
    assert fires(detection, eventName="deletetrail")
    assert not fires(detection, eventName="StartLogging")


def test_expanding_modifiers_match_any_of_their_values() -> None:
    windash = compiled(
        rule("    sel:\n        userAgent|windash|contains: ' -a'\n    condition: sel")
    )
    assert fires(windash, userAgent="tool /a x")
    assert fires(windash, userAgent="tool -a x")
    assert not fires(windash, userAgent="tool +a x")


@pytest.mark.parametrize(
    ("modifier", "hit", "miss"),
    [("lt", "4", "5"), ("lte", "5", "6"), ("gt", "6", "5"), ("gte", "5", "4.5")],
)
def test_numeric_comparisons(modifier: str, hit: str, miss: str) -> None:
    detection = compiled(
        rule(f"    sel:\n        requestParameters.maxResults|{modifier}: 5\n    condition: sel")
    )
    assert fires(detection, requestParameters__maxResults=hit)
    assert not fires(detection, requestParameters__maxResults=miss)
    assert not fires(detection, requestParameters__maxResults="many")


def test_cidr_ranges_match_the_addresses_in_them() -> None:
    detection = compiled(
        rule("    sel:\n        sourceIPAddress|cidr: 172.16.0.0/12\n    condition: sel")
    )
    assert fires(detection, sourceIPAddress="172.20.1.9")
    assert not fires(detection, sourceIPAddress="172.32.1.9")
    assert not fires(detection, sourceIPAddress="ec2.amazonaws.com")
