"""Our detections as Sigma rules, for teams that run their detections in a SIEM.

A native detection is a polars matcher, which Sigma cannot read; :data:`SIGMA_FORMS` holds, for
each detection that Sigma can express exactly (one call, its outcome and plain fields), its
Sigma ``detection`` block, written once here. Detections that inspect policy documents,
compare grantees with the account, count events or read the principal's history have no Sigma
form and are not exported. The tests re-import every exported rule through
:func:`~detector.sigma.compile_rules` and check it finds the same events as the native
detection on all of its positive and negative examples, so a form cannot drift from its
detection unnoticed.

Imports: the standard library, pyyaml, detector.detections, detector.errors.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from detector.detections import Detection
from detector.errors import ConfigError

__all__ = ["SIGMA_FORMS", "export_rules", "sigma_rule_of", "sigma_rules_of"]

# The ids of exported rules are stable: a UUID5 of the detection id in this namespace.
_NAMESPACE: Final = uuid.UUID("6b1f4c1e-53a8-4a37-9d0e-0c1f0b7a6d21")
_AUTHOR: Final = "cloudtrail-detector (exported native detection)"
_SUCCEEDED: Final = {"errorCode": None}


def _calls(source: str, *names: str) -> dict[str, Any]:
    return {"eventSource": source, "eventName": list(names) if len(names) > 1 else names[0]}


def _succeeded_calls(source: str, *names: str) -> dict[str, Any]:
    return {
        "selection": _calls(source, *names),
        "succeeded": _SUCCEEDED,
        "condition": "selection and succeeded",
    }


SIGMA_FORMS: Final[dict[str, dict[str, Any]]] = {
    "cloudtrail_logging_stopped": _succeeded_calls(
        "cloudtrail.amazonaws.com", "StopLogging", "DeleteTrail"
    ),
    "guardduty_disabled": {
        "selection": {"eventSource": "guardduty.amazonaws.com"},
        "action_delete": {"eventName": "DeleteDetector"},
        "action_disable": {"eventName": "UpdateDetector", "requestParameters.enable": "false"},
        "succeeded": _SUCCEEDED,
        "condition": "selection and 1 of action_* and succeeded",
    },
    "security_hub_disabled": _succeeded_calls("securityhub.amazonaws.com", "DisableSecurityHub"),
    "config_recording_stopped": _succeeded_calls(
        "config.amazonaws.com",
        "StopConfigurationRecorder",
        "DeleteConfigurationRecorder",
        "DeleteDeliveryChannel",
    ),
    "vpc_flow_logs_deleted": _succeeded_calls("ec2.amazonaws.com", "DeleteFlowLogs"),
    "dns_query_logging_deleted": _succeeded_calls(
        "route53resolver.amazonaws.com",
        "DeleteResolverQueryLogConfig",
        "DisassociateResolverQueryLogConfig",
    ),
    "bedrock_invocation_logging_deleted": _succeeded_calls(
        "bedrock.amazonaws.com", "DeleteModelInvocationLoggingConfiguration"
    ),
    "organization_leave_attempted": {
        "selection": _calls("organizations.amazonaws.com", "LeaveOrganization"),
        "condition": "selection",
    },
    "kms_key_disabled_or_deletion_scheduled": _succeeded_calls(
        "kms.amazonaws.com", "DisableKey", "ScheduleKeyDeletion"
    ),
    "iam_roles_anywhere_trust_anchor_created": _succeeded_calls(
        "rolesanywhere.amazonaws.com", "CreateTrustAnchor", "UpdateTrustAnchor"
    ),
    "sqs_dead_letter_queue_removed": {
        "selection": {
            **_calls("sqs.amazonaws.com", "SetQueueAttributes"),
            "requestParameters.attributes.RedrivePolicy": "",
        },
        "succeeded": _SUCCEEDED,
        "condition": "selection and succeeded",
    },
}


def _level(severity: float) -> str:
    # GuardDuty's bands, which our severities follow: low < 4.0 <= medium < 7.0 <= high.
    return "low" if severity < 4.0 else "medium" if severity < 7.0 else "high"


def sigma_rule_of(detection: Detection) -> dict[str, Any] | None:
    """The Sigma rule (as a YAML-ready document) of ``detection``, None if it has no form."""
    form = SIGMA_FORMS.get(detection.id)
    if form is None:
        return None
    return {
        "title": detection.title,
        "id": str(uuid.uuid5(_NAMESPACE, detection.id)),
        "status": "experimental",
        "description": detection.description,
        "author": _AUTHOR,
        "tags": [f"attack.{t.lower()}" for t in detection.mitre],
        "logsource": {"product": "aws", "service": "cloudtrail"},
        "detection": form,
        "falsepositives": ["Administrators making the change on purpose"],
        "level": _level(detection.severity),
        "custom_attributes": {"cloudtrail_detector_id": detection.id},
    }


def sigma_rules_of(detections: Sequence[Detection]) -> dict[str, str]:
    """``{file name: YAML text}`` of each detection that has a Sigma form."""
    rules = {}
    for detection in detections:
        rule = sigma_rule_of(detection)
        if rule is not None:
            rules[f"{detection.id}.yml"] = yaml.safe_dump(rule, sort_keys=False, width=100)
    return rules


def export_rules(folder: Path, detections: Sequence[Detection]) -> list[Path]:
    """Write the Sigma rules of ``detections`` into ``folder`` (created); the paths written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create {folder}: {err}") from None
    written = []
    for name, text in sigma_rules_of(detections).items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
