"""Unit tests of the finding record: ids, severity labels, JSON form, JSON Schema, golden files.

Golden files live in tests/data/golden/findings/; after an intended format change, regenerate them with
``DETECTOR_UPDATE_GOLDEN=1 pytest tests/unit/test_findings.py`` and review the diff.
"""

from __future__ import annotations

import dataclasses
import os
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

import detector.findings as findings_package
from detector.detections import DetectionConfig, DetectionState, default_detections, run_detections
from detector.events import records_to_events
from detector.findings import (
    FINDING_FIELDS,
    FINDING_JSON_SCHEMA,
    ExplanationItem,
    Finding,
    finding_from_json,
    finding_id_of,
    finding_to_dict,
    finding_to_json,
    isoformat_ms,
    severity_label,
)

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "findings"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def model_finding(**changes: Any) -> Finding:
    """A finding as the model will write it: feature values against the principal's baseline."""
    window_start = T0
    base = Finding(
        finding_id=finding_id_of("model_anomaly", "arn:aws:iam::111122223333:role/app", T0),
        kind="model_anomaly",
        title="Unusual API activity for arn:aws:iam::111122223333:role/app",
        severity=7.4,
        principal="arn:aws:iam::111122223333:role/app",
        principal_arn="arn:aws:sts::111122223333:assumed-role/app/i-0abc1234def567890",
        principal_type="AssumedRole",
        account_id="111122223333",
        region="eu-west-1",
        window_start=window_start,
        window_end=window_start + timedelta(minutes=15),
        first_seen=T0 + timedelta(seconds=12, milliseconds=345),
        last_seen=T0 + timedelta(minutes=14),
        created_at=T0 + timedelta(minutes=16),
        received_at=T0 + timedelta(seconds=14, milliseconds=120),
        score=0.83,
        signals=("distinct_event_names_by_principal_15m", "error_rate_by_principal_15m"),
        explanation=(
            ExplanationItem(
                what="distinct_event_names_by_principal_15m",
                value=41,
                baseline=6.5,
                detail="6.3x the principal's median",
                contribution=0.42,
            ),
            ExplanationItem(
                what="error_rate_by_principal_15m", value=0.37, baseline=0.01, contribution=0.2
            ),
            ExplanationItem(what="first call of iam:ListUsers by this principal"),
        ),
        event_ids=("e-1", "e-2"),
        event_count=250,
        source_ips=("203.0.113.10",),
        model_version="iforest/2024-05-01",
        mitre=(),
        evidence={"top_event_names": ["ListUsers", "GetAccountAuthorizationDetails"]},
    )
    return dataclasses.replace(base, **changes)


def detection_finding() -> Finding:
    by_id = {d.id: d for d in default_detections()}
    records = by_id["sqs_queue_shared_outside_account"].positives[0]
    events = records_to_events(records, origin="golden").events
    _, found = run_detections(
        events, default_detections(), DetectionState(), DetectionConfig(), T0 + timedelta(hours=1)
    )
    (finding,) = found
    return finding


def test_the_public_names_are_the_intended_ones() -> None:
    assert sorted(findings_package.__all__) == sorted(
        [
            "ASFF_SCHEMA_VERSION",
            "ATTACK_VERSION",
            "OCSF_CLASS_UID",
            "OCSF_PROFILES",
            "OCSF_VERSION",
            "Tactic",
            "Technique",
            "asff_product_arn",
            "finding_count",
            "finding_to_asff",
            "finding_to_ocsf",
            "technique",
            "DEFAULT_AGGREGATION_PERIOD",
            "AggregationConfig",
            "AggregationState",
            "aggregate_findings",
            "first_report",
            "flush_aggregates",
            "FINDING_FIELDS",
            "FINDING_JSON_SCHEMA",
            "FINDING_SCHEMA_VERSION",
            "MAX_SEVERITY",
            "MIN_SEVERITY",
            "ExplanationItem",
            "Finding",
            "JsonScalar",
            "JsonValue",
            "SeverityLabel",
            "finding_from_dict",
            "finding_from_json",
            "finding_id_of",
            "finding_to_dict",
            "finding_to_json",
            "isoformat_ms",
            "severity_label",
        ]
    )


@pytest.mark.parametrize(
    ("severity", "label"),
    [(1.0, "low"), (3.9, "low"), (4.0, "medium"), (6.9, "medium"), (7.0, "high"), (8.9, "high")],
)
def test_severity_labels_follow_guardduty(severity: float, label: str) -> None:
    assert severity_label(severity) == label


@pytest.mark.parametrize("severity", [0.9, 9.0, -1.0])
def test_a_severity_off_the_scale_is_refused(severity: float) -> None:
    with pytest.raises(ValueError, match="severity"):
        model_finding(severity=severity)


def test_the_finding_id_depends_on_kind_principal_and_window_only() -> None:
    one = finding_id_of("root_credential_use", "arn:aws:iam::1:root", T0)
    assert one == finding_id_of("root_credential_use", "arn:aws:iam::1:root", T0)
    assert re.fullmatch(r"[0-9a-f]{32}", one)
    others = {
        finding_id_of("model_anomaly", "arn:aws:iam::1:root", T0),
        finding_id_of("root_credential_use", "arn:aws:iam::2:root", T0),
        finding_id_of("root_credential_use", "arn:aws:iam::1:root", T0 + timedelta(hours=1)),
    }
    assert len(others | {one}) == 4
    # The same instant in another zone is the same window.
    shifted = T0.astimezone(timezone(timedelta(hours=2)))
    assert finding_id_of("root_credential_use", "arn:aws:iam::1:root", shifted) == one


