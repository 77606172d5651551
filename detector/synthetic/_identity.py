"""``userIdentity`` blocks, as CloudTrail writes them for each kind of principal.

Each builder returns a *fresh* dict, so records never share mutable parts. The hot ones
(role sessions, which carry almost all application traffic) are closures over precomputed
strings: :func:`role_session` is called once per credential period and the closure once per
event.

Imports: the standard library and this package's :mod:`._formats`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from detector.synthetic._formats import iso_time

Record: TypeAlias = dict[str, Any]
IdentityFactory: TypeAlias = Callable[[], Record]

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"


@dataclass(frozen=True, slots=True)
class Role:
    """An IAM role: what ``sessionIssuer`` describes."""

    account_id: str
    name: str
    role_id: str  # AROA...
    path: str = "/"

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role{self.path}{self.name}"

    def session_arn(self, session_name: str) -> str:
        return f"arn:aws:sts::{self.account_id}:assumed-role/{self.name}/{session_name}"


@dataclass(frozen=True, slots=True)
class IamUser:
    """A long-lived IAM user with one access key."""

    account_id: str
    name: str
    user_id: str  # AIDA...
    access_key_id: str  # AKIA...

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:user/{self.name}"


def role_session(
    role: Role,
    session_name: str,
    access_key_id: str,
    created: int,
    *,
    ec2_role_delivery: bool = False,
    web_identity_provider: str | None = None,
    source_identity: str | None = None,
) -> IdentityFactory:
    """A factory of ``AssumedRole`` identities for one session's credentials."""
    principal_id = f"{role.role_id}:{session_name}"
    arn = role.session_arn(session_name)
    account = role.account_id
    issuer_arn = role.arn
    created_text = iso_time(created)
    federation: Record = {}
    if web_identity_provider is not None:
        federation = {"federatedProvider": web_identity_provider, "attributes": {}}

    def build() -> Record:
        context: Record = {
            "sessionIssuer": {
                "type": "Role",
                "principalId": role.role_id,
                "arn": issuer_arn,
                "accountId": account,
                "userName": role.name,
            },
            "webIdFederationData": dict(federation),
            "attributes": {"creationDate": created_text, "mfaAuthenticated": "false"},
        }
        if source_identity is not None:
            context["sourceIdentity"] = source_identity
        if ec2_role_delivery:
            context["ec2RoleDelivery"] = "2.0"
        return {
            "type": "AssumedRole",
            "principalId": principal_id,
            "arn": arn,
            "accountId": account,
            "accessKeyId": access_key_id,
            "sessionContext": context,
        }

    return build


def iam_user(user: IamUser, *, access_key: bool = True) -> Record:
    """An ``IAMUser`` identity; console sign-ins carry no access key."""
    identity: Record = {
        "type": "IAMUser",
        "principalId": user.user_id,
        "arn": user.arn,
        "accountId": user.account_id,
    }
    if access_key:
        identity["accessKeyId"] = user.access_key_id
    identity["userName"] = user.name
    return identity


def iam_user_console(user: IamUser, access_key_id: str, created: int) -> Record:
    """An ``IAMUser`` working in the console: temporary key, MFA-authenticated session."""
    identity = iam_user(user, access_key=False)
    identity["accessKeyId"] = access_key_id
    identity["sessionContext"] = {
        "sessionIssuer": {},
        "webIdFederationData": {},
        "attributes": {"creationDate": iso_time(created), "mfaAuthenticated": "true"},
    }
    return identity


def failed_sign_in_user(user: IamUser) -> Record:
    """What a failed console sign-in shows: no ARN, an empty access key."""
    return {
        "type": "IAMUser",
        "principalId": user.user_id,
        "accountId": user.account_id,
        "accessKeyId": "",
        "userName": user.name,
    }


def aws_service(invoked_by: str) -> Record:
    """An ``AWSService`` identity (a service acting on its own, e.g. assuming a role)."""
    return {"type": "AWSService", "invokedBy": invoked_by}


def service_event_identity(account_id: str, invoked_by: str) -> Record:
    """The account-only identity of ``AwsServiceEvent`` records."""
    return {"accountId": account_id, "invokedBy": invoked_by}


def web_identity_user(account_id: str, subject: str, audience: str) -> Record:
    """A ``WebIdentityUser`` (an OIDC token, e.g. a GitHub Actions job) calling STS."""
    provider = oidc_provider_arn(account_id)
    return {
        "type": "WebIdentityUser",
        "principalId": f"{provider}:{audience}:{subject}",
        "userName": subject,
        "identityProvider": provider,
    }


def oidc_provider_arn(account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:oidc-provider/{GITHUB_OIDC_HOST}"
