"""Detections of the protections around data being taken away: RDS backups and deletion
protection removed, RDS snapshots exported to S3 or copied across regions or accounts, and S3
Block Public Access switched off for a bucket or the whole account.

Imports: polars, this package's vocabulary and examples.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from detector.detections._detection import Detection
from detector.detections._examples import ACCOUNT, OTHER_ACCOUNT, api_call, role_session
from detector.detections._expressions import calls, param, succeeded, where

__all__ = [
    "RDS_BACKUP_PROTECTION_REMOVED",
    "RDS_SNAPSHOT_EXPORTED_OR_COPIED",
    "S3_BLOCK_PUBLIC_ACCESS_REMOVED",
]

_RDS: Final = "rds.amazonaws.com"
_MODIFY: Final = ("ModifyDBInstance", "ModifyDBCluster")
_DELETE_BACKUPS: Final = ("DeleteDBInstanceAutomatedBackup", "DeleteDBClusterAutomatedBackup")

RDS_BACKUP_PROTECTION_REMOVED = Detection(
    id="rds_backup_protection_removed",
    title="RDS automated backups deleted, disabled, or deletion protection removed",
    description="Retained automated backups of a database were deleted, a database's backup "
    "retention set to 0 (which deletes its automated backups), or its deletion protection "
    "turned off: the steps before destroying a database for good.",
    severity=6.0,
    mitre=("T1490", "T1485"),
    selects=calls(_RDS, *_MODIFY, *_DELETE_BACKUPS),
    matches=where(
        succeeded()
        & (
            pl.col("event_name").is_in(_DELETE_BACKUPS)
            | (param("$.deletionProtection") == "false").fill_null(False)
            | (param("$.backupRetentionPeriod") == "0").fill_null(False)
        ),
        database=pl.coalesce(
            param("$.dBInstanceIdentifier"),
            param("$.dBClusterIdentifier"),
            param("$.dbiResourceId"),
            param("$.dbClusterResourceId"),
        ),
        deletion_protection=param("$.deletionProtection"),
        backup_retention_period=param("$.backupRetentionPeriod"),
        call=pl.col("event_name"),
    ),
    positives=(
        (
            api_call(
                _RDS,
                "ModifyDBInstance",
                {"dBInstanceIdentifier": "orders", "deletionProtection": False},
            ),
        ),
        (
            api_call(
                _RDS,
                "ModifyDBCluster",
                {"dBClusterIdentifier": "orders", "backupRetentionPeriod": 0},
            ),
        ),
        (api_call(_RDS, "DeleteDBInstanceAutomatedBackup", {"dbiResourceId": "db-ABCDEFGHIJ"}),),
    ),
    negatives=(
        (
            api_call(
                _RDS,
                "ModifyDBInstance",
                {"dBInstanceIdentifier": "orders", "deletionProtection": True},
            ),
        ),
        (
            api_call(
                _RDS,
                "ModifyDBInstance",
                {"dBInstanceIdentifier": "orders", "backupRetentionPeriod": 7},
            ),
        ),
        (
            api_call(
                _RDS,
                "ModifyDBInstance",
                {"dBInstanceIdentifier": "orders", "dBInstanceClass": "db.r6g.large"},
            ),
        ),
    ),
    anchors=(
        "Panther: AWS.RDS.SnapshotDeleted, AWS.RDS.InstanceDeletion (the deletions themselves)",
        "Sigma: aws_rds_dbcluster_actions (any ModifyDBCluster)",
    ),
)

_ARN_REGION: Final = r"^arn:aws[a-z-]*:rds:([a-z0-9-]+):"
_ARN_ACCOUNT: Final = r"^arn:aws[a-z-]*:rds:[a-z0-9-]+:(\d{12}):"
_SOURCE: Final = pl.coalesce(
    param("$.sourceDBSnapshotIdentifier"), param("$.sourceDBClusterSnapshotIdentifier")
)
_SOURCE_REGION: Final = pl.coalesce(param("$.sourceRegion"), _SOURCE.str.extract(_ARN_REGION))
_SOURCE_ACCOUNT: Final = _SOURCE.str.extract(_ARN_ACCOUNT)
_EXPORT: Final = pl.col("event_name") == "StartExportTask"
_OTHER_REGION: Final = (pl.col("region") != _SOURCE_REGION).fill_null(False)
_OTHER_ACCOUNT: Final = (pl.col("recipient_account_id") != _SOURCE_ACCOUNT).fill_null(False)


def _copy(source: str, region: str = "eu-west-1") -> dict[str, object]:
    return api_call(
        _RDS,
        "CopyDBSnapshot",
        {"sourceDBSnapshotIdentifier": source, "targetDBSnapshotIdentifier": "orders-copy"},
        region=region,
        identity=role_session(),
    )


RDS_SNAPSHOT_EXPORTED_OR_COPIED = Detection(
    id="rds_snapshot_exported_or_copied",
    title="RDS snapshot exported to S3 or copied across regions or accounts",
    description="A database snapshot was exported to S3 (StartExportTask: the data as Parquet "
    "files, readable without a database), or copied from another region or another account "
    "(CopyDBSnapshot / CopyDBClusterSnapshot with a source ARN elsewhere): data leaving the "
    "database's usual place.",
    severity=5.0,
    mitre=("T1537", "T1530"),
    selects=calls(_RDS, "StartExportTask", "CopyDBSnapshot", "CopyDBClusterSnapshot"),
    matches=where(
        succeeded() & (_EXPORT | _OTHER_REGION | _OTHER_ACCOUNT),
        snapshot=pl.coalesce(param("$.sourceArn"), _SOURCE),
        s3_bucket=param("$.s3BucketName"),
        source_region=_SOURCE_REGION,
        source_account=_SOURCE_ACCOUNT,
        call=pl.col("event_name"),
    ),
    positives=(
        (
            api_call(
                _RDS,
                "StartExportTask",
                {
                    "exportTaskIdentifier": "x1",
                    "sourceArn": f"arn:aws:rds:eu-west-1:{ACCOUNT}:snapshot:orders-2024-05-01",
                    "s3BucketName": "exports-tmp",
                    "iamRoleArn": f"arn:aws:iam::{ACCOUNT}:role/export",
                    "kmsKeyId": "alias/export",
                },
            ),
        ),
        (_copy(f"arn:aws:rds:us-east-1:{ACCOUNT}:snapshot:orders-2024-05-01"),),
        (_copy(f"arn:aws:rds:eu-west-1:{OTHER_ACCOUNT}:snapshot:orders-2024-05-01"),),
    ),
    negatives=(
        (_copy("orders-2024-05-01"),),
        (_copy(f"arn:aws:rds:eu-west-1:{ACCOUNT}:snapshot:orders-2024-05-01"),),
    ),
    anchors=(
        "GuardDuty: none (RDS Protection watches logins)",
        "Panther: none found",
        "Sigma: none found (aws_snapshot_backup_exfiltration is EBS)",
    ),
)

_S3: Final = "s3.amazonaws.com"
_BLOCKS: Final = (
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
)
# CloudTrail names the bucket-level calls Put/DeleteBucketPublicAccessBlock; the API names
# (Put/DeletePublicAccessBlock) are accepted too.
_DELETES: Final = (
    "DeleteBucketPublicAccessBlock",
    "DeleteAccountPublicAccessBlock",
    "DeletePublicAccessBlock",
)
_PUTS: Final = ("PutBucketPublicAccessBlock", "PutAccountPublicAccessBlock", "PutPublicAccessBlock")
_ANY_BLOCK_OFF: Final = pl.any_horizontal(
    (param(f"$.PublicAccessBlockConfiguration.{name}") == "false").fill_null(False)
    for name in _BLOCKS
)


def _put_block(*, off: str | None = None, account: bool = False) -> dict[str, object]:
    config: dict[str, object] = {name: name != off for name in _BLOCKS}
    params: dict[str, object] = {"PublicAccessBlockConfiguration": config}
    if not account:
        params |= {"bucketName": "orders-exports", "publicAccessBlock": ""}
    return api_call(_S3, _PUTS[1] if account else _PUTS[0], params)


S3_BLOCK_PUBLIC_ACCESS_REMOVED = Detection(
    id="s3_block_public_access_removed",
    title="S3 Block Public Access removed from a bucket or the account",
    description="S3 Block Public Access was deleted, or set with one of its four switches "
    "off, for a bucket or for the whole account: the guard that keeps a bucket policy or ACL "
    "from making data public is gone.",
    severity=5.0,
    mitre=("T1562.007", "T1530"),
    selects=calls(_S3, *_DELETES, *_PUTS),
    matches=where(
        succeeded() & (pl.col("event_name").is_in(_DELETES) | _ANY_BLOCK_OFF),
        bucket=param("$.bucketName"),
        scope=pl.when(pl.col("event_name").str.contains("Account"))
        .then(pl.lit("account"))
        .otherwise(pl.lit("bucket")),
        call=pl.col("event_name"),
    ),
    positives=(
        (api_call(_S3, "DeleteBucketPublicAccessBlock", {"bucketName": "orders-exports"}),),
        (_put_block(off="BlockPublicPolicy"),),
        (_put_block(off="RestrictPublicBuckets", account=True),),
        (api_call(_S3, "DeleteAccountPublicAccessBlock", {}, identity=role_session()),),
    ),
    negatives=(
        (_put_block(),),
        (_put_block(account=True),),
        (
            api_call(
                _S3, "DeleteBucketPublicAccessBlock", {"bucketName": "x"}, error_code="NoSuchBucket"
            ),
        ),
    ),
    anchors=(
        "GuardDuty: Policy:S3/BucketBlockPublicAccessDisabled, Policy:S3/AccountBlockPublicAccessDisabled",
        "Panther: AWS.S3.SecurityControlDisabling (versioning and logging; not this)",
        "Sigma: none found",
    ),
)