def test_findings_are_hashable_values() -> None:
    one, same = model_finding(), model_finding()
    assert one == same
    assert len({one, same, model_finding(score=0.5)}) == 2


def test_times_are_utc_with_milliseconds_and_z() -> None:
    moment = datetime(2024, 5, 1, 14, 0, 1, 234567, tzinfo=timezone(timedelta(hours=2)))
    assert isoformat_ms(moment) == "2024-05-01T12:00:01.234Z"
    with pytest.raises(ValueError, match="naive"):
        isoformat_ms(datetime(2024, 5, 1))  # noqa: DTZ001 - the point of the test


def test_a_naive_datetime_is_refused_in_a_finding() -> None:
    with pytest.raises(ValueError, match="naive"):
        model_finding(created_at=datetime(2024, 5, 1))  # noqa: DTZ001 - the point of the test


def test_inconsistent_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="window_end"):
        model_finding(window_end=T0 - timedelta(seconds=1))
    with pytest.raises(ValueError, match="last_seen"):
        model_finding(last_seen=T0)


def test_json_keys_come_in_field_order_and_evidence_keys_sorted() -> None:
    finding = model_finding(evidence={"b": 1, "a": {"z": 1, "y": 2}})
    doc = orjson.loads(finding_to_json(finding))
    assert tuple(doc) == FINDING_FIELDS
    assert list(doc["evidence"]) == ["a", "b"]
    assert list(doc["evidence"]["a"]) == ["y", "z"]
    assert doc["severity_label"] == "high"
    assert doc["first_seen"] == "2024-05-01T12:00:12.345Z"


@pytest.mark.parametrize("make", [model_finding, detection_finding], ids=["model", "detection"])
def test_json_round_trips(make: Any) -> None:
    finding = make()
    assert finding_from_json(finding_to_json(finding)) == finding
    assert finding_to_json(finding_from_json(finding_to_json(finding))) == finding_to_json(finding)


def test_reading_a_bad_document_names_the_problem() -> None:
    doc = finding_to_dict(model_finding())
    with pytest.raises(ValueError, match="missing fields: title"):
        finding_from_json(orjson.dumps({k: v for k, v in doc.items() if k != "title"}))
    with pytest.raises(ValueError, match="unknown fields: extra"):
        finding_from_json(orjson.dumps(doc | {"extra": 1}))
    with pytest.raises(ValueError, match="severity_label"):
        finding_from_json(orjson.dumps(doc | {"severity_label": "low"}))
    with pytest.raises(ValueError, match="window_start"):
        finding_from_json(orjson.dumps(doc | {"window_start": "2024-05-01T12:00:00+02:00"}))
    with pytest.raises(ValueError, match="not an object"):
        finding_from_json(b"[]")


def _validator() -> Any:
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema (a moto dependency) is needed to check the JSON Schema"
    )
    jsonschema.Draft202012Validator.check_schema(FINDING_JSON_SCHEMA)
    return jsonschema.Draft202012Validator(FINDING_JSON_SCHEMA)


def test_every_finding_the_detector_writes_validates_against_the_json_schema() -> None:
    validator = _validator()
    written = [model_finding(), model_finding(mitre=("T1078.004",), principal_arn=None)]
    for detection in default_detections():
        for example in detection.positives:
            events = records_to_events(example, origin=detection.id).events
            _, found = run_detections(
                events, default_detections(), DetectionState(), DetectionConfig(), T0
            )
            written.extend(found)
    assert len(written) > len(default_detections())
    for finding in written:
        doc = orjson.loads(finding_to_json(finding))
        errors = [e.message for e in validator.iter_errors(doc)]
        assert not errors, (finding.kind, errors)


def test_the_json_schema_rejects_what_is_not_a_finding() -> None:
    validator = _validator()
    doc = orjson.loads(finding_to_json(model_finding()))
    assert not validator.is_valid(doc | {"severity": 9.5})
    assert not validator.is_valid(doc | {"created_at": "2024-05-01T12:00:00Z"})
    assert not validator.is_valid({k: v for k, v in doc.items() if k != "principal"})


@pytest.mark.parametrize(
    ("name", "make"),
    [("model_v3.json", model_finding), ("detection_v3.json", detection_finding)],
)
def test_the_serialised_form_matches_the_golden_file(name: str, make: Any) -> None:
    path = GOLDEN / name
    written = finding_to_json(make())
    if os.environ.get("DETECTOR_UPDATE_GOLDEN") == "1":
        pretty = orjson.dumps(orjson.loads(written), option=orjson.OPT_INDENT_2)
        path.write_bytes(pretty + b"\n")
    golden = path.read_bytes()
    # The file is indented for review; the bytes a sink gets are its compact form.
    assert written == orjson.dumps(orjson.loads(golden))
    assert finding_from_json(golden) == make()
