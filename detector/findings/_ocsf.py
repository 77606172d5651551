"""A finding as an OCSF Detection Finding (class 2004), for SIEMs and data lakes that speak OCSF.

:func:`finding_to_ocsf` maps each field once: the id to ``finding_info.uid`` (and
``metadata.uid``), the model or detection to ``finding_info.analytic``, the principal to
``actor.user``, account and region to ``cloud``, event ids and source addresses to
``evidences`` (OCSF keeps ``src_endpoint`` there for a finding), ATT&CK ids to
``finding_info.attacks``, and, for model findings, each feature that stood out to an
``anomaly_analyses`` entry with the principal's own and the peers' baseline. What OCSF has no
place for (score, evidence, signals) goes to ``unmapped``. The document validates against the
OCSF :data:`OCSF_VERSION` schema with the ``cloud`` and ``host`` profiles (a test checks every
finding kind); 1.9.0 only added attributes, so it is also a valid 1.9.0 document.

Imports: the standard library and this package.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Any, Final

from detector.findings._attack import ATTACK_VERSION, technique
from detector.findings._finding import ExplanationItem, Finding, JsonScalar

__all__ = [
    "MODEL_KIND",
    "OCSF_CLASS_UID",
    "OCSF_PROFILES",
    "OCSF_VERSION",
    "PRODUCT_NAME",
    "finding_count",
    "finding_to_ocsf",
]

OCSF_VERSION: Final = "1.8.0"
OCSF_CLASS_UID: Final = 2004
OCSF_PROFILES: Final = ("cloud", "host")  # ``actor`` comes with the host profile
PRODUCT_NAME: Final = "CloudTrail Detector"
MODEL_KIND: Final = "model_anomaly"
_VENDOR: Final = "cloudtrail-detector"
_SEVERITY_ID: Final = {"low": (2, "Low"), "medium": (3, "Medium"), "high": (4, "High")}
_USER_TYPE_ID: Final = {"IAMUser": 1, "Root": 2, "AWSService": 4, "AWSAccount": 99}
# explain_row (detector.scoring) ends a feature's detail with the peers' usual value.
_PEER: Final = re.compile(r"; (\S+) usual for (\S+) principals$")


def finding_count(finding: Finding) -> int:
    """How many times the finding was seen (repeated findings are merged under one id)."""
    return finding.count


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _text(value: JsonScalar) -> str:
    return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _user(finding: Finding) -> dict[str, Any]:
    user: dict[str, Any] = {
        "uid": finding.principal,
        "name": finding.principal.rsplit("/", 1)[-1].rsplit(":", 1)[-1] or finding.principal,
        "type": finding.principal_type or "Unknown",
        "type_id": _USER_TYPE_ID.get(finding.principal_type, 99 if finding.principal_type else 0),
    }
    if finding.principal_arn and finding.principal_arn != finding.principal:
        user["uid_alt"] = finding.principal_arn
    if finding.account_id:
        user["account"] = {"uid": finding.account_id, "type_id": 10, "type": "AWS Account"}
    return user


def _attacks(finding: Finding) -> list[dict[str, Any]]:
    attacks: list[dict[str, Any]] = []
    for uid in finding.mitre:
        found = technique(uid)
        entry: dict[str, Any] = {"version": ATTACK_VERSION}
        named = {"uid": found.uid, "src_url": found.url} | (
            {"name": found.name} if found.name else {}
        )
        if found.uid != found.parent:
            entry["sub_technique"] = named
            entry["technique"] = {"uid": found.parent}
        else:
            entry["technique"] = named
        for tactic in found.tactics or (None,):
            attacks.append(
                entry | ({"tactic": {"uid": tactic.uid, "name": tactic.name}} if tactic else {})
            )
    return attacks


def _anomaly(finding: Finding, item: ExplanationItem) -> dict[str, Any]:
    feature = item.what
    baselines: list[dict[str, Any]] = [
        {
            "observation_parameter": feature,
            "observation_type": "this principal's usual value",
            "observations": [{"value": _text(item.baseline)}],
        }
    ]
    peer = _PEER.search(item.detail)
    if peer is not None:
        baselines.append(
            {
                "observation_parameter": feature,
                "observation_type": f"usual value of {peer.group(2)} principals",
                "observations": [{"value": peer.group(1)}],
            }
        )
    return {
        "analysis_targets": [{"name": finding.principal, "type": "principal"}],
        "anomalies": [
            {
                "observation_parameter": feature,
                "observation_type": "value in the window",
                "observations": [{"value": _text(item.value)}],
                "observed_pattern": item.detail,
            }
        ],
        "baselines": baselines,
    }


def _anomaly_analyses(finding: Finding) -> list[dict[str, Any]]:
    return [
        _anomaly(finding, item)
        for item in finding.explanation
        if item.baseline is not None and item.value is not None
    ]


def _endpoint(address: str) -> dict[str, str]:
    # CloudTrail's sourceIPAddress is a service name ("ec2.amazonaws.com", "AWS Internal") when
    # a service called on the principal's behalf: OCSF's ``ip`` takes addresses only.
    try:
        return {"ip": str(ipaddress.ip_address(address))}
    except ValueError:
        return {"name": address}


def _evidences(finding: Finding, actor: dict[str, Any]) -> list[dict[str, Any]]:
    evidences: list[dict[str, Any]] = [
        {"name": "source address", "actor": actor, "src_endpoint": _endpoint(address)}
        for address in finding.source_ips
    ]
    evidences.append(
        {
            "name": "CloudTrail events",
            "actor": actor,
            "data": {
                "event_ids": list(finding.event_ids),
                "event_count": finding.event_count,
                "source_ips": list(finding.source_ips),
            },
        }
    )
    return evidences


def _unmapped(finding: Finding) -> dict[str, Any]:
    return {
        "kind": finding.kind,
        "severity": finding.severity,
        "score": finding.score,
        "signals": list(finding.signals),
        "window_start": _ms(finding.window_start),
        "window_end": _ms(finding.window_end),
        "explanation": [
            {
                "what": i.what,
                "value": i.value,
                "baseline": i.baseline,
                "detail": i.detail,
                "contribution": i.contribution,
            }
            for i in finding.explanation
        ],
        "evidence": dict(finding.evidence),
    }


def finding_to_ocsf(finding: Finding, *, product_version: str = "") -> dict[str, Any]:
    """The OCSF Detection Finding of ``finding`` (a JSON-ready dict; see the module docstring).

    A merged finding (``count`` > 1) is an update (activity 2) of the same ``finding_info.uid``.
    """
    count = finding_count(finding)
    activity_id, activity = (1, "Create") if count == 1 else (2, "Update")
    severity_id, severity = _SEVERITY_ID[finding.severity_label]
    is_model = finding.kind == MODEL_KIND
    actor = {"user": _user(finding)}
    analytic: dict[str, Any] = {
        "uid": finding.kind,
        "name": "anomaly model" if is_model else finding.kind,
        "type_id": 4 if is_model else 1,
        "type": "Learning (ML/DL)" if is_model else "Rule",
    }
    if finding.model_version:
        analytic["version"] = finding.model_version
    finding_info: dict[str, Any] = {
        "uid": finding.finding_id,
        "title": finding.title,
        "types": [finding.kind, *finding.signals],
        "analytic": analytic,
        "created_time": _ms(finding.created_at),
        "first_seen_time": _ms(finding.first_seen),
        "last_seen_time": _ms(finding.last_seen),
        "data_sources": ["AWS CloudTrail"],
        "related_events": [{"uid": event_id} for event_id in finding.event_ids],
        "related_events_count": finding.event_count,
    }
    if finding.explanation and finding.explanation[0].detail:
        finding_info["desc"] = finding.explanation[0].detail
    if finding.mitre:
        finding_info["attacks"] = _attacks(finding)
    cloud: dict[str, Any] = {"provider": "AWS"}
    if finding.region:
        cloud["region"] = finding.region
    if finding.account_id:
        cloud["account"] = {"uid": finding.account_id, "type_id": 10, "type": "AWS Account"}
    product: dict[str, Any] = {"name": PRODUCT_NAME, "vendor_name": _VENDOR}
    if product_version:
        product["version"] = product_version
    document: dict[str, Any] = {
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": OCSF_CLASS_UID,
        "class_name": "Detection Finding",
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": OCSF_CLASS_UID * 100 + activity_id,
        "type_name": f"Detection Finding: {activity}",
        "severity_id": severity_id,
        "severity": severity,
        "status_id": 1,
        "status": "New",
        "is_alert": True,
        "time": _ms(finding.created_at),
        "start_time": _ms(finding.first_seen),
        "end_time": _ms(finding.last_seen),
        "count": count,
        "message": finding.title,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": finding.finding_id,
            "product": product,
            "profiles": list(OCSF_PROFILES),
            "log_name": "findings",
        },
        "finding_info": finding_info,
        "actor": actor,
        "cloud": cloud,
        "evidences": _evidences(finding, actor),
        "unmapped": _unmapped(finding),
    }
    if is_model:
        analyses = _anomaly_analyses(finding)
        if analyses:
            document["anomaly_analyses"] = analyses
    return document
