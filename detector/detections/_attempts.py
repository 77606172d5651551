"""Attempts to switch off logging or security services that AWS refused (AccessDenied).

The detections of ``_defense_evasion`` report what succeeded; a refused attempt did no harm,
but someone tried, and the usual someone is an attacker probing what a stolen credential may
do. A lone refusal reports at low severity (a misconfigured tool does this too); a refusal
from an address the principal's profile does not know, or among other refusals of the same
principal in the batch (probing: at least ``_PROBING_APIS`` different APIs refused), reports at
higher severity as a second detection. Without a profile (no
:attr:`DetectionContext.known_source_ips`) no address counts as new.

Imports: polars, this package's vocabulary and examples.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from detector.detections._detection import Detection, DetectionConfig, DetectionContext, Matcher
from detector.detections._examples import api_call, role_session
from detector.detections._expressions import evidence, only_with_rows

__all__ = ["DEFENSE_EVASION_ATTEMPT_FAILED", "DEFENSE_EVASION_ATTEMPT_FAILED_SUSPICIOUS"]

# Calls that switch off or blind a logging or security service (what _defense_evasion reports
# when they succeed), by event source.
_EVASION_CALLS: Final = {
    "cloudtrail.amazonaws.com": ("StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors"),
    "guardduty.amazonaws.com": (
        "DeleteDetector",
        "UpdateDetector",
        "DisassociateFromMasterAccount",
        "DisassociateFromAdministratorAccount",
        "DeleteMembers",
        "DisassociateMembers",
        "StopMonitoringMembers",
        "CreateIPSet",
        "UpdateIPSet",
    ),
    "securityhub.amazonaws.com": ("DisableSecurityHub", "DisableImportFindingsForProduct"),
    "config.amazonaws.com": (
        "StopConfigurationRecorder",
        "DeleteConfigurationRecorder",
        "DeleteDeliveryChannel",
    ),
    "ec2.amazonaws.com": ("DeleteFlowLogs",),
    "route53resolver.amazonaws.com": (
        "DeleteResolverQueryLogConfig",
        "DisassociateResolverQueryLogConfig",
    ),
    "bedrock.amazonaws.com": ("DeleteModelInvocationLoggingConfiguration",),
    "macie2.amazonaws.com": ("DisableMacie",),
    "inspector2.amazonaws.com": ("Disable",),
    "access-analyzer.amazonaws.com": ("DeleteAnalyzer",),
    "detective.amazonaws.com": ("DeleteGraph",),
}
_DENIED: Final = pl.col("error_code").str.contains("AccessDenied|Unauthorized").fill_null(False)
_EVASION: Final = pl.any_horizontal(
    (pl.col("event_source") == source) & pl.col("event_name").is_in(names)
    for source, names in _EVASION_CALLS.items()
)
_PROBING_APIS: Final = 3  # different APIs refused to one principal in a batch


def _refused(escalated: bool) -> Matcher:
    """Refused evasion calls, either the plain ones or those from a new address or among
    other refusals (``escalated``)."""

    def matches(
        events: pl.LazyFrame, config: DetectionConfig, context: DetectionContext
    ) -> pl.LazyFrame:
        refused_apis = (
            pl.concat_str("event_source", pl.lit(":"), "event_name")
            .n_unique()
            .over("principal_key")
        )
        frame = events.with_columns(refused_apis=refused_apis, new_address=pl.lit(False))
        known = context.known_source_ips
        if known is not None:
            # Only the principals refused in this batch: the profile may be large.
            callers = events.select("principal_key").unique()
            own = known.lazy().join(callers, on="principal_key", how="semi")
            profiled = own.select("principal_key").unique()
            seen = own.with_columns(seen=pl.lit(True))
            frame = (
                frame.join(
                    profiled.with_columns(profiled=pl.lit(True)), on="principal_key", how="left"
                )
                .join(seen, on=["principal_key", "source_ip_address"], how="left")
                .with_columns(
                    new_address=pl.col("profiled").fill_null(False)
                    & pl.col("source_ip_address").is_not_null()
                    & pl.col("seen").is_null()
                )
                .drop("profiled", "seen")
            )
        suspicious = pl.col("new_address") | (pl.col("refused_apis") >= _PROBING_APIS)
        return (
            frame.filter(_EVASION & (suspicious if escalated else ~suspicious))
            .with_columns(
                evidence(
                    call=pl.col("event_name"),
                    error_code=pl.col("error_code"),
                    new_address=pl.col("new_address"),
                    refused_apis_in_batch=pl.col("refused_apis"),
                )
            )
            .drop("refused_apis", "new_address")
        )

    return matches


def _denied(source: str, event_name: str, **params: object) -> dict[str, object]:
    return api_call(
        source, event_name, params, error_code="AccessDenied", identity=role_session("ci")
    )


_STOP: Final = _denied("cloudtrail.amazonaws.com", "StopLogging", name="org-trail")
_DELETE_DETECTOR: Final = _denied("guardduty.amazonaws.com", "DeleteDetector", detectorId="d1")
_DISABLE_HUB: Final = _denied("securityhub.amazonaws.com", "DisableSecurityHub")
_LIST_USERS: Final = _denied("iam.amazonaws.com", "ListUsers")

DEFENSE_EVASION_ATTEMPT_FAILED = Detection(
    id="defense_evasion_attempt_failed",
    title="Refused attempt to switch off logging or a security service",
    description="A call that would stop CloudTrail, GuardDuty, Security Hub, Config, flow or "
    "DNS logs, Macie, Inspector or Access Analyzer was refused (AccessDenied): someone tried. "
    "Alone, from an address the principal is known to use, it is often a misconfigured tool.",
    severity=3.0,
    mitre=("T1562.001", "T1562.008"),
    selects=_DENIED,
    matches=only_with_rows(_refused(escalated=False)),
    positives=((_STOP,), (_DISABLE_HUB,)),
    negatives=(
        (
            api_call(
                "cloudtrail.amazonaws.com",
                "StopLogging",
                {"name": "t"},
                error_code="TrailNotFoundException",
            ),
        ),
        (_LIST_USERS,),
    ),
    anchors=(
        "GuardDuty: Stealth:IAMUser/CloudTrailLoggingDisabled (successes only)",
        "Panther: AWS.CloudTrail.Stopped (successes only)",
        "Sigma: aws_cloudtrail_disable_logging (any outcome)",
    ),
)

DEFENSE_EVASION_ATTEMPT_FAILED_SUSPICIOUS = Detection(
    id="defense_evasion_attempt_failed_suspicious",
    title="Refused attempt to switch off logging or a security service, while probing or from "
    "a new address",
    description="A refused (AccessDenied) attempt to stop logging or a security service, "
    "either from a public address the principal's profile does not know, or by a principal "
    f"refused at least {_PROBING_APIS} different APIs in the batch: the pattern of a stolen "
    "credential being tried out.",
    severity=5.0,
    mitre=("T1562.001", "T1562.008"),
    selects=_DENIED,
    matches=only_with_rows(_refused(escalated=True)),
    positives=((_STOP, _DELETE_DETECTOR, _LIST_USERS),),
    negatives=(
        (
            _LIST_USERS,
            _denied("iam.amazonaws.com", "ListRoles"),
            _denied("s3.amazonaws.com", "ListBuckets"),
        ),
        (
            api_call(
                "cloudtrail.amazonaws.com",
                "StopLogging",
                {"name": "t"},
                error_code="TrailNotFoundException",
                identity=role_session("ci"),
            ),
            _LIST_USERS,
            _denied("iam.amazonaws.com", "ListRoles"),
        ),
    ),
    anchors=(
        "GuardDuty: none for refused attempts",
        "Panther: AWS.CloudTrail.UnauthorizedAPICall (any refusal)",
        "Sigma: aws_cloudtrail_disable_logging (any outcome)",
    ),
)
