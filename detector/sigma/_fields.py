"""Where a CloudTrail field that a Sigma rule names lives in our events frame.

CloudTrail field names (``eventName``, ``userIdentity.arn``, ``requestParameters.bucketName``)
map to text expressions over :data:`detector.events.EVENT_SCHEMA`: top-level and
``userIdentity`` fields to their own columns, nested ``requestParameters``/
``responseElements``/``additionalEventData`` paths to a JSON-path lookup in the column that
keeps that object as JSON text. A field we do not keep is not guessed at: :func:`field_expr`
raises :class:`UnknownFieldError` and the rule is refused.

Imports: polars only.
"""

from __future__ import annotations

from typing import Final

import polars as pl

__all__ = ["JSON_OBJECTS", "UnknownFieldError", "field_expr", "is_plain_field", "record_paths"]

# CloudTrail field -> our column; booleans are compared as their text ("true"/"false").
_COLUMNS: Final = {
    "eventID": "event_id",
    "eventVersion": "event_version",
    "eventSource": "event_source",
    "eventName": "event_name",
    "eventType": "event_type",
    "eventCategory": "event_category",
    "awsRegion": "region",
    "errorCode": "error_code",
    "errorMessage": "error_message",
    "sourceIPAddress": "source_ip",
    "userAgent": "user_agent",
    "recipientAccountId": "recipient_account_id",
    "sharedEventID": "shared_event_id",
    "vpcEndpointId": "vpc_endpoint_id",
    "vpcEndpointAccountId": "vpc_endpoint_account_id",
    "readOnly": "read_only",
    "managementEvent": "management_event",
    "tlsDetails.tlsVersion": "tls_version",
    "tlsDetails.cipherSuite": "tls_cipher",
    "userIdentity.arn": "principal_arn",
    "userIdentity.principalId": "principal_id",
    "userIdentity.accountId": "account_id",
    "userIdentity.accessKeyId": "access_key_id",
    "userIdentity.invokedBy": "invoked_by",
    "userIdentity.sessionContext.sessionIssuer.arn": "session_issuer_arn",
    "userIdentity.sessionContext.sourceIdentity": "source_identity",
    "userIdentity.sessionContext.ec2RoleDelivery": "ec2_role_delivery",
}
# CloudTrail objects we keep whole, as compact JSON text.
JSON_OBJECTS: Final = {
    "requestParameters": "request_parameters",
    "responseElements": "response_elements",
    "additionalEventData": "additional_event_data",
}
_ISSUER_TYPE: Final = "userIdentity.sessionContext.sessionIssuer.type"
_PRINCIPAL_TYPE: Final = "userIdentity.type"
_EXAMPLE_ISSUER_ARN: Final = {
    "Role": "arn:aws:iam::111122223333:role/example-role",
    "IAMUser": "arn:aws:iam::111122223333:user/example-user",
    "Root": "arn:aws:iam::111122223333:root",
}


class UnknownFieldError(ValueError):
    """A rule names a CloudTrail field the events frame does not keep."""


def _issuer_type() -> pl.Expr:
    # The frame keeps the issuer's ARN, whose resource type says what the issuer is.
    arn = pl.col("session_issuer_arn")
    return (
        pl.when(arn.str.contains(":role/", literal=True))
        .then(pl.lit("Role"))
        .when(arn.str.contains(":user/", literal=True))
        .then(pl.lit("IAMUser"))
        .when(arn.str.ends_with(":root"))
        .then(pl.lit("Root"))
    )


def _json_path(column: str, path: str) -> pl.Expr:
    """``path`` (dotted) in a JSON text column; where an object on the way is an array, the
    first of its elements that has the rest of the path."""
    keys = path.split(".")
    exact = pl.col(column).str.json_path_match("$." + ".".join(keys))
    if len(keys) == 1:
        return exact
    through_arrays = "$." + "[*].".join(keys)
    return pl.coalesce(exact, pl.col(column).str.json_path_match(through_arrays))


def is_plain_field(field: str) -> bool:
    """The field is a column of its own (cheap to test on a whole batch)."""
    return field in _COLUMNS or field in (_PRINCIPAL_TYPE, _ISSUER_TYPE)


def field_expr(field: str) -> pl.Expr:
    """The text of ``field`` in each event; null where the event lacks it."""
    if field in _COLUMNS:
        return pl.col(_COLUMNS[field]).cast(pl.String)
    if field == _PRINCIPAL_TYPE:  # "Missing" is our marker for an event without a userIdentity
        return pl.when(pl.col("principal_type") != "Missing").then(pl.col("principal_type"))
    if field == _ISSUER_TYPE:
        return _issuer_type()
    head, _, rest = field.partition(".")
    if head in JSON_OBJECTS:
        if rest:
            return _json_path(JSON_OBJECTS[head], rest)
        # The object as text, as a person reads it: JSON held in strings inside it (policy
        # documents) unescaped, so '"Action":"s3:GetObject"' is found where it is written.
        return pl.col(JSON_OBJECTS[head]).str.replace_all('\\"', '"', literal=True)
    raise UnknownFieldError(f"field {field!r} is not a CloudTrail field the detector keeps")


def record_paths(field: str, value: str) -> dict[str, str]:
    """Dotted record paths and values that give ``field`` the text ``value`` (for examples):
    the field itself, and what the frame derives it from (other fields a rule names win over
    these)."""
    if field == _ISSUER_TYPE:
        issuer = _EXAMPLE_ISSUER_ARN.get(value, "arn:aws:iam::111122223333:role/example-role")
        # The frame keeps the issuer of role sessions (AssumedRole) only.
        return {
            field: value,
            "userIdentity.sessionContext.sessionIssuer.arn": issuer,
            "userIdentity.type": "AssumedRole",
        }
    return {field: value}
