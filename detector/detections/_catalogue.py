"""The detections this project ships, as one tuple: the caller decides which to run.

Imports: this package's detection modules.
"""

from __future__ import annotations

from detector.detections._access_keys import ACCESS_KEY_USED_FROM_SECOND_NETWORK
from detector.detections._attempts import (
    DEFENSE_EVASION_ATTEMPT_FAILED,
    DEFENSE_EVASION_ATTEMPT_FAILED_SUSPICIOUS,
)
from detector.detections._bulk import SECRETS_READ_IN_BULK, SECURITY_HUB_FINDINGS_SUPPRESSED_IN_BULK
from detector.detections._compute import EC2_INSTANCES_LAUNCHED_UNUSUALLY, EC2_USER_DATA_CHANGED
from detector.detections._defense_evasion import (
    BEDROCK_INVOCATION_LOGGING_DELETED,
    CLOUDTRAIL_LOGGING_REDUCED,
    CLOUDTRAIL_LOGGING_STOPPED,
    CONFIG_RECORDING_STOPPED,
    DNS_QUERY_LOGGING_DELETED,
    GUARDDUTY_DISABLED,
    SECURITY_HUB_DISABLED,
    VPC_FLOW_LOGS_DELETED,
)
from detector.detections._detection import Detection
from detector.detections._iam import (
    AWS_COMPROMISED_KEY_QUARANTINE_ATTACHED,
    IAM_ADMIN_POLICY_GRANTED,
    IAM_CREDENTIALS_CREATED_FOR_ANOTHER_USER,
    IAM_ROLE_TRUST_OPENED,
    IAM_ROLES_ANYWHERE_TRUST_ANCHOR_CREATED,
    ORGANIZATION_LEAVE_ATTEMPTED,
    STS_FEDERATION_TOKEN_WITH_BROAD_POLICY,
)
from detector.detections._instance_credentials import INSTANCE_CREDENTIALS_USED_OUTSIDE
from detector.detections._kms import KMS_KEY_DISABLED_OR_DELETION_SCHEDULED, KMS_KEY_POLICY_OPENED
from detector.detections._lambda import LAMBDA_CHANGED_BY_NON_DEPLOYER
from detector.detections._recovery import (
    RDS_BACKUP_PROTECTION_REMOVED,
    RDS_SNAPSHOT_EXPORTED_OR_COPIED,
    S3_BLOCK_PUBLIC_ACCESS_REMOVED,
)
from detector.detections._resource_policies import RESOURCE_POLICY_OPENED
from detector.detections._sharing import (
    EC2_IMAGE_OR_SNAPSHOT_SHARED,
    LAMBDA_FUNCTION_SHARED_OUTSIDE,
    RDS_SNAPSHOT_SHARED,
    S3_BUCKET_SHARED_OUTSIDE,
)
from detector.detections._sign_in import (
    CONSOLE_LOGIN_FAILURES_FROM_ONE_ADDRESS,
    CONSOLE_LOGIN_FAILURES_REPEATED,
    CONSOLE_LOGIN_WITHOUT_MFA,
    CONSOLE_SIGN_IN_TOKEN_FROM_ACCESS_KEYS,
    ROOT_CONSOLE_LOGIN_FAILED,
    ROOT_CREDENTIAL_USE,
)
from detector.detections._sqs import (
    SQS_DEAD_LETTER_QUEUE_REMOVED,
    SQS_ENCRYPTION_REMOVED,
    SQS_QUEUE_SHARED_OUTSIDE,
)
from detector.detections._tls import TLS_DOWNGRADED

__all__ = ["default_detections"]


def default_detections() -> tuple[Detection, ...]:
    """Every detection, grouped as in ``detector/detections/README.md``."""
    return (
        # defence evasion: logs and security services switched off
        CLOUDTRAIL_LOGGING_STOPPED,
        CLOUDTRAIL_LOGGING_REDUCED,
        GUARDDUTY_DISABLED,
        SECURITY_HUB_DISABLED,
        CONFIG_RECORDING_STOPPED,
        VPC_FLOW_LOGS_DELETED,
        DNS_QUERY_LOGGING_DELETED,
        BEDROCK_INVOCATION_LOGGING_DELETED,
        ORGANIZATION_LEAVE_ATTEMPTED,
        DEFENSE_EVASION_ATTEMPT_FAILED,
        DEFENSE_EVASION_ATTEMPT_FAILED_SUSPICIOUS,
        SECURITY_HUB_FINDINGS_SUPPRESSED_IN_BULK,
        # SQS
        SQS_ENCRYPTION_REMOVED,
        SQS_QUEUE_SHARED_OUTSIDE,
        SQS_DEAD_LETTER_QUEUE_REMOVED,
        # KMS
        KMS_KEY_DISABLED_OR_DELETION_SCHEDULED,
        KMS_KEY_POLICY_OPENED,
        # IAM persistence and privilege escalation
        IAM_ADMIN_POLICY_GRANTED,
        IAM_CREDENTIALS_CREATED_FOR_ANOTHER_USER,
        IAM_ROLE_TRUST_OPENED,
        STS_FEDERATION_TOKEN_WITH_BROAD_POLICY,
        IAM_ROLES_ANYWHERE_TRUST_ANCHOR_CREATED,
        AWS_COMPROMISED_KEY_QUARANTINE_ATTACHED,
        # sign-in and credentials
        ROOT_CREDENTIAL_USE,
        CONSOLE_LOGIN_WITHOUT_MFA,
        CONSOLE_LOGIN_FAILURES_REPEATED,
        CONSOLE_LOGIN_FAILURES_FROM_ONE_ADDRESS,
        ROOT_CONSOLE_LOGIN_FAILED,
        CONSOLE_SIGN_IN_TOKEN_FROM_ACCESS_KEYS,
        INSTANCE_CREDENTIALS_USED_OUTSIDE,
        TLS_DOWNGRADED,
        ACCESS_KEY_USED_FROM_SECOND_NETWORK,
        SECRETS_READ_IN_BULK,
        # sharing outside the account
        EC2_IMAGE_OR_SNAPSHOT_SHARED,
        RDS_SNAPSHOT_SHARED,
        S3_BUCKET_SHARED_OUTSIDE,
        LAMBDA_FUNCTION_SHARED_OUTSIDE,
        RESOURCE_POLICY_OPENED,
        RDS_SNAPSHOT_EXPORTED_OR_COPIED,
        S3_BLOCK_PUBLIC_ACCESS_REMOVED,
        # destruction of recovery
        RDS_BACKUP_PROTECTION_REMOVED,
        # compute abuse and code execution
        EC2_INSTANCES_LAUNCHED_UNUSUALLY,
        EC2_USER_DATA_CHANGED,
        LAMBDA_CHANGED_BY_NON_DEPLOYER,
    )
