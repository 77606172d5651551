"""Detections against real samples in ../shared/data (skipped when the folder is absent).

- Stratus Red Team: every detonation whose technique a detection covers must produce a finding
  of that detection. Techniques are classified below, covered or not (with why); a file of a
  technique in neither list is reported, not failed, so that new samples can be dropped in.
- Panther rule test cases: for the Panther rules that mean the same as one of our detections,
  the cases Panther expects *not* to fire must not fire our detection (precision, asserted),
  and we measure how many of the cases Panther expects to fire we catch (recall, reported).
  Each case is parsed on its own (many share an eventID); cases our parser refuses (Panther's
  lower-cased keys, hand-written times) are counted apart, they are not findings.

Run with ``pytest -s tests/shared_data/test_detections_shared.py`` to see the numbers.
No threshold here is tuned to a sample file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from detector.detections import DetectionConfig, DetectionState, default_detections, run_detections
from detector.events import records_to_events
from tests.conftest import load_jsonl, load_stratus

NOW = datetime(2026, 1, 1, tzinfo=UTC)

# Stratus Red Team AWS techniques our detections cover -> the detection that must fire.
STRATUS_COVERED = {
    "aws.credential-access.ec2-steal-instance-credentials": "instance_credentials_used_outside",
    "aws.credential-access.secretsmanager-batch-retrieve-secrets": "secrets_read_in_bulk",
    "aws.credential-access.secretsmanager-retrieve-secrets": "secrets_read_in_bulk",
    "aws.credential-access.ssm-retrieve-securestring-parameters": "secrets_read_in_bulk",
    "aws.defense-evasion.bedrock-model-invocation-logging-delete": (
        "bedrock_invocation_logging_deleted"
    ),
    "aws.defense-evasion.cloudtrail-delete": "cloudtrail_logging_stopped",
    "aws.defense-evasion.cloudtrail-event-selectors": "cloudtrail_logging_reduced",
    "aws.defense-evasion.cloudtrail-stop": "cloudtrail_logging_stopped",
    "aws.defense-evasion.dns-delete-logs": "dns_query_logging_deleted",
    "aws.defense-evasion.organizations-leave": "organization_leave_attempted",
    "aws.defense-evasion.vpc-remove-flow-logs": "vpc_flow_logs_deleted",
    "aws.execution.ec2-launch-unusual-instances": "ec2_instances_launched_unusually",
    "aws.execution.ec2-user-data": "ec2_user_data_changed",
    "aws.exfiltration.ec2-share-ami": "ec2_image_or_snapshot_shared",
    "aws.exfiltration.ec2-share-ebs-snapshot": "ec2_image_or_snapshot_shared",
    "aws.exfiltration.rds-share-snapshot": "rds_snapshot_shared",
    "aws.exfiltration.s3-backdoor-bucket-policy": "s3_bucket_shared_outside_account",
    "aws.initial-access.console-login-without-mfa": "console_login_without_mfa",
    "aws.persistence.iam-backdoor-role": "iam_role_trust_opened",
    "aws.persistence.iam-backdoor-user": "iam_credentials_created_for_another_user",
    "aws.persistence.iam-create-admin-user": "iam_admin_policy_granted",
    "aws.persistence.iam-create-backdoor-role": "iam_role_trust_opened",
    "aws.persistence.iam-create-user-login-profile": "iam_credentials_created_for_another_user",
    "aws.persistence.lambda-backdoor-function": "lambda_function_shared_outside_account",
    "aws.persistence.rolesanywhere-create-trust-anchor": "iam_roles_anywhere_trust_anchor_created",
    "aws.persistence.sts-federation-token": "sts_federation_token_with_broad_policy",
    "aws.privilege-escalation.iam-update-user-login-profile": (
        "iam_credentials_created_for_another_user"
    ),
}

_ROUTINE_READS = "ordinary read APIs every application calls; unusual volume or novelty for the principal is the model's job"
_ROUTINE_OPS = "ordinary operations APIs (admins and tooling call them daily); only who/when/how often makes them odd: the model's job"
_NEEDS_PROFILE = (
    "lambda_changed_by_non_deployer judges who changed the function against the principal "
    "profile, which a lone sample does not have (see tests/unit/test_detections.py)"
)
# Techniques no signature covers on a lone sample, and why.
STRATUS_UNCOVERED = {
    "aws.credential-access.ec2-get-password-data": _ROUTINE_READS,
    "aws.discovery.ec2-download-user-data": _ROUTINE_READS,
    "aws.discovery.ec2-enumerate-from-instance": _ROUTINE_READS,
    "aws.discovery.ses-enumerate": _ROUTINE_READS,
    "aws.execution.ssm-send-command": _ROUTINE_OPS,
    "aws.execution.ssm-start-session": _ROUTINE_OPS,
    "aws.impact.bedrock-invoke-model": _ROUTINE_OPS,
    "aws.impact.s3-ransomware-batch-deletion": "a volume pattern of ordinary S3 calls",
    "aws.impact.s3-ransomware-client-side-encryption": "a volume pattern of ordinary S3 calls",
    "aws.impact.s3-ransomware-individual-deletion": "a volume pattern of ordinary S3 calls",
    "aws.lateral-movement.ec2-instance-connect": _ROUTINE_OPS,
    "aws.lateral-movement.ec2-serial-console-send-ssh-public-key": _ROUTINE_OPS,
    "aws.persistence.lambda-layer-extension": _NEEDS_PROFILE,
    "aws.persistence.lambda-overwrite-code": _NEEDS_PROFILE,
    "aws.defense-evasion.cloudtrail-lifecycle-rule": (
        "PutBucketLifecycle is routine; it matters only on the trail's bucket, which the event "
        "does not say"
    ),
    "aws.exfiltration.ec2-security-group-open-port-22-ingress": (
        "not implemented yet (a candidate: AuthorizeSecurityGroupIngress 0.0.0.0/0 on admin ports)"
    ),
}

# Panther rules meaning the same as one of our detections. Broader Panther rules (any bucket
# policy change, any IAM change) are left out: their 'true' cases include benign changes.
PANTHER_RULE_TO_DETECTION = {
    "AWS.Bedrock.DeleteModelInvocationLoggingConfiguration": "bedrock_invocation_logging_deleted",
    "AWS.CloudTrail.AMIModifiedForPublicAccess": "ec2_image_or_snapshot_shared",
    "AWS.CloudTrail.AttemptToLeaveOrg": "organization_leave_attempted",
    "AWS.CloudTrail.DNSLogsDeleted": "dns_query_logging_deleted",
    "AWS.CloudTrail.EventSelectorsDisabled": "cloudtrail_logging_reduced",
    "AWS.CloudTrail.IMDSCredentialExfiltration": "instance_credentials_used_outside",
    "AWS.CloudTrail.LoginProfileCreatedOrModified": "iam_credentials_created_for_another_user",
    "AWS.CloudTrail.RootPasswordChanged": "root_credential_use",
    "AWS.CloudTrail.Stopped": "cloudtrail_logging_stopped",
    "AWS.ConfigService.DisabledDeleted": "config_recording_stopped",
    "AWS.Console.LoginWithoutMFA": "console_login_without_mfa",
    "AWS.Console.RootLogin": "root_credential_use",
    "AWS.IAM.AttachAdminRolePolicy": "iam_admin_policy_granted",
    "AWS.IAM.AttachAdminUserPolicy": "iam_admin_policy_granted",
    "AWS.IAM.Backdoor.User.Keys": "iam_credentials_created_for_another_user",
    "AWS.IAM.BackdoorRole": "iam_role_trust_opened",
    "AWS.KMS.CustomerManagedKeyLoss": "kms_key_disabled_or_deletion_scheduled",
    "AWS.Root.Activity": "root_credential_use",
    "AWS.SecretsManager.BatchRetrieveSecrets": "secrets_read_in_bulk",
    "Standard.BruteForceByUser": "console_login_failures_repeated",
}
# Known, documented disagreements: we report every root call (reads and CreateServiceLinkedRole
# included); Panther's AWS.Root.Activity does not.
PRECISION_BAR = 0.85


def kinds_found(records: list[Any], origin: str) -> tuple[set[str] | None, int]:
    """Detection ids that fired on the records, or None when every record failed to parse."""
    parsed = records_to_events(records, origin=origin)
    if parsed.events.is_empty():
        return None, len(parsed.failures)
    _, found = run_detections(
        parsed.events, default_detections(), DetectionState(), DetectionConfig(), NOW
    )
    return {f.kind for f in found}, len(parsed.failures)


def test_the_mappings_name_real_detections() -> None:
    ids = {d.id for d in default_detections()}
    assert set(STRATUS_COVERED.values()) <= ids
    assert set(PANTHER_RULE_TO_DETECTION.values()) <= ids
    assert not set(STRATUS_COVERED) & set(STRATUS_UNCOVERED)


@pytest.mark.shared_data
def test_every_covered_stratus_technique_is_detected(
    shared_data: Path, record_property: Callable[[str, object], None]
) -> None:
    files = sorted((shared_data / "stratus-red-team").glob("*.json"))
    assert files, "no Stratus Red Team files"
    missed: list[str] = []
    covered = uncovered = unclassified = 0
    for path in files:
        technique = path.stem
        kinds, _ = kinds_found(load_stratus(path), path.name)
        fired = sorted(kinds or ())
        if technique in STRATUS_COVERED:
            covered += 1
            expected = STRATUS_COVERED[technique]
            verdict = "ok" if expected in fired else "MISSED"
            if expected not in fired:
                missed.append(f"{technique}: expected {expected}, got {fired}")
            print(f"stratus {verdict:6} {technique} -> {fired}")
        elif technique in STRATUS_UNCOVERED:
            uncovered += 1
            print(f"stratus n/a    {technique} -> {fired} ({STRATUS_UNCOVERED[technique]})")
        else:
            unclassified += 1
            print(f"stratus ??     {technique} -> {fired} (not classified in this test)")
    caught = covered - len(missed)
    print(
        f"stratus: {caught}/{covered} covered techniques detected; {uncovered} uncovered by "
        f"design; {unclassified} unclassified; {len(files)} files"
    )
    record_property("stratus_covered_detected", f"{caught}/{covered}")
    assert not missed, missed


@pytest.mark.shared_data
def test_panther_cases_of_mapped_rules(
    shared_data: Path, record_property: Callable[[str, object], None]
) -> None:
    cases = load_jsonl(shared_data / "panther-rule-cases.jsonl")
    tally: Counter[str] = Counter()
    wrong: list[str] = []
    for i, case in enumerate(cases):
        detection = PANTHER_RULE_TO_DETECTION.get(case["rule_id"])
        if detection is None:
            continue
        kinds, _ = kinds_found([case["event"]], f"panther:{case['rule_id']}#{i}")
        if kinds is None:
            tally["unparsed"] += 1
            continue
        fired = detection in kinds
        expected = bool(case["expected"])
        tally[f"{'true' if expected else 'false'}_{'fired' if fired else 'quiet'}"] += 1
        if fired != expected:
            wrong.append(f"{case['rule_id']} / {case['test_name']}: expected {expected}")
    negatives = tally["false_quiet"] + tally["false_fired"]
    positives = tally["true_fired"] + tally["true_quiet"]
    precision = tally["false_quiet"] / negatives
    recall = tally["true_fired"] / positives
    print(
        f"panther: precision {precision:.3f} ({tally['false_quiet']}/{negatives} expected-false "
        f"cases quiet), recall {recall:.3f} ({tally['true_fired']}/{positives} expected-true "
        f"cases fired), {tally['unparsed']} cases not parsed (not CloudTrail as AWS writes it)"
    )
    for line in wrong:
        print(f"panther disagreement: {line}")
    record_property("panther_precision", round(precision, 3))
    record_property("panther_recall", round(recall, 3))
    assert negatives >= 10, "too few mapped expected-false cases to measure"
    assert precision >= PRECISION_BAR, wrong
