"""Assemble whole CloudTrail records in the key order AWS writes them.

:func:`api_call` builds every ``AwsApiCall`` record; :func:`console_login` and
:func:`service_event` build the other two event types. The caller's network side (source IP,
user agent, VPC endpoint, TLS) is a :class:`Caller` value. Error codes and messages for the
ordinary failures (access denied, throttling) live here too, so normal traffic and attacks
fail the same way.

Imports: the standard library and this package's :mod:`._formats` and :mod:`._identity`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from random import Random
from typing import Any, Final, TypeAlias

from detector.synthetic._formats import aws_id, iso_time, uuid4
from detector.synthetic._identity import Record

TimedRecord: TypeAlias = tuple[int, Record]

MANAGEMENT: Final = "Management"
DATA: Final = "Data"
AWS_INTERNAL: Final = "AWS Internal"
GLOBAL_REGION: Final = "us-east-1"  # IAM, sign-in and other global services log here
_GLOBAL_SERVICES: Final = frozenset({"iam", "signin", "organizations", "ce", "route53", "sso"})
# Newer event versions are what AWS writes today for these services and for calls that
# carry ``vpcEndpointAccountId``.
_VERSION_109: Final = frozenset({"iam", "sts", "secretsmanager", "signin", "cloudtrail"})
_TLS13: Final = ("TLSv1.3", "TLS_AES_128_GCM_SHA256")
_TLS10: Final = ("TLSv1", "ECDHE-RSA-AES128-SHA")
_TLS12: Final = ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")
# Query-protocol and REST services answer "AccessDenied"; JSON-protocol ones spell out the
# exception; EC2 has its own.
_DENIED_JSON: Final = frozenset(
    {"kms", "dynamodb", "ssm", "secretsmanager", "logs", "ecs", "ecr", "cloudtrail", "guardduty",
     "organizations", "ce", "sso", "events", "codebuild"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Caller:
    """The network side of a call: who connects, from where, with which client."""

    ip: str
    agent: str
    vpce: str | None = None  # set when the call goes through an interface/gateway endpoint
    vpce_account: str | None = None
    tls12: bool = False  # older clients (aws-cli v1, old SDKs) negotiate TLS 1.2
    console: bool = False  # credentials came from a console session
    tls: bool = True  # False for calls AWS makes internally (no client TLS handshake)
    tls10: bool = False  # an outdated client negotiating TLS 1.0


def service_of(event_source: str) -> str:
    """``kms.amazonaws.com`` -> ``kms``."""
    return event_source.split(".", 1)[0]


@lru_cache(maxsize=4096)
def _endpoint(event_source: str, region: str, through_endpoint: bool) -> tuple[str, str, str]:
    """``(awsRegion, TLS host header, eventVersion)`` of a call; memoised, as it is hot."""
    service = service_of(event_source)
    if service in _GLOBAL_SERVICES:
        host = "signin.aws.amazon.com" if service == "signin" else f"{service}.amazonaws.com"
        region = GLOBAL_REGION
    else:
        host = f"{service}.{region}.amazonaws.com"
    version = "1.09" if through_endpoint or service in _VERSION_109 else "1.08"
    return region, host, version


def api_call(
    rng: Random,
    t: int,
    identity: Record,
    caller: Caller,
    account: str,
    region: str,
    event_source: str,
    event_name: str,
    *,
    read_only: bool,
    request: Record | None = None,
    response: Record | None = None,
    category: str = MANAGEMENT,
    resources: list[Record] | None = None,
    additional: Record | None = None,
    error: tuple[str, str] | None = None,
    host: str | None = None,
    shared_event_id: str | None = None,
) -> Record:
    """One ``AwsApiCall`` record. ``region`` is the endpoint's region (global ones fixed here)."""
    region, default_host, version = _endpoint(event_source, region, caller.vpce is not None)
    record: Record = {
        "eventVersion": version,
        "userIdentity": identity,
        "eventTime": iso_time(t),
        "eventSource": event_source,
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": caller.ip,
        "userAgent": caller.agent,
    }
    if error is not None:
        record["errorCode"], record["errorMessage"] = error
        response = None
    record["requestParameters"] = request
    record["responseElements"] = response
    if additional is not None:
        record["additionalEventData"] = additional
    record["requestID"] = _request_id(rng, event_source)
    record["eventID"] = uuid4(rng)
    record["readOnly"] = read_only
    if resources is not None:
        record["resources"] = resources
    record["eventType"] = "AwsApiCall"
    record["managementEvent"] = category == MANAGEMENT
    record["recipientAccountId"] = account
    if shared_event_id is not None:
        record["sharedEventID"] = shared_event_id
    if caller.vpce is not None:
        record["vpcEndpointId"] = caller.vpce
        record["vpcEndpointAccountId"] = caller.vpce_account or account
    record["eventCategory"] = category
    if caller.tls:
        version, cipher = _TLS10 if caller.tls10 else _TLS12 if caller.tls12 else _TLS13
        record["tlsDetails"] = {
            "tlsVersion": version,
            "cipherSuite": cipher,
            "clientProvidedHostHeader": host or default_host,
        }
    if caller.console:
        record["sessionCredentialFromConsole"] = "true"
    return record


