"""A finding in the AWS Security Finding Format (ASFF), for AWS Security Hub.

Security Hub keys a finding on ``(ProductArn, Id)``: the same finding imported again with a later
``UpdatedAt`` updates it in place (a merged, repeated finding), the same ``UpdatedAt`` is a
harmless repeat (a re-delivery after a crash). So ``Id`` is our ``finding_id``, ``CreatedAt`` is
``first_seen`` (it never changes under one id) and ``UpdatedAt`` the later of ``created_at`` and
``last_seen``. ``ProductArn`` is the custom integration every account has
(``arn:aws:securityhub:<region>:<account>:product/<account>/default``) of the account and region
that import the finding. ``Types`` name the ATT&CK tactics ("TTPs/Defense Evasion/<kind>"; the
exfiltration and impact tactics are ASFF "Effects"), model findings are "Unusual
Behaviors/User". Severity keeps GuardDuty's label and number (``Original``).

Imports: the standard library and this package.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from detector.findings._attack import technique
from detector.findings._finding import Finding, isoformat_ms
from detector.findings._ocsf import MODEL_KIND, PRODUCT_NAME, finding_count

__all__ = ["ASFF_SCHEMA_VERSION", "asff_product_arn", "finding_to_asff"]

ASFF_SCHEMA_VERSION: Final = "2018-10-08"
_TITLE_MAX: Final = 256
_DESCRIPTION_MAX: Final = 1024
_PRODUCT_FIELD_MAX: Final = 4096  # characters of a ProductFields value
_EFFECTS: Final = {"TA0010": "Effects/Data Exfiltration", "TA0040": "Effects/Data Destruction"}
_RESOURCE_TYPE: Final = {"IAMUser": "AwsIamUser", "AssumedRole": "AwsIamRole", "Role": "AwsIamRole"}


def asff_product_arn(region: str, account_id: str) -> str:
    """The ARN of the default custom integration of ``account_id`` in ``region``."""
    return f"arn:aws:securityhub:{region}:{account_id}:product/{account_id}/default"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _types(finding: Finding) -> list[str]:
    if finding.kind == MODEL_KIND:
        return ["Unusual Behaviors/User"]
    types: list[str] = []
    for uid in finding.mitre:
        for tactic in technique(uid).tactics:
            name = _EFFECTS.get(tactic.uid, f"TTPs/{tactic.name}") + f"/{finding.kind}"
            if name not in types:
                types.append(name)
    return types or [f"TTPs/{finding.kind}"]


def _severity(finding: Finding) -> dict[str, str]:
    return {"Label": finding.severity_label.upper(), "Original": f"{finding.severity:.1f}"}


def _updated_at(finding: Finding) -> datetime:
    return max(finding.created_at, finding.last_seen)


def _resource(finding: Finding, partition: str, region: str) -> dict[str, Any]:
    arn = finding.principal if finding.principal.startswith("arn:") else finding.principal_arn
    resource: dict[str, Any] = {
        "Type": _RESOURCE_TYPE.get(finding.principal_type, "Other") if arn else "Other",
        "Id": arn or finding.principal,
        "Partition": partition,
        "Region": finding.region or region,
        "ResourceRole": "Actor",
    }
    if finding.principal_arn and finding.principal_arn != resource["Id"]:
        resource["Details"] = {"Other": {"principal_arn": finding.principal_arn}}
    return resource


def _product_fields(finding: Finding) -> dict[str, str]:
    fields = {
        "detector/kind": finding.kind,
        "detector/severity": f"{finding.severity:.1f}",
        "detector/score": f"{finding.score:g}",
        "detector/principal": finding.principal,
        "detector/principal_type": finding.principal_type,
        "detector/event_count": str(finding.event_count),
        "detector/event_ids": ",".join(finding.event_ids),
        "detector/source_ips": ",".join(finding.source_ips),
        "detector/signals": ",".join(finding.signals),
        "detector/mitre": ",".join(finding.mitre),
        "detector/window_start": isoformat_ms(finding.window_start),
        "detector/window_end": isoformat_ms(finding.window_end),
    }
    if finding.model_version:
        fields["detector/model_version"] = finding.model_version
    return {k: _clip(v, _PRODUCT_FIELD_MAX) for k, v in fields.items() if v}


def _description(finding: Finding) -> str:
    lines = [item.detail or item.what for item in finding.explanation[:5]]
    text = "; ".join(line for line in lines if line) or finding.title
    return _clip(text, _DESCRIPTION_MAX)


def finding_to_asff(
    finding: Finding, *, account_id: str, region: str, partition: str = "aws"
) -> dict[str, Any]:
    """The ASFF document of ``finding`` as imported by ``account_id`` in ``region`` (see the
    module docstring); it passes botocore's BatchImportFindings request model."""
    types = _types(finding)
    severity = _severity(finding)
    document: dict[str, Any] = {
        "SchemaVersion": ASFF_SCHEMA_VERSION,
        "Id": finding.finding_id,
        "ProductArn": asff_product_arn(region, account_id),
        "ProductName": PRODUCT_NAME,
        "CompanyName": "cloudtrail-detector",
        "GeneratorId": finding.kind,
        "AwsAccountId": finding.account_id or account_id,
        "Region": region,
        "Types": types,
        "FirstObservedAt": isoformat_ms(finding.first_seen),
        "LastObservedAt": isoformat_ms(finding.last_seen),
        "CreatedAt": isoformat_ms(finding.first_seen),
        "UpdatedAt": isoformat_ms(_updated_at(finding)),
        "Severity": severity,
        "Title": _clip(finding.title, _TITLE_MAX),
        "Description": _description(finding),
        "ProductFields": _product_fields(finding),
        "Resources": [_resource(finding, partition, region)],
        "FindingProviderFields": {"Severity": severity, "Types": types},
        "RecordState": "ACTIVE",
        "Workflow": {"Status": "NEW"},
        "Sample": False,
    }
    count = finding_count(finding)
    if count > 1:
        document["ProductFields"]["detector/count"] = str(count)
    return document
