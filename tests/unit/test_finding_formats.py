"""Findings as OCSF Detection Findings and as ASFF, checked against the standards' own models.

OCSF: every document validates against the OCSF JSON Schema of :data:`OCSF_VERSION` (the
``ocsf-json-schema`` package ships the official schema export of each release and builds the
class's JSON Schema from it) with the profiles the documents declare. ASFF: every
BatchImportFindings request passes botocore's validation against the Security Hub service model.
Both for every finding kind: the model's (the shipped model on a synthetic attack day) and each
detection's (its positive examples through the detection runner).
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
import jsonschema
import orjson
import polars as pl
import pytest
from botocore.validate import ParamValidator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

from detector.detections import (
    Detection,
    DetectionConfig,
    DetectionState,
    default_detections,
    run_detections,
)
from detector.events import records_to_events
from detector.findings import (
    OCSF_CLASS_UID,
    OCSF_PROFILES,
    OCSF_VERSION,
    Finding,
    asff_product_arn,
    finding_from_json,
    finding_to_asff,
    finding_to_json,
    finding_to_ocsf,
    technique,
)
from detector.sinks import (
    MAX_IMPORT_BATCH,
    FindingMessage,
    FormattedFindingSink,
    MemoryFindingSink,
    asff_documents,
)

NOW = datetime(2024, 5, 1, 13, 0, tzinfo=UTC)
ACCOUNT = "123456789012"
REGION = "eu-west-1"
_PEER_DETAIL = re.compile(r"usual for \S+ principals$")


@pytest.fixture(scope="module")
def ocsf_validator() -> jsonschema.protocols.Validator:
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=OCSF_VERSION)).get_class_schema(
        class_name="detection_finding", profiles=list(OCSF_PROFILES)
    )
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def import_findings_shape() -> Any:
    model = botocore.session.get_session().get_service_model("securityhub")
    return model.operation_model("BatchImportFindings").input_shape


def _detection_findings(detection: Detection) -> list[Finding]:
    found: list[Finding] = []
    for example in detection.positives:
        events = records_to_events(example, origin="example").events
        _, findings = run_detections(
            events, [detection], DetectionState(), DetectionConfig(), NOW, detection.example_context
        )
        found += findings
    return found


@pytest.fixture(scope="module")
def model_findings(small_trail: Any, small_events: pl.DataFrame) -> list[Finding]:
    """Findings of the shipped model on the small trail's attack day."""
    from detector.features import FeatureConfig, flush, update
    from detector.features import empty_state as empty_features
    from detector.scoring import (
        DEFAULT_MODEL_DIR,
        LearningConfig,
        ScoringState,
        load_artifact,
        score_windows,
    )

    artifact = load_artifact(DEFAULT_MODEL_DIR)
    state, scoring, findings = empty_features(), ScoringState.initial(artifact), []
    learning = LearningConfig(enabled=False)  # a short trail: every principal would be learning
    for lo in range(0, small_events.height, 20_000):
        state, windows, _ = update(state, small_events.slice(lo, 20_000), FeatureConfig())
        scoring, scored = score_windows(
            artifact, scoring, windows, created_at=NOW, learning=learning
        )
        findings += scored.findings
    _, windows, _ = flush(state, FeatureConfig())
    findings += score_windows(artifact, scoring, windows, created_at=NOW, learning=learning)[
        1
    ].findings
    assert findings, "the shipped model found nothing on the attack day"
    return findings


def _detections() -> list[Any]:
    return [pytest.param(d, id=d.id) for d in default_detections()]


def _check_ocsf(validator: jsonschema.protocols.Validator, finding: Finding) -> dict[str, Any]:
    document = finding_to_ocsf(finding)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == [], f"{finding.kind} {finding.finding_id}"
    assert document["class_uid"] == OCSF_CLASS_UID
    assert document["metadata"]["version"] == OCSF_VERSION
    info = document["finding_info"]
    assert info["uid"] == finding.finding_id
    assert info["analytic"]["uid"] == finding.kind
    assert document["actor"]["user"]["uid"] == finding.principal
    assert document["cloud"]["account"]["uid"] == finding.account_id
    addresses = [
        e["src_endpoint"].get("ip") or e["src_endpoint"]["name"]
        for e in document["evidences"]
        if "src_endpoint" in e
    ]
    assert addresses == list(finding.source_ips)
    assert [e["uid"] for e in info["related_events"]] == list(finding.event_ids)
    assert document["count"] == 1
    orjson.dumps(document)  # JSON all the way down
    return document


@pytest.mark.parametrize("detection", _detections())
def test_every_detection_finding_is_a_valid_ocsf_detection_finding(
    detection: Detection, ocsf_validator: jsonschema.protocols.Validator
) -> None:
    findings = _detection_findings(detection)
    assert findings, f"{detection.id}: its positive examples gave no finding"
    for finding in findings:
        document = _check_ocsf(ocsf_validator, finding)
        techniques = {
            a.get("sub_technique", a["technique"])["uid"]
            for a in document["finding_info"]["attacks"]
        }
        assert techniques == set(detection.mitre)
        assert all("tactic" in a for a in document["finding_info"]["attacks"])
        assert document["finding_info"]["analytic"]["type"] == "Rule"
        assert "anomaly_analyses" not in document


