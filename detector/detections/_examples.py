"""Building example CloudTrail records for the detections' positive and negative examples.

Each detection carries example events beside it, the way Panther rules carry test cases. They
are written with :func:`api_call` and a few typical callers so that each example shows only
what matters to its detection; everything else is filled in as AWS writes it.

Imports: orjson and the standard library.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

import orjson

__all__ = [
    "ACCOUNT",
    "EXAMPLE_TIME",
    "OTHER_ACCOUNT",
    "PUBLIC_IP",
    "api_call",
    "console_sign_in",
    "iam_user",
    "instance_role_session",
    "role_session",
    "root_user",
    "service",
]

ACCOUNT: Final = "111122223333"
OTHER_ACCOUNT: Final = "444455556666"
PUBLIC_IP: Final = "203.0.113.10"  # documentation range: classified as a public address
EXAMPLE_TIME: Final = "2024-05-01T12:00:00Z"


def iam_user(name: str = "alice", account: str = ACCOUNT) -> dict[str, Any]:
    return {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLEUSERID",
        "arn": f"arn:aws:iam::{account}:user/{name}",
        "accountId": account,
        "accessKeyId": "AKIAEXAMPLEKEYID",
        "userName": name,
    }


def role_session(
    role: str = "platform-admin", session: str = "alice", account: str = ACCOUNT
) -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLEROLEID:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": "ASIAEXAMPLEKEYID",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLEROLEID",
                "arn": f"arn:aws:iam::{account}:role/{role}",
                "accountId": account,
                "userName": role,
            },
            "attributes": {"creationDate": "2024-05-01T11:00:00Z", "mfaAuthenticated": "false"},
        },
    }


def instance_role_session(
    role: str = "orders-app", instance: str = "i-0abc1234def567890", account: str = ACCOUNT
) -> dict[str, Any]:
    """Credentials EC2 delivered to an instance through its instance profile."""
    session = role_session(role, instance, account)
    session["sessionContext"]["ec2RoleDelivery"] = "2.0"
    return session


def root_user(account: str = ACCOUNT) -> dict[str, Any]:
    return {
        "type": "Root",
        "principalId": account,
        "arn": f"arn:aws:iam::{account}:root",
        "accountId": account,
        "accessKeyId": "ASIAEXAMPLEROOTKEY",
    }


def service(invoked_by: str) -> dict[str, Any]:
    return {"type": "AWSService", "invokedBy": invoked_by}


def _event_id(record: Mapping[str, Any]) -> str:
    # Deterministic, so examples (and findings built from them) are the same on every run.
    digest = hashlib.blake2b(orjson.dumps(record, option=orjson.OPT_SORT_KEYS), digest_size=16)
    text = digest.hexdigest()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def api_call(
    event_source: str,
    event_name: str,
    request_parameters: Mapping[str, Any] | None = None,
    *,
    identity: Mapping[str, Any] | None = None,
    response_elements: Mapping[str, Any] | None = None,
    error_code: str | None = None,
    source_ip: str = PUBLIC_IP,
    event_time: str = EXAMPLE_TIME,
    region: str = "eu-west-1",
    read_only: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """One CloudTrail record of an API call, by default a successful one by IAM user alice."""
    ui = dict(identity) if identity is not None else iam_user()
    record: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": ui,
        "eventTime": event_time,
        "eventSource": event_source,
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": source_ip,
        "userAgent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.1",
        "requestParameters": dict(request_parameters) if request_parameters is not None else None,
        "responseElements": dict(response_elements) if response_elements is not None else None,
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ui.get("accountId", ACCOUNT),
        "eventCategory": "Management",
    }
    if error_code is not None:
        record["errorCode"] = error_code
        record["errorMessage"] = f"{error_code}: example"
    record.update(extra)
    record["eventID"] = _event_id(record)
    return record


def console_sign_in(
    identity: Mapping[str, Any],
    *,
    success: bool = True,
    mfa_used: bool = False,
    event_time: str = EXAMPLE_TIME,
    source_ip: str = PUBLIC_IP,
    **extra_data: Any,
) -> dict[str, Any]:
    """A ``ConsoleLogin`` event (failures carry no errorCode, only the answer ``Failure``)."""
    record = api_call(
        "signin.amazonaws.com",
        "ConsoleLogin",
        identity=identity,
        event_time=event_time,
        source_ip=source_ip,
        region="us-east-1",
        response_elements={"ConsoleLogin": "Success" if success else "Failure"},
        additionalEventData={
            "LoginTo": "https://console.aws.amazon.com/console/home",
            "MobileVersion": "No",
            "MFAUsed": "Yes" if mfa_used else "No",
            **extra_data,
        },
        eventType="AwsConsoleSignIn",
    )
    if not success:
        record["errorMessage"] = "Failed authentication"
        record["eventID"] = _event_id({k: v for k, v in record.items() if k != "eventID"})
    return record
