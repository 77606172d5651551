"""Unit tests of the event model: parsers, principal keys, source-IP kinds, key layout."""

from __future__ import annotations

import copy
import gzip
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
import pytest

from detector.events import (
    EVENT_SCHEMA,
    archive_to_events,
    classify_source_ip,
    envelopes_to_events,
    parse_trail_key,
    principal_of,
    records_to_events,
)

ACCOUNT = "111122223333"


def app_role_record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLE:i-0abc1234def567890",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/orders-app/i-0abc1234def567890",
            "accountId": ACCOUNT,
            "accessKeyId": "ASIAEXAMPLE",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": "AROAEXAMPLE",
                    "arn": f"arn:aws:iam::{ACCOUNT}:role/service/orders-app",
                    "accountId": ACCOUNT,
                    "userName": "orders-app",
                },
                "attributes": {
                    "creationDate": "2024-05-01T11:55:00Z",
                    "mfaAuthenticated": "false",
                },
                "ec2RoleDelivery": "2.0",
            },
        },
        "eventTime": "2024-05-01T12:00:00Z",
        "eventSource": "kms.amazonaws.com",
        "eventName": "Decrypt",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "10.0.3.7",
        "userAgent": "aws-sdk-java/2.20.0 Linux/5.10",
        "requestParameters": {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
        "responseElements": None,
        "requestID": "r-1",
        "eventID": "e-1",
        "readOnly": True,
        "resources": [
            {
                "accountId": ACCOUNT,
                "type": "AWS::KMS::Key",
                "ARN": f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234",
            }
        ],
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
        "vpcEndpointId": "vpce-0a1b2c3d",
        "vpcEndpointAccountId": ACCOUNT,
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": "kms.eu-west-1.amazonaws.com",
        },
    }
    record.update(overrides)
    return record