def test_model_findings_are_valid_ocsf_with_own_and_peer_baselines(
    model_findings: list[Finding], ocsf_validator: jsonschema.protocols.Validator
) -> None:
    for finding in model_findings:
        document = _check_ocsf(ocsf_validator, finding)
        features = [
            i for i in finding.explanation if i.baseline is not None and i.value is not None
        ]
        analyses = document.get("anomaly_analyses", [])
        assert [a["anomalies"][0]["observation_parameter"] for a in analyses] == [
            i.what for i in features
        ]
        for analysis, item in zip(analyses, features, strict=True):
            (own, *peer) = analysis["baselines"]
            assert own["observations"][0]["value"] == str(item.baseline)
            assert len(peer) == (1 if _PEER_DETAIL.search(item.detail) else 0)
    assert any(
        len(a["baselines"]) == 2
        for f in model_findings
        for a in finding_to_ocsf(f).get("anomaly_analyses", [])
    )


def _all_findings(model_findings: list[Finding]) -> list[Finding]:
    found = [f for d in default_detections() for f in _detection_findings(d)]
    return found + model_findings


def test_every_finding_kind_gives_an_asff_batch_botocore_accepts(
    model_findings: list[Finding], import_findings_shape: Any
) -> None:
    findings = _all_findings(model_findings)
    kinds = {f.kind for f in findings}
    assert kinds == {d.id for d in default_detections()} | {"model_anomaly"}
    documents = [finding_to_asff(f, account_id=ACCOUNT, region=REGION) for f in findings]
    for lo in range(0, len(documents), MAX_IMPORT_BATCH):
        report = ParamValidator().validate(
            {"Findings": documents[lo : lo + MAX_IMPORT_BATCH]}, import_findings_shape
        )
        assert not report.has_errors(), report.generate_report()
    for finding, document in zip(findings, documents, strict=True):
        assert document["Id"] == finding.finding_id
        assert document["GeneratorId"] == finding.kind
        assert document["ProductArn"] == asff_product_arn(REGION, ACCOUNT)
        assert document["Resources"][0]["Id"] in (finding.principal, finding.principal_arn)
        assert document["FindingProviderFields"]["Types"] == document["Types"]
        assert document["Severity"]["Label"] == finding.severity_label.upper()
        tactics = {t.name for m in finding.mitre for t in technique(m).tactics}
        assert (
            all(t.split("/")[1] in tactics or t.startswith("Effects/") for t in document["Types"])
            or finding.kind == "model_anomaly"
        )


def test_a_later_state_of_a_finding_keeps_its_asff_id_and_creation_and_moves_updated_at() -> None:
    (first,) = _detection_findings(default_detections()[0])[:1]
    later = dataclasses.replace(
        first,
        last_seen=first.last_seen + timedelta(hours=2),
        created_at=first.created_at + timedelta(hours=2),
    )
    before, after = (finding_to_asff(f, account_id=ACCOUNT, region=REGION) for f in (first, later))
    assert after["Id"] == before["Id"]
    assert after["CreatedAt"] == before["CreatedAt"]
    assert after["UpdatedAt"] > before["UpdatedAt"]


def test_the_attack_table_names_every_technique_the_catalogue_cites() -> None:
    cited = {m for d in default_detections() for m in d.mitre}
    assert {m for m in cited if not technique(m).name or not technique(m).tactics} == set()


@pytest.mark.parametrize("form", ["ocsf", "asff"])
async def test_a_formatted_sink_passes_each_finding_on_in_its_format(form: str) -> None:
    findings = [f for d in default_detections()[:3] for f in _detection_findings(d)]
    messages = [FindingMessage(f.finding_id, f.principal, finding_to_json(f)) for f in findings]
    memory = MemoryFindingSink()
    sink = FormattedFindingSink(memory, form, region=REGION, account_id=ACCOUNT)  # type: ignore[arg-type]
    await sink.send(messages)
    await sink.close()
    assert memory.closed
    assert memory.finding_ids == [m.finding_id for m in messages]
    assert [m.group for m in memory.findings] == [m.group for m in messages]
    bodies = [orjson.loads(m.body) for m in memory.findings]
    if form == "ocsf":
        assert [b["finding_info"]["uid"] for b in bodies] == memory.finding_ids
    else:
        assert bodies == asff_documents(messages, account_id=ACCOUNT, region=REGION)
        assert [finding_from_json(m.body).finding_id for m in messages] == [b["Id"] for b in bodies]


def test_a_repeated_finding_keeps_its_id_and_carries_its_count() -> None:
    """Repeated findings merged under one id (with their ``count``) are one OCSF finding with
    that count and one Security Hub finding, updated."""
    (first,) = _detection_findings(default_detections()[0])[:1]
    merged = dataclasses.replace(first, last_seen=first.created_at + timedelta(hours=1), count=3)
    ocsf = finding_to_ocsf(merged)
    assert (ocsf["count"], ocsf["activity_name"], ocsf["type_uid"]) == (3, "Update", 200402)
    assert ocsf["finding_info"]["uid"] == first.finding_id
    asff = finding_to_asff(merged, account_id=ACCOUNT, region=REGION)
    assert asff["Id"] == first.finding_id
    assert asff["ProductFields"]["detector/count"] == "3"
    assert (
        asff["UpdatedAt"] > finding_to_asff(first, account_id=ACCOUNT, region=REGION)["UpdatedAt"]
    )
