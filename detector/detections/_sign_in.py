"""Detections on who signs in and how: the root user, console sign-ins without MFA, and
repeated failed console sign-ins (the one detection here that counts over the batch).

Imports: polars, this package's vocabulary and examples.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

import polars as pl

from detector.detections._detection import (
    KNOWN_ITEMS_SCHEMA,
    Detection,
    DetectionConfig,
    DetectionContext,
    Matcher,
)
from detector.detections._examples import (
    ACCOUNT,
    EXAMPLE_TIME,
    api_call,
    console_sign_in,
    iam_user,
    role_session,
    root_user,
    service,
)
from detector.detections._expressions import (
    calls,
    evidence,
    learned_in_batch,
    only_with_rows,
    succeeded,
    where,
)

__all__ = [
    "CONSOLE_LOGIN_FAILURES_FROM_ONE_ADDRESS",
    "CONSOLE_LOGIN_FAILURES_REPEATED",
    "CONSOLE_LOGIN_WITHOUT_MFA",
    "CONSOLE_SIGN_IN_TOKEN_FROM_ACCESS_KEYS",
    "ROOT_CONSOLE_LOGIN_FAILED",
    "ROOT_CREDENTIAL_USE",
]

_SIGN_IN: Final = "signin.amazonaws.com"
_MFA_USED = pl.col("additional_event_data").str.json_path_match("$.MFAUsed")

ROOT_CREDENTIAL_USE = Detection(
    id="root_credential_use",
    title="Root user credentials used",
    description="The account's root user signed in or called an API, itself rather than "
    "through an AWS service acting for it (the console, signin.amazonaws.com, acts for root "
    "itself: a key made there is root's own). Root should be locked away; any use, read-only "
    "included, is worth a look (as in the CIS benchmark's root-usage alarm).",
    severity=5.0,
    mitre=("T1078.004",),
    selects=pl.col("principal_type") == "Root",
    matches=where(
        succeeded()
        & (pl.col("invoked_by").is_null() | (pl.col("invoked_by") == _SIGN_IN))
        & pl.col("event_type").fill_null("").ne("AwsServiceEvent"),
        event_name=pl.col("event_name"),
        console=pl.col("console"),
        mfa_used=_MFA_USED,
    ),
    positives=(
        (console_sign_in(root_user(), mfa_used=True),),
        (api_call("iam.amazonaws.com", "ListAccessKeys", identity=root_user(), read_only=True),),
        (
            api_call(
                "s3.amazonaws.com",
                "PutBucketVersioning",
                {"bucketName": "audit", "VersioningConfiguration": {"Status": "Enabled"}},
                identity=root_user(),
            ),
        ),
        # Root making itself an access key in the console: no userName, invoked by sign-in.
        (
            api_call(
                "iam.amazonaws.com",
                "CreateAccessKey",
                identity={**root_user(), "invokedBy": _SIGN_IN},
                source_ip="signin.amazonaws.com",
                response_elements={"accessKey": {"accessKeyId": "AKIAEXAMPLEROOTKEY2"}},
            ),
        ),
    ),
    negatives=(
        (
            api_call(
                "iam.amazonaws.com",
                "CreateServiceLinkedRole",
                {"aWSServiceName": "autoscaling.amazonaws.com"},
                identity={**root_user(), "invokedBy": "autoscaling.amazonaws.com"},
                source_ip="autoscaling.amazonaws.com",
            ),
        ),
        (api_call("iam.amazonaws.com", "ListAccessKeys", identity=iam_user(), read_only=True),),
    ),
    anchors=(
        "GuardDuty: Policy:IAMUser/RootCredentialUsage",
        "Panther: AWS.Root.Activity, AWS.Console.RootLogin",
        "Sigma: aws_root_account_usage",
    ),
)

_PASSWORD_ONLY: Final = (
    succeeded()
    & (_MFA_USED == "No").fill_null(False)
    & pl.col("additional_event_data").str.json_path_match("$.SamlProviderArn").is_null()
)
# The profile's network of an address: an IPv4 address's /24 (as detector.features derives
# it); other addresses stand for themselves.
_NETWORK: Final = (
    pl.when(pl.col("source_ip_address").str.contains(r"^\d+\.\d+\.\d+\.\d+$"))
    .then(pl.col("source_ip_address").str.replace(r"\.\d+$", ".0/24"))
    .otherwise(pl.col("source_ip_address"))
)


def _password_only_from_new_network(
    events: pl.LazyFrame, config: DetectionConfig, context: DetectionContext
) -> pl.LazyFrame:
    """Password-only sign-ins from a network the user is not known on. A user who always
    signs in without MFA from the office is a posture finding once, not one a day; the same
    password used from somewhere else is what a stolen one looks like."""
    rows = (
        events.filter(_PASSWORD_ONLY)
        .with_columns(network=_NETWORK)
        .filter(~learned_in_batch(["principal_key", "network"], config.profile_lag))
    )
    addresses, networks = context.known("public_ip"), context.known("public_network")
    if addresses is not None and networks is not None:
        rows = rows.join(
            addresses.rename({"value": "source_ip_address"}),
            on=["principal_key", "source_ip_address"],
            how="anti",
        ).join(networks.rename({"value": "network"}), on=["principal_key", "network"], how="anti")
    return rows.with_columns(
        evidence(
            login_to=pl.col("additional_event_data").str.json_path_match("$.LoginTo"),
            source_ip=pl.col("source_ip_address"),
            network=pl.col("network"),
        )
    ).drop("network")


_BOB: Final = f"arn:aws:iam::{ACCOUNT}:user/bob"
_EXAMPLE_PROFILE: Final = pl.DataFrame(
    {
        "principal_key": [_BOB, _BOB],
        "kind": ["public_ip", "public_network"],
        "value": ["198.51.100.23", "198.51.100.0/24"],
    },
    schema=KNOWN_ITEMS_SCHEMA,
)

CONSOLE_LOGIN_WITHOUT_MFA = Detection(
    id="console_login_without_mfa",
    title="IAM user signed in to the console without MFA from a new network",
    description="An IAM user signed in to the console with a password alone, from an address "
    "(or IPv4 /24) the profile does not know the user on: the first such sign-in of a user, "
    "and then each one from somewhere new. Users who always sign in without MFA from the "
    "same place are reported once, not every day. Sign-ins through a SAML provider or IAM "
    "Identity Center are left out: their MFA happens at the identity provider, which "
    "CloudTrail does not see. Root sign-ins are reported by root_credential_use, with MFA in "
    "its evidence.",
    severity=5.0,
    mitre=("T1078.004",),
    selects=calls(_SIGN_IN, "ConsoleLogin") & (pl.col("principal_type") == "IAMUser"),
    matches=only_with_rows(_password_only_from_new_network),
    positives=(
        (console_sign_in(iam_user("bob")),),
        (console_sign_in(iam_user("bob"), source_ip="203.0.113.50"),),
    ),
    negatives=(
        (console_sign_in(iam_user("bob"), mfa_used=True, source_ip="203.0.113.50"),),
        (console_sign_in(iam_user("bob"), success=False, source_ip="203.0.113.50"),),
        (console_sign_in(iam_user("bob"), source_ip="198.51.100.23"),),  # known address
        (console_sign_in(iam_user("bob"), source_ip="198.51.100.99"),),  # known network
        (
            console_sign_in(
                iam_user("bob"),
                source_ip="203.0.113.50",
                SamlProviderArn="arn:aws:iam::111122223333:saml-provider/Okta",
            ),
        ),
        (console_sign_in(role_session("AWSReservedSSO_Admin_0a1b2c3d", "bob@example.com")),),
    ),
    anchors=(
        "Panther: AWS.Console.LoginWithoutMFA",
        "Sigma: aws_cloudtrail_console_login_without_mfa",
        "Stratus: aws.initial-access.console-login-without-mfa",
    ),
    example_context=DetectionContext(known_items=_EXAMPLE_PROFILE),
)

_FAILED_SIGN_IN = pl.col("response_elements").str.contains('":"Failure"', literal=True)


def _failures_counted_by(key: str) -> Matcher:
    """Failed sign-ins of ``key`` (a principal, an address) that failed ``threshold`` times
    within ``window``: every failure from the window before the first time the count was
    reached onwards."""

    def matches(
        events: pl.LazyFrame, config: DetectionConfig, context: DetectionContext
    ) -> pl.LazyFrame:
        window = config.failed_sign_in_window
        failures_in_window = (
            pl.col("event_id")
            .is_not_null()
            .cast(pl.UInt32)  # one per failure
            .rolling_sum_by("event_time", window_size=window)
            .over(key)
        )
        first_reached = (
            pl.col("event_time")
            .filter(pl.col("failures_in_window") >= config.failed_sign_in_threshold)
            .min()
            .over(key)
        )
        return (
            events.filter(_FAILED_SIGN_IN.fill_null(False) & pl.col(key).is_not_null())
            .sort("event_time", "event_id")
            .with_columns(failures_in_window=failures_in_window)
            .with_columns(first_reached=first_reached)
            .filter(pl.col("event_time") >= pl.col("first_reached") - window)
            .with_columns(
                evidence(
                    most_failures_in_window=pl.col("failures_in_window").max().over(key),
                    users=pl.col("session_name").n_unique().over(key),
                    threshold=pl.lit(config.failed_sign_in_threshold),
                    window_seconds=pl.lit(int(window.total_seconds())),
                )
            )
            .drop("failures_in_window", "first_reached")
        )

    return matches


def _by_address(matcher: Matcher) -> Matcher:
    """Findings keyed by the source address rather than by each user it tried: one finding
    for a spray across many users, named after where it came from."""

    def matches(
        events: pl.LazyFrame, config: DetectionConfig, context: DetectionContext
    ) -> pl.LazyFrame:
        return matcher(events, config, context).with_columns(
            principal_key=pl.lit("source-ip:") + pl.col("source_ip"),
            principal_arn=pl.lit(None, dtype=pl.String),
        )

    return matches


def _failures(
    count: int, spacing: timedelta, user: str = "carol", *, spray: bool = False
) -> tuple[dict[str, Any], ...]:
    """``count`` failed sign-ins: of one user from as many addresses, or (``spray``) of as
    many users from one address."""
    start = datetime.fromisoformat(EXAMPLE_TIME)
    return tuple(
        console_sign_in(
            iam_user(f"{user}{i}" if spray else user),
            success=False,
            event_time=(start + i * spacing).strftime("%Y-%m-%dT%H:%M:%SZ"),
            source_ip="198.51.100.9" if spray else f"198.51.100.{10 + i}",
        )
        for i in range(count)
    )


CONSOLE_LOGIN_FAILURES_REPEATED = Detection(
    id="console_login_failures_repeated",
    title="Repeated failed console sign-ins",
    description="One principal failed to sign in to the console failed_sign_in_threshold "
    "times (default 5) within failed_sign_in_window (default 10 minutes), from any number of "
    "addresses: password guessing. Counted within a batch; slower guessing across batches is "
    "left to the model.",
    severity=4.0,
    mitre=("T1110",),
    selects=calls(_SIGN_IN, "ConsoleLogin"),
    matches=_failures_counted_by("principal_key"),
    positives=(_failures(5, timedelta(seconds=30)), _failures(8, timedelta(minutes=1))),
    negatives=(
        _failures(4, timedelta(seconds=30)),
        _failures(5, timedelta(minutes=5)),
        (console_sign_in(iam_user("carol"), mfa_used=True),),
        (
            api_call(
                "sts.amazonaws.com",
                "GetCallerIdentity",
                identity=service("sso.amazonaws.com"),
                read_only=True,
            ),
        ),
    ),
    anchors=(
        "GuardDuty: none for console sign-ins",
        "Panther: Standard.BruteForceByUser",
        "Sigma: aws_cloudtrail_console_login_failure",
    ),
)

CONSOLE_LOGIN_FAILURES_FROM_ONE_ADDRESS = Detection(
    id="console_login_failures_from_one_address",
    title="Repeated failed console sign-ins from one address",
    description="One source address failed to sign in to the console "
    "failed_sign_in_threshold times (default 5) within failed_sign_in_window (default 10 "
    "minutes), whichever users it tried: password spraying across users, or guessing one. "
    "Reported once per address (the finding's principal is source-ip:<address>), with the "
    "number of users tried; counted within a batch.",
    severity=4.0,
    mitre=("T1110.003", "T1110.001"),
    selects=calls(_SIGN_IN, "ConsoleLogin"),
    matches=_by_address(_failures_counted_by("source_ip")),
    positives=(
        _failures(5, timedelta(seconds=30), spray=True),
        _failures(12, timedelta(seconds=20), "dave", spray=True),
    ),
    negatives=(
        _failures(4, timedelta(seconds=30), spray=True),
        _failures(5, timedelta(minutes=5), spray=True),
        tuple(
            console_sign_in(iam_user(f"erin{i}"), source_ip="198.51.100.9", mfa_used=True)
            for i in range(6)
        ),
    ),
    anchors=(
        "GuardDuty: none for console sign-ins",
        "Panther: Standard.BruteForceByIP",
        "Sigma: aws_cloudtrail_console_login_failure (per user only)",
    ),
)

ROOT_CONSOLE_LOGIN_FAILED = Detection(
    id="root_console_login_failed",
    title="Failed console sign-in as root",
    description="Someone tried the root user's password and failed. Root should never be "
    "signed in to, so even one failure is someone who knows the account's root e-mail "
    "address trying; repeated failures are also counted by "
    "console_login_failures_repeated.",
    severity=4.0,
    mitre=("T1110", "T1078.004"),
    selects=calls(_SIGN_IN, "ConsoleLogin") & (pl.col("principal_type") == "Root"),
    matches=where(
        _FAILED_SIGN_IN.fill_null(False),
        error=pl.col("error_message"),
        mfa_used=_MFA_USED,
    ),
    positives=((console_sign_in(root_user(), success=False),),),
    negatives=(
        (console_sign_in(iam_user("carol"), success=False),),
        (console_sign_in(iam_user("carol"), mfa_used=True),),
    ),
    anchors=(
        "GuardDuty: none",
        "Panther: none found (AWS.Console.RootLogin counts successes)",
        "Sigma: none (aws_root_account_usage counts successes)",
    ),
)

# The console's own federation calls GetSigninToken with this user agent (Sigma's filter).
_CONSOLE_FEDERATION_AGENT: Final = "Jersey/${project.version}"


def _signin_token(identity: dict[str, Any], user_agent: str) -> dict[str, Any]:
    record = api_call(
        _SIGN_IN,
        "GetSigninToken",
        identity=identity,
        region="us-east-1",
        response_elements={"credentials": "***", "GetSigninToken": "Success"},
        eventType="AwsConsoleSignIn",
    )
    record["userAgent"] = user_agent
    return record


CONSOLE_SIGN_IN_TOKEN_FROM_ACCESS_KEYS = Detection(
    id="console_sign_in_token_from_access_keys",
    title="Console sign-in token made from API credentials",
    description="GetSigninToken turned temporary API credentials (a federation token or a "
    "role session) into a console sign-in URL, outside the console's own federation: how "
    "tools such as aws_consoler take stolen keys to the console, where API logging is "
    "thinner and MFA is never asked.",
    severity=5.0,
    mitre=("T1550.001", "T1078.004"),
    selects=calls(_SIGN_IN, "GetSigninToken"),
    matches=where(
        succeeded()
        & ~pl.col("user_agent")
        .str.contains(_CONSOLE_FEDERATION_AGENT, literal=True)
        .fill_null(False),
        user_agent=pl.col("user_agent"),
        session=pl.col("session_name"),
    ),
    positives=(
        (_signin_token(role_session("ci", "botocore-session-1714564800"), "python-requests/2.31"),),
        (
            _signin_token(
                {
                    "type": "FederatedUser",
                    "principalId": "111122223333:consoler",
                    "arn": "arn:aws:sts::111122223333:federated-user/consoler",
                    "accountId": "111122223333",
                    "accessKeyId": "ASIAEXAMPLEFEDKEY",
                    "sessionContext": {
                        "sessionIssuer": {
                            "type": "IAMUser",
                            "principalId": "AIDAEXAMPLEUSERID",
                            "arn": "arn:aws:iam::111122223333:user/alice",
                            "accountId": "111122223333",
                            "userName": "alice",
                        }
                    },
                },
                "aws_consoler/1.0",
            ),
        ),
    ),
    negatives=(
        (_signin_token(role_session("ci", "alice"), "Jersey/${project.version}"),),
        (console_sign_in(iam_user("bob"), mfa_used=True),),
    ),
    anchors=(
        "GuardDuty: none",
        "Panther: none found",
        "Sigma: aws_console_getsignintoken",
    ),
)
