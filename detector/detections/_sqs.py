"""Detections on SQS queues: encryption removed, queue opened to others, dead-letter queue
removed. CloudTrail records the attributes a call set under ``requestParameters.attributes``.

Imports: polars, orjson, this package's vocabulary, policies and examples.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
import polars as pl

from detector.detections._detection import Detection
from detector.detections._examples import ACCOUNT, OTHER_ACCOUNT, api_call, role_session
from detector.detections._expressions import calls, matched_by_grantees, param, succeeded, where
from detector.detections._policies import grantee_outside, outside_grantees

__all__ = ["SQS_DEAD_LETTER_QUEUE_REMOVED", "SQS_ENCRYPTION_REMOVED", "SQS_QUEUE_SHARED_OUTSIDE"]

_SQS: Final = "sqs.amazonaws.com"
_QUEUE_URL: Final = f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/orders"
_QUEUE_ARN: Final = f"arn:aws:sqs:eu-west-1:{ACCOUNT}:orders"


def _queue() -> pl.Expr:
    return pl.coalesce(param("$.queueUrl"), param("$.queueName"))


_KMS_KEY = param("$.attributes.KmsMasterKeyId")
_SQS_MANAGED_SSE = param("$.attributes.SqsManagedSseEnabled")
# KmsMasterKeyId "" drops the customer key; SqsManagedSseEnabled "false" without a KMS key
# leaves no encryption at all (with a key, it is a switch from SSE-SQS to SSE-KMS: stronger).
_ENCRYPTION_WEAKENED = (_KMS_KEY == "").fill_null(False) | (
    (_SQS_MANAGED_SSE == "false").fill_null(False) & _KMS_KEY.fill_null("").eq("")
)

SQS_ENCRYPTION_REMOVED = Detection(
    id="sqs_encryption_removed",
    title="SQS queue encryption removed or weakened",
    description="A queue was created or changed to store messages unencrypted, or without its "
    "customer-managed KMS key (KmsMasterKeyId set to empty, SqsManagedSseEnabled false).",
    severity=5.0,
    mitre=("T1562.001",),
    selects=calls(_SQS, "SetQueueAttributes", "CreateQueue"),
    matches=where(
        succeeded() & _ENCRYPTION_WEAKENED,
        queue=_queue(),
        kms_master_key_id=_KMS_KEY,
        sqs_managed_sse_enabled=_SQS_MANAGED_SSE,
    ),
    positives=(
        (
            api_call(
                _SQS,
                "SetQueueAttributes",
                {"queueUrl": _QUEUE_URL, "attributes": {"KmsMasterKeyId": ""}},
            ),
        ),
        (
            api_call(
                _SQS,
                "SetQueueAttributes",
                {"queueUrl": _QUEUE_URL, "attributes": {"SqsManagedSseEnabled": "false"}},
                identity=role_session(),
            ),
        ),
        (
            api_call(
                _SQS,
                "CreateQueue",
                {"queueName": "orders-copy", "attributes": {"SqsManagedSseEnabled": "false"}},
            ),
        ),
    ),
    negatives=(
        (
            api_call(
                _SQS,
                "SetQueueAttributes",
                {
                    "queueUrl": _QUEUE_URL,
                    "attributes": {
                        "KmsMasterKeyId": "alias/orders",
                        "SqsManagedSseEnabled": "false",
                    },
                },
            ),
        ),
        (
            api_call(
                _SQS,
                "SetQueueAttributes",
                {"queueUrl": _QUEUE_URL, "attributes": {"VisibilityTimeout": "60"}},
            ),
        ),
        (api_call(_SQS, "CreateQueue", {"queueName": "orders-dlq"}),),
    ),
    anchors=("Sigma/Panther: none found (AWS Config rule sqs-queue-encrypted checks the state)",),
)


def _lookup(params: dict[str, Any], name: str) -> Any:
    """A request parameter by case-insensitive name: SDKs and CloudTrail disagree on case
    (``AWSAccountIds``, ``aWSAccountIds``)."""
    lowered = name.lower()
    return next((v for k, v in params.items() if k.lower() == lowered), None)


def _queue_outside_grantees(
    trusted: frozenset[str],
    event_name: str,
    request_parameters: str | None,
    recipient_account_id: str | None,
) -> dict[str, Any] | None:
    params = orjson.loads(request_parameters) if request_parameters else None
    if not isinstance(params, dict):
        return None
    queue = params.get("queueUrl") or params.get("queueName")
    if event_name == "AddPermission":
        accounts = [str(a) for a in (_lookup(params, "AWSAccountIds") or [])]
        found = [grantee_outside(a, recipient_account_id, trusted) for a in accounts]
        outside = list(dict.fromkeys(g for g in found if g is not None))
        if not outside:
            return None
        return {"queue": queue, "granted_to": outside, "actions": _lookup(params, "actions")}
    attributes = _lookup(params, "attributes")
    policy = _lookup(attributes, "Policy") if isinstance(attributes, dict) else None
    granted = outside_grantees(policy, recipient_account_id, trusted)
    return {"queue": queue, "granted_to": granted} if granted else None


def _queue_policy(principal: Any, condition: dict[str, Any] | None = None) -> str:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": principal,
        "Action": "sqs:SendMessage",
        "Resource": _QUEUE_ARN,
    }
    if condition is not None:
        statement["Condition"] = condition
    return orjson.dumps({"Version": "2012-10-17", "Statement": [statement]}).decode()


SQS_QUEUE_SHARED_OUTSIDE = Detection(
    id="sqs_queue_shared_outside_account",
    title="SQS queue opened to anyone or to another account",
    description='A queue policy now lets anyone (Principal "*" without a condition pinning '
    "the caller) or another AWS account use the queue, or AddPermission granted another "
    "account access. Accounts in trusted_account_ids are not 'another account'.",
    severity=6.0,
    mitre=("T1537",),
    selects=calls(_SQS, "SetQueueAttributes", "CreateQueue", "AddPermission"),
    matches=matched_by_grantees(
        _queue_outside_grantees, "event_name", "request_parameters", "recipient_account_id"
    ),
    positives=(
        (
            api_call(
                _SQS,
                "SetQueueAttributes",
                {"queueUrl": _QUEUE_URL, "attributes": {"Policy": _queue_policy("*")}},
            ),
        ),
        (
            api_call(
                _SQS,
                "SetQueueAttributes",
                {
                    "queueUrl": _QUEUE_URL,
                    "attributes": {
                        "Policy": _queue_policy({"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"})
                    },
                },
            ),
        ),
        (
            api_call(
                _SQS,
                "AddPermission",
                {
                    "queueUrl": _QUEUE_URL,
                    "label": "partner",
                    "aWSAccountIds": [OTHER_ACCOUNT],
                    "actions": ["ReceiveMessage"],
                },
            ),
        ),
    ),
    negatives=(
        (
            api_call(
                _SQS,
                "SetQueueAttributes",
                {
                    "queueUrl": _QUEUE_URL,
                    "attributes": {
                        "Policy": _queue_policy(
                            {"Service": "sns.amazonaws.com"},
                            {"ArnEquals": {"aws:SourceArn": f"arn:aws:sns:eu-west-1:{ACCOUNT}:t"}},
                        )
                    },
                },
            ),
        ),
        (
            api_call(
                _SQS,
                "SetQueueAttributes",
                {
                    "queueUrl": _QUEUE_URL,
                    "attributes": {
                        "Policy": _queue_policy(
                            "*", {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}
                        )
                    },
                },
            ),
        ),
        (
            api_call(
                _SQS,
                "AddPermission",
                {
                    "queueUrl": _QUEUE_URL,
                    "label": "self",
                    "aWSAccountIds": [ACCOUNT],
                    "actions": ["SendMessage"],
                },
            ),
        ),
        (
            api_call(
                _SQS,
                "AddPermission",
                {
                    "queueUrl": _QUEUE_URL,
                    "label": "typo",
                    "aWSAccountIds": ["orders-team"],  # a name, not an account
                    "actions": ["SendMessage"],
                },
            ),
        ),
    ),
    anchors=(
        "GuardDuty: none (IAM Access Analyzer reports such queues)",
        "Panther: none for SQS (see AWS.S3.BucketPolicyModified for the S3 analogue)",
    ),
)

SQS_DEAD_LETTER_QUEUE_REMOVED = Detection(
    id="sqs_dead_letter_queue_removed",
    title="SQS queue's dead-letter queue removed",
    description="A queue's redrive policy was removed (RedrivePolicy set to empty): messages "
    "that repeatedly fail are no longer kept aside, they are lost when they expire.",
    severity=3.0,
    mitre=("T1485",),
    selects=calls(_SQS, "SetQueueAttributes"),
    matches=where(
        succeeded() & (param("$.attributes.RedrivePolicy") == "").fill_null(False),
        queue=_queue(),
    ),
    positives=(
        (
            api_call(
                _SQS,
                "SetQueueAttributes",
                {"queueUrl": _QUEUE_URL, "attributes": {"RedrivePolicy": ""}},
            ),
        ),
    ),
    negatives=(
        (
            api_call(
                _SQS,
                "SetQueueAttributes",
                {
                    "queueUrl": _QUEUE_URL,
                    "attributes": {
                        "RedrivePolicy": orjson.dumps(
                            {"deadLetterTargetArn": f"{_QUEUE_ARN}-dlq", "maxReceiveCount": 5}
                        ).decode()
                    },
                },
            ),
        ),
    ),
    anchors=("none found in GuardDuty, Panther or Sigma",),
)
