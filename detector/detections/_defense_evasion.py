"""Detections of defences being switched off: audit logs, security services, network logs.

Each is one successful API call; the ATT&CK technique is Impair Defenses (T1562): .008 for
cloud logs, .001 for security tools. Imports: polars, this package's vocabulary and examples.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
import polars as pl

from detector.detections._detection import Detection
from detector.detections._examples import api_call, role_session
from detector.detections._expressions import calls, matched_by, param, succeeded, where

__all__ = [
    "BEDROCK_INVOCATION_LOGGING_DELETED",
    "CLOUDTRAIL_LOGGING_REDUCED",
    "CLOUDTRAIL_LOGGING_STOPPED",
    "CONFIG_RECORDING_STOPPED",
    "DNS_QUERY_LOGGING_DELETED",
    "GUARDDUTY_DISABLED",
    "SECURITY_HUB_DISABLED",
    "VPC_FLOW_LOGS_DELETED",
]

_CLOUDTRAIL: Final = "cloudtrail.amazonaws.com"
_TRAIL_ARN: Final = "arn:aws:cloudtrail:eu-west-1:111122223333:trail/org-trail"

CLOUDTRAIL_LOGGING_STOPPED = Detection(
    id="cloudtrail_logging_stopped",
    title="CloudTrail logging stopped or trail deleted",
    description="A trail stopped logging (StopLogging) or was deleted (DeleteTrail): API "
    "activity after this is no longer recorded by that trail.",
    severity=7.0,
    mitre=("T1562.008",),
    selects=calls(_CLOUDTRAIL, "StopLogging", "DeleteTrail"),
    matches=where(succeeded(), trail=param("$.name")),
    positives=(
        (api_call(_CLOUDTRAIL, "StopLogging", {"name": _TRAIL_ARN}),),
        (api_call(_CLOUDTRAIL, "DeleteTrail", {"name": "org-trail"}, identity=role_session()),),
    ),
    negatives=(
        (api_call(_CLOUDTRAIL, "StartLogging", {"name": _TRAIL_ARN}),),
        # Refused attempts are defense_evasion_attempt_failed's.
        (
            api_call(
                _CLOUDTRAIL,
                "StopLogging",
                {"name": _TRAIL_ARN},
                error_code="TrailNotFoundException",
            ),
        ),
    ),
    anchors=(
        "GuardDuty: Stealth:IAMUser/CloudTrailLoggingDisabled",
        "Panther: AWS.CloudTrail.Stopped",
        "Sigma: aws_cloudtrail_disable_logging",
    ),
)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _selector_reductions(selectors: list[Any]) -> list[str]:
    """What classic event selectors leave out of management events. Selectors add up: one
    data-only selector next to a full management selector takes nothing away."""
    management = [
        s
        for s in selectors
        if isinstance(s, dict) and s.get("includeManagementEvents") is not False
    ]
    if not management:
        return ["management events not recorded"]
    found = []
    kinds = {s.get("readWriteType", "All") for s in management}
    if "All" not in kinds and not {"ReadOnly", "WriteOnly"} <= kinds:
        found.append(f"management events limited to {'/'.join(sorted(map(str, kinds)))}")
    excluded = set.intersection(
        *({str(v) for v in _as_list(s.get("excludeManagementEventSources"))} for s in management)
    )
    if excluded:
        found.append(f"management events excluded from {', '.join(sorted(excluded))}")
    return found


def _advanced_selector_reductions(selectors: list[Any]) -> list[str]:
    """Advanced selectors: management events are recorded in full only if some selector asks
    for eventCategory = Management and narrows it by nothing else."""
    narrowed: list[str] = []
    for selector in selectors:
        fields = selector.get("fieldSelectors") if isinstance(selector, dict) else None
        if not isinstance(fields, list):
            continue
        by_field = {f.get("field"): f for f in fields if isinstance(f, dict)}
        category = by_field.pop("eventCategory", {})
        if "Management" not in (category.get("equals") or ()):
            continue
        if not by_field:
            return []
        narrowed.extend(sorted(str(name) for name in by_field))
    if not narrowed:
        return ["management events not recorded"]
    return [f"management events narrowed by {', '.join(dict.fromkeys(narrowed))}"]


_TRAIL_SETTINGS_OFF: Final = {
    "isMultiRegionTrail": "trail limited to one region",
    "includeGlobalServiceEvents": "global service events (IAM, STS) excluded",
    "enableLogFileValidation": "log file validation switched off",
}


def _logging_reductions(event_name: str, request_parameters: str | None) -> dict[str, Any] | None:
    params = orjson.loads(request_parameters) if request_parameters else None
    if not isinstance(params, dict):
        return None
    if event_name == "UpdateTrail":
        found = [why for key, why in _TRAIL_SETTINGS_OFF.items() if params.get(key) is False]
        trail = params.get("name")
    else:  # PutEventSelectors
        found = []
        if isinstance(params.get("eventSelectors"), list):
            found += _selector_reductions(params["eventSelectors"])
        if isinstance(params.get("advancedEventSelectors"), list):
            found += _advanced_selector_reductions(params["advancedEventSelectors"])
        trail = params.get("trailName")
    return {"trail": trail, "reductions": found} if found else None


CLOUDTRAIL_LOGGING_REDUCED = Detection(
    id="cloudtrail_logging_reduced",
    title="CloudTrail trail changed to record less",
    description="A trail's event selectors or settings now leave out management events (all, "
    "reads or writes, or some services), other regions, global services or log file "
    "validation. The call records the new configuration, so this flags a trail that records "
    "less than everything, whatever it recorded before.",
    severity=5.0,
    mitre=("T1562.008",),
    selects=calls(_CLOUDTRAIL, "UpdateTrail", "PutEventSelectors"),
    matches=matched_by(_logging_reductions, "event_name", "request_parameters"),
    positives=(
        (
            api_call(
                _CLOUDTRAIL,
                "PutEventSelectors",
                {
                    "trailName": "org-trail",
                    "eventSelectors": [
                        {
                            "readWriteType": "All",
                            "includeManagementEvents": False,
                            "dataResources": [{"type": "AWS::S3::Object", "values": []}],
                            "excludeManagementEventSources": [],
                        }
                    ],
                },
            ),
        ),
        (
            api_call(
                _CLOUDTRAIL,
                "PutEventSelectors",
                {
                    "trailName": "org-trail",
                    "eventSelectors": [
                        {
                            "readWriteType": "All",
                            "includeManagementEvents": True,
                            "excludeManagementEventSources": ["kms.amazonaws.com"],
                        }
                    ],
                },
            ),
        ),
        (
            api_call(
                _CLOUDTRAIL,
                "PutEventSelectors",
                {
                    "trailName": "org-trail",
                    "advancedEventSelectors": [
                        {
                            "name": "writes only",
                            "fieldSelectors": [
                                {"field": "eventCategory", "equals": ["Management"]},
                                {"field": "readOnly", "equals": ["false"]},
                            ],
                        }
                    ],
                },
            ),
        ),
        (api_call(_CLOUDTRAIL, "UpdateTrail", {"name": "org-trail", "isMultiRegionTrail": False}),),
    ),
    negatives=(
        (
            api_call(
                _CLOUDTRAIL,
                "PutEventSelectors",
                {
                    "trailName": "org-trail",
                    "eventSelectors": [
                        {"readWriteType": "All", "includeManagementEvents": True},
                        {
                            "readWriteType": "All",
                            "includeManagementEvents": False,
                            "dataResources": [{"type": "AWS::S3::Object", "values": []}],
                        },
                    ],
                },
            ),
        ),
        (
            api_call(
                _CLOUDTRAIL,
                "PutEventSelectors",
                {
                    "trailName": "org-trail",
                    "advancedEventSelectors": [
                        {
                            "name": "management",
                            "fieldSelectors": [
                                {"field": "eventCategory", "equals": ["Management"]}
                            ],
                        },
                        {
                            "name": "s3 data",
                            "fieldSelectors": [
                                {"field": "eventCategory", "equals": ["Data"]},
                                {"field": "resources.type", "equals": ["AWS::S3::Object"]},
                            ],
                        },
                    ],
                },
            ),
        ),
        (
            api_call(
                _CLOUDTRAIL, "UpdateTrail", {"name": "org-trail", "enableLogFileValidation": True}
            ),
        ),
    ),
    anchors=(
        "Panther: AWS.CloudTrail.EventSelectorsDisabled",
        "Stratus: aws.defense-evasion.cloudtrail-event-selectors",
    ),
)

_GUARDDUTY: Final = "guardduty.amazonaws.com"
_DETECTOR: Final = "12abc34d567e8fa901bc2d34e56789f0"

GUARDDUTY_DISABLED = Detection(
    id="guardduty_disabled",
    title="GuardDuty detector deleted or disabled",
    description="A GuardDuty detector was deleted (DeleteDetector) or suspended "
    "(UpdateDetector with enable=false): threat detection in that region stops.",
    severity=7.0,
    mitre=("T1562.001",),
    selects=calls(_GUARDDUTY, "DeleteDetector", "UpdateDetector"),
    matches=where(
        succeeded() & ((pl.col("event_name") == "DeleteDetector") | (param("$.enable") == "false")),
        detector=param("$.detectorId"),
    ),
    positives=(
        (api_call(_GUARDDUTY, "DeleteDetector", {"detectorId": _DETECTOR}),),
        (api_call(_GUARDDUTY, "UpdateDetector", {"detectorId": _DETECTOR, "enable": False}),),
    ),
    negatives=(
        (api_call(_GUARDDUTY, "UpdateDetector", {"detectorId": _DETECTOR, "enable": True}),),
        (
            api_call(
                _GUARDDUTY,
                "UpdateDetector",
                {"detectorId": _DETECTOR, "findingPublishingFrequency": "SIX_HOURS"},
            ),
        ),
    ),
    anchors=("Sigma: aws_cloudtrail_guardduty_detector_deleted_or_updated",),
)

_SECURITYHUB: Final = "securityhub.amazonaws.com"

SECURITY_HUB_DISABLED = Detection(
    id="security_hub_disabled",
    title="Security Hub disabled",
    description="Security Hub was disabled in a region (DisableSecurityHub): its findings and "
    "standards checks stop.",
    severity=6.0,
    mitre=("T1562.001",),
    selects=calls(_SECURITYHUB, "DisableSecurityHub"),
    matches=where(succeeded()),
    positives=((api_call(_SECURITYHUB, "DisableSecurityHub", {}),),),
    negatives=(
        (api_call(_SECURITYHUB, "EnableSecurityHub", {"enableDefaultStandards": True}),),
        (api_call(_SECURITYHUB, "DisableSecurityHub", {}, error_code="InvalidAccessException"),),
    ),
    anchors=(
        "none found in Panther or Sigma (Sigma's aws_securityhub_finding_evasion covers "
        "tampering with findings, not disabling)",
    ),
)

_CONFIG: Final = "config.amazonaws.com"

CONFIG_RECORDING_STOPPED = Detection(
    id="config_recording_stopped",
    title="AWS Config recording stopped or deleted",
    description="An AWS Config recorder was stopped or deleted, or its delivery channel "
    "deleted: configuration changes are no longer recorded.",
    severity=5.0,
    mitre=("T1562.008",),
    selects=calls(
        _CONFIG, "StopConfigurationRecorder", "DeleteConfigurationRecorder", "DeleteDeliveryChannel"
    ),
    matches=where(
        succeeded(),
        recorder=param("$.configurationRecorderName"),
        delivery_channel=param("$.deliveryChannelName"),
    ),
    positives=(
        (api_call(_CONFIG, "StopConfigurationRecorder", {"configurationRecorderName": "default"}),),
        (api_call(_CONFIG, "DeleteDeliveryChannel", {"deliveryChannelName": "default"}),),
    ),
    negatives=(
        (
            api_call(
                _CONFIG, "StartConfigurationRecorder", {"configurationRecorderName": "default"}
            ),
        ),
        (
            api_call(
                _CONFIG,
                "DeleteDeliveryChannel",
                {"deliveryChannelName": "default"},
                error_code="NoSuchDeliveryChannelException",
            ),
        ),
    ),
    anchors=("Panther: AWS.ConfigService.DisabledDeleted", "Sigma: aws_config_disable_recording"),
)

_EC2: Final = "ec2.amazonaws.com"

VPC_FLOW_LOGS_DELETED = Detection(
    id="vpc_flow_logs_deleted",
    title="VPC flow logs deleted",
    description="VPC flow logs were deleted (DeleteFlowLogs): network traffic of those VPCs, "
    "subnets or interfaces is no longer recorded.",
    severity=5.0,
    mitre=("T1562.008",),
    selects=calls(_EC2, "DeleteFlowLogs"),
    matches=where(
        succeeded(), flow_log_ids=pl.col("request_parameters").str.extract_all(r"fl-[0-9a-f]+")
    ),
    positives=(
        (
            api_call(
                _EC2,
                "DeleteFlowLogs",
                {
                    "DeleteFlowLogsRequest": {
                        "FlowLogId": {"content": "fl-0e1f2a3b4c5d6e7f8", "tag": 1}
                    }
                },
            ),
        ),
    ),
    negatives=(
        (
            api_call(
                _EC2,
                "CreateFlowLogs",
                {"CreateFlowLogsRequest": {"ResourceId": {"content": "vpc-0a1b2c3d", "tag": 1}}},
            ),
        ),
        (
            api_call(
                _EC2,
                "DeleteFlowLogs",
                {
                    "DeleteFlowLogsRequest": {
                        "FlowLogId": {"content": "fl-0e1f2a3b4c5d6e7f8", "tag": 1}
                    }
                },
                error_code="Client.InvalidFlowLogId.NotFound",
            ),
        ),
    ),
    anchors=(
        "GuardDuty: Stealth:IAMUser/AnomalousBehavior (DeleteFlowLogs is one of its APIs)",
        "Sigma: aws_cloudtrail_vpc_flow_logs_deleted",
        "Stratus: aws.defense-evasion.vpc-remove-flow-logs",
    ),
)

_RESOLVER: Final = "route53resolver.amazonaws.com"

DNS_QUERY_LOGGING_DELETED = Detection(
    id="dns_query_logging_deleted",
    title="Route 53 Resolver query logging deleted",
    description="A Route 53 Resolver query log configuration was deleted or detached from a "
    "VPC: DNS queries from those VPCs are no longer recorded.",
    severity=5.0,
    mitre=("T1562.008",),
    selects=calls(_RESOLVER, "DeleteResolverQueryLogConfig", "DisassociateResolverQueryLogConfig"),
    matches=where(
        succeeded(),
        query_log_config=param("$.resolverQueryLogConfigId"),
        vpc=param("$.resourceId"),
    ),
    positives=(
        (
            api_call(
                _RESOLVER,
                "DeleteResolverQueryLogConfig",
                {"resolverQueryLogConfigId": "rqlc-4473f20ca554c07"},
            ),
        ),
        (
            api_call(
                _RESOLVER,
                "DisassociateResolverQueryLogConfig",
                {"resolverQueryLogConfigId": "rqlc-4473f20ca554c07", "resourceId": "vpc-0a1b2c3d"},
            ),
        ),
    ),
    negatives=(
        (
            api_call(
                _RESOLVER,
                "CreateResolverQueryLogConfig",
                {"name": "all-vpcs", "destinationArn": "arn:aws:s3:::dns-logs"},
            ),
        ),
    ),
    anchors=(
        "Panther: AWS.CloudTrail.DNSLogsDeleted",
        "Stratus: aws.defense-evasion.dns-delete-logs",
    ),
)

_BEDROCK: Final = "bedrock.amazonaws.com"

BEDROCK_INVOCATION_LOGGING_DELETED = Detection(
    id="bedrock_invocation_logging_deleted",
    title="Bedrock model invocation logging deleted",
    description="Bedrock's model invocation logging configuration was deleted: prompts and "
    "responses of model calls in that region are no longer logged.",
    severity=5.0,
    mitre=("T1562.008",),
    selects=calls(_BEDROCK, "DeleteModelInvocationLoggingConfiguration"),
    matches=where(succeeded()),
    positives=(
        (api_call(_BEDROCK, "DeleteModelInvocationLoggingConfiguration", identity=role_session()),),
    ),
    negatives=(
        (
            api_call(
                _BEDROCK,
                "PutModelInvocationLoggingConfiguration",
                {"loggingConfig": {"textDataDeliveryEnabled": True}},
            ),
        ),
        (api_call(_BEDROCK, "ListGuardrails", {"maxResults": 1000}, read_only=True),),
    ),
    anchors=(
        "Panther: AWS.Bedrock.DeleteModelInvocationLoggingConfiguration",
        "Sigma: aws_bedrock_logging_config_deleted",
        "Stratus: aws.defense-evasion.bedrock-model-invocation-logging-delete",
    ),
)
