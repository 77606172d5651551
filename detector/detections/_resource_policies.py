"""Resource policies opened to anyone or to another account, for the services whose policies the
other detections do not read: ECR repositories, SNS topics, Secrets Manager secrets,
OpenSearch/Elasticsearch domains, Glacier vaults, EFS file systems, API Gateway REST APIs and
Backup vaults. S3, KMS, SQS and Lambda have their own detections (``_sharing``, ``_kms``,
``_sqs``); the policy grammar is read by :mod:`._policies` for all of them.

Each call is described by where its policy document and resource name sit in
``requestParameters`` (:data:`_POLICY_CALLS`); the rest is the shared reading of who a policy
lets in.

Imports: orjson, polars, this package's vocabulary, policies and examples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

import orjson
import polars as pl

from detector.detections._detection import Detection
from detector.detections._examples import ACCOUNT, OTHER_ACCOUNT, api_call, role_session
from detector.detections._expressions import matched_by_grantees
from detector.detections._policies import outside_grantees

__all__ = ["RESOURCE_POLICY_OPENED"]


def _key(*path: str) -> Callable[[dict[str, Any]], Iterator[Any]]:
    """The value at a path of nested keys, when there is one."""

    def get(params: dict[str, Any]) -> Iterator[Any]:
        value: Any = params
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        if value is not None:
            yield value

    return get


def _sns_attribute(params: dict[str, Any]) -> Iterator[Any]:
    if params.get("attributeName") == "Policy":
        yield params.get("attributeValue")
    attributes = params.get("attributes")
    if isinstance(attributes, dict) and attributes.get("Policy") is not None:
        yield attributes["Policy"]


def _rest_api_policy(params: dict[str, Any]) -> Iterator[Any]:
    """CreateRestApi carries ``policy``; UpdateRestApi a JSON-patch ``replace /policy``."""
    yield from _key("policy")(params)
    yield from _key("createRestApiInput", "policy")(params)
    patch = params.get("patch")
    operations = params.get("patchOperations") or (
        patch.get("patchOperations") if isinstance(patch, dict) else None
    )
    for op in operations if isinstance(operations, list) else ():
        if isinstance(op, dict) and op.get("path") == "/policy" and op.get("op") != "remove":
            yield op.get("value")


_Policies = Callable[[dict[str, Any]], Iterator[Any]]
# (event source, event name) -> (where the policy is, the resource's name keys).
_POLICY_CALLS: Final[dict[tuple[str, str], tuple[_Policies, tuple[str, ...]]]] = {
    ("ecr.amazonaws.com", "SetRepositoryPolicy"): (_key("policyText"), ("repositoryName",)),
    ("sns.amazonaws.com", "SetTopicAttributes"): (_sns_attribute, ("topicArn",)),
    ("sns.amazonaws.com", "CreateTopic"): (_sns_attribute, ("name",)),
    ("secretsmanager.amazonaws.com", "PutResourcePolicy"): (
        _key("resourcePolicy"),
        ("secretId",),
    ),
    **{
        ("es.amazonaws.com", name): (_key("accessPolicies"), ("domainName",))
        for name in (
            "CreateDomain",
            "UpdateDomainConfig",
            "CreateElasticsearchDomain",
            "UpdateElasticsearchDomainConfig",
        )
    },
    ("glacier.amazonaws.com", "SetVaultAccessPolicy"): (
        _key("policy", "policy"),
        ("vaultName",),
    ),
    ("elasticfilesystem.amazonaws.com", "PutFileSystemPolicy"): (
        _key("policy"),
        ("fileSystemId",),
    ),
    ("apigateway.amazonaws.com", "CreateRestApi"): (_rest_api_policy, ("name",)),
    ("apigateway.amazonaws.com", "UpdateRestApi"): (_rest_api_policy, ("restApiId",)),
    ("backup.amazonaws.com", "PutBackupVaultAccessPolicy"): (
        _key("policy"),
        ("backupVaultName",),
    ),
}


def _selects() -> pl.Expr:
    pairs = pl.concat_str("event_source", pl.lit(" "), "event_name")
    return pairs.is_in([f"{source} {name}" for source, name in _POLICY_CALLS])


def _policy_opened(
    trusted: frozenset[str],
    event_source: str,
    event_name: str,
    request_parameters: str | None,
    recipient_account_id: str | None,
) -> dict[str, Any] | None:
    found = _POLICY_CALLS.get((event_source, event_name))
    params = orjson.loads(request_parameters) if request_parameters else None
    if found is None or not isinstance(params, dict):
        return None
    policies, name_keys = found
    granted: list[str] = []
    for policy in policies(params):
        granted.extend(outside_grantees(policy, recipient_account_id, trusted))
    if not granted:
        return None
    resource = next((params[k] for k in name_keys if params.get(k) is not None), None)
    return {
        "service": event_source.removesuffix(".amazonaws.com"),
        "resource": resource,
        "granted_to": list(dict.fromkeys(granted)),
    }


def _policy(principal: Any, action: str, condition: dict[str, Any] | None = None) -> str:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": principal,
        "Action": action,
        "Resource": "*",
    }
    if condition is not None:
        statement["Condition"] = condition
    return orjson.dumps({"Version": "2012-10-17", "Statement": [statement]}).decode()


_ANYONE: Final = "*"
_OTHER: Final = {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"}
_OWN: Final = {"AWS": f"arn:aws:iam::{ACCOUNT}:role/deployer"}
_ORG_ONLY: Final = {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}
_TOPIC: Final = f"arn:aws:sns:eu-west-1:{ACCOUNT}:alerts"


def _ecr(principal: Any, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    policy = _policy(principal, "ecr:BatchGetImage", condition)
    return api_call(
        "ecr.amazonaws.com",
        "SetRepositoryPolicy",
        {"repositoryName": "orders-api", "policyText": policy},
    )


def _sns(principal: Any) -> dict[str, Any]:
    return api_call(
        "sns.amazonaws.com",
        "SetTopicAttributes",
        {
            "topicArn": _TOPIC,
            "attributeName": "Policy",
            "attributeValue": _policy(principal, "SNS:Subscribe"),
        },
    )


RESOURCE_POLICY_OPENED = Detection(
    id="resource_policy_opened",
    title="Resource policy opened to anyone or to another account",
    description="A resource policy of an ECR repository, SNS topic, Secrets Manager secret, "
    "OpenSearch/Elasticsearch domain, Glacier vault, EFS file system, API Gateway REST API or "
    'Backup vault now lets anyone (Principal "*" without a condition pinning the caller) or '
    "another AWS account in. Accounts in trusted_account_ids are not 'another account'.",
    severity=6.0,
    mitre=("T1537", "T1098"),
    selects=_selects(),
    matches=matched_by_grantees(
        _policy_opened, "event_source", "event_name", "request_parameters", "recipient_account_id"
    ),
    positives=(
        (_ecr(_ANYONE),),
        (_sns(_OTHER),),
        (
            api_call(
                "sns.amazonaws.com",
                "CreateTopic",
                {"name": "alerts", "attributes": {"Policy": _policy(_ANYONE, "SNS:Publish")}},
            ),
        ),
        (
            api_call(
                "secretsmanager.amazonaws.com",
                "PutResourcePolicy",
                {
                    "secretId": "prod/db",
                    "resourcePolicy": _policy(_OTHER, "secretsmanager:GetSecretValue"),
                },
                identity=role_session(),
            ),
        ),
        (
            api_call(
                "es.amazonaws.com",
                "UpdateDomainConfig",
                {"domainName": "logs", "accessPolicies": _policy({"AWS": "*"}, "es:*")},
            ),
        ),
        (
            api_call(
                "glacier.amazonaws.com",
                "SetVaultAccessPolicy",
                {
                    "accountId": "-",
                    "vaultName": "archive",
                    "policy": {"policy": _policy(_ANYONE, "glacier:*")},
                },
            ),
        ),
        (
            api_call(
                "elasticfilesystem.amazonaws.com",
                "PutFileSystemPolicy",
                {
                    "fileSystemId": "fs-0a1b2c3d",
                    "policy": _policy(_ANYONE, "elasticfilesystem:ClientMount"),
                },
            ),
        ),
        (
            api_call(
                "apigateway.amazonaws.com",
                "UpdateRestApi",
                {
                    "restApiId": "a1b2c3d4e5",
                    "patch": {
                        "patchOperations": [
                            {
                                "op": "replace",
                                "path": "/policy",
                                "value": _policy(_ANYONE, "execute-api:Invoke"),
                            }
                        ]
                    },
                },
            ),
        ),
        (
            api_call(
                "backup.amazonaws.com",
                "PutBackupVaultAccessPolicy",
                {
                    "backupVaultName": "prod",
                    "policy": _policy(_OTHER, "backup:CopyIntoBackupVault"),
                },
            ),
        ),
    ),
    negatives=(
        (_ecr(_OWN),),
        (_ecr(_ANYONE, _ORG_ONLY),),
        (_sns(_OWN),),
        (
            api_call(
                "sns.amazonaws.com",
                "SetTopicAttributes",
                {"topicArn": _TOPIC, "attributeName": "DisplayName", "attributeValue": "*"},
            ),
        ),
        (
            api_call(
                "secretsmanager.amazonaws.com",
                "PutResourcePolicy",
                {
                    "secretId": "prod/db",
                    "resourcePolicy": _policy(_OTHER, "secretsmanager:GetSecretValue"),
                },
                error_code="AccessDeniedException",
            ),
        ),
        (
            api_call(
                "backup.amazonaws.com",
                "PutBackupVaultAccessPolicy",
                {
                    "backupVaultName": "prod",
                    "policy": _policy(
                        _ANYONE,
                        "backup:CopyIntoBackupVault",
                        {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
                    ),
                },
            ),
        ),
    ),
    anchors=(
        "GuardDuty: none (IAM Access Analyzer reports such resources)",
        "Panther: AWS.ECR.EVENTS (any ECR change)",
        "Sigma: none found",
    ),
)
