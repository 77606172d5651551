"""The normalized CloudTrail event: one polars schema, written down once.

Every parser in :mod:`detector.events` produces exactly this schema, whatever the input shape
(EventBridge envelope, bare record, archive file). Downstream stages (features, detections,
scoring) read only these columns. Imports: polars only.
"""

from __future__ import annotations

from typing import Final

import polars as pl

__all__ = ["EVENT_COLUMNS", "EVENT_SCHEMA", "SOURCE_IP_KINDS", "UTC_MS", "SourceIpKind"]

# The one timestamp type of every time column, events and features alike.
UTC_MS: Final = pl.Datetime("ms", "UTC")

# Kinds of ``sourceIPAddress``; an Enum so that a typo in a filter is an error, not an empty frame.
SOURCE_IP_KINDS: Final = (
    "public_ipv4",  # a routable IPv4 address
    "public_ipv6",  # a routable IPv6 address
    "private",  # RFC 1918 / loopback / link-local / ULA / CGNAT: inside a VPC or on-premises
    "aws_service",  # a service host name, e.g. "ec2.amazonaws.com", when a service calls for you
    "aws_internal",  # the literal "AWS Internal"
    "unparseable",  # anything else (kept verbatim in ``source_ip``)
    "missing",  # no sourceIPAddress at all
)
SourceIpKind = pl.Enum(list(SOURCE_IP_KINDS))

# (name, dtype, meaning). The order is the column order of every events frame.
_COLUMNS: Final[tuple[tuple[str, pl.DataType, str], ...]] = (
    ("event_id", pl.String(), "eventID (unique per event, the dedup key)"),
    ("event_time", UTC_MS, "eventTime, UTC, millisecond precision"),
    ("received_time", UTC_MS, "when the detector got it: SQS sent time / archive delivery time"),
    ("event_version", pl.String(), "eventVersion"),
    ("account_id", pl.String(), "account of the principal (userIdentity.accountId)"),
    ("recipient_account_id", pl.String(), "account whose trail logged the event"),
    ("region", pl.String(), "awsRegion"),
    ("event_source", pl.String(), "eventSource, e.g. kms.amazonaws.com"),
    ("event_name", pl.String(), "eventName, e.g. Decrypt"),
    ("read_only", pl.Boolean(), "readOnly (null when CloudTrail omits it)"),
    ("event_type", pl.String(), "eventType: AwsApiCall, AwsConsoleSignIn, AwsServiceEvent, ..."),
    ("event_category", pl.String(), "eventCategory: Management, Data, Insight"),
    ("management_event", pl.Boolean(), "managementEvent"),
    ("error_code", pl.String(), "errorCode, null on success"),
    ("error_message", pl.String(), "errorMessage"),
    ("principal_key", pl.String(), "stable key of the actor (see detector.events._principal)"),
    ("principal_type", pl.String(), "userIdentity.type, or 'Missing'"),
    ("principal_arn", pl.String(), "ARN exactly as the event shows it (session ARN for sessions)"),
    ("principal_id", pl.String(), "userIdentity.principalId"),
    ("session_issuer_arn", pl.String(), "sessionContext.sessionIssuer.arn for role sessions"),
    ("session_name", pl.String(), "role session name / federated or user name"),
    ("source_identity", pl.String(), "sessionContext.sourceIdentity"),
    ("access_key_id", pl.String(), "userIdentity.accessKeyId"),
    ("mfa_authenticated", pl.Boolean(), "MFA: session attribute or ConsoleLogin MFAUsed"),
    ("session_created", UTC_MS, "sessionContext.attributes.creationDate"),
    ("ec2_role_delivery", pl.String(), "sessionContext.ec2RoleDelivery: instance credentials"),
    ("source_ip", pl.String(), "sourceIPAddress verbatim"),
    ("source_ip_kind", SourceIpKind, "classification of sourceIPAddress (SOURCE_IP_KINDS)"),
    ("source_ip_address", pl.String(), "canonical IP text when the kind is an address, else null"),
    ("user_agent", pl.String(), "userAgent"),
    ("vpc_endpoint_id", pl.String(), "vpcEndpointId"),
    ("vpc_endpoint_account_id", pl.String(), "vpcEndpointAccountId"),
    ("tls_version", pl.String(), "tlsDetails.tlsVersion"),
    ("tls_cipher", pl.String(), "tlsDetails.cipherSuite"),
    ("console", pl.Boolean(), "call made with console credentials (sessionCredentialFromConsole)"),
    ("invoked_by", pl.String(), "userIdentity.invokedBy: the AWS service that called for you"),
    ("shared_event_id", pl.String(), "sharedEventID (cross-account events)"),
    ("kms_key_arn", pl.String(), "the KMS key a kms call used (resources[] or requestParameters)"),
    ("resource_arns", pl.List(pl.String()), "ARNs listed in resources[]"),
    ("request_parameters", pl.String(), "requestParameters as compact JSON text"),
    ("response_elements", pl.String(), "responseElements as compact JSON text"),
    ("additional_event_data", pl.String(), "additionalEventData as compact JSON text"),
)

EVENT_SCHEMA: Final = pl.Schema({name: dtype for name, dtype, _ in _COLUMNS})
EVENT_COLUMNS: Final = tuple(EVENT_SCHEMA.names())
COLUMN_DOCS: Final = {name: doc for name, _, doc in _COLUMNS}
