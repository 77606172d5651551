"""Detections on KMS keys: a key made unusable, or its policy opened to others.

Imports: polars, orjson, this package's vocabulary, policies and examples.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
import polars as pl

from detector.detections._detection import Detection
from detector.detections._examples import ACCOUNT, OTHER_ACCOUNT, api_call, role_session
from detector.detections._expressions import calls, matched_by_grantees, param, succeeded, where
from detector.detections._policies import outside_grantees

__all__ = ["KMS_KEY_DISABLED_OR_DELETION_SCHEDULED", "KMS_KEY_POLICY_OPENED"]

_KMS: Final = "kms.amazonaws.com"
_KEY_ID: Final = "1234abcd-12ab-34cd-56ef-1234567890ab"
_KEY_ARN: Final = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/{_KEY_ID}"


def _resources(arn: str) -> list[dict[str, str]]:
    return [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": arn}]


KMS_KEY_DISABLED_OR_DELETION_SCHEDULED = Detection(
    id="kms_key_disabled_or_deletion_scheduled",
    title="KMS key disabled or scheduled for deletion",
    description="A KMS key was disabled or scheduled for deletion: data encrypted under it "
    "cannot be decrypted now (disabled) or ever again once the waiting period ends.",
    severity=6.0,
    mitre=("T1485",),
    selects=calls(_KMS, "DisableKey", "ScheduleKeyDeletion"),
    matches=where(
        succeeded(),
        key=pl.coalesce(pl.col("kms_key_arn"), param("$.keyId")),
        pending_window_days=param("$.pendingWindowInDays"),
    ),
    positives=(
        (
            api_call(
                _KMS,
                "ScheduleKeyDeletion",
                {"keyId": _KEY_ID, "pendingWindowInDays": 7},
                resources=_resources(_KEY_ARN),
            ),
        ),
        (
            api_call(
                _KMS,
                "DisableKey",
                {"keyId": _KEY_ID},
                identity=role_session(),
                resources=_resources(_KEY_ARN),
            ),
        ),
    ),
    negatives=(
        (api_call(_KMS, "EnableKey", {"keyId": _KEY_ID}, resources=_resources(_KEY_ARN)),),
        (
            api_call(
                _KMS,
                "DisableKey",
                {"keyId": _KEY_ID},
                error_code="NotFoundException",
                resources=_resources(_KEY_ARN),
            ),
        ),
    ),
    anchors=("Panther: AWS.KMS.CustomerManagedKeyLoss",),
)


def _key_outside_grantees(
    trusted: frozenset[str], request_parameters: str | None, recipient_account_id: str | None
) -> dict[str, Any] | None:
    params = orjson.loads(request_parameters) if request_parameters else None
    if not isinstance(params, dict):
        return None
    granted = outside_grantees(params.get("policy"), recipient_account_id, trusted)
    return {"key": params.get("keyId"), "granted_to": granted} if granted else None


def _key_policy(*statements: dict[str, Any]) -> str:
    return orjson.dumps({"Version": "2012-10-17", "Statement": list(statements)}).decode()


_OWN_ACCOUNT_ADMIN: Final = {
    "Sid": "Enable IAM User Permissions",
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
    "Action": "kms:*",
    "Resource": "*",
}

KMS_KEY_POLICY_OPENED = Detection(
    id="kms_key_policy_opened",
    title="KMS key policy opened to anyone or to another account",
    description="A key policy (PutKeyPolicy, or CreateKey with a policy) now lets anyone "
    '(Principal "*" without a condition such as kms:CallerAccount) or another AWS account '
    "use or manage the key.",
    severity=7.0,
    mitre=("T1098",),
    selects=calls(_KMS, "PutKeyPolicy", "CreateKey"),
    matches=matched_by_grantees(
        _key_outside_grantees, "request_parameters", "recipient_account_id"
    ),
    positives=(
        (
            api_call(
                _KMS,
                "PutKeyPolicy",
                {
                    "keyId": _KEY_ID,
                    "policyName": "default",
                    "policy": _key_policy(
                        _OWN_ACCOUNT_ADMIN,
                        {
                            "Effect": "Allow",
                            "Principal": "*",
                            "Action": ["kms:Decrypt", "kms:DescribeKey"],
                            "Resource": "*",
                        },
                    ),
                },
            ),
        ),
        (
            api_call(
                _KMS,
                "PutKeyPolicy",
                {
                    "keyId": _KEY_ID,
                    "policyName": "default",
                    "policy": _key_policy(
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": [f"arn:aws:iam::{OTHER_ACCOUNT}:root"]},
                            "Action": "kms:*",
                            "Resource": "*",
                        }
                    ),
                },
                identity=role_session(),
            ),
        ),
    ),
    negatives=(
        (
            api_call(
                _KMS,
                "PutKeyPolicy",
                {
                    "keyId": _KEY_ID,
                    "policyName": "default",
                    "policy": _key_policy(_OWN_ACCOUNT_ADMIN),
                },
            ),
        ),
        (
            api_call(
                _KMS,
                "PutKeyPolicy",
                {
                    "keyId": _KEY_ID,
                    "policyName": "default",
                    "policy": _key_policy(
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": "*"},
                            "Action": ["kms:Encrypt", "kms:Decrypt"],
                            "Resource": "*",
                            "Condition": {
                                "StringEquals": {
                                    "kms:CallerAccount": ACCOUNT,
                                    "kms:ViaService": "s3.eu-west-1.amazonaws.com",
                                }
                            },
                        }
                    ),
                },
            ),
        ),
        (
            api_call(
                _KMS, "CreateKey", {"keyUsage": "ENCRYPT_DECRYPT", "keySpec": "SYMMETRIC_DEFAULT"}
            ),
        ),
    ),
    anchors=("GuardDuty: none (IAM Access Analyzer reports such keys)",),
)