def test_a_full_record_fills_every_column_of_the_schema() -> None:
    result = records_to_events([app_role_record()], origin="t")
    assert result.failures == ()
    assert result.events.schema == EVENT_SCHEMA
    row = result.events.row(0, named=True)
    assert row["event_time"] == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert row["session_created"] == datetime(2024, 5, 1, 11, 55, tzinfo=UTC)
    assert row["principal_key"] == f"arn:aws:iam::{ACCOUNT}:role/service/orders-app"
    assert row["principal_arn"].endswith("assumed-role/orders-app/i-0abc1234def567890")
    assert row["session_name"] == "i-0abc1234def567890"
    assert row["source_ip_kind"] == "private"
    assert row["vpc_endpoint_id"] == "vpce-0a1b2c3d"
    assert row["tls_version"] == "TLSv1.3"
    assert row["kms_key_arn"] == f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234"
    assert row["resource_arns"] == [f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234"]
    assert row["mfa_authenticated"] is False
    assert row["ec2_role_delivery"] == "2.0"
    assert orjson.loads(row["request_parameters"]) == {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    assert row["response_elements"] is None


def test_a_bad_record_fails_alone_naming_record_and_field() -> None:
    good = app_role_record()
    bad_time = app_role_record(eventID="e-2", eventTime="yesterday")
    bad_ip = app_role_record(eventID="e-3", sourceIPAddress=["1.2.3.4"])
    bad_type = app_role_record(eventID="e-4", userAgent={"x": 1})
    result = records_to_events([good, bad_time, "nonsense", bad_ip, bad_type], origin="batch-7")
    assert result.events.get_column("event_id").to_list() == ["e-1"]
    by_index = {f.index: f for f in result.failures}
    assert set(by_index) == {1, 2, 3, 4}
    assert by_index[1].field == "eventTime"
    assert by_index[1].event_id == "e-2"
    assert by_index[2].field == "<record>"
    assert by_index[3].field == "sourceIPAddress"
    assert by_index[4].field == "userAgent"
    assert str(by_index[1]) == (
        "batch-7[1] (eventID e-2): field 'eventTime': not an ISO-8601 UTC timestamp"
    )


def test_missing_required_fields_are_named() -> None:
    no_name = app_role_record()
    del no_name["eventName"]
    lowered = app_role_record()
    lowered["eventtime"] = lowered.pop("eventTime")
    result = records_to_events([no_name, lowered], origin="t")
    assert [(f.field, f.reason) for f in result.failures] == [
        ("eventName", "missing"),
        ("eventTime", "missing (found 'eventtime': keys are case-sensitive)"),
    ]


def test_duplicate_event_ids_count_once_and_are_reported() -> None:
    first = app_role_record()
    again = copy.deepcopy(first)
    other = app_role_record(eventID="e-2")
    result = records_to_events([first, other, again], origin="t")
    assert result.events.get_column("event_id").to_list() == ["e-1", "e-2"]
    assert result.duplicate_event_ids == ("e-1",)


def test_a_record_without_event_id_gets_a_content_id() -> None:
    record = app_role_record()
    del record["eventID"]
    result = records_to_events([record, copy.deepcopy(record)], origin="t")
    assert result.events.height == 1
    assert result.events.item(0, "event_id").startswith("content:")


@pytest.mark.parametrize(
    ("raw", "kind", "address"),
    [
        ("203.0.113.9", "public_ipv4", "203.0.113.9"),
        ("2001:db8::1", "public_ipv6", "2001:db8::1"),
        ("10.1.2.3", "private", "10.1.2.3"),
        ("100.64.1.1", "private", "100.64.1.1"),
        ("ec2.amazonaws.com", "aws_service", None),
        ("AWS Internal", "aws_internal", None),
        ("035.249.253.232", "public_ipv4", "35.249.253.232"),
        ("198.51.100.1, 10.0.0.1", "public_ipv4", "198.51.100.1"),
        ("::ffff:10.0.0.1", "private", "10.0.0.1"),
        ("not an ip", "unparseable", None),
        (None, "missing", None),
    ],
)
def test_source_ip_kinds(raw: str | None, kind: str, address: str | None) -> None:
    assert classify_source_ip(raw) == (kind, address)


SSO_ROLE = (
    f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/eu-west-1/"
    "AWSReservedSSO_Admin_0a1b2c3d"
)


@pytest.mark.parametrize(
    ("identity", "key"),
    [
        ({"type": "Root", "arn": f"arn:aws:iam::{ACCOUNT}:root"}, f"arn:aws:iam::{ACCOUNT}:root"),
        (
            {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/alice"},
            f"arn:aws:iam::{ACCOUNT}:user/alice",
        ),
        (
            {
                "type": "AssumedRole",
                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Admin_0a1b2c3d/"
                "alice@example.com",
                "sessionContext": {"sessionIssuer": {"arn": SSO_ROLE}},
            },
            f"{SSO_ROLE}#alice@example.com",
        ),
        (
            {
                "type": "AssumedRole",
                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/GitHubActions",
                "sessionContext": {
                    "sessionIssuer": {"arn": f"arn:aws:iam::{ACCOUNT}:role/deploy"},
                    "webIdFederationData": {
                        "federatedProvider": "arn:aws:iam::1:oidc-provider/"
                        "token.actions.githubusercontent.com"
                    },
                },
            },
            f"arn:aws:iam::{ACCOUNT}:role/deploy",
        ),
        (
            {
                "type": "AssumedRole",
                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/analyst/session-1",
                "sessionContext": {
                    "sessionIssuer": {"arn": f"arn:aws:iam::{ACCOUNT}:role/analyst"},
                    "sourceIdentity": "bob",
                },
            },
            f"arn:aws:iam::{ACCOUNT}:role/analyst#bob",
        ),
        (
            {"type": "AssumedRole", "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/app/i-0abc"},
            f"arn:aws:iam::{ACCOUNT}:role/app",
        ),
        (
            {
                "type": "FederatedUser",
                "arn": f"arn:aws:sts::{ACCOUNT}:federated-user/tool",
                "sessionContext": {
                    "sessionIssuer": {"arn": f"arn:aws:iam::{ACCOUNT}:user/bob"},
                },
            },
            f"arn:aws:iam::{ACCOUNT}:user/bob#tool",
        ),
        (
            {"type": "SAMLUser", "userName": "carol", "identityProvider": "okta"},
            "saml:okta#carol",
        ),
        (
            {"type": "WebIdentityUser", "userName": "sub-1", "identityProvider": "cognito"},
            "web-identity:cognito#sub-1",
        ),
        (
            {
                "type": "IdentityCenterUser",
                "accountId": ACCOUNT,
                "onBehalfOf": {"userId": "u-1", "identityStoreArn": "arn:aws:identitystore::1:x"},
            },
            "identity-center:arn:aws:identitystore::1:x#u-1",
        ),
        (
            {"type": "AWSService", "invokedBy": "cloudtrail.amazonaws.com"},
            "service:cloudtrail.amazonaws.com",
        ),
        (
            {"type": "AWSAccount", "accountId": "444455556666", "invokedBy": "s3.amazonaws.com"},
            "account:444455556666#s3.amazonaws.com",
        ),
        ({"type": "Unknown", "accountId": ACCOUNT, "userName": "x"}, f"unknown:{ACCOUNT}#x"),
        (None, f"missing:{ACCOUNT}"),
    ],
)
def test_principal_keys(identity: dict[str, Any] | None, key: str) -> None:
    assert principal_of(identity, ACCOUNT).key == key


def test_people_sharing_a_role_get_their_own_key_workloads_share_one() -> None:
    def session(role: str, name: str) -> dict[str, Any]:
        return {
            "type": "AssumedRole",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{name}",
            "sessionContext": {"sessionIssuer": {"arn": f"arn:aws:iam::{ACCOUNT}:role/{role}"}},
        }

    people = {principal_of(session("saml-admins", n), ACCOUNT).key for n in ("a@x.io", "b@x.io")}
    workload = {principal_of(session("app", n), ACCOUNT).key for n in ("i-01", "i-02")}
    assert len(people) == 2
    assert len(workload) == 1


def test_cached_session_principals_follow_every_input_of_the_key() -> None:
    # Role-session principals are memoised; the memo must not merge sessions whose key differs.
    arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/app/i-01"
    issuer = {"arn": f"arn:aws:iam::{ACCOUNT}:role/app"}
    plain = {"type": "AssumedRole", "arn": arn, "sessionContext": {"sessionIssuer": issuer}}
    person = copy.deepcopy(plain)
    person["sessionContext"]["sourceIdentity"] = "carol"
    keys = [principal_of(ui, ACCOUNT).key for ui in (plain, person, plain, person)]
    assert keys == [issuer["arn"], f"{issuer['arn']}#carol"] * 2
    # No ARN at all: the key falls back on the account and principal id, per session.
    anonymous = [
        {"type": "AssumedRole", "accountId": ACCOUNT, "principalId": p, "sessionContext": {}}
        for p in ("AROA1:x", "AROA2:y")
    ]
    assert [principal_of(ui, ACCOUNT).key for ui in anonymous] == [
        f"unknown:{ACCOUNT}#AROA1:x",
        f"unknown:{ACCOUNT}#AROA2:y",
    ]
    # A malformed, unhashable value is read without the memo rather than failing the record.
    odd = {"type": "AssumedRole", "arn": arn, "sessionContext": {"sessionIssuer": issuer}}
    odd["sessionContext"]["sourceIdentity"] = ["not", "a", "string"]
    assert principal_of(odd, ACCOUNT).key == issuer["arn"]


def envelope(record: dict[str, Any], detail_type: str = "AWS API Call via CloudTrail") -> bytes:
    return orjson.dumps(
        {
            "version": "0",
            "id": "5b8c1f4e",
            "detail-type": detail_type,
            "source": "aws.kms",
            "account": ACCOUNT,
            "time": record["eventTime"],
            "region": "eu-west-1",
            "resources": [],
            "detail": record,
        }
    )


def test_envelopes_of_every_cloudtrail_detail_type_and_bare_records_parse() -> None:
    console = app_role_record(eventID="e-2", eventType="AwsConsoleSignIn", eventName="ConsoleLogin")
    service = app_role_record(eventID="e-3", eventType="AwsServiceEvent")
    sns = orjson.dumps(
        {"Type": "Notification", "Message": envelope(app_role_record(eventID="e-5")).decode()}
    )
    bodies = [
        envelope(app_role_record()),
        envelope(console, "AWS Console Sign In via CloudTrail"),
        envelope(service, "AWS Service Event via CloudTrail"),
        orjson.dumps(app_role_record(eventID="e-4")),
        sns,
    ]
    sent = datetime(2024, 5, 1, 12, 1, tzinfo=UTC)
    result = envelopes_to_events(
        bodies, message_ids=[f"m{i}" for i in range(5)], received_times=[sent] * 5
    )
    assert result.failures == ()
    assert result.events.get_column("event_id").to_list() == ["e-1", "e-2", "e-3", "e-4", "e-5"]
    assert result.events.get_column("received_time").to_list() == [sent] * 5


def test_a_poison_body_fails_alone_with_its_message_id() -> None:
    bodies = [
        envelope(app_role_record()),
        b'{"detail-type": "AWS API Call via CloudTrail", "detail": {"eventID"',  # truncated
        orjson.dumps({"detail-type": "EC2 Instance State-change Notification", "detail": {}}),
        b"[1, 2]",
        envelope(app_role_record(eventID="e-9", eventTime=17)),
    ]
    result = envelopes_to_events(bodies, message_ids=["ok", "cut", "ec2", "list", "badtime"])
    assert result.events.get_column("event_id").to_list() == ["e-1"]
    assert {(f.origin, f.field) for f in result.failures} == {
        ("cut", "<body>"),
        ("ec2", "detail-type"),
        ("list", "<body>"),
        ("badtime", "eventTime"),
    }


ORG_KEY = (
    "trail/AWSLogs/o-abcdef1234/111122223333/CloudTrail/eu-west-1/2024/05/01/"
    "111122223333_CloudTrail_eu-west-1_20240501T1205Z_AbCdEfGh12345678.json.gz"
)
DIGEST_KEY = (
    "AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2024/05/01/"
    "111122223333_CloudTrail-Digest_eu-west-1_main_us-east-1_20240501T1300Z.json.gz"
)


def test_trail_keys_single_account_org_and_digest() -> None:
    org = parse_trail_key(ORG_KEY)
    assert org is not None
    assert (org.organization, org.account, org.region, org.kind) == (
        "o-abcdef1234",
        ACCOUNT,
        "eu-west-1",
        "CloudTrail",
    )
    assert org.delivered == datetime(2024, 5, 1, 12, 5, tzinfo=UTC)
    digest = parse_trail_key(DIGEST_KEY)
    assert digest is not None
    assert digest.is_digest
    assert parse_trail_key("logs/2024/05/01/file.json.gz") is None


def test_archive_file_parses_with_delivery_time_and_digests_are_skipped() -> None:
    data = gzip.compress(
        orjson.dumps({"Records": [app_role_record(), app_role_record(eventID="e-2")]})
    )
    result = archive_to_events(data, ORG_KEY)
    assert result.events.height == 2
    assert result.events.get_column("received_time").unique().to_list() == [
        datetime(2024, 5, 1, 12, 5, tzinfo=UTC)
    ]
    digest = archive_to_events(gzip.compress(b'{"digestStartTime": "x"}'), DIGEST_KEY)
    assert (digest.events.height, digest.skipped, digest.failures) == (0, 1, ())


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"\x1f\x8b\x08\x00 not really gzip", "<file>"),
        (gzip.compress(b"{not json"), "<file>"),
        (gzip.compress(b'{"records": []}'), "Records"),
    ],
)
def test_an_unreadable_archive_file_is_one_failure_naming_the_file(data: bytes, field: str) -> None:
    result = archive_to_events(data, ORG_KEY)
    assert result.events.height == 0
    assert [(f.origin, f.field) for f in result.failures] == [(ORG_KEY, field)]


def test_empty_batches_have_the_schema() -> None:
    assert records_to_events([], origin="t").events.schema == EVENT_SCHEMA
    assert envelopes_to_events([]).events.schema == EVENT_SCHEMA
    frame = records_to_events(["x"], origin="t").events
    assert frame.schema == EVENT_SCHEMA
    assert isinstance(frame, pl.DataFrame)