def _request_id(rng: Random, event_source: str) -> str:
    # S3 request ids are 16 upper-case characters; every other service uses a UUID.
    return aws_id(rng, "", 16) if event_source == "s3.amazonaws.com" else uuid4(rng)


def console_login(
    rng: Random,
    t: int,
    identity: Record,
    caller: Caller,
    account: str,
    *,
    mfa_used: bool,
    success: bool = True,
    mfa_identifier: str | None = None,
) -> Record:
    """An ``AwsConsoleSignIn`` ``ConsoleLogin`` record (IAM user or federated role session)."""
    additional: Record = {"LoginTo": "https://console.aws.amazon.com/console/home"}
    additional["MobileVersion"] = "No"
    if mfa_identifier is not None and mfa_used:
        additional["MFAIdentifier"] = mfa_identifier
    additional["MFAUsed"] = "Yes" if mfa_used else "No"
    record: Record = {
        "eventVersion": "1.08",
        "userIdentity": identity,
        "eventTime": iso_time(t),
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "awsRegion": GLOBAL_REGION,
        "sourceIPAddress": caller.ip,
        "userAgent": caller.agent,
    }
    if not success:
        record["errorMessage"] = "Failed authentication"
    record["requestParameters"] = None
    record["responseElements"] = {"ConsoleLogin": "Success" if success else "Failure"}
    record["additionalEventData"] = additional
    record["eventID"] = uuid4(rng)
    record["readOnly"] = False
    record["eventType"] = "AwsConsoleSignIn"
    record["managementEvent"] = True
    record["recipientAccountId"] = account
    record["eventCategory"] = MANAGEMENT
    record["tlsDetails"] = {
        "tlsVersion": "TLSv1.3",
        "cipherSuite": "TLS_AES_128_GCM_SHA256",
        "clientProvidedHostHeader": "signin.aws.amazon.com",
    }
    return record


def service_event(
    rng: Random,
    t: int,
    account: str,
    region: str,
    event_source: str,
    event_name: str,
    *,
    invoked_by: str = AWS_INTERNAL,
    additional: Record | None = None,
    resources: list[Record] | None = None,
    details: Record | None = None,
) -> Record:
    """An ``AwsServiceEvent`` record: AWS acting on its own (key rotation, ...)."""
    record: Record = {
        "eventVersion": "1.08",
        "userIdentity": {"accountId": account, "invokedBy": invoked_by},
        "eventTime": iso_time(t),
        "eventSource": event_source,
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": invoked_by,
        "userAgent": invoked_by,
        "requestParameters": None,
        "responseElements": None,
    }
    if additional is not None:
        record["additionalEventData"] = additional
    record["eventID"] = uuid4(rng)
    record["readOnly"] = False
    if resources is not None:
        record["resources"] = resources
    record["eventType"] = "AwsServiceEvent"
    record["managementEvent"] = True
    record["recipientAccountId"] = account
    if details is not None:
        record["serviceEventDetails"] = details
    record["eventCategory"] = MANAGEMENT
    return record


def access_denied(
    event_source: str, event_name: str, principal_arn: str, resource: str = "*"
) -> tuple[str, str]:
    """``(errorCode, errorMessage)`` of an authorization failure, as each service writes it."""
    service = service_of(event_source)
    action = f"{service}:{event_name}"
    if service == "ec2":
        return (
            "Client.UnauthorizedOperation",
            f"You are not authorized to perform this operation. User: {principal_arn} is not "
            f"authorized to perform: {action} because no identity-based policy allows the "
            f"{action} action",
        )
    code = "AccessDeniedException" if service in _DENIED_JSON else "AccessDenied"
    return (
        code,
        f"User: {principal_arn} is not authorized to perform: {action} on resource: {resource} "
        f"because no identity-based policy allows the {action} action",
    )


def throttled(event_source: str) -> tuple[str, str]:
    if service_of(event_source) == "ec2":
        return ("Client.RequestLimitExceeded", "Request limit exceeded.")
    return ("ThrottlingException", "Rate exceeded")


def kms_key_resource(key_arn: str, account: str) -> list[Record]:
    return [{"accountId": account, "type": "AWS::KMS::Key", "ARN": key_arn}]


def role_resource(role_arn: str, account: str) -> list[Record]:
    return [{"accountId": account, "type": "AWS::IAM::Role", "ARN": role_arn}]


def s3_additional(rng: Random, bytes_out: int = 0, bytes_in: int = 0) -> Record:
    """``additionalEventData`` of S3 calls."""
    extra: dict[str, Any] = {
        "SignatureVersion": "SigV4",
        "CipherSuite": "TLS_AES_128_GCM_SHA256",
        "bytesTransferredIn": bytes_in,
        "AuthenticationMethod": "AuthHeader",
        "x-amz-id-2": aws_id(rng, "", 56),
        "bytesTransferredOut": bytes_out,
    }
    return extra
