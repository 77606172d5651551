"""Detections of data and code shared outside the account: machine images and disk snapshots,
database snapshots, S3 bucket policies and Lambda function permissions opened to anyone or to
another account. "Another account" is any account but the event's recipient account and the
configured trusted accounts.

Imports: polars, orjson, this package's vocabulary, policies and examples.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from detector.detections._detection import Detection
from detector.detections._examples import ACCOUNT, OTHER_ACCOUNT, api_call, role_session
from detector.detections._expressions import calls, matched_by_grantees
from detector.detections._policies import PUBLIC, account_of, grantee_outside, outside_grantees

__all__ = [
    "EC2_IMAGE_OR_SNAPSHOT_SHARED",
    "LAMBDA_FUNCTION_SHARED_OUTSIDE",
    "RDS_SNAPSHOT_SHARED",
    "S3_BUCKET_SHARED_OUTSIDE",
]


def _params(request_parameters: str | None) -> dict[str, Any] | None:
    params = orjson.loads(request_parameters) if request_parameters else None
    return params if isinstance(params, dict) else None


def _outside(accounts: list[str], own: str | None, trusted: frozenset[str]) -> list[str]:
    """The grantees among ``accounts`` that are public ("all" -> "*"), another account or an
    organisation (see :func:`grantee_outside`); group names and user names are not."""
    found = [grantee_outside(account, own, trusted) for account in accounts]
    return list(dict.fromkeys(g for g in found if g is not None))


_EC2: Final = "ec2.amazonaws.com"
# ModifyImageAttribute: launchPermission.add.items[]; ModifySnapshotAttribute:
# createVolumePermission.add.items[]; each item {"userId": ...} or {"group": "all"}.
_PERMISSION_KEYS: Final = {
    "ModifyImageAttribute": ("imageId", "launchPermission"),
    "ModifySnapshotAttribute": ("snapshotId", "createVolumePermission"),
}


def _image_or_snapshot_shared(
    trusted: frozenset[str],
    event_name: str,
    request_parameters: str | None,
    recipient_account_id: str | None,
) -> dict[str, Any] | None:
    params = _params(request_parameters)
    if params is None or event_name not in _PERMISSION_KEYS:
        return None
    id_key, permission_key = _PERMISSION_KEYS[event_name]
    permission = params.get(permission_key)
    add = permission.get("add") if isinstance(permission, dict) else None
    items = add.get("items") if isinstance(add, dict) else None
    grantees = [
        str(value)
        for item in items or ()
        if isinstance(item, dict)
        for key in ("userId", "group", "organizationArn", "organizationalUnitArn")
        if (value := item.get(key))
    ]
    outside = _outside(grantees, recipient_account_id, trusted)
    return {"resource": params.get(id_key), "shared_with": outside} if outside else None


def _ec2_share(event_name: str, resource_key: str, resource: str, *items: dict[str, str]) -> Any:
    key = "launchPermission" if event_name == "ModifyImageAttribute" else "createVolumePermission"
    return api_call(
        _EC2,
        event_name,
        {resource_key: resource, "attributeType": key, key: {"add": {"items": list(items)}}},
    )


EC2_IMAGE_OR_SNAPSHOT_SHARED = Detection(
    id="ec2_image_or_snapshot_shared",
    title="EC2 machine image or EBS snapshot shared publicly or with another account",
    description="Launch permission on an AMI, or create-volume permission on an EBS snapshot, "
    "was given to everyone or to another account: whoever receives it can copy the disks.",
    severity=6.0,
    mitre=("T1537",),
    selects=calls(_EC2, "ModifyImageAttribute", "ModifySnapshotAttribute"),
    matches=matched_by_grantees(
        _image_or_snapshot_shared, "event_name", "request_parameters", "recipient_account_id"
    ),
    positives=(
        (_ec2_share("ModifyImageAttribute", "imageId", "ami-0a1b2c3d", {"userId": OTHER_ACCOUNT}),),
        (_ec2_share("ModifyImageAttribute", "imageId", "ami-0a1b2c3d", {"group": "all"}),),
        (
            _ec2_share(
                "ModifyImageAttribute",
                "imageId",
                "ami-0a1b2c3d",
                {"organizationArn": "arn:aws:organizations::444455556666:organization/o-a1b2c3d4"},
            ),
        ),
        (
            _ec2_share(
                "ModifySnapshotAttribute", "snapshotId", "snap-0a1b2c3d", {"userId": OTHER_ACCOUNT}
            ),
        ),
    ),
    negatives=(
        (_ec2_share("ModifyImageAttribute", "imageId", "ami-0a1b2c3d", {"userId": ACCOUNT}),),
        # Names that are no account share nothing outside: a group other than "all", a user.
        (_ec2_share("ModifyImageAttribute", "imageId", "ami-0a1b2c3d", {"group": "not-all"}),),
        (_ec2_share("ModifySnapshotAttribute", "snapshotId", "snap-0a1b2c3d", {"userId": "bob"}),),
        (
            api_call(
                _EC2,
                "ModifyImageAttribute",
                {"imageId": "ami-0a1b2c3d", "description": {"value": "golden image"}},
            ),
        ),
        (
            api_call(
                _EC2,
                "ModifySnapshotAttribute",
                {
                    "snapshotId": "snap-0a1b2c3d",
                    "attributeType": "CREATE_VOLUME_PERMISSION",
                    "createVolumePermission": {"remove": {"items": [{"group": "all"}]}},
                },
            ),
        ),
    ),
    anchors=(
        "GuardDuty: Exfiltration:IAMUser/AnomalousBehavior",
        "Panther: AWS.CloudTrail.AMIModifiedForPublicAccess",
        "Sigma: aws_snapshot_backup_exfiltration",
        "Stratus: aws.exfiltration.ec2-share-ami, aws.exfiltration.ec2-share-ebs-snapshot",
    ),
)

_RDS: Final = "rds.amazonaws.com"


def _db_snapshot_shared(
    trusted: frozenset[str], request_parameters: str | None, recipient_account_id: str | None
) -> dict[str, Any] | None:
    params = _params(request_parameters)
    if params is None or params.get("attributeName") != "restore":
        return None
    accounts = [str(a) for a in params.get("valuesToAdd") or ()]
    outside = _outside(accounts, recipient_account_id, trusted)
    snapshot = params.get("dBSnapshotIdentifier") or params.get("dBClusterSnapshotIdentifier")
    return {"snapshot": snapshot, "shared_with": outside} if outside else None


RDS_SNAPSHOT_SHARED = Detection(
    id="rds_snapshot_shared",
    title="RDS snapshot shared publicly or with another account",
    description="A database or cluster snapshot's restore permission was given to everyone "
    "('all') or to another account: whoever receives it can restore the database.",
    severity=6.0,
    mitre=("T1537",),
    selects=calls(_RDS, "ModifyDBSnapshotAttribute", "ModifyDBClusterSnapshotAttribute"),
    matches=matched_by_grantees(_db_snapshot_shared, "request_parameters", "recipient_account_id"),
    positives=(
        (
            api_call(
                _RDS,
                "ModifyDBSnapshotAttribute",
                {
                    "dBSnapshotIdentifier": "orders-2024-05-01",
                    "attributeName": "restore",
                    "valuesToAdd": [OTHER_ACCOUNT],
                },
            ),
        ),
        (
            api_call(
                _RDS,
                "ModifyDBClusterSnapshotAttribute",
                {
                    "dBClusterSnapshotIdentifier": "orders-cluster-1",
                    "attributeName": "restore",
                    "valuesToAdd": ["all"],
                },
                identity=role_session(),
            ),
        ),
    ),
    negatives=(
        (
            api_call(
                _RDS,
                "ModifyDBSnapshotAttribute",
                {
                    "dBSnapshotIdentifier": "orders-2024-05-01",
                    "attributeName": "restore",
                    "valuesToRemove": [OTHER_ACCOUNT],
                },
            ),
        ),
        (
            api_call(
                _RDS,
                "ModifyDBSnapshotAttribute",
                {
                    "dBSnapshotIdentifier": "orders-2024-05-01",
                    "attributeName": "restore",
                    "valuesToAdd": [ACCOUNT],
                },
            ),
        ),
    ),
    anchors=(
        "GuardDuty: Exfiltration:IAMUser/AnomalousBehavior",
        "Sigma: aws_rds_snapshot_shared_with_external_account",
        "Stratus: aws.exfiltration.rds-share-snapshot",
    ),
)

_S3: Final = "s3.amazonaws.com"
_BUCKET: Final = "orders-exports"


def _bucket_shared(
    trusted: frozenset[str], request_parameters: str | None, recipient_account_id: str | None
) -> dict[str, Any] | None:
    params = _params(request_parameters)
    if params is None:
        return None
    granted = outside_grantees(params.get("bucketPolicy"), recipient_account_id, trusted)
    return {"bucket": params.get("bucketName"), "granted_to": granted} if granted else None


def _bucket_policy(principal: Any, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": principal,
        "Action": ["s3:GetObject", "s3:ListBucket"],
        "Resource": [f"arn:aws:s3:::{_BUCKET}", f"arn:aws:s3:::{_BUCKET}/*"],
    }
    if condition is not None:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def _put_bucket_policy(policy: dict[str, Any]) -> Any:
    return api_call(
        _S3,
        "PutBucketPolicy",
        {"bucketName": _BUCKET, "bucketPolicy": policy, "policy": [""], "Host": f"{_BUCKET}.s3"},
    )


S3_BUCKET_SHARED_OUTSIDE = Detection(
    id="s3_bucket_shared_outside_account",
    title="S3 bucket policy opened to anyone or to another account",
    description='A bucket policy now lets anyone (Principal "*" without a condition pinning '
    "the caller) or another AWS account read or write the bucket.",
    severity=6.0,
    mitre=("T1537",),
    selects=calls(_S3, "PutBucketPolicy"),
    matches=matched_by_grantees(_bucket_shared, "request_parameters", "recipient_account_id"),
    positives=(
        (_put_bucket_policy(_bucket_policy({"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"})),),
        (_put_bucket_policy(_bucket_policy("*")),),
    ),
    negatives=(
        (_put_bucket_policy(_bucket_policy({"AWS": f"arn:aws:iam::{ACCOUNT}:role/reader"})),),
        (
            _put_bucket_policy(
                _bucket_policy("*", {"StringEquals": {"aws:SourceVpce": "vpce-0a1b2c3d4e5f"}})
            ),
        ),
    ),
    anchors=(
        "GuardDuty: Policy:S3/BucketAnonymousAccessGranted, Policy:S3/BucketPublicAccessGranted",
        "Panther: AWS.S3.BucketPolicyModified (any change)",
        "Stratus: aws.exfiltration.s3-backdoor-bucket-policy",
    ),
)

_LAMBDA: Final = "lambda.amazonaws.com"
_PINNING_PARAMS: Final = ("sourceArn", "sourceAccount", "principalOrgID")


def _function_shared(
    trusted: frozenset[str], request_parameters: str | None, recipient_account_id: str | None
) -> dict[str, Any] | None:
    params = _params(request_parameters)
    if params is None or not isinstance(params.get("principal"), str):
        return None
    principal = params["principal"]
    if principal == PUBLIC:
        if any(params.get(k) for k in _PINNING_PARAMS):
            return None
        outside = [PUBLIC]
    else:
        account = account_of(principal)
        if account is None:  # a service principal such as s3.amazonaws.com
            return None
        outside = _outside([account], recipient_account_id, trusted)
    if not outside:
        return None
    return {
        "function": params.get("functionName"),
        "granted_to": outside,
        "action": params.get("action"),
    }


def _add_permission(**params: Any) -> Any:
    return api_call(
        _LAMBDA,
        "AddPermission20150331v2",
        {"functionName": "orders-api", "statementId": "s1", "action": "lambda:InvokeFunction"}
        | params,
    )


LAMBDA_FUNCTION_SHARED_OUTSIDE = Detection(
    id="lambda_function_shared_outside_account",
    title="Lambda function made invocable by anyone or by another account",
    description="A Lambda resource policy statement (AddPermission) lets anyone (principal "
    '"*" without a source ARN, source account or organisation id) or another AWS account '
    "invoke or manage the function.",
    severity=6.0,
    mitre=("T1098",),
    selects=calls(_LAMBDA, "AddPermission20150331v2", "AddPermission20150331", "AddPermission"),
    matches=matched_by_grantees(_function_shared, "request_parameters", "recipient_account_id"),
    positives=(
        (_add_permission(principal="*"),),
        (_add_permission(principal=OTHER_ACCOUNT),),
    ),
    negatives=(
        (
            _add_permission(
                principal="s3.amazonaws.com",
                sourceArn=f"arn:aws:s3:::{_BUCKET}",
                sourceAccount=ACCOUNT,
            ),
        ),
        (_add_permission(principal="*", principalOrgID="o-a1b2c3d4e5"),),
        (_add_permission(principal=f"arn:aws:iam::{ACCOUNT}:role/caller"),),
    ),
    anchors=(
        "Panther: AWS.Potential.Backdoor.Lambda (any AddPermission)",
        "Stratus: aws.persistence.lambda-backdoor-function",
    ),
)
